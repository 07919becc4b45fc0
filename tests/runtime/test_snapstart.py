"""SnapStart's runtime hooks in the API entry (``serverless_fastapi_entry.snapstart``), driven
as the Lambda Python runtime drives them.

The runtime is stood in for by a ``snapshot_restore_py`` module with the API and registry of the
real one (PyPI ``snapshot-restore-py`` 1.0.0) and by what its bootstrap does in a SnapStart init
(``awslambdaric``: ``lambda_runtime_hooks_runner``): import the handler's module, run the
before-snapshot hooks in the reverse order of their registration, and, in each execution
environment resumed from the snapshot, the after-restore hooks in their order. One snapshot
resumed into several environments is a process forked after the before-snapshot hooks, once
per environment, with the snapshot's ``random`` state put back (``random`` reseeds itself in a
forked child; a restore is no fork and does not).

The app opens what real apps open at startup: an async SQLAlchemy engine on asyncpg whose pool
it warms (against the embedded PostgreSQL), a file SQLite engine (a sync pool), and Redis
clients, sync and asyncio (against a real redis-server when one is available). The server's
own view (``pg_stat_activity``, ``CLIENT LIST``) says which connections are open.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from mangum import Mangum

from constructs_lib.runtime.serverless_fastapi_entry import snapstart
from constructs_lib.runtime.serverless_fastapi_entry.snapstart import (
    SnapStartHooks,
    find_openapi_app,
    warmup_event,
)
from tests.conftest import PostgresForTests
from tests.runtime.test_entry import RUNTIME_ROOT, http_event

DATABASE = "snapstart_test"
CLIENT_NAME = "snapstart-app"

# The real module's API and registry (snapshot-restore-py 1.0.0), which the runtime reads.
FAKE_RUNTIME_MODULE = """
_before_snapshot_registry = []
_after_restore_registry = []


def register_before_snapshot(func, *args, **kwargs):
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot():
    return _before_snapshot_registry


def get_after_restore():
    return _after_restore_registry
"""

SNAP_APP = """
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from snapshot_restore_py import register_after_restore, register_before_snapshot

STATE = {}
SEEN = {}


def app_before_snapshot():
    # Runs between the entry's hooks: after its preparation, before it closes the connections.
    SEEN["openapi_built"] = APP.openapi_schema is not None
    SEEN["pool_open"] = STATE["engine"].pool.checkedin()


def app_after_restore():
    SEEN["restored"] = True


register_before_snapshot(app_before_snapshot)
register_after_restore(app_after_restore)


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as conn:  # the pool warmed at startup, as many apps do
        STATE["init_pid"] = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    STATE["engine"] = engine
    sqlite = create_engine("sqlite:///" + os.environ["SQLITE_PATH"])
    raw = sqlite.raw_connection()
    STATE["sqlite_dbapi"] = raw.dbapi_connection
    raw.close()  # back to the pool, open
    STATE["sqlite"] = sqlite
    if os.environ.get("REDIS_URL"):
        import redis
        import redis.asyncio

        STATE["redis"] = redis.Redis.from_url(os.environ["REDIS_URL"], client_name="snapstart-app")
        STATE["redis"].ping()
        STATE["aredis"] = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"], client_name="snapstart-app")
        await STATE["aredis"].ping()
    yield


APP = FastAPI(title="snap", lifespan=lifespan)


@APP.get("/pid")
async def pid():
    async with STATE["engine"].connect() as conn:
        backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    with STATE["sqlite"].connect() as conn:
        conn.execute(text("SELECT 1"))
    cache = None
    if "aredis" in STATE:
        cache = await STATE["aredis"].ping() and STATE["redis"].ping()
    return {"pid": backend, "cache": cache}
