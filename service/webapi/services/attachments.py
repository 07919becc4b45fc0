"""Attachments: metadata rows in PostgreSQL, bytes in object storage under server-chosen keys."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapi.models import Attachment, Item
from webapi.schemas import AttachmentCreate
from webapi.storage import Storage, StorageError, UploadTicket

log = logging.getLogger("webapi.attachments")


# Each listing signs one URL per attachment (on GCS, one signBlob call each): bounded per item.
MAX_ATTACHMENTS_PER_ITEM = 100


class TooManyAttachments(Exception):
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
    """The metadata row and the presigned upload for it. Signed first: a failure to sign
    leaves no row behind."""
    if data.size > max_bytes:
        raise UploadTooLarge(data.size, max_bytes)
    held = await session.scalar(select(func.count()).where(Attachment.item_id == item.id))
    if (held or 0) >= MAX_ATTACHMENTS_PER_ITEM:
        raise TooManyAttachments
    attachment_id = uuid.uuid4()
    key = object_key(prefix=prefix, owner_id=item.owner_id, item_id=item.id, attachment_id=attachment_id)
    ticket = await storage.presign_upload(
        key=key, content_type=data.content_type, size=data.size, filename=data.filename
    )
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
    """The row first (the API's truth), then the object; an object left behind is logged."""
    key = attachment.object_key
    await session.delete(attachment)
    await session.commit()
    try:
        await storage.delete(key)
    except StorageError:
        log.warning("attachment object not deleted", extra={"object_key": key}, exc_info=True)


# Deleting objects in parallel, a few at a time: an account may own many.
_DELETE_CONCURRENCY = 8


async def object_keys(
    *, session: AsyncSession, item_id: uuid.UUID | None = None, owner_id: uuid.UUID | None = None
) -> list[str]:
    """Keys of the attachments of an item or of an owner, read before the rows cascade away."""
    query = select(Attachment.object_key)
    if item_id is not None:
        query = query.where(Attachment.item_id == item_id)
    if owner_id is not None:
        query = query.where(Attachment.owner_id == owner_id)
    return list(await session.scalars(query))


async def delete_objects(*, storage: Storage, keys: list[str]) -> int:
    """Best effort, after the rows are gone: an object that cannot be deleted is logged (and
    unreachable: nothing hands out URLs for it any more). Returns how many were deleted."""
    limit = asyncio.Semaphore(_DELETE_CONCURRENCY)

    async def one(key: str) -> bool:
        async with limit:
            try:
                await storage.delete(key)
            except StorageError:
                log.warning("attachment object not deleted", extra={"object_key": key}, exc_info=True)
                return False
            return True

    return sum(await asyncio.gather(*(one(key) for key in keys)))
