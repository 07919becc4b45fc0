"""Lambda SnapStart: the runtime hooks of the API function, registered only in a SnapStart init.

With SnapStart, Lambda runs the init once when a version is published, snapshots the
execution environment's memory and disk, and resumes every new execution environment of that
version from the snapshot. The hooks come from the ``snapshot_restore_py`` module that the
Lambda Python runtime provides (the ``snapshot-restore-py`` distribution on PyPI); the runtime
calls them only when ``AWS_LAMBDA_INITIALIZATION_TYPE`` is ``snap-start``, and so is the module
imported only then: an ordinary cold start pays one environment lookup.

The runtime runs before-snapshot hooks in the reverse order of their registration and
after-restore hooks in the order of registration. The entry registers around the app's own
hooks (which the app registers while it is imported or started):

* before the app is imported: ``close_connections`` (so it runs *last* before the snapshot,
  after the app's own hooks) and ``reseed`` (so it runs *first* after a restore, before the
  app's own hooks);
* after the lifespan has started: ``prepare`` (so it runs *first* before the snapshot).

Before the snapshot, in order:

1. ``prepare``: the OpenAPI schema built (FastAPI caches it), then one synthetic
   ``GET`` through the whole handler (Mangum, the stage prefix, the app's middleware and
   router) to the app's OpenAPI URL, or to a path no app routes when the app has none, so
   what a first request builds lazily is built now. A failure is logged, never raised (it
   would fail the version's publication).
2. the app's own before-snapshot hooks, if any;
3. ``close_connections``: no database or cache connection in the snapshot. A snapshot is
   resumed into many execution environments at once, possibly days later: a socket opened
   before it would be shared by all of them, and long dead. SQLAlchemy engines (sync and
   async) are disposed, which closes their pooled connections and gives them a new, empty
   pool; Redis clients' connection pools (sync and asyncio, cluster nodes included) are
   disconnected. Both reconnect by themselves on their next use. A connection the app
   holds outside a pool (a raw ``asyncpg.connect``, an ``asyncpg`` pool, a connection kept
   checked out) is the app's to close in its own before-snapshot hook: a checked-out
   SQLAlchemy connection is reported in the log.

After a restore, in order:

1. ``reseed``: the ``random`` module's generator reseeded from the operating system, so that
   each execution environment resumed from one snapshot draws its own numbers (``secrets``,
   ``uuid.uuid4`` and ``os.urandom`` read the kernel at every call and need nothing);
2. the app's own after-restore hooks. The restore must finish within 10 seconds: nothing
   here connects.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import sys
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("serverless_fastapi_entry.snapstart")

INITIALIZATION_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"
WARMUP_USER_AGENT = "serverless-fastapi-snapstart"
# GET here when the app serves no OpenAPI document: a path no app routes (a 404), so the
# request crosses the middleware and the router without running an endpoint.
UNROUTED_PATH = "/.well-known/serverless-fastapi/snapstart"

Register = Callable[..., Any]
Handler = Callable[[dict[str, Any], Any], Any]


def snap_start_init(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this init is the one Lambda snapshots (a SnapStart version being published)."""
    env = os.environ if environ is None else environ
    return env.get(INITIALIZATION_TYPE_VARIABLE) == SNAP_START


