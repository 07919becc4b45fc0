"""Shared fixtures: one real PostgreSQL per test session (embedded by default,
TEST_DATABASE_URL to use another)."""

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


class PostgresForTests:
    """A server the tests may create databases on."""

    def __init__(self, local: LocalPostgres | None, base_url: str | None) -> None:
        self.local = local
        self.base_url = base_url

    def database(self, name: str) -> str:
        """A fresh, empty database ``name``; returns its asyncpg URL."""
        if self.local is not None:
            self.local.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return self.local.create_database(name)
        assert self.base_url is not None
        import asyncio

        import asyncpg

        plain = self.base_url.replace("postgresql+asyncpg://", "postgresql://")

        async def recreate() -> None:
            conn = await asyncpg.connect(plain)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(recreate())
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


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the real migrate entry point, as both clouds do at deploy time."""
    env = {**os.environ, "DATABASE_URL": database_url, "ENVIRONMENT": "test", "PYTHONPATH": str(SERVICE_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "webapi.migrate"],
        cwd=SERVICE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def database_url(postgres: PostgresForTests) -> str:
    """The main test database, migrated to head."""
    url = postgres.database("app_test")
    migrate(url)
    return url
