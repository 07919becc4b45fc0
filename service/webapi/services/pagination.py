from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def paginate(
    *, session: AsyncSession, query: Select[Any], page: int, per_page: int
) -> tuple[list[Any], int]:
    """One page of ``query`` and the total number of rows it matches."""
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.scalars(query.offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total or 0)
