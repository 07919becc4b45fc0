"""The ElastiCache user's access string is enough for the service's cache client, and no more.

A one-node redis-server cluster (how ElastiCache Serverless presents itself) with the user
made from the construct's own access string; the service's Cache, in cluster mode, runs as
that user. Once with the ``default`` user on (Valkey: a user group without it) and once with
it switched off the way the construct makes it for Redis OSS. tests/service/test_cache.py
runs the service's whole cache behaviour (throttle, user cache) on the same servers.

The guard at the end reads the commands webapi.cache sends out of its source: a command
added there without its grant in cache_acl.COMMANDS fails here, not in production.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from constructs_lib.aws.cache_acl import APP_ACCESS_STRING, COMMANDS, DEFAULT_USER_ACCESS_STRING
from devtools.localredis import LocalRedis
from tests.conftest import SERVICE_DIR
from webapi.cache import Cache
from webapi.config import Settings

ADMIN_PASSWORD = "test-admin-password-0123456789"
APP = "app"
APP_PASSWORD = "test-app-password-0123456789"
USER_GROUPS = ("default user on", "default user off")
CACHE_SOURCE = SERVICE_DIR / "webapi" / "cache.py"


def elasticache_server(user_group: str) -> LocalRedis:
    """A started one-node cluster with the app user as CloudFormation makes it (the password
    comes separately, as there); ``user_group`` is one of USER_GROUPS. The service is given
    ``server.url_for(APP, APP_PASSWORD)``; ``server.url`` is the test's own admin account."""
    assert user_group in USER_GROUPS, user_group
    return LocalRedis(
        password=ADMIN_PASSWORD,
        cluster=True,
        users={APP: f"{APP_ACCESS_STRING} >{APP_PASSWORD}"},
        default_user=DEFAULT_USER_ACCESS_STRING if user_group == "default user off" else None,
    ).start()


@pytest.fixture(scope="module", params=USER_GROUPS)
def server(request: pytest.FixtureRequest) -> Iterator[LocalRedis]:
    server = elasticache_server(request.param)
    yield server
    server.cleanup()


@pytest.fixture
async def cache(server: LocalRedis) -> AsyncIterator[Cache]:
    url = server.url_for(APP, APP_PASSWORD)
    cache = Cache.from_settings(Settings(redis_url=url, redis_cluster=True, _env_file=None))
    assert cache is not None
    yield cache
    await cache.close()


async def test_the_default_user_is_as_the_user_group_has_it(server: LocalRedis) -> None:
    default = Redis(host="127.0.0.1", port=server.port, password=ADMIN_PASSWORD)
    try:
        if server.default_user is None:
            assert await default.ping()
        else:
            with pytest.raises(AuthenticationError):  # switched off: cannot even authenticate
                await default.ping()
    finally:
        await default.aclose()


def test_the_cache_has_the_methods_exercised_here() -> None:
    """A new Cache method must join the test below (and its commands, the guard further down)."""
    public = {name for name, _ in inspect.getmembers(Cache, inspect.iscoroutinefunction)}
    assert {name for name in public if not name.startswith("_")} == {
        "get", "set", "delete", "increment", "decrement", "peek", "ping", "close",
    }  # fmt: skip


