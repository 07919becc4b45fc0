"""The dependency vocabulary of the routes: settings, sessions, the current user."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from webapi import user_cache
from webapi.cache import Cache
from webapi.config import Settings
from webapi.db import Database
from webapi.models import Item, User
from webapi.schemas import MAX_PAGE, MAX_PER_PAGE
from webapi.security import InvalidTokenError, decode_access_token
from webapi.services import items as items_service
from webapi.services import users as users_service
from webapi.storage import Storage

# Relative, so Swagger UI posts to the right URL behind an API Gateway stage prefix.
log = logging.getLogger("webapi.db")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="api/v1/auth/token", auto_error=False)


# Dependencies are `async def` even when they do no I/O: FastAPI runs a plain `def`
# dependency in the thread pool, a hop that costs more than the work here.
async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


# The dependencies on the path of every authenticated request read the app's state straight
# from the request rather than through the dependencies above: each level of dependency costs
# FastAPI a solve per request (docs/performance.md).
async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the request, closed before the response is sent (scope "function", below):
    its connection is back in the pool when the client reads the answer, and nothing of the
    request still runs once the response is out. A close that fails (the database went away
    after the route decided its answer) changes nothing about the answer: the route committed
    what it had to, and the pool drops the connection. Raised instead, after a response had
    started, it would make the server close the client's connection, and with it the next
    request on that connection, whose write could land unacknowledged."""
    database: Database = request.app.state.db
    async with database.admitted():  # in arrival order, as many at a time as the pool holds
        session = database.sessions_for(request.method)()
        try:
            yield session
        finally:
            try:
                await session.close()
            except Exception as exc:
                log.warning("session cleanup failed", extra={"error": type(exc).__name__})
                await _invalidate(session)


async def _invalidate(session: AsyncSession) -> None:
    try:
        await session.invalidate()  # no round trip: the connections are discarded
    except Exception:
        log.debug("session invalidation failed", exc_info=True)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def unauthorized(detail: str = "Not authenticated") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_UNAUTHORIZED_HEADERS)


async def get_cache(request: Request) -> Cache | None:
    cache: Cache | None = getattr(request.app.state, "cache", None)
    return cache


CacheDep = Annotated[Cache | None, Depends(get_cache)]


async def get_optional_storage(request: Request) -> Storage | None:
    """The attachment store, or None when attachments are off."""
    storage: Storage | None = getattr(request.app.state, "storage", None)
    return storage


OptionalStorageDep = Annotated[Storage | None, Depends(get_optional_storage)]


async def get_current_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    if not token:
        raise unauthorized()
    settings: Settings = request.app.state.settings
    cache: Cache | None = getattr(request.app.state, "cache", None)
    try:
        user_id = decode_access_token(token, settings)
    except InvalidTokenError:
        raise unauthorized("Invalid or expired token") from None
    use_cache = cache is not None and settings.user_cache_ttl_seconds > 0
    user = await user_cache.load(cache, user_id) if use_cache and cache else None
    if isinstance(user, user_cache.Deleted):
        raise unauthorized("Invalid or expired token")
    if user is None:
        user = await users_service.get_user(session=session, user_id=user_id)
        if use_cache and cache and user is not None and user.is_active:
            await user_cache.store(cache, user, settings.user_cache_ttl_seconds)
    if user is None or not user.is_active:
        raise unauthorized("Invalid or expired token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_owned_item(item_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Item:
    item = await items_service.get_owned_item(session=session, owner=user, item_id=item_id)
    if item is None:
        raise item_not_found()
    return item


def item_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")


OwnedItem = Annotated[Item, Depends(get_owned_item)]


@dataclass(frozen=True)
class Pagination:
    page: int
    per_page: int


async def get_pagination(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number")] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Page size")] = 20,
) -> Pagination:
    return Pagination(page=page, per_page=per_page)


PaginationDep = Annotated[Pagination, Depends(get_pagination)]
