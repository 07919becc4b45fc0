"""Service fixtures: each test runs inside a transaction that is rolled back.

The app's sessions join the test's connection with ``create_savepoint``, so the
service code may commit (and roll back) as in production while nothing it
writes outlives the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import TEST_SECRET_KEY
from webapi import aws_secrets
from webapi.config import Environment, Settings
from webapi.db import Database, engine_options
from webapi.main import create_app, shutdown, startup

API = "/api/v1"


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.TEST,
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "cors_origins": ["https://app.example.com"],
        "max_request_body_bytes": 65_536,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, connection: AsyncConnection) -> FastAPI:
    app = create_app(settings)
    sessions = async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
    )
    options = engine_options(settings)  # requests admitted as the deployed service admits them
    app.state.db = Database(
        engine=engine,
        sessionmaker=sessions,
        gate=asyncio.Semaphore(options["pool_size"] + options["max_overflow"]),
        gate_timeout_seconds=options["pool_timeout"],
    )
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def live_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` on its own real pool (startup and shutdown around it): for tests whose
    concurrent requests need connections of their own, or that commit for real."""
    await startup(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await shutdown(app)


@dataclass
class SignedUp:
    id: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


SignUp = Callable[..., Awaitable[SignedUp]]


async def sign_up(
    client: httpx.AsyncClient, *, email: str | None = None, password: str = "correct horse battery"
) -> SignedUp:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    created = await client.post(
        f"{API}/users", json={"email": email, "name": "Test User", "password": password}
    )
    assert created.status_code == 201, created.text
    login = await client.post(f"{API}/auth/token", data={"username": email, "password": password})
    assert login.status_code == 200, login.text
    return SignedUp(
        id=created.json()["id"], email=email, password=password, token=login.json()["access_token"]
    )


@pytest.fixture
def user_factory(client: httpx.AsyncClient) -> SignUp:
    async def factory(**kwargs: object) -> SignedUp:
        return await sign_up(client, **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture
async def user(user_factory: SignUp) -> SignedUp:
    return await user_factory()


def stub_secrets(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> Stubber:
    """Secrets Manager answering ``GetSecretValue`` for each ARN once, with its value."""
    client = boto3.client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    for arn, value in answers.items():
        stubber.add_response(
            "get_secret_value",
            {"ARN": arn, "Name": arn.rsplit(":", 1)[-1], "SecretString": value},
            {"SecretId": arn},
        )
    stubber.activate()
    monkeypatch.setattr(aws_secrets, "_client", lambda: client)
    return stubber
