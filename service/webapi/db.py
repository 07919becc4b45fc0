"""The database engine and sessions, sized for the platform the service runs on."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from webapi.config import Platform, Settings


def engine_options(settings: Settings) -> dict[str, Any]:
    """Pool options per platform.

    * Lambda: one request at a time per execution environment, so exactly one
      connection, never more, kept across warm invocations; pre-ping detects a
      connection that died while the environment was frozen.
    * Cloud Run and local: a bounded pool sized by DB_POOL_SIZE (the stack sets it
      from the request concurrency) plus DB_MAX_OVERFLOW; requests beyond that wait
      up to DB_POOL_TIMEOUT_SECONDS instead of opening unbounded connections.
    """
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "server_settings": {"application_name": settings.app_name[:63]},
        **tls_connect_args(settings),
    }
    if settings.platform is Platform.LAMBDA:
        pool_size, max_overflow = 1, 0
    else:
        pool_size, max_overflow = settings.db_pool_size, settings.db_max_overflow
    return {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "pool_pre_ping": (
            settings.db_pool_pre_ping
            if settings.db_pool_pre_ping is not None
            else settings.platform is Platform.LAMBDA
        ),
        "connect_args": connect_args,
    }


def tls_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's ``ssl`` argument for DB_SSL_MODE: a context that checks the server's chain and
    host name (verify-full), or nothing at all. Shared by the service and the migrations."""
    if settings.db_ssl_mode != "verify-full":
        return {}
    context = ssl.create_default_context()  # the system's CAs, hostname checks, TLS 1.2+
    if settings.db_ssl_root_cert:
        context.load_verify_locations(cafile=settings.db_ssl_root_cert)
    return {"ssl": context}


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # For requests that only read (GET, HEAD): no BEGIN/ROLLBACK round trips around
    # statements that each read a consistent snapshot anyway. Defaults to ``sessionmaker``.
    read_sessionmaker: async_sessionmaker[AsyncSession] | None = None
    # Requests' sessions are admitted in arrival order, at most as many at a time as the pool
    # holds connections (see ``admitted``); None admits every session at once.
    gate: asyncio.Semaphore | None = None
    gate_timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        options = engine_options(settings)
        engine = create_async_engine(settings.sqlalchemy_url(), **options)
        return cls(
            engine=engine,
            sessionmaker=make_sessionmaker(engine, settings.db_commit_timeout_seconds),
            read_sessionmaker=make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT")),
            gate=asyncio.Semaphore(options["pool_size"] + options["max_overflow"]),
            gate_timeout_seconds=options["pool_timeout"],
        )

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """A request's turn at the database: first come, first served.

        SQLAlchemy's asyncio pool hands a connection that comes back to whoever asks next, even
        while others wait for one (a checkout takes an idle connection without queueing), so
        under more requests than connections a request can lose its turn again and again: the
        read at 64 concurrent requests on 10 connections measured p99 100-830 ms from one run to
        the next (``python -m bench.ablations --concurrency 64``). asyncio's semaphore queues
        its waiters in order and lets no newcomer pass them. The wait is bounded like the
        pool's own (DB_POOL_TIMEOUT_SECONDS) and ends the same way, in a 503."""
        gate = self.gate
        if gate is None:
            yield
            return
        if gate.locked():
            try:
                async with asyncio.timeout(self.gate_timeout_seconds):
                    await gate.acquire()
            except TimeoutError:
                raise sa_exc.TimeoutError(
                    f"no database connection within {self.gate_timeout_seconds:g} s: all are in use"
                ) from None
        else:
            await gate.acquire()  # free now: no wait, no timer
        try:
            yield
        finally:
            gate.release()

    def sessions_for(self, method: str) -> async_sessionmaker[AsyncSession]:
        if method in READ_ONLY_METHODS and self.read_sessionmaker is not None:
            return self.read_sessionmaker
        return self.sessionmaker

    async def ping(self, timeout_seconds: float) -> None:
        async with asyncio.timeout(timeout_seconds):
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


def make_sessionmaker(
    bind: Any, commit_timeout_seconds: float | None = None
) -> async_sessionmaker[AsyncSession]:
    info = {COMMIT_TIMEOUT: commit_timeout_seconds} if commit_timeout_seconds else {}
    return async_sessionmaker(bind, class_=Session, expire_on_commit=False, autoflush=False, info=info)


COMMIT_TIMEOUT = "commit_timeout_seconds"


class Session(AsyncSession):
    """An AsyncSession whose COMMIT waits up to DB_COMMIT_TIMEOUT_SECONDS, not the command timeout.

    asyncpg gives up on any statement after ``command_timeout``, COMMIT included, and the API then
    answers 503. But a COMMIT the server has received is carried out when the server gets to it
    (after a pause, a failover): the client would be told "failed, retry" about a write that
    landed, and its retry would write it twice. Waiting longer for the COMMIT alone keeps the
    answer true through a pause shorter than the wait, while every other statement keeps the
    short fuse (a timed-out INSERT is rolled back with its connection: nothing lands).

    Measured against a paused backend: the error comes at the timeout plus up to 2 s, SQLAlchemy's
    graceful close of the dead connection. With the defaults, 17 s for a statement and 22 s for a
    COMMIT: under the Lambda stack's 28 s.
    """

    async def commit(self) -> None:
        timeout = self.info.get(COMMIT_TIMEOUT)
        if timeout is None or not self.in_transaction():
            await super().commit()
            return
        await self.flush()  # pending INSERTs/UPDATEs keep the command timeout: only COMMIT waits
        connection = await (await self.connection()).get_raw_connection()
        driver = connection.driver_connection
        config = getattr(driver, "_config", None)  # asyncpg's; its command_timeout is the default
        if config is None or not hasattr(config, "command_timeout"):
            await super().commit()
            return
        driver._config = config._replace(command_timeout=max(timeout, config.command_timeout or 0))  # type: ignore[union-attr]
        try:
            await super().commit()
        finally:
            driver._config = config  # type: ignore[union-attr]


# Every 503 the database causes says when to try again.
DB_RETRY_AFTER_SECONDS = "5"

# The errors that mean "the database cannot be reached right now", as opposed to a
# bug or bad data: the API answers them with 503 and the pool recovers by itself.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    TimeoutError,
    OSError,
)


# SQLSTATEs the services turn into answers (PostgreSQL, Appendix A).
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error raised through SQLAlchemy's asyncpg dialect, if any."""
    orig = getattr(exc, "orig", None)
    for candidate in (getattr(orig, "__cause__", None), orig):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return str(code)
    return None


# Transient conflicts a retry resolves: deadlock_detected, serialization_failure,
# lock_not_available. The services take their locks in one order; these are the safety net.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


# SQLSTATE classes of a server that is not there: 08 connection exception, 57P operator
# intervention (admin_shutdown, crash_shutdown, cannot_connect_now: shutting down, starting up).
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        code = sqlstate(exc) or ""
        if (
            exc.connection_invalidated
            or code in TRANSIENT_SQLSTATES
            or code.startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
        ):
            return True
        # SQLAlchemy wraps what asyncpg raised (a connection closed mid-operation) in a plain
        # DBAPIError: the driver's own exception says what happened.
        orig = exc.orig
        if any(isinstance(e, UNAVAILABLE_ERRORS) for e in (orig, getattr(orig, "__cause__", None))):
            return True
    return isinstance(exc, UNAVAILABLE_ERRORS)