async def test_every_cache_method_works_as_the_app_user(cache: Cache) -> None:
    assert type(cache.client).__name__ == "RedisCluster"
    assert await cache.ping()
    assert await cache.set("user:v1:acl", "cached", 5)
    assert await cache.get("user:v1:acl") == b"cached"
    assert await cache.delete("user:v1:acl")
    assert await cache.get("user:v1:acl") is None
    assert await cache.set("user:v1:acl", "first", 5, only_new=True)  # SET NX, as user_cache adds
    assert not await cache.set("user:v1:acl", "second", 5, only_new=True)
    assert await cache.get("user:v1:acl") == b"first"
    assert await cache.delete("user:v1:acl")
    assert await cache.peek("login:fail:client:acl") == (0, 0)
    assert await cache.increment("login:fail:client:acl", 60) == (1, 60)
    assert await cache.increment("login:fail:client:acl", 60) == (2, 60)
    assert await cache.peek("login:fail:client:acl") == (2, 60)
    assert await cache.decrement("login:fail:client:acl")  # DECR, inside the script
    assert await cache.peek("login:fail:client:acl") == (1, 60)
    assert await cache.decrement("login:fail:client:acl")
    assert await cache.decrement("login:fail:client:acl")  # never below 0
    assert await cache.peek("login:fail:client:acl") == (0, 60)  # the window unchanged
    assert await cache.delete("login:fail:client:acl")
    # The sign-up throttle's keys (webapi.throttle.SignUpThrottle), counted and taken back.
    assert await cache.increment("signup:client:acl", 60) == (1, 60)
    assert await cache.decrement("signup:client:acl")
    assert await cache.delete("signup:client:acl")
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


# --- the guard: what webapi.cache sends, read from its source -------------------------------

# The Redis commands behind each client method webapi.cache uses.
CLIENT_METHODS: dict[str, tuple[str, ...]] = {
    "get": ("get",),
    "set": ("set",),  # EX and NX are arguments of SET
    "delete": ("del",),
    "ping": ("ping",),
    # AsyncScript: EVALSHA, and SCRIPT LOAD when the server answers NOSCRIPT (never EVAL).
    "register_script": ("evalsha", "script|load"),
    "aclose": (),  # closes its connections, sends nothing
}
# What the cluster client sends on its own at start-up (the slot map, its command table).
CLUSTER_CLIENT_STARTUP = ("cluster|slots", "command")


def _client_methods(tree: ast.AST) -> set[str]:
    """Every ``self.client.<name>`` in the module, called or passed on."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "client"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }


def _script_commands(source: str) -> set[str]:
    calls = re.findall(r"redis\.p?call\(", source)
    named = re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", source)
    assert len(named) == len(calls), "a script calls a command by a computed name: cannot check its grant"
    return {command.lower() for command in named}


def test_every_command_the_cache_sends_is_granted_and_every_grant_is_used() -> None:
    source = CACHE_SOURCE.read_text()
    methods = _client_methods(ast.parse(source))
    unknown = methods - CLIENT_METHODS.keys()
    assert not unknown, (
        f"webapi.cache uses client methods {sorted(unknown)}: add the Redis commands they send to "
        "CLIENT_METHODS here and their grants to constructs_lib/aws/cache_acl.py COMMANDS"
    )
    scripts = _script_commands(source)
    assert {"incr", "decr", "expire", "ttl", "get"} <= scripts  # the scripts were read
    sent = {command for method in methods for command in CLIENT_METHODS[method]}
    sent |= scripts | set(CLUSTER_CLIENT_STARTUP)
    assert sorted(sent - set(COMMANDS)) == [], "sent but not granted: the ACL refuses them"
    assert sorted(set(COMMANDS) - sent) == [], "granted but never sent: least privilege"


def test_the_access_string_grants_commands_one_by_one() -> None:
    rules = APP_ACCESS_STRING.split()
    assert rules[:1] == ["on"]
    grants = [rule for rule in rules if rule.startswith("+")]
    assert rules.index("-@all") < rules.index(grants[0])  # everything refused first
    assert not [rule for rule in grants if "@" in rule]  # no command category, let alone +@all
    assert [rule[1:] for rule in grants] == list(COMMANDS)


def test_only_webapi_cache_talks_to_redis() -> None:
    """The guard reads one module: no other may import the client."""
    importers = [
        path.relative_to(SERVICE_DIR).as_posix()
        for path in (SERVICE_DIR / "webapi").rglob("*.py")
        if re.search(r"^\s*(from|import)\s+redis\b", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["webapi/cache.py"]
