from __future__ import annotations

import httpx
from fastapi import FastAPI

from webapi.db import Database


async def test_liveness_needs_no_database(client: httpx.AsyncClient, app: FastAPI) -> None:
    app.state.db = None  # any database access would now fail
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


async def test_readiness_is_503_when_the_database_is_unreachable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # A port nothing listens on: the connection is refused.
    unreachable = Database.from_settings(
        app.state.settings.model_copy(
            update={
                "database_url": app.state.settings.database_url.__class__(
                    "postgresql+asyncpg://u@127.0.0.1:1/x"
                )
            }
        )
    )
    app.state.db = unreachable
    try:
        response = await client.get("/health/ready")
    finally:
        await unreachable.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def test_root_points_to_the_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json()["docs"] == "/docs"
    assert "Welcome" in response.json()["message"]


async def test_docs_and_openapi(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200 and "redoc" in redoc.text.lower()
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/users",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}",
        "/api/v1/auth/token",
        "/api/v1/items",
        "/api/v1/items/{item_id}",
        "/health",
        "/health/ready",
        "/",
    ):
        assert path in paths, path
    assert schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"][
        "tokenUrl"
    ] == ("api/v1/auth/token")


async def test_docs_follow_the_root_path(app: FastAPI) -> None:
    # What an API Gateway stage prefix looks like to the app (the Lambda entry sets it).
    transport = httpx.ASGITransport(app=app, root_path="/prod")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        docs = await client.get("/prod/docs")
        root = await client.get("/prod/")
    assert docs.status_code == 200
    assert "/prod/openapi.json" in docs.text
    assert root.json()["docs"] == "/prod/docs"
