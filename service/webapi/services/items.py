from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapi.models import Item, User
from webapi.schemas import ItemCreate, ItemUpdate
from webapi.services.pagination import page_query, paginate

# Built once (see PageQuery): the statements of the hot paths, with bound parameters.
_ITEMS = Item.metadata.tables[Item.__tablename__]
# The page is read as rows, not ORM objects: the route only serializes them, and loading 20 Items
# through the ORM's identity map cost 9% of GET /api/v1/items' instructions (README, Performance).
_ITEMS_OF_OWNER = page_query(
    select(*_ITEMS.c)
    .where(_ITEMS.c.owner_id == bindparam("owner_id"))
    .order_by(_ITEMS.c.created_at, _ITEMS.c.id)
)
# One INSERT, not the ORM's unit of work: the flush of one new object was 17% of the instructions
# of POST /api/v1/items (README, Performance).
_INSERT_ITEM = insert(_ITEMS).returning(*_ITEMS.c)
_OWNED_ITEM = select(Item).where(Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id"))


async def create_item(*, session: AsyncSession, owner: User, data: ItemCreate) -> Row[Any]:
    """Insert the item and return its row; the table's own defaults fill id and timestamps."""
    values = {"owner_id": owner.id, "title": data.title, "description": data.description}
    row = (await session.execute(_INSERT_ITEM, values)).one()
    await session.commit()
    return row


async def list_items(
    *, session: AsyncSession, owner: User, page: int, per_page: int
) -> tuple[list[Row[Any]], int]:
    """One page of ``owner``'s items, oldest first, as rows with the items' columns, and the total."""
    return await paginate(
        session=session, query=_ITEMS_OF_OWNER, params={"owner_id": owner.id}, page=page, per_page=per_page
    )


async def get_owned_item(*, session: AsyncSession, owner: User, item_id: uuid.UUID) -> Item | None:
    """The item if it exists and belongs to ``owner``; otherwise None (one answer
    for both, so one user cannot probe another's item ids)."""
    return await session.scalar(_OWNED_ITEM, {"item_id": item_id, "owner_id": owner.id})


async def update_item(*, session: AsyncSession, item: Item, data: ItemUpdate) -> Item:
    for field, value in data.model_dump(exclude_unset=True).items():
        if field == "title" and value is None:
            continue  # title is required; an explicit null leaves it unchanged
        setattr(item, field, value)
    await session.commit()
    return item


async def delete_item(*, session: AsyncSession, item: Item) -> None:
    await session.delete(item)
    await session.commit()
