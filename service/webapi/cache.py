"""The optional cache (Redis protocol: ElastiCache Valkey on AWS, Memorystore on Google Cloud).

Everything the service keeps here is an optimisation or a shared counter with a
per-instance fallback, so the cache may fail at any moment without failing a request:
each operation returns ``None`` on error, logs the outage once, and skips the cache for
a few seconds (a dead cache must not add a timeout to every request).

``redis`` is imported only when a cache is configured: without one, neither the cold
start nor the request path pays for it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from webapi.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.commands.core import AsyncScript

log = logging.getLogger("webapi.cache")
T = TypeVar("T")

# INCR with the window set on the first failure only (a fixed window), in one atomic step.
# Single-key, so it runs on a cluster-mode cache (ElastiCache Serverless) as well.
_INCREMENT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""
_DECREMENT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""
_PEEK = """
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('TTL', KEYS[1])}
"""


class Cache:
    """A Redis client with a short fuse. ``clock`` is injectable for tests.

    The client (and with it the ``redis`` import, 0.1-0.4 s) is made on first use, by the
    first request that needs the cache: a cold start that serves /health never pays for it.
    """

    def __init__(
        self,
        connect: Callable[[], Redis | RedisCluster],
        *,
        cooldown_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._client: Redis | RedisCluster | None = None
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._skip_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Cache | None:
        if settings.redis_url is None:
            return None
        return cls(lambda: connect(settings))

    @property
    def client(self) -> Redis | RedisCluster:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @functools.cached_property
    def _increment(self) -> AsyncScript:
        return self.client.register_script(_INCREMENT)

    @functools.cached_property
    def _decrement(self) -> AsyncScript:
        return self.client.register_script(_DECREMENT)

    @functools.cached_property
    def _peek(self) -> AsyncScript:
        return self.client.register_script(_PEEK)

    @property
    def available(self) -> bool:
        """False while cooling down after a failure."""
        return self._clock() >= self._skip_until

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T | None:
        if not self.available:
            return None
        # Imported with the client already. RedisClusterException is not a RedisError: a cluster
        # client that cannot reach any node raises it.
        from redis.exceptions import RedisClusterException, RedisError  # noqa: PLC0415

        try:
            return await call()
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            if self._skip_until == 0.0 or self._clock() >= self._skip_until + self.cooldown_seconds:
                log.warning("cache unavailable", extra={"operation": operation, "error": type(exc).__name__})
            self._skip_until = self._clock() + self.cooldown_seconds
            return None

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", lambda: self.client.get(key))
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes | str, ttl_seconds: int, *, only_new: bool = False) -> bool:
        """True if stored. ``only_new``: leave an existing value alone (SET NX)."""
        return bool(await self._call("set", lambda: self.client.set(key, value, ex=ttl_seconds, nx=only_new)))

    async def delete(self, key: str) -> bool:
        """True when the key is gone (or never was); False when the cache could not be told."""
        return await self._call("delete", lambda: self.client.delete(key)) is not None

    async def increment(self, key: str, window_seconds: int) -> tuple[int, int] | None:
        """Count one more in ``key``'s fixed window: (count, seconds left), or None."""
        result = await self._call("increment", lambda: self._increment(keys=[key], args=[window_seconds]))
        return _pair(result)

    async def decrement(self, key: str) -> bool:
        """One less in ``key``'s window (never below 0, the window unchanged)."""
        return await self._call("decrement", lambda: self._decrement(keys=[key])) is not None

    async def peek(self, key: str) -> tuple[int, int] | None:
        """(count, seconds left) of ``key``'s window, (0, 0) if none; None if unknown."""
        return _pair(await self._call("peek", lambda: self._peek(keys=[key])))

    async def ping(self) -> bool:
        return bool(await self._call("ping", self.client.ping))

    async def close(self) -> None:
        if self._client is None:
            return  # never used: nothing to close
        try:
            await self.client.aclose()
        except Exception:
            log.debug("cache close failed", exc_info=True)


def _pair(result: Any) -> tuple[int, int] | None:
    if result is None:
        return None
    count, ttl = result
    return int(count), int(ttl)


def connect(settings: Settings) -> Redis | RedisCluster:
    """A client for ``settings.redis_url``; connections open on first use.

    Short timeouts and no retries: a slow cache is treated as a failed one.
    ElastiCache Serverless speaks cluster mode (REDIS_CLUSTER, on by default for the
    Lambda configuration); Memorystore's basic and standard tiers do not.
    """
    from redis.asyncio import Redis  # noqa: PLC0415 - deferred: only when a cache is configured
    from redis.asyncio.cluster import RedisCluster  # noqa: PLC0415
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_ca_cert and url.startswith("rediss://"):
        # Memorystore: a CA of the instance's own signs its certificate, so trusting only that CA
        # identifies the server; its address is an IP, which the certificate need not name.
        options["ssl_ca_data"] = settings.redis_ca_cert
        options["ssl_check_hostname"] = False
    if settings.redis_cluster_mode:
        return RedisCluster.from_url(url, **options)
    options["health_check_interval"] = 30
    return Redis.from_url(url, **options)
