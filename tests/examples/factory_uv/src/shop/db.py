"""The database: one async engine per app, made at startup from DATABASE_URL."""

import os

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(500))


def make_engine() -> AsyncEngine:
    # postgresql+asyncpg://user:password@host:5432/db
    return create_async_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
