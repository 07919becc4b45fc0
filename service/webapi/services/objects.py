"""Deleting attachment objects after their rows: shared by the services that delete rows."""

from __future__ import annotations

import asyncio
import logging

from webapi.storage import Storage, StorageError

log = logging.getLogger("webapi.attachments")

# Deleting objects in parallel, a few at a time: an account may own many.
_DELETE_CONCURRENCY = 8


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
