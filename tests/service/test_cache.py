"""The cache against a real redis-server: login throttling shared by instances, the
read-through user cache, and what happens when the cache goes away and comes back.

Each test that uses the cache runs once per way the service meets one: Memorystore (one node,
the default user's AUTH string) and ElastiCache Serverless (a one-node cluster, in cluster mode,
as the exact ACL user the stack creates: constructs_lib/aws/cache_acl.py, with the user group's
``default`` user on and off). No operation may fail: a refused command would only show as the
cache being skipped, so the ``cache`` fixture fails a test after which webapi.cache logged one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from devtools.localdb import free_port
from devtools.localredis import LocalRedis
from tests.conftest import ROOT
from tests.service.conftest import API, SignedUp, make_settings, stub_secrets
from tests.service.test_cache_acl import APP, APP_PASSWORD, USER_GROUPS, elasticache_server
from webapi import user_cache
from webapi.cache import Cache
from webapi.config import Settings, SettingsError, resolve_settings
from webapi.db import Database
from webapi.main import create_app, shutdown, startup
from webapi.models import User
from webapi.throttle import LOCKED_KEYS_FACTOR, LocalWindows, LoginThrottle

PASSWORD = "correct horse battery"
REDIS_PASSWORD = "test-redis-password-0123456789"
SERVICE_DIR = ROOT / "service"
MEMORYSTORE = "memorystore"
ELASTICACHE = tuple(f"elasticache, {group}" for group in USER_GROUPS)


@dataclass
class CacheServer:
    """A redis-server as the service meets it on one platform. ``local.url`` is the test's own
    account (every key and command); the service is given ``app_url``."""

    local: LocalRedis
    app_url: str
    cluster: bool
    outage: bool = False  # set by a test that stops the server: failures are then expected

    def settings(self) -> dict[str, object]:
        return {"redis_url": self.app_url, "redis_cluster": self.cluster}


def _start(platform: str) -> CacheServer:
    if platform == MEMORYSTORE:
        local = LocalRedis(password=REDIS_PASSWORD).start()
        return CacheServer(local, app_url=local.url, cluster=False)
    local = elasticache_server(platform.removeprefix("elasticache, "))
    return CacheServer(local, app_url=local.url_for(APP, APP_PASSWORD), cluster=True)


@pytest.fixture(scope="module", params=[MEMORYSTORE, *ELASTICACHE])
def redis_server(request: pytest.FixtureRequest) -> Iterator[CacheServer]:
    server = _start(request.param)
    yield server
    server.local.cleanup()


@pytest.fixture
async def redis(redis_server: CacheServer) -> AsyncIterator[Redis]:
    """The test's own client: every key, every command (one node holds every slot)."""
    if redis_server.local.process is None:  # a test stopped it
        redis_server.local.start()
    client = Redis.from_url(redis_server.local.url)
    await client.flushall()
    yield client
    await client.aclose()


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(
            f"{record.getMessage()}: {vars(record).get('operation')} {vars(record).get('error')}"
        )


@pytest.fixture
def cache(redis: Redis, redis_server: CacheServer) -> Iterator[CacheServer]:
    """The cache the test's instances use; after the test, no operation on it may have failed
    (on its own logger: the app's logging set-up replaces the root's handlers)."""
    failures = _Failures()
    cache_log = logging.getLogger("webapi.cache")
    cache_log.addHandler(failures)
    redis_server.outage = False
    try:
        yield redis_server
    finally:
        cache_log.removeHandler(failures)
    if not redis_server.outage:
        assert failures.seen == [], "a cache operation failed (a command the user may not run?)"


def throttled_settings(database_url: str, cache: CacheServer | str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        **(cache.settings() if isinstance(cache, CacheServer) else {"redis_url": cache}),
        "login_max_failures": 3,
        "login_max_failures_per_client": 6,
        "login_failure_window_seconds": 120,
        **overrides,
    }
    return make_settings(database_url, **values)


