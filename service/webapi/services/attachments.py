"""Attachments: metadata rows in PostgreSQL, bytes in object storage under server-chosen keys."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapi.models import Attachment, Item, User
from webapi.schemas import AttachmentCreate
from webapi.services.items import ItemGone, lock_item
from webapi.storage import Storage, StorageError, UploadTicket

log = logging.getLogger("webapi.attachments")


# Each listing signs one URL per attachment (on GCS, one signBlob call each): bounded per item.
MAX_ATTACHMENTS_PER_ITEM = 100


class TooManyAttachments(Exception):
    pass


class AttachmentGone(Exception):
    pass


class UploadTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"size {size} exceeds the upload limit of {limit} bytes")


def object_key(*, prefix: str, owner_id: uuid.UUID, item_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
    """``<prefix><owner>/<item>/<attachment>``: ids only, nothing the client chose."""
    return f"{prefix}{owner_id}/{item_id}/{attachment_id}"


async def create_attachment(
    *,
    session: AsyncSession,
    storage: Storage,
    item: Item,
    data: AttachmentCreate,
    prefix: str,
    max_bytes: int,
) -> tuple[Attachment, UploadTicket]:
    """The metadata row and the presigned upload for it. Signed before the row is written: a
    failure to sign leaves no row behind.

    The cap holds under concurrency: the count and the insert run under the item's row lock, so
    parallel creates on one item queue for it. The account's row is locked first (KEY SHARE, as
    the attachment's foreign key would), in the order an account deletion takes them, so the
    two cannot deadlock. :class:`ItemGone` if the item or its account went meanwhile."""
    if data.size > max_bytes:
        raise UploadTooLarge(data.size, max_bytes)
    params = {"item_id": item.id, "owner_id": item.owner_id}
    if await _held(session, params) >= MAX_ATTACHMENTS_PER_ITEM:
        raise TooManyAttachments  # without a lock or a signature: the cheap answer first
    attachment_id = uuid.uuid4()
    key = object_key(prefix=prefix, owner_id=item.owner_id, item_id=item.id, attachment_id=attachment_id)
    ticket = await storage.presign_upload(
        key=key, content_type=data.content_type, size=data.size, filename=data.filename
    )
    if await session.scalar(_LOCK_OWNER, params) is None or not await lock_item(session=session, item=item):
        await session.rollback()
        raise ItemGone
    if await _held(session, params) >= MAX_ATTACHMENTS_PER_ITEM:
        await session.rollback()
        raise TooManyAttachments
    attachment = Attachment(
        id=attachment_id,
        item_id=item.id,
        owner_id=item.owner_id,
        object_key=key,
        filename=data.filename,
        content_type=data.content_type,
        size=data.size,
    )
    session.add(attachment)
    await session.commit()
    return attachment, ticket


_COUNT = select(func.count()).where(Attachment.item_id == bindparam("item_id"))
_LOCK_OWNER = (
    select(User.id).where(User.id == bindparam("owner_id")).with_for_update(read=True, key_share=True)
)


async def _held(session: AsyncSession, params: dict[str, uuid.UUID]) -> int:
    return await session.scalar(_COUNT, params) or 0


async def list_attachments(*, session: AsyncSession, item: Item) -> list[Attachment]:
    query = (
        select(Attachment)
        .where(Attachment.item_id == item.id, Attachment.owner_id == item.owner_id)
        .order_by(Attachment.created_at, Attachment.id)
    )
    return list(await session.scalars(query))


async def download_links(
    *, storage: Storage, attachments: list[Attachment]
) -> list[tuple[Attachment, str, datetime]]:
    links = await asyncio.gather(
        *(
            storage.presign_download(key=a.object_key, filename=a.filename, content_type=a.content_type)
            for a in attachments
        )
    )
    return [(a, url, expires_at) for a, (url, expires_at) in zip(attachments, links, strict=True)]


async def get_attachment(*, session: AsyncSession, item: Item, attachment_id: uuid.UUID) -> Attachment | None:
    return await session.scalar(
        select(Attachment).where(
            Attachment.id == attachment_id,
            Attachment.item_id == item.id,
            Attachment.owner_id == item.owner_id,
        )
    )


async def delete_attachment(*, session: AsyncSession, storage: Storage, attachment: Attachment) -> None:
    """The row first (the API's truth), then the object; an object left behind is logged.
    :class:`AttachmentGone` if another request deleted the row first."""
    key = attachment.object_key
    deleted = await session.scalar(
        delete(Attachment).where(Attachment.id == attachment.id).returning(Attachment.id)
    )
    await session.commit()
    if deleted is None:
        raise AttachmentGone
    try:
        await storage.delete(key)
    except StorageError:
        log.warning("attachment object not deleted", extra={"object_key": key}, exc_info=True)
