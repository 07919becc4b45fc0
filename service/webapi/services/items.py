from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapi.db import FOREIGN_KEY_VIOLATION, sqlstate
from webapi.models import Attachment, Item, User
from webapi.schemas import ItemCreate, ItemUpdate
from webapi.services.objects import delete_objects
from webapi.services.pagination import page_query, paginate
from webapi.storage import Storage

# Built once (see PageQuery): the statements of the hot paths, with bound parameters.
_ITEMS = Item.metadata.tables[Item.__tablename__]
# The page is read as rows, not ORM objects: the route only serializes them, and loading 20 Items
# through the ORM's identity map cost 9% of GET /api/v1/items' instructions (docs/performance.md).
_ITEMS_OF_OWNER = page_query(
    select(*_ITEMS.c)
    .where(_ITEMS.c.owner_id == bindparam("owner_id"))
    .order_by(_ITEMS.c.created_at, _ITEMS.c.id)
)
# One INSERT, not the ORM's unit of work: the flush of one new object was 17% of the instructions
# of POST /api/v1/items (docs/performance.md).
_INSERT_ITEM = insert(_ITEMS).returning(*_ITEMS.c)
# Not named after the columns: an UPDATE reserves those names for its SET clause.
_MATCH = (_ITEMS.c.id == bindparam("match_id"), _ITEMS.c.owner_id == bindparam("match_owner"))
_UPDATE_ITEM = update(_ITEMS).where(*_MATCH).returning(*_ITEMS.c)
_LOCK_ITEM = select(_ITEMS.c.id).where(*_MATCH).with_for_update()
_DELETE_ITEM = delete(_ITEMS).where(*_MATCH)
_OBJECT_KEYS_OF_ITEM = select(Attachment.object_key).where(Attachment.item_id == bindparam("match_id"))
_OWNED_ITEM = select(Item).where(Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id"))


class ItemGone(Exception):
    """The item was deleted (or its owner was) while the request was on its way."""


class OwnerGone(Exception):
    """The token's account was deleted (a cached user may outlive it by the cache's TTL)."""


async def create_item(*, session: AsyncSession, owner: User, data: ItemCreate) -> Row[Any]:
    """Insert the item and return its row; the table's own defaults fill id and timestamps."""
    values = {"owner_id": owner.id, "title": data.title, "description": data.description}
    try:
        row = (await session.execute(_INSERT_ITEM, values)).one()
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if sqlstate(exc) == FOREIGN_KEY_VIOLATION:
            raise OwnerGone from None
        raise
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


async def update_item(*, session: AsyncSession, item: Item, data: ItemUpdate) -> Item | Row[Any]:
    """One UPDATE of the fields sent, matched by id and owner: a PATCH that races a DELETE finds
    no row (:class:`ItemGone`) instead of the ORM's StaleDataError."""
    values = {
        field: value
        for field, value in data.model_dump(exclude_unset=True).items()
        if not (field == "title" and value is None)  # title is required; an explicit null leaves it
    }
    if not values:
        return item
    match = {"match_id": item.id, "match_owner": item.owner_id}
    row = (await session.execute(_UPDATE_ITEM.values(values), match)).one_or_none()
    await session.commit()
    if row is None:
        raise ItemGone
    return row


async def lock_item(*, session: AsyncSession, item: Item) -> bool:
    """Lock the item's row (FOR UPDATE) until the transaction ends; False if it is gone. Whatever
    counts or lists the item's attachments under this lock sees every one: creating one takes it too."""
    return await session.scalar(_LOCK_ITEM, {"match_id": item.id, "match_owner": item.owner_id}) is not None


async def delete_item(*, session: AsyncSession, item: Item, storage: Storage | None) -> None:
    """Delete the item; its attachment rows go with it (ON DELETE CASCADE), then their objects.
    The object keys are read under the item's row lock, which an attachment being created takes
    too: none is created unseen. :class:`ItemGone` if another request deleted it first."""
    if not await lock_item(session=session, item=item):
        await session.rollback()
        raise ItemGone
    params = {"match_id": item.id, "match_owner": item.owner_id}
    keys = list(await session.scalars(_OBJECT_KEYS_OF_ITEM, params)) if storage else []
    await session.execute(_DELETE_ITEM, params)
    await session.commit()
    if storage and keys:
        await delete_objects(storage=storage, keys=keys)
