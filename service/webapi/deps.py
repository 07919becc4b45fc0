"""The dependency vocabulary of the routes: settings, sessions, the current user."""

from __future__ import annotations

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
# FastAPI a solve per request (README, Performance).
async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.sessions_for(request.method)() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]

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
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")
    return item


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
