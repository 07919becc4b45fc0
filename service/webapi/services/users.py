from __future__ import annotations

import uuid

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapi import user_cache
from webapi.cache import Cache
from webapi.db import UNIQUE_VIOLATION, sqlstate
from webapi.models import Attachment, User
from webapi.schemas import UserCreate
from webapi.security import hash_password, verify_password
from webapi.services.objects import delete_objects
from webapi.services.pagination import page_query, paginate
from webapi.storage import Storage

# Built once (see PageQuery): looked up on every authenticated request.
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))
_LOCK_USER = select(User.id).where(User.id == bindparam("user_id")).with_for_update()
_OBJECT_KEYS_OF_OWNER = select(Attachment.object_key).where(Attachment.owner_id == bindparam("owner_id"))
_EMAIL_TAKEN = select(exists().where(User.email == bindparam("email")))
_USERS = page_query(select(User).order_by(User.created_at, User.id))


class EmailAlreadyRegisteredError(Exception):
    pass


async def create_user(*, session: AsyncSession, data: UserCreate, hash_concurrency: int) -> User:
    """Insert a user. A known address is refused before its password is hashed (a duplicate
    must not cost a hash: the 409 says no more than it did). The unique index still decides
    concurrent sign-ups with one email: exactly one user, never a check-then-insert race."""
    email = data.email  # canonical already: UserCreate's Email type makes it (webapi.emails)
    if await session.scalar(_EMAIL_TAKEN, {"email": email}):
        raise EmailAlreadyRegisteredError(email)
    user = User(
        email=email,
        name=data.name,
        hashed_password=await hash_password(data.password, concurrency=hash_concurrency),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if sqlstate(exc) == UNIQUE_VIOLATION:
            raise EmailAlreadyRegisteredError(user.email) from None
        raise
    return user


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.scalar(_USER_BY_ID, {"user_id": user_id})


async def list_users(*, session: AsyncSession, page: int, per_page: int) -> tuple[list[User], int]:
    return await paginate(session=session, query=_USERS, page=page, per_page=per_page)


async def authenticate(
    *, session: AsyncSession, email: str, password: str, hash_concurrency: int
) -> User | None:
    """The active user with this address (as webapi.emails.canonical_email gives it) and
    password, or None."""
    user = await session.scalar(select(User).where(User.email == email))
    hashed = user.hashed_password if user is not None else None
    if not await verify_password(password, hashed, concurrency=hash_concurrency):
        return None
    if user is None or not user.is_active:
        return None
    return user


async def delete_account(
    *, session: AsyncSession, user: User, storage: Storage | None, cache: Cache | None, cache_ttl_seconds: int
) -> None:
    """Delete the account; its items and attachment rows go with it (ON DELETE CASCADE), then
    its cached entry (a tombstone) and its objects. The object keys are read under the account's
    row lock: an attachment being created waits for it (or is waited for), so none is missed."""
    await session.execute(_LOCK_USER, {"user_id": user.id})
    keys = list(await session.scalars(_OBJECT_KEYS_OF_OWNER, {"owner_id": user.id})) if storage else []
    await session.execute(delete(User).where(User.id == user.id))
    await session.commit()
    await user_cache.forget(cache, user.id, cache_ttl_seconds)
    if storage and keys:
        await delete_objects(storage=storage, keys=keys)
