from __future__ import annotations

import uuid

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapi.models import User
from webapi.schemas import UserCreate
from webapi.security import hash_password, verify_password
from webapi.services.pagination import page_query, paginate

# Built once (see PageQuery): looked up on every authenticated request.
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))
_USERS = page_query(select(User).order_by(User.created_at, User.id))


class EmailAlreadyRegisteredError(Exception):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(*, session: AsyncSession, data: UserCreate, hash_concurrency: int) -> User:
    """Insert a user. The unique index decides duplicates, so concurrent sign-ups
    with one email produce exactly one user, never a check-then-insert race."""
    user = User(
        email=normalize_email(str(data.email)),
        name=data.name,
        hashed_password=await hash_password(data.password, concurrency=hash_concurrency),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if _is_unique_violation(exc):
            raise EmailAlreadyRegisteredError(user.email) from None
        raise
    return user


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = getattr(exc.orig, "__cause__", None) or exc.orig
    return isinstance(orig, UniqueViolationError) or getattr(orig, "sqlstate", None) == "23505"


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.scalar(_USER_BY_ID, {"user_id": user_id})


async def list_users(*, session: AsyncSession, page: int, per_page: int) -> tuple[list[User], int]:
    return await paginate(session=session, query=_USERS, page=page, per_page=per_page)


async def authenticate(
    *, session: AsyncSession, email: str, password: str, hash_concurrency: int
) -> User | None:
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    hashed = user.hashed_password if user is not None else None
    if not await verify_password(password, hashed, concurrency=hash_concurrency):
        return None
    if user is None or not user.is_active:
        return None
    return user


async def delete_user(*, session: AsyncSession, user: User) -> None:
    # Items go with their owner (ON DELETE CASCADE).
    await session.execute(delete(User).where(User.id == user.id))
    await session.commit()