def instance(settings: Settings, engine: AsyncEngine, connection: AsyncConnection) -> FastAPI:
    """One service instance (a Lambda environment, a Cloud Run instance) on the test's transaction."""
    app = create_app(settings)
    sessions = async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
    )
    app.state.db = Database(engine=engine, sessionmaker=sessions)
    app.state.cache = Cache.from_settings(settings)
    return app


class Instances:
    """Service instances (Lambda environments, Cloud Run instances) sharing the test's database."""

    def __init__(self, database_url: str, engine: AsyncEngine, connection: AsyncConnection) -> None:
        self.database_url, self.engine, self.connection = database_url, engine, connection
        self.clients: list[httpx.AsyncClient] = []
        self.apps: list[FastAPI] = []

    def new(self, cache: CacheServer | str | None, **overrides: object) -> FastAPI:
        settings = throttled_settings(self.database_url, cache, **overrides)
        return instance(settings, self.engine, self.connection)

    def client(self, app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.clients.append(client)
        self.apps.append(app)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps:
            cache: Cache | None = app.state.cache
            if cache is not None:
                await cache.close()


@pytest.fixture
async def instances(
    database_url: str, engine: AsyncEngine, connection: AsyncConnection
) -> AsyncIterator[Instances]:
    made = Instances(database_url, engine, connection)
    yield made
    await made.close()


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/token", data={"username": email, "password": password})


async def sign_up(client: httpx.AsyncClient) -> SignedUp:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    created = await client.post(f"{API}/users", json={"email": email, "name": "Cached", "password": PASSWORD})
    assert created.status_code == 201, created.text
    token = (await login(client, email, PASSWORD)).json()["access_token"]
    return SignedUp(id=created.json()["id"], email=email, password=PASSWORD, token=token)


def assert_throttled(response: httpx.Response, window: int = 120) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["detail"] == "Too many failed logins; try again later"
    assert "request_id" in response.json()
    assert 1 <= int(response.headers["Retry-After"]) <= window


# --- login throttling ---------------------------------------------------------------


async def test_failed_logins_lock_the_account_on_every_instance(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    first = instances.client(instances.new(cache))
    second = instances.client(instances.new(cache), address="198.51.100.9")
    user = await sign_up(first)

    for _ in range(3):  # two on one instance, one on the other: one shared count
        assert (await login(first, user.email, "wrong password")).status_code == 401
    # The other instance, from another address, with the right password: locked all the same.
    assert_throttled(await login(second, user.email, PASSWORD))
    assert_throttled(await login(first, user.email, PASSWORD))

    keys = sorted(k.decode() for k in await redis.keys("login:fail:*"))
    assert user.email not in " ".join(keys)  # the account is hashed
    assert any(k.startswith("login:fail:account:") for k in keys)
    assert "login:fail:client:203.0.113.7" in keys
    account_key = next(k for k in keys if k.startswith("login:fail:account:"))
    # The three failures; the two refused attempts count nowhere (a refused attempt was not tried:
    # counted, attempts refused during an outage would outlive the outage as a lock).
    assert int(await redis.get(account_key)) == 3
    assert 0 < await redis.ttl(account_key) <= 120


async def test_a_successful_login_clears_the_account_count_and_takes_itself_back(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    client = instances.client(instances.new(cache))
    user = await sign_up(client)  # one successful login already
    for _ in range(2):
        assert (await login(client, user.email, "wrong password")).status_code == 401
    assert (await login(client, user.email, PASSWORD)).status_code == 200
    # In the shared counts: the account's is gone, the client's holds the two failures only
    # (each successful attempt took itself back, with the decrement script's DECR).
    assert await redis.keys("login:fail:account:*") == []
    assert await redis.get("login:fail:client:203.0.113.7") == b"2"
    for _ in range(2):  # counting starts again from zero
        assert (await login(client, user.email, "wrong password")).status_code == 401
    assert (await login(client, user.email, PASSWORD)).status_code == 200


async def test_one_client_address_spraying_many_accounts_is_throttled(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    app = instances.new(cache)
    attacker = instances.client(app, address="192.0.2.66")
    for n in range(6):  # one failure per account: no account reaches its limit
        response = await login(attacker, f"victim-{n}@example.com", "guess")
        assert response.status_code == 401
    assert_throttled(await login(attacker, "victim-99@example.com", "guess"))
    # Someone else, from another address, is not affected.
    other = instances.client(app, address="192.0.2.67")
    assert (await login(other, "victim-99@example.com", "guess")).status_code == 401


async def test_without_a_cache_each_instance_counts_alone(
    instances: Instances,
) -> None:
    first_app, second_app = instances.new(None), instances.new(None)
    assert first_app.state.cache is None
    first, second = instances.client(first_app), instances.client(second_app)
    user = await sign_up(first)
    for _ in range(3):
        assert (await login(first, user.email, "wrong password")).status_code == 401
    assert_throttled(await login(first, user.email, PASSWORD))
    # The documented limit of the fallback: another instance has its own count.
    assert (await login(second, user.email, PASSWORD)).status_code == 200


def test_local_windows_are_fixed_and_bounded() -> None:
    now = [1000.0]
    windows = LocalWindows(max_keys=3, clock=lambda: now[0])
    assert windows.increment("a", 60) == (1, 60)
    now[0] += 59.5
    assert windows.increment("a", 60) == (2, 1)  # the window does not slide
    now[0] += 1
    assert windows.peek("a") == (0, 0)  # ended
    for key in "bcd":
        windows.increment(key, 60)
    windows.increment("c", 60)
    windows.increment("e", 60)  # a fourth key: the table goes down to 2 (90% of 3, at least one less)
    assert len(windows) == 2
    # The lowest counts go first, the oldest first among equals; the key just counted stays.
    assert windows.peek("b") == (0, 0) and windows.peek("d") == (0, 0)
    assert windows.peek("c")[0] == 2 and windows.peek("e")[0] == 1
    windows.decrement("c")
    assert windows.peek("c")[0] == 1


def test_a_flood_of_fresh_keys_cannot_evict_a_lock_or_a_count() -> None:
    """The flush attack, on the table itself: a victim locked (5 of 5) or part-way (4 of 5)
    keeps its count through 100 times the table's size in one-attempt keys."""
    windows = LocalWindows(max_keys=100)
    for _ in range(5):
        windows.increment("victim", 900, protect_at=5)
    for _ in range(4):
        windows.increment("halfway", 900, protect_at=5)
    for n in range(10_000):
        windows.increment(f"random-{n}", 900, protect_at=5)
    assert len(windows) <= 100
    assert windows.peek("victim")[0] == 5
    assert windows.peek("halfway")[0] == 4


def test_locks_are_kept_past_the_bound_up_to_a_ceiling() -> None:
    windows = LocalWindows(max_keys=10)
    for n in range(50):
        windows.increment(f"locked-{n}", 900, protect_at=1)
    assert len(windows) == 50  # every lock kept: more than max_keys, less than the ceiling
    for n in range(200):
        windows.increment(f"more-{n}", 900, protect_at=1)
    assert len(windows) == 10 * LOCKED_KEYS_FACTOR  # the ceiling: the oldest locks went
    assert windows.peek("more-199")[0] == 1 and windows.peek("locked-0") == (0, 0)


def test_ipv6_clients_are_counted_by_their_64() -> None:
    keys = dict(LoginThrottle.keys("a@example.com", "2001:db8:1:2:aaaa::1"))
    assert keys["client"] == "login:fail:client:2001:db8:1:2::/64"
    assert dict(LoginThrottle.keys("a@example.com", "2001:db8:1:2:ffff::9"))["client"] == keys["client"]
    assert dict(LoginThrottle.keys("a@example.com", "192.0.2.1"))["client"] == "login:fail:client:192.0.2.1"


async def test_parallel_guesses_cannot_slip_past_the_limit(
    redis: Redis, cache: CacheServer, database_url: str
) -> None:
    """Every attempt is counted before its password is checked: of 12 concurrent wrong guesses
    with a limit of 3, exactly 3 get a password check. (The app's real pool: concurrent requests
    need connections of their own; the user is deleted at the end.)"""
    app = create_app(throttled_settings(database_url, cache))
    await startup(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("192.0.2.10", 1))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            user = await sign_up(client)
            answers = await asyncio.gather(*(login(client, user.email, f"guess {n}") for n in range(12)))
            codes = sorted(response.status_code for response in answers)
            deleted = await client.delete(
                f"{API}/users/{user.id}", headers={"Authorization": f"Bearer {user.token}"}
            )
            assert deleted.status_code == 204
    finally:
        await shutdown(app)
    assert codes == [401] * 3 + [429] * 9


# --- the user cache -------------------------------------------------------------------


async def test_the_signed_in_user_is_read_through_the_cache(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    client = instances.client(instances.new(cache))
    user = await sign_up(client)
    key = user_cache.key(uuid.UUID(user.id))
    assert await redis.get(key) is None
    headers = {"Authorization": f"Bearer {user.token}"}

    first = await client.get(f"{API}/users/me", headers=headers)
    assert first.status_code == 200
    entry = json.loads(await redis.get(key))
    assert entry["email"] == user.email and "hashed_password" not in entry
    assert 0 < await redis.ttl(key) <= 60

    # Served from the cache: a change made behind the service's back is not seen...
    await instances.connection.execute(
        text("UPDATE users SET name = 'Renamed' WHERE id = :id"), {"id": user.id}
    )
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["name"] == "Cached"
    # ...until the entry goes (TTL or invalidation); then the database answers again.
    await redis.delete(key)
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["name"] == "Renamed"
    # Items work with the cached user too (they only need its id).
    created = await client.post(f"{API}/items", json={"title": "from cache"}, headers=headers)
    assert created.status_code == 201 and created.json()["owner_id"] == user.id


async def test_deleting_the_account_invalidates_its_entry(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    client = instances.client(instances.new(cache))
    user = await sign_up(client)
    headers = {"Authorization": f"Bearer {user.token}"}
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200
    assert await redis.exists(user_cache.key(uuid.UUID(user.id)))
    assert (await client.delete(f"{API}/users/{user.id}", headers=headers)).status_code == 204
    entry = user_cache.key(uuid.UUID(user.id))
    assert await redis.get(entry) == user_cache.DELETED  # a tombstone, as long as an entry could live
    assert 0 < await redis.ttl(entry) <= 60
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 401


async def test_a_deleted_account_still_cached_cannot_write(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    """The documented window: an instance that cannot reach the cache deletes the account, so no
    tombstone is written, and another instance still finds the user in the cache for up to the
    TTL. Reads pass (200); a write then meets the missing account in the database: 401, not the
    500 a foreign-key violation was."""
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    cache.outage = True  # that instance's failures are the point
    deleting = instances.client(instances.new(unreachable))
    reading = instances.client(instances.new(cache))
    user = await sign_up(reading)
    headers = {"Authorization": f"Bearer {user.token}"}
    item = (await reading.post(f"{API}/items", json={"title": "Before"}, headers=headers)).json()["id"]
    assert (await reading.get(f"{API}/users/me", headers=headers)).status_code == 200  # now cached
    assert (await deleting.delete(f"{API}/users/{user.id}", headers=headers)).status_code == 204
    assert await redis.exists(user_cache.key(uuid.UUID(user.id)))  # no tombstone reached it
    assert (await reading.get(f"{API}/users/me", headers=headers)).status_code == 200
    for write in (
        reading.post(f"{API}/items", json={"title": "After"}, headers=headers),
        reading.patch(f"{API}/items/{item}", json={"title": "x"}, headers=headers),  # went with it
    ):
        response = await write
        assert response.status_code in (401, 404), response.text


async def test_a_lookup_racing_the_deletion_cannot_put_the_user_back(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    """A request that read the user from the database just before the account was deleted
    stores it after the deletion's tombstone: SET NX leaves the tombstone in place."""
    app = instances.new(cache)
    client = instances.client(app)
    user = await sign_up(client)
    headers = {"Authorization": f"Bearer {user.token}"}
    me = await client.get(f"{API}/users/me", headers=headers)
    assert me.status_code == 200
    cached = await user_cache.load(app.state.cache, uuid.UUID(user.id))
    assert isinstance(cached, User)
    assert (await client.delete(f"{API}/users/{user.id}", headers=headers)).status_code == 204
    await user_cache.store(app.state.cache, cached, 60)  # the late writer
    assert await redis.get(user_cache.key(uuid.UUID(user.id))) == user_cache.DELETED
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 401


async def test_an_unreadable_entry_falls_back_to_the_database(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    client = instances.client(instances.new(cache))
    user = await sign_up(client)
    await redis.set(user_cache.key(uuid.UUID(user.id)), b"\x00not json")
    response = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {user.token}"})
    assert response.status_code == 200 and response.json()["email"] == user.email


# --- the cache going away -----------------------------------------------------------


async def test_the_cache_going_away_degrades_to_the_database_and_local_counts(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    app = instances.new(cache)
    app_cache: Cache = app.state.cache
    now = [0.0]
    app_cache._clock = lambda: now[0]  # the cool-down, on a clock the test moves
    client = instances.client(app)
    user = await sign_up(client)
    headers = {"Authorization": f"Bearer {user.token}"}
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200
    assert (await login(client, user.email, "wrong password")).status_code == 401

    cache.outage = True
    cache.local.stop()  # mid-test: the server is gone, connections and all

    # Every request still answers as it should: the user from the database, no 500s.
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200
    assert not app_cache.available  # skipping the cache for its cool-down
    assert (await client.get(f"{API}/items", headers=headers)).status_code == 200
    # Throttling falls back to this instance's own counts.
    for _ in range(3):
        assert (await login(client, user.email, "wrong password")).status_code == 401
    assert_throttled(await login(client, user.email, PASSWORD))

    cache.local.start()  # back, empty (its users made again, as the platform keeps them)
    now[0] += app_cache.cooldown_seconds + 1
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200
    assert app_cache.available
    fresh = Redis.from_url(cache.local.url)  # the test's own connection died with the server
    try:
        assert await fresh.exists(user_cache.key(uuid.UUID(user.id)))  # used again
    finally:
        await fresh.aclose()
    # The failures counted locally while it was down still hold on this instance.
    assert_throttled(await login(client, user.email, PASSWORD))


async def test_each_platform_gets_its_client(cache: CacheServer, instances: Instances) -> None:
    """ElastiCache Serverless is a cluster-mode endpoint: the same tests, through RedisCluster."""
    app_cache: Cache = instances.new(cache).state.cache
    assert type(app_cache.client).__name__ == ("RedisCluster" if cache.cluster else "Redis")
    assert await app_cache.ping()
    await app_cache.close()


# --- settings ---------------------------------------------------------------------------

REDIS_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cache-user-AbCdEf"


def test_lambda_builds_a_tls_cluster_url_from_the_cache_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    stubber = stub_secrets(monkeypatch, {REDIS_ARN: json.dumps({"username": "app", "password": "p@ss/word"})})
    resolved = resolve_settings(
        Settings(
            redis_secret_arn=REDIS_ARN, redis_host="cache.serverless.euw1.cache.amazonaws.com", _env_file=None
        )  # type: ignore[call-arg]
    )
    stubber.assert_no_pending_responses()
    assert resolved.redis_url is not None
    assert resolved.redis_url.get_secret_value() == (
        "rediss://app:p%40ss%2Fword@cache.serverless.euw1.cache.amazonaws.com:6379/0"
    )
    assert resolved.redis_cluster_mode
    assert not Settings(redis_url="rediss://:x@10.0.0.3:6378/0", _env_file=None).redis_cluster_mode  # type: ignore[call-arg]


def test_cache_secret_problems_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="REDIS_HOST"):
        resolve_settings(Settings(redis_secret_arn=REDIS_ARN, _env_file=None))  # type: ignore[call-arg]
    stub_secrets(monkeypatch, {REDIS_ARN: '{"user": "app"}'})
    with pytest.raises(SettingsError, match="REDIS_SECRET_ARN"):
        resolve_settings(Settings(redis_secret_arn=REDIS_ARN, redis_host="h", _env_file=None))  # type: ignore[call-arg]


def test_no_cache_configured_means_no_client_and_no_redis_import() -> None:
    assert Cache.from_settings(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    throttle = LoginThrottle(Settings(_env_file=None))  # type: ignore[call-arg]
    assert throttle.max_per_account == 5 and throttle.window_seconds == 900


def test_a_private_ca_is_the_only_trust_for_tls() -> None:
    """Memorystore: the instance's own CA (REDIS_CA_CERT) verifies the server, reached by IP."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    settings = Settings(redis_url="rediss://:auth@10.0.0.3:6378/0", redis_ca_cert=pem, _env_file=None)  # type: ignore[call-arg]
    cache = Cache.from_settings(settings)
    assert cache is not None
    kwargs = cache.client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_data"] == pem and kwargs["ssl_check_hostname"] is False
    assert kwargs["socket_timeout"] == settings.redis_timeout_seconds
    plain = Cache.from_settings(Settings(redis_url="rediss://:auth@cache.example:6379/0", _env_file=None))  # type: ignore[call-arg]
    assert plain is not None and "ssl_ca_data" not in plain.client.connection_pool.connection_kwargs


def test_the_cache_and_s3_clients_are_made_on_first_use_not_at_startup() -> None:
    """A cold start that serves /health imports neither redis nor botocore, even with both
    configured: they load with the first request that needs them."""
    script = """
import asyncio, json, sys
from webapi.config import Settings
from webapi.main import create_app, startup
settings = Settings(redis_url="redis://127.0.0.1:1/0", storage_backend="s3", uploads_bucket="b",
                    aws_region="eu-west-1", database_url="postgresql://u:p@127.0.0.1:1/db", _env_file=None)
app = create_app(settings)
asyncio.run(startup(app))
before = {name: name in sys.modules for name in ("redis", "botocore", "boto3")}
app.state.storage.client  # first use
print(json.dumps({"before": before, "after_s3": "botocore" in sys.modules,
                  "redis_after_s3": "redis" in sys.modules}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=SERVICE_DIR,
        check=False,
        env={**os.environ, "PYTHONPATH": str(SERVICE_DIR)},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"redis": False, "botocore": False, "boto3": False}
    assert seen["after_s3"] and not seen["redis_after_s3"]


async def test_behind_cloud_run_the_address_the_front_end_appended_is_throttled(
    redis: Redis, cache: CacheServer, instances: Instances
) -> None:
    """A client cannot dodge the per-address limit by sending its own X-Forwarded-For."""
    attacker = instances.client(instances.new(cache, k_service="api"), address="169.254.1.1")
    for n in range(6):
        spoofed = {"X-Forwarded-For": f"10.0.0.{n}, 198.51.100.23"}  # ", <what the GFE saw>"
        response = await attacker.post(
            f"{API}/auth/token", data={"username": f"v{n}@example.com", "password": "x"}, headers=spoofed
        )
        assert response.status_code == 401
    assert "login:fail:client:198.51.100.23" in {k.decode() for k in await redis.keys("login:fail:client:*")}
    blocked = await attacker.post(
        f"{API}/auth/token",
        data={"username": "v9@example.com", "password": "x"},
        headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.23"},
    )
    assert_throttled(blocked)


async def test_an_unreachable_cache_in_either_mode_never_fails_a_request(instances: Instances) -> None:
    """A cache that is down from the start (no server on the port), plain and cluster client:
    the cluster client raises RedisClusterException, which is not a RedisError."""
    for cluster in (False, True):
        app = instances.new("redis://127.0.0.1:1/0", redis_cluster=cluster)
        client = instances.client(app)
        user = await sign_up(client)
        assert (
            await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {user.token}"})
        ).status_code == 200
        assert (await login(client, user.email, "wrong password")).status_code == 401
        assert not app.state.cache.available


@pytest.mark.parametrize(
    "url", ["redis://cache:63790x/0", "redis//10.0.0.3", "http://cache:6379", "rediss://:pw@/0"]
)
def test_a_malformed_redis_url_is_refused_at_start_naming_the_setting(url: str) -> None:
    with pytest.raises(ValidationError, match="REDIS_URL must look like"):
        Settings(redis_url=url, _env_file=None)  # type: ignore[call-arg]
