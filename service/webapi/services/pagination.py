from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def paginate(
    *, session: AsyncSession, query: Select[Any], page: int, per_page: int
) -> tuple[list[Any], int]:
    """One page of ``query`` and the total number of rows it matches, in one round trip:
    ``count(*) OVER ()`` is computed over all matching rows before LIMIT applies. Only a
    page past the end (no rows to carry the total) needs a second, counting query."""
    windowed = query.add_columns(func.count().over().label("total"))
    rows = (await session.execute(windowed.offset((page - 1) * per_page).limit(per_page))).all()
    if rows:
        return [row[0] for row in rows], int(rows[0].total)
    if page == 1:
        return [], 0
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return [], int(total or 0)
