"""The same-stack floor: the least a FastAPI + Mangum + SQLAlchemy 2 (async) + asyncpg app does
for the service's authenticated read and insert.

What a careful author writes on the stack the service is held to, and nothing more:

* ``GET /api/v1/items?page=&per_page=``: the bearer JWT verified with PyJWT (the service's key,
  algorithm and required claims), the user read by id (it must exist and be active), then one
  page of the user's items in the service's order with the number of all of them
  (``count(*) OVER ()``, one round trip), answered as the service's ``Page[ItemPublic]``. Reads
  run without a transaction (AUTOCOMMIT), as the service's do: no BEGIN/ROLLBACK.
* ``POST /api/v1/items``: the same check, then one ``INSERT ... RETURNING`` and its COMMIT,
  answered 201 as the service's ``ItemPublic``.
* ``GET /health``: ``{"status": "ok"}``, no database.

The same SQL as the service (SQLAlchemy builds it from the same tables, typed declarative
models), the same pydantic response models, FastAPI dependencies for the session and the
user. What it leaves out is what the comparison measures: the service's middleware (request
ids, body limits, error shapes), its JSON access log, settings, throttles, caches, storage,
OpenAPI links, and its ~30 other routes.

The engine as the service sizes it: on Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set) one connection
with pre-ping; elsewhere ``DB_POOL_SIZE`` (10) connections, no overflow.

Lambda: ``same_stack_app.handler`` (Mangum, lifespan off; the engine is created at import and
connects on first use). Cloud Run style: ``python -m same_stack_app`` (uvicorn with the service's
options). Configuration: ``DATABASE_URL`` (``postgresql+asyncpg://``), ``SECRET_KEY``,
``ALGORITHM`` (HS256), ``DB_POOL_SIZE``, ``HOST``, ``PORT``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from mangum import Mangum
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Boolean, DateTime, ForeignKey, String, Text, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(100))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Item(Base):
    __tablename__ = "items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None


class ItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    items: list[ItemPublic]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    per_page: int = Field(ge=1, le=100)


_ITEMS = Base.metadata.tables[Item.__tablename__]
USER_BY_ID = select(User).where(User.id == bindparam("user_id"))
PAGE_OF_ITEMS = (
    select(*_ITEMS.c, func.count().over().label("total"))
    .where(_ITEMS.c.owner_id == bindparam("owner_id"))
    .order_by(_ITEMS.c.created_at, _ITEMS.c.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
COUNT_ITEMS = select(func.count()).select_from(_ITEMS).where(_ITEMS.c.owner_id == bindparam("owner_id"))
INSERT_ITEM = insert(_ITEMS).returning(*_ITEMS.c)

ON_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
SECRET_KEY = os.environ["SECRET_KEY"]
ALGORITHM = os.environ.get("ALGORITHM", "HS256")
engine = create_async_engine(
    os.environ["DATABASE_URL"],
    pool_size=1 if ON_LAMBDA else int(os.environ.get("DB_POOL_SIZE", "10")),
    max_overflow=0,
    pool_pre_ping=ON_LAMBDA,
)
sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
read_sessions = async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    maker = read_sessions if request.method == "GET" else sessions
    async with maker() as opened:
        yield opened


SessionDep = Annotated[AsyncSession, Depends(session, scope="function")]


def _unauthorized() -> HTTPException:
    return HTTPException(401, "Invalid or expired token", headers={"WWW-Authenticate": "Bearer"})


async def current_user(request: Request, db: SessionDep) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized()
    try:
        claims = jwt.decode(
            token, SECRET_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]}
        )
        if claims.get("type") != "access":
            raise _unauthorized()
        user_id = uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        raise _unauthorized() from None
    user = await db.scalar(USER_BY_ID, {"user_id": user_id})
    if user is None or not user.is_active:
        raise _unauthorized()
    return user


UserDep = Annotated[User, Depends(current_user)]
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/items", response_model=Page)
async def list_items(
    db: SessionDep,
    user: UserDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    window = {"owner_id": user.id, "offset": (page - 1) * per_page, "limit": per_page}
    rows = (await db.execute(PAGE_OF_ITEMS, window)).all()
    total = rows[0].total if rows else 0
    if not rows and page > 1:  # past the end: no row carries the total
        total = await db.scalar(COUNT_ITEMS, {"owner_id": user.id})
    return Page(
        items=[ItemPublic.model_validate(row) for row in rows], total=total, page=page, per_page=per_page
    )


@app.post("/api/v1/items", response_model=ItemPublic, status_code=201)
async def create_item(data: ItemCreate, db: SessionDep, user: UserDep) -> Any:
    values = {"owner_id": user.id, "title": data.title, "description": data.description}
    row = (await db.execute(INSERT_ITEM, values)).one()
    await db.commit()
    return ItemPublic.model_validate(row)


handler = Mangum(app, lifespan="off")


def main() -> None:
    """Serve as ``webapi.serve`` does (one process; no access log, which it leaves out)."""
    import uvicorn  # noqa: PLC0415 - the container's server, never imported on Lambda

    uvicorn.run(
        app,
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
