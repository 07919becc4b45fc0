"""Password hashing (Argon2id via pwdlib) and access tokens (PyJWT)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import anyio
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from webapi.config import Settings

# OWASP Password Storage Cheat Sheet, Argon2id first configuration:
# m=19 MiB, t=2, p=1 (its stated minimum). Roughly 20 ms of CPU per hash here.
ARGON2_MEMORY_KIB = 19_456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

password_hash = PasswordHash(
    (
        Argon2Hasher(
            memory_cost=ARGON2_MEMORY_KIB,
            time_cost=ARGON2_TIME_COST,
            parallelism=ARGON2_PARALLELISM,
        ),
    )
)


class _Limiter:
    """A CapacityLimiter per event loop, so hashing never floods the thread pool."""

    def __init__(self) -> None:
        self._limiters: dict[int, anyio.CapacityLimiter] = {}

    def get(self, total: int) -> anyio.CapacityLimiter:
        key = id(asyncio.get_running_loop())
        limiter = self._limiters.get(key)
        if limiter is None or limiter.total_tokens != total:
            limiter = anyio.CapacityLimiter(total)
            self._limiters = {key: limiter}
        return limiter


_limiter = _Limiter()


async def hash_password(password: str, *, concurrency: int) -> str:
    return await anyio.to_thread.run_sync(password_hash.hash, password, limiter=_limiter.get(concurrency))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return password_hash.hash("not-a-real-password-used-for-timing")


async def verify_password(password: str, hashed: str | None, *, concurrency: int) -> bool:
    """Verify off the event loop. With no user (hashed is None), still spend the
    same time on a dummy hash, so response time does not reveal which emails exist."""
    target = hashed if hashed is not None else _dummy_hash()
    ok = await anyio.to_thread.run_sync(
        password_hash.verify, password, target, limiter=_limiter.get(concurrency)
    )
    return ok and hashed is not None


def create_access_token(subject: uuid.UUID, settings: Settings) -> tuple[str, int]:
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    claims = {"sub": str(subject), "iat": now, "exp": now + lifetime, "type": "access"}
    token = jwt.encode(claims, settings.signing_key, algorithm=settings.algorithm)
    return token, int(lifetime.total_seconds())


class InvalidTokenError(Exception):
    pass


def decode_access_token(token: str, settings: Settings) -> uuid.UUID:
    """The user id in a valid token. Only the configured HMAC algorithm is accepted,
    so `alg: none` and algorithm-confusion tokens fail like tampered ones."""
    try:
        claims = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[settings.algorithm],
            options={"require": ["exp", "iat", "sub"]},
        )
        if claims.get("type") != "access":
            raise InvalidTokenError("not an access token")
        return uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise InvalidTokenError(str(exc)) from None
