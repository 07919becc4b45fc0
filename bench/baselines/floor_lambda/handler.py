"""The data cold-start floor: what any Lambda answering ``GET /api/v1/items`` must do.

A Mangum handler over a tiny Starlette app (no FastAPI, no ORM, no pydantic): decode the
bearer JWT with PyJWT (HS256, the claims the service requires), then, on one asyncpg
connection opened on the first request and kept in a module global for later invocations,
run the service's queries (``webapi.deps`` and ``webapi.services``): the user by id (must
exist and be active), then one page of the user's items in the service's order with the
number of all of them (``count(*) OVER ()``, as ``services.pagination.paginate``; a separate
count only for an empty page past the first). The answer has the service's JSON shape
(``Page[ItemPublic]``). ``GET /health`` answers ``{"status": "ok"}``.

Configuration comes from the service's variables: ``DATABASE_URL`` (the SQLAlchemy
``postgresql+asyncpg://`` form is accepted) and ``SECRET_KEY``.
"""

from __future__ import annotations

import datetime
import os
import uuid
from typing import Any

import asyncpg
import jwt
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAX_PER_PAGE = 100
MAX_PAGE = 100_000

USER_BY_ID = (
    "SELECT id, email, name, hashed_password, is_active, created_at, updated_at FROM users WHERE id = $1"
)
PAGE_OF_ITEMS = (
    "SELECT id, owner_id, title, description, created_at, updated_at, count(*) OVER () AS total "
    "FROM items WHERE owner_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
)
COUNT_ITEMS = "SELECT count(*) FROM items WHERE owner_id = $1"

_connection: asyncpg.Connection | None = None


def _dsn() -> str:
    url = os.environ["DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _connect() -> asyncpg.Connection:
    """The module's one connection, opened on first use and reopened if it was lost."""
    global _connection  # noqa: PLW0603 - one connection per execution environment, on purpose
    if _connection is None or _connection.is_closed():
        _connection = await asyncpg.connect(_dsn(), timeout=5, command_timeout=15)
    return _connection


def _unauthorized(detail: str = "Not authenticated") -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _timestamp(value: datetime.datetime) -> str:
    # pydantic's JSON form of an aware UTC datetime
    return value.isoformat().replace("+00:00", "Z")


def _user_id(request: Request) -> uuid.UUID | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = jwt.decode(
            token,
            os.environ["SECRET_KEY"],
            algorithms=["HS256"],
            options={"require": ["exp", "iat", "sub"]},
        )
        if claims.get("type") != "access":
            return None
        return uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        return None


def _page_params(request: Request) -> tuple[int, int] | None:
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "20"))
    except ValueError:
        return None
    if not (1 <= page <= MAX_PAGE and 1 <= per_page <= MAX_PER_PAGE):
        return None
    return page, per_page


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def list_items(request: Request) -> JSONResponse:
    if not request.headers.get("authorization"):
        return _unauthorized()
    user_id = _user_id(request)
    if user_id is None:
        return _unauthorized("Invalid or expired token")
    params = _page_params(request)
    if params is None:
        return JSONResponse({"detail": "Invalid pagination"}, status_code=422)
    page, per_page = params
    connection = await _connect()
    user = await connection.fetchrow(USER_BY_ID, user_id)
    if user is None or not user["is_active"]:
        return _unauthorized("Invalid or expired token")
    rows = await connection.fetch(PAGE_OF_ITEMS, user_id, per_page, (page - 1) * per_page)
    if rows:
        total = rows[0]["total"]
    elif page == 1:
        total = 0
    else:
        total = await connection.fetchval(COUNT_ITEMS, user_id)
    items: list[dict[str, Any]] = [
        {
            "id": str(row["id"]),
            "owner_id": str(row["owner_id"]),
            "title": row["title"],
            "description": row["description"],
            "created_at": _timestamp(row["created_at"]),
            "updated_at": _timestamp(row["updated_at"]),
        }
        for row in rows
    ]
    return JSONResponse({"items": items, "total": int(total), "page": page, "per_page": per_page})


app = Starlette(routes=[Route("/health", health), Route("/api/v1/items", list_items)])
handler = Mangum(app, lifespan="off")