"""

# What the runtime's bootstrap does in a SnapStart init, and two execution environments
# resumed from the snapshot. Pauses (reads a line) where the test looks at the servers.
DRIVER = textwrap.dedent(
    """
    import json, os, random, sqlite3, sys

    def emit(**fields):
        print(json.dumps(fields), flush=True)

    def pause():
        assert sys.stdin.readline().strip() == "go"

    from serverless_fastapi_entry import lambda_api
    import snapshot_restore_py as runtime
    import snap_app

    ran = []

    def run(func, args, kwargs):
        ran.append(func.__qualname__)
        func(*args, **kwargs)

    emit(phase="init", pid=snap_app.STATE["init_pid"])
    pause()
    before = runtime.get_before_snapshot()
    while before:
        run(*before.pop())
    try:
        snap_app.STATE["sqlite_dbapi"].execute("SELECT 1")
        sqlite_closed = False
    except sqlite3.ProgrammingError:
        sqlite_closed = True
    emit(phase="snapshot", ran=ran, seen=snap_app.SEEN, sqlite_closed=sqlite_closed)
    pause()

    # The random state every environment resumes with, in the snapshot.
    snapshot_state = random.getstate()
    frozen = random.Random()
    frozen.setstate(snapshot_state)
    environments = []
    for _ in range(2):  # one after the other: they share the inherited event loop's epoll
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            try:
                # A restore is no fork: undo the reseed that random does in a forked child.
                random.setstate(snapshot_state)
                ran.clear()
                for func, args, kwargs in runtime.get_after_restore():
                    run(func, args, kwargs)
                value = random.random()
                response = lambda_api.handler(json.loads(os.environ["PID_EVENT"]), None)
                out = {"ran": ran, "random": value, "status": response["statusCode"],
                       "body": json.loads(response["body"]), "seen": snap_app.SEEN}
            except BaseException as error:
                out = {"error": repr(error)}
            os.write(write_end, json.dumps(out).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(child, 0)
        environments.append(json.loads(data))
    emit(phase="restored", environments=environments, frozen=frozen.random())
    """
)


def backend_pids(postgres: PostgresForTests, database: str) -> set[int]:
    """The server's backends connected to ``database`` (as the server sees them)."""
    sql = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"  # noqa: S608 - a constant
    if postgres.local is not None:
        return {int(line) for line in postgres.local.psql(sql).split() if line.strip()}
    import asyncpg

    assert postgres.base_url is not None
    plain = postgres.base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def query() -> set[int]:
        conn = await asyncpg.connect(plain)
        try:
            return {row["pid"] for row in await conn.fetch(sql)}
        finally:
            await conn.close()

    return asyncio.run(query())


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str | None]:
    """A redis-server's URL, or None where none can run (the Redis part is then left out)."""
    from devtools.localredis import LocalRedis

    try:
        server = LocalRedis().start()
    except RuntimeError:
        yield None
        return
    try:
        yield server.url
    finally:
        server.stop()


def redis_clients(url: str) -> list[str]:
    """The clients of the redis-server named like the app's (``CLIENT LIST``)."""
    import redis

    admin = redis.Redis.from_url(url)
    try:
        return [c["name"] for c in admin.client_list() if c.get("name") == CLIENT_NAME]
    finally:
        admin.close()


