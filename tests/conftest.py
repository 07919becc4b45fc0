"""Shared fixtures: one real PostgreSQL per test session (embedded by default,
TEST_DATABASE_URL to use another).

The roles are the ones a deployment has: each database is owned by OWNER_ROLE (no superuser,
as Aurora's master user and Cloud SQL's built-in user are not), the migrations run as that
owner and create APP_ROLE, and the service tests connect as APP_ROLE, never as a superuser.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localdb import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
TEST_SECRET_KEY = "test-signing-key-long-enough-for-hs512-0123456789abcdef0123456789"
OWNER_ROLE = "app_owner"
APP_ROLE = "app_service"
APP_ROLE_PASSWORD = "test-app-role-password-0123456789"


def as_role(url: str, role: str, password: str | None = None) -> str:
    """``url`` with its user replaced by ``role`` (the local server trusts 127.0.0.1)."""
    scheme, _, rest = url.partition("://")
    _, _, host_and_db = rest.rpartition("@")
    credentials = f"{role}:{password}" if password else role
    return f"{scheme}://{credentials}@{host_and_db}"


class PostgresForTests:
    """A server the tests may create databases on."""

    def __init__(self, local: LocalPostgres | None, base_url: str | None) -> None:
        self.local = local
        self.base_url = base_url

    def database(self, name: str) -> str:
        """A fresh, empty database ``name`` owned by OWNER_ROLE; returns the owner's asyncpg URL."""
        owner = (
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') "
            f"THEN CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE; END IF; END $$"
        )
        if self.local is not None:
            self.local.psql(owner)
            self.local.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.local.psql(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
            return as_role(self.database_url_of(name), OWNER_ROLE)
        assert self.base_url is not None
        import asyncio

        import asyncpg

        plain = self.base_url.replace("postgresql+asyncpg://", "postgresql://")

        async def recreate() -> None:
            conn = await asyncpg.connect(plain)
            try:
                await conn.execute(owner)
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
            finally:
                await conn.close()

        asyncio.run(recreate())
        return as_role(self.database_url_of(name), OWNER_ROLE)

    def migrated(self, name: str) -> str:
        """A fresh database, migrated by its owner; returns the URL of the application role."""
        owner_url = self.database(name)
        migrate(owner_url)
        return as_role(owner_url, APP_ROLE, APP_ROLE_PASSWORD)

    def database_url_of(self, name: str) -> str:
        if self.local is not None:
            return self.local.url(name)
        assert self.base_url is not None
        head, _, _ = self.base_url.rpartition("/")
        return f"{head}/{name}"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresForTests]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        yield PostgresForTests(None, url)
        return
    server = LocalPostgres(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        yield PostgresForTests(server, None)
    finally:
        server.stop()


def migrate(database_url: str, *, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run the real migrate entry point as the schema's owner, as both clouds do at deploy time:
    it also creates the application role."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "PYTHONPATH": str(SERVICE_DIR),
        "APP_DB_USER": APP_ROLE,
        "APP_DB_PASSWORD": APP_ROLE_PASSWORD,
        **extra_env,
    }
    env = {name: value for name, value in env.items() if value}  # "" unsets
    result = subprocess.run(
        [sys.executable, "-m", "webapi.migrate"],
        cwd=SERVICE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"migrations failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def database_url(postgres: PostgresForTests) -> str:
    """The main test database, migrated to head: the URL of the application role."""
    return postgres.migrated("app_test")


@pytest.fixture(scope="session")
def owner_database_url(database_url: str) -> str:
    """The main test database as its owner (the migrations' identity)."""
    return as_role(database_url, OWNER_ROLE)
