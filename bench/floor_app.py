"""The floor for the throughput figures: the least an ASGI app can do for the same work.

A bare Starlette app on an asyncpg pool, served by the same uvicorn with the same
options as ``webapi.serve``, answering the three measured routes with the queries the
service makes and the same JSON shapes:

* ``GET /health``: ``{"status": "ok"}``, no database.
* ``GET /api/v1/items?page=&per_page=``: verify the bearer JWT (PyJWT, same key and
  algorithm, same required claims), look the user up, read one page with the number of all
  its items (`count(*) OVER ()`, one round trip, as the service).
* ``POST /api/v1/items``: verify the JWT, look the user up, insert the item, 201.

What it leaves out is what the comparison measures: FastAPI's dependency injection
and validation, pydantic models, SQLAlchemy's ORM, sessions and pool (with its
pre-ping and explicit transactions), and the service's middleware and access log.

Configuration from the environment, as the service's: DATABASE_URL, SECRET_KEY,
ALGORITHM (HS256), DB_POOL_SIZE (10, the pool's maximum), HOST, PORT.
Run: ``python -m bench.floor_app``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TITLE_MAX_LENGTH = 200
MAX_PER_PAGE = 100

_USER = "SELECT id, email, name, hashed_password, is_active, created_at, updated_at FROM users WHERE id = $1"
_COUNT = "SELECT count(*) FROM items WHERE owner_id = $1"
# The service's page: the rows and the number of all of them in one round trip.
_PAGE = (
    "SELECT id, owner_id, title, description, created_at, updated_at, count(*) OVER () AS total "
    "FROM items WHERE owner_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
)
_INSERT = (
    "INSERT INTO items (id, owner_id, title, description, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $5) "
    "RETURNING id, owner_id, title, description, created_at, updated_at"
)

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _plain_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "owner_id": str(row["owner_id"]),
        "title": row["title"],
        "description": row["description"],
        # pydantic's JSON form of an aware UTC datetime, as the service answers
        "created_at": row["created_at"].isoformat().replace("+00:00", "Z"),
        "updated_at": row["updated_at"].isoformat().replace("+00:00", "Z"),
    }


def _token_subject(request: Request) -> uuid.UUID | None:
    """The user id of a valid access token in the Authorization header, else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    key, algorithm = request.app.state.signing
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], options={"require": ["exp", "iat", "sub"]})
        if claims.get("type") != "access":
            return None
        return uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        return None


async def _active_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    user = await conn.fetchrow(_USER, user_id)
    return user if user is not None and user["is_active"] else None


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _page_params(request: Request) -> tuple[int, int] | None:
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "20"))
    except ValueError:
        return None
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        return None
    return page, per_page


async def list_items(request: Request) -> JSONResponse:
    user_id = _token_subject(request)
    if user_id is None:
        return _error(401, "Invalid or expired token", _UNAUTHORIZED)
    params = _page_params(request)
    if params is None:
        return _error(422, "Invalid page or per_page")
    page, per_page = params
    async with request.app.state.pool.acquire() as conn:
        if await _active_user(conn, user_id) is None:
            return _error(401, "Invalid or expired token", _UNAUTHORIZED)
        rows = await conn.fetch(_PAGE, user_id, per_page, (page - 1) * per_page)
        total = rows[0]["total"] if rows else 0
        if not rows and page > 1:  # past the end: no row carries the total
            total = await conn.fetchval(_COUNT, user_id)
    return JSONResponse(
        {"items": [_item(r) for r in rows], "total": total, "page": page, "per_page": per_page}
    )


async def create_item(request: Request) -> JSONResponse:
    user_id = _token_subject(request)
    if user_id is None:
        return _error(401, "Invalid or expired token", _UNAUTHORIZED)
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "Malformed JSON")
    title = data.get("title") if isinstance(data, dict) else None
    description = data.get("description") if isinstance(data, dict) else None
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= TITLE_MAX_LENGTH:
        return _error(422, "title must be 1 to 200 characters")
    if description is not None and not isinstance(description, str):
        return _error(422, "description must be a string")
    async with request.app.state.pool.acquire() as conn:
        if await _active_user(conn, user_id) is None:
            return _error(401, "Invalid or expired token", _UNAUTHORIZED)
        row = await conn.fetchrow(
            _INSERT, uuid.uuid4(), user_id, title.strip(), description, datetime.now(UTC)
        )
    return JSONResponse(_item(row), status_code=201)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.signing = (os.environ["SECRET_KEY"], os.environ.get("ALGORITHM", "HS256"))
    app.state.pool = await asyncpg.create_pool(
        _plain_dsn(os.environ["DATABASE_URL"]),
        min_size=1,
        max_size=int(os.environ.get("DB_POOL_SIZE", "10")),
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/api/v1/items", list_items, methods=["GET"]),
        Route("/api/v1/items", create_item, methods=["POST"]),
    ],
    lifespan=lifespan,
)


def main() -> None:
    """Serve with the options of ``webapi.serve`` (without its access log: that is
    part of what the floor leaves out)."""
    uvicorn.run(
        "bench.floor_app:app",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8080")),
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=8,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