@pytest.mark.slow
def test_no_connection_from_before_the_snapshot_survives_and_each_restore_has_its_own_random(
    tmp_path: Path, postgres: PostgresForTests, redis_url: str | None
) -> None:
    database_url = postgres.database(DATABASE)
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "snapshot_restore_py.py").write_text(FAKE_RUNTIME_MODULE)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "snap_app.py").write_text(SNAP_APP)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FASTAPI_DEPLOY_", "AWS_"))},
        "PYTHONPATH": os.pathsep.join([str(RUNTIME_ROOT), str(tmp_path / "runtime"), str(tmp_path / "app")]),
        "LAMBDA_TASK_ROOT": str(tmp_path / "app"),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
        "FASTAPI_DEPLOY_ENTRYPOINT": "snap_app:APP",
        "DATABASE_URL": database_url,
        "SQLITE_PATH": str(tmp_path / "local.db"),
        "REDIS_URL": redis_url or "",
        "PID_EVENT": json.dumps(http_event("/pid")),
    }
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path / "app",
    )
    assert driver.stdin is not None and driver.stdout is not None

    def phase(name: str) -> dict[str, Any]:
        line = driver.stdout.readline() if driver.stdout else ""
        if not line:
            driver.wait(timeout=30)
            raise AssertionError(
                f"the driver stopped before {name}:\n{driver.stderr.read() if driver.stderr else ''}"
            )
        fields: dict[str, Any] = json.loads(line)
        assert fields["phase"] == name
        return fields

    def go() -> None:
        assert driver.stdin is not None
        driver.stdin.write("go\n")
        driver.stdin.flush()

    try:
        # Init: the app's startup connected; the server sees it (the check can see one).
        init = phase("init")
        assert init["pid"] in backend_pids(postgres, DATABASE)
        if redis_url:
            assert len(redis_clients(redis_url)) == 2
        go()

        # Before the snapshot: the entry prepared, the app's own hook ran between the entry's,
        # and every connection the app opened is closed, as the servers see it.
        snapshot = phase("snapshot")
        assert snapshot["ran"] == [
            "SnapStartHooks.prepare",
            "app_before_snapshot",
            "SnapStartHooks.close_connections",
        ]
        assert snapshot["seen"] == {"openapi_built": True, "pool_open": 1}
        assert backend_pids(postgres, DATABASE) == set()
        assert snapshot["sqlite_closed"]
        if redis_url:
            assert redis_clients(redis_url) == []
        go()

        # Each restored environment: reseeded before the app's own hook, its own random
        # numbers, and the database served on a connection of its own.
        restored = phase("restored")
        first, second = restored["environments"]
        for environment in (first, second):
            assert "error" not in environment, environment
            assert environment["ran"] == ["SnapStartHooks.reseed", "app_after_restore"]
            assert environment["status"] == 200, environment
            assert environment["body"]["cache"] is (True if redis_url else None)
            assert environment["random"] != restored["frozen"]
            assert environment["body"]["pid"] != init["pid"]
        assert first["random"] != second["random"]
        assert first["body"]["pid"] != second["body"]["pid"]
        assert driver.wait(timeout=30) == 0, driver.stderr.read() if driver.stderr else ""
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_no_hook_and_no_import_outside_a_snapstart_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    assert SnapStartHooks.register({}) is None
    assert SnapStartHooks.register({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}) is None
    assert "snapshot_restore_py" not in sys.modules


def test_a_snapstart_init_without_the_runtime_module_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # an import of it fails
    with pytest.raises(RuntimeError, match="snapshot_restore_py"):
        SnapStartHooks.register({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})


def test_the_hooks_register_around_the_apps_own() -> None:
    before: list[str] = []
    after: list[str] = []
    hooks = SnapStartHooks(
        lambda func, *args, **kwargs: before.append(func.__name__),
        lambda func, *args, **kwargs: after.append(func.__name__),
    )
    before.append("app's")
    after.append("app's")
    hooks.serve(FastAPI(), lambda event, context: {}, asyncio.new_event_loop())
    # Registration order; the runtime runs before-snapshot hooks from the last one.
    assert before == ["close_connections", "app's", "prepare"]
    assert after == ["reseed", "app's"]


def test_the_openapi_app_is_found_behind_middleware() -> None:
    app = FastAPI()

    class Middleware:
        def __init__(self, app: Any) -> None:
            self.app = app

    assert find_openapi_app(Middleware(Middleware(app))) is app
    assert find_openapi_app(FastAPI(openapi_url=None)) is None
    assert find_openapi_app(object()) is None


def test_prepare_builds_the_schema_and_serves_a_synthetic_request(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    calls: list[str] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        calls.append(f"{request.method} {request.url.path} {request.headers['user-agent']}")
        return await call_next(request)

    handler = Mangum(app, lifespan="off")
    hooks = SnapStartHooks(lambda *a, **k: None, lambda *a, **k: None)
    caplog.set_level("INFO", logger=snapstart.log.name)
    hooks.prepare(app, handler)
    assert app.openapi_schema is not None
    assert calls == [f"GET /openapi.json {snapstart.WARMUP_USER_AGENT}"]
    assert "answered 200" in caplog.text

    # Without an OpenAPI document: a path no app routes.
    bare = FastAPI(openapi_url=None)
    hooks.prepare(bare, Mangum(bare, lifespan="off"))
    assert "GET /.well-known/serverless-fastapi/snapstart answered 404" in caplog.text


def test_a_failing_preparation_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    hooks = SnapStartHooks(lambda *a, **k: None, lambda *a, **k: None)
    hooks.prepare(FastAPI(), broken)  # would otherwise fail the version's publication
    assert "synthetic GET /openapi.json failed" in caplog.text


def test_the_synthetic_event_is_an_http_api_event() -> None:
    event = warmup_event("/openapi.json")
    assert event["version"] == "2.0"
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/openapi.json"
    assert event["requestContext"]["stage"] == "$default"  # no root path: the schema's servers unchanged
