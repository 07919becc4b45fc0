"""A read-through cache of the user behind a token, looked up on every authenticated request.

Entries hold what the routes read of the signed-in user (never the password hash) and
expire after USER_CACHE_TTL_SECONDS. Deleting an account writes a tombstone over its entry
for as long as an entry could live, and entries are only ever added where there is none
(SET NX): a request that read the user just before the deletion cannot put it back. If the
cache cannot be told (it is down), the TTL bounds how long a deleted account's token may
still pass. A cache that fails is skipped: the user comes from the database.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from webapi.cache import Cache
from webapi.models import User

_FIELDS = ("email", "name", "is_active")


def key(user_id: uuid.UUID) -> str:
    return f"user:v1:{user_id}"


DELETED = b"deleted"


class Deleted:
    """What :func:`load` returns for an account deleted within the TTL."""


async def load(cache: Cache, user_id: uuid.UUID) -> User | Deleted | None:
    raw = await cache.get(key(user_id))
    if raw is None:
        return None
    if raw == DELETED:
        return Deleted()
    try:
        data = json.loads(raw)
        # Transient: not in any session, so nothing a route does with it reaches the database.
        return User(
            id=user_id,
            **{name: data[name] for name in _FIELDS},
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # an entry this version cannot read: the database answers


async def store(cache: Cache, user: User, ttl_seconds: int) -> None:
    data = {name: getattr(user, name) for name in _FIELDS}
    data["created_at"] = user.created_at.isoformat()
    data["updated_at"] = user.updated_at.isoformat()
    await cache.set(key(user.id), json.dumps(data), ttl_seconds, only_new=True)


async def forget(cache: Cache | None, user_id: uuid.UUID, ttl_seconds: int) -> None:
    if cache is not None and ttl_seconds > 0:
        await cache.set(key(user_id), DELETED, ttl_seconds)