class SnapStartHooks:
    """The entry's hooks; ``register`` before the app is imported, ``serve`` after its
    lifespan started."""

    def __init__(self, register_before_snapshot: Register, register_after_restore: Register) -> None:
        self._register_before_snapshot = register_before_snapshot
        self.loop: asyncio.AbstractEventLoop | None = None
        register_before_snapshot(self.close_connections)
        register_after_restore(self.reseed)

    @classmethod
    def register(cls, environ: Mapping[str, str] | None = None) -> SnapStartHooks | None:
        """The hooks, registered, in a SnapStart init; ``None`` otherwise."""
        if not snap_start_init(environ):
            return None
        try:
            from snapshot_restore_py import (  # type: ignore[import-not-found]  # noqa: PLC0415
                register_after_restore,
                register_before_snapshot,
            )
        except ImportError as error:
            raise RuntimeError(
                f"{INITIALIZATION_TYPE_VARIABLE} is {SNAP_START} but the runtime has no "
                "snapshot_restore_py module: SnapStart needs a Lambda managed Python runtime, 3.12 or later"
            ) from error
        return cls(register_before_snapshot, register_after_restore)

    def serve(self, app: Any, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        """The app is started in ``loop``, served by ``handler``: register ``prepare``."""
        self.loop = loop
        self._register_before_snapshot(self.prepare, app, handler)

    # Before the snapshot.

    def prepare(self, app: Any, handler: Handler) -> None:
        path = UNROUTED_PATH
        openapi_app = find_openapi_app(app)
        if openapi_app is not None:
            try:
                openapi_app.openapi()
                path = openapi_app.openapi_url
            except Exception:
                log.warning("SnapStart: the OpenAPI schema could not be built", exc_info=True)
        try:
            response = handler(warmup_event(path), WarmupContext())
            status = response.get("statusCode") if isinstance(response, dict) else None
            log.info("SnapStart: prepared; the synthetic GET %s answered %s", path, status)
        except Exception:
            log.warning("SnapStart: the synthetic GET %s failed", path, exc_info=True)

    def close_connections(self) -> None:
        closed = close_connections(self.loop)
        log.info("SnapStart: before the snapshot, closed %s", ", ".join(closed) or "no connection pool")

    # After a restore.

    def reseed(self) -> None:
        random.seed()


def find_openapi_app(app: Any, depth: int = 8) -> Any | None:
    """The FastAPI app (anything with ``openapi()`` and an ``openapi_url``) that ``app`` is or
    wraps (ASGI middleware keep the app they wrap as ``.app``)."""
    for _ in range(depth):
        if app is None:
            return None
        if callable(getattr(app, "openapi", None)) and getattr(app, "openapi_url", None):
            return app
        app = getattr(app, "app", None)
    return None


def warmup_event(path: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) ``GET path`` on the ``$default`` stage, as API Gateway sends."""
    host = "snapstart.invalid"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": host,
            "user-agent": WARMUP_USER_AGENT,
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "domainName": host,
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": WARMUP_USER_AGENT,
            },
            "requestId": "snapstart-warmup",
            "routeKey": "$default",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }


class WarmupContext:
    """The Lambda context of the synthetic request (what an app may read from it)."""

    def __init__(self) -> None:
        env = os.environ
        self.aws_request_id = "snapstart-warmup"
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.invoked_function_arn = ""
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def close_connections(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """Close the pooled connections of every SQLAlchemy engine and Redis client in this
    process; ``loop`` runs what asyncio drivers must await (the loop they were opened in).
    Only libraries already imported are looked for. Returns what was closed, for the log."""
    closed: list[str] = []
    found = _instances({**_sqlalchemy_types(), **_redis_types()})
    for engine in found.get("engine", []):
        if _dispose_engine(engine, loop):
            closed.append(f"SQLAlchemy engine {engine.url.render_as_string(hide_password=True)}")
    for pool in found.get("redis_pool", []):
        if _attempt("a Redis connection pool", pool.disconnect):
            closed.append("Redis connection pool")
    for pool in found.get("redis_async_pool", []):
        if _run(loop, "a Redis connection pool", pool.disconnect):
            closed.append("Redis connection pool (asyncio)")
    for node in found.get("redis_async_cluster_node", []):
        if _run(loop, "a Redis cluster node", node.disconnect):
            closed.append("Redis cluster node (asyncio)")
    return closed


def _instances(types: dict[str, type]) -> dict[str, list[Any]]:
    """The live objects of each of ``types``, by name (one pass over the collector's objects).

    Objects frozen by ``gc.freeze`` (the entry freezes what loading the app built, and apps
    freeze their own startup) are not in ``gc.get_objects()``: they are unfrozen for the pass
    and frozen again after it."""
    found: dict[str, list[Any]] = {}
    if not types:
        return found
    every = tuple(types.values())
    frozen = gc.get_freeze_count() > 0
    if frozen:
        gc.unfreeze()
    try:
        objects = gc.get_objects()
    finally:
        if frozen:
            gc.freeze()
    for obj in objects:
        if isinstance(obj, every):
            name = next(name for name, cls in types.items() if isinstance(obj, cls))
            found.setdefault(name, []).append(obj)
    return found


def _sqlalchemy_types() -> dict[str, type]:
    if "sqlalchemy" not in sys.modules:
        return {}
    from sqlalchemy.engine import Engine  # noqa: PLC0415

    return {"engine": Engine}


def _redis_types() -> dict[str, type]:
    types: dict[str, type] = {}
    if "redis.connection" in sys.modules:
        from redis.connection import ConnectionPool  # noqa: PLC0415

        types["redis_pool"] = ConnectionPool
    if "redis.asyncio.connection" in sys.modules:
        from redis.asyncio.connection import ConnectionPool as AsyncConnectionPool  # noqa: PLC0415

        types["redis_async_pool"] = AsyncConnectionPool
    if "redis.asyncio.cluster" in sys.modules:
        from redis.asyncio.cluster import ClusterNode  # noqa: PLC0415

        types["redis_async_cluster_node"] = ClusterNode
    return types


def _dispose_engine(engine: Any, loop: asyncio.AbstractEventLoop | None) -> bool:
    from sqlalchemy.engine.base import OptionEngine  # noqa: PLC0415
    from sqlalchemy.pool import SingletonThreadPool, StaticPool  # noqa: PLC0415

    if isinstance(engine, OptionEngine):
        return False  # a view of another engine (execution_options()): that one is disposed
    if isinstance(engine.pool, StaticPool | SingletonThreadPool):
        # One connection the app relies on, typically an in-memory SQLite database: disposing
        # it would lose the data; it is no network connection either.
        return False
    name = f"SQLAlchemy engine {engine.url.render_as_string(hide_password=True)}"
    checked_out = getattr(engine.pool, "checkedout", lambda: 0)()
    if checked_out:
        log.warning(
            "SnapStart: %s has %s connection(s) checked out, which stay open in the snapshot: "
            "close them in a before-snapshot hook",
            name,
            checked_out,
        )
    if engine.dialect.is_async:
        from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: PLC0415

        # The driver's connections belong to the loop they were opened in: closed there.
        return _run(loop, name, AsyncEngine(engine).dispose)
    return _attempt(name, engine.dispose)


def _run(loop: asyncio.AbstractEventLoop | None, name: str, close: Callable[[], Any]) -> bool:
    if loop is None or loop.is_closed() or loop.is_running():
        log.warning("SnapStart: %s left open: no event loop to close it in", name)
        return False
    return _attempt(name, lambda: loop.run_until_complete(close()))


def _attempt(name: str, close: Callable[[], Any]) -> bool:
    try:
        close()
    except Exception:
        log.warning("SnapStart: closing %s failed", name, exc_info=True)
        return False
    return True
