"""The ElastiCache user's access string is enough for the service's cache client, and no more.

A one-node redis-server cluster (how ElastiCache Serverless presents itself) with the user
made from the construct's own access string; the service's Cache, in cluster mode, runs as
that user. Once with the ``default`` user on (Valkey: a user group without it) and once with
it switched off the way the construct makes it for Redis OSS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from constructs_lib.aws.cache_acl import APP_ACCESS_STRING, DEFAULT_USER_ACCESS_STRING
from devtools.localredis import LocalRedis
from webapi.cache import Cache
from webapi.config import Settings

ADMIN = "admin"
ADMIN_PASSWORD = "test-admin-password-0123456789"
APP = "app"
APP_PASSWORD = "test-app-password-0123456789"


async def _acl(server: LocalRedis, *args: str, user: str = "default") -> None:
    admin = Redis(host="127.0.0.1", port=server.port, username=user, password=ADMIN_PASSWORD)
    try:
        # The access string verbatim, as ElastiCache is given it (acl_setuser would re-spell it).
        assert await admin.execute_command("ACL", "SETUSER", *args)  # type: ignore[no-untyped-call]
    finally:
        await admin.aclose()


@pytest.fixture(scope="module", params=["default user on", "default user off"])
async def app_user(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A cluster node with the app user as CloudFormation makes it (the password comes
    separately, as there): the URL the service would be given."""
    server = LocalRedis(password=ADMIN_PASSWORD, cluster=True).start()
    try:
        await _acl(server, APP, *APP_ACCESS_STRING.split(), f">{APP_PASSWORD}")
        if request.param == "default user off":
            await _acl(server, ADMIN, "on", f">{ADMIN_PASSWORD}", "~*", "+@all")
            await _acl(server, "default", *DEFAULT_USER_ACCESS_STRING.split(), user=ADMIN)
            with pytest.raises(AuthenticationError):
                await _acl(server, "default", "on")  # switched off: cannot even authenticate
        yield f"redis://{APP}:{APP_PASSWORD}@127.0.0.1:{server.port}/0"
    finally:
        server.cleanup()


@pytest.fixture
async def cache(app_user: str) -> AsyncIterator[Cache]:
    cache = Cache.from_settings(Settings(redis_url=app_user, redis_cluster=True, _env_file=None))
    assert cache is not None
    yield cache
    await cache.close()


async def test_the_service_cache_works_as_the_app_user(cache: Cache) -> None:
    assert type(cache.client).__name__ == "RedisCluster"
    assert await cache.ping()
    assert await cache.set("user:v1:acl", "cached", 5)
    assert await cache.get("user:v1:acl") == b"cached"
    assert await cache.delete("user:v1:acl")
    assert await cache.get("user:v1:acl") is None
    assert await cache.client.set("user:v1:acl", "first", ex=5, nx=True)  # SET NX, as user_cache adds
    assert not await cache.client.set("user:v1:acl", "second", ex=5, nx=True)
    assert await cache.get("user:v1:acl") == b"first"
    assert await cache.delete("user:v1:acl")
    assert await cache.peek("login:fail:client:acl") == (0, 0)
    assert await cache.increment("login:fail:account:acl", 60) == (1, 60)
    assert await cache.increment("login:fail:account:acl", 60) == (2, 60)
    assert await cache.peek("login:fail:account:acl") == (2, 60)
    assert await cache.delete("login:fail:account:acl")
    assert cache.available  # no operation failed


async def test_the_app_user_may_touch_nothing_else(cache: Cache) -> None:
    assert await cache.ping()  # the cluster client is connected as the app user
    client = cache.client
    with pytest.raises(NoPermissionError, match="keys"):
        await client.set("other", 1)
    with pytest.raises(NoPermissionError, match="keys"):
        await client.get("other")
    for refused in (client.flushall, lambda: client.keys("*"), lambda: client.config_get("maxmemory")):
        with pytest.raises(NoPermissionError, match="command"):
            await refused()
    with pytest.raises(NoPermissionError, match="eval"):
        await client.eval("return 1", 0)
    # A loaded script is held to the key patterns too: the keys it declares and the ones it uses.
    script = client.register_script("return redis.call('SET', 'other', '1')")
    with pytest.raises(NoPermissionError, match="keys"):
        await script(keys=["other"])
    with pytest.raises(ResponseError, match=r"(?i)can't access|no permissions"):
        await script(keys=["user:v1:acl"])
    assert await client.get("user:v1:acl") is None
