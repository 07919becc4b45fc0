"""Throttling: too many failed logins for one account or from one client address, or too many
sign-ups from one client address, answer 429 with ``Retry-After`` until the window that counted
them ends.

With a cache the counters live there, so every Lambda environment and Cloud Run instance
sees the same counts. Without one (or while it is unreachable) each instance counts on
its own: still a brake on one attacker hitting one instance, but N instances allow N
times the attempts. That fallback is documented, not hidden.

Every attempt is counted before its password is checked (so parallel guesses cannot all slip
through a read-only check). An attempt that ends for the service's own reasons (the database is
down: 503) is taken back: a user following ``Retry-After`` through an outage is not locked out
after it. A successful login clears the account's count and takes itself back from the client's
(one known password must not reset a spray across accounts). The client's limit is checked
first: an address over its limit counts nothing more, so it cannot fill the counter table with
fresh accounts. The window is fixed: it starts at the first attempt and ends ``window`` seconds
later.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from webapi.cache import Cache
from webapi.config import Settings

log = logging.getLogger("webapi.throttle")

MAX_LOCAL_KEYS = 10_000
# Counters at or over their limit (a locked account, a throttled address) are never evicted to
# make room for fresh ones; the table may grow past MAX_LOCAL_KEYS for them, up to this factor.
# Reaching it takes over 100,000 locked keys in one window (271 bytes each, measured with
# tracemalloc: 27 MB at the ceiling).
LOCKED_KEYS_FACTOR = 10


@dataclass(slots=True)
class _Window:
    count: int
    ends: float
    protect_at: int  # at or over this count, the window is a lock: evicted last


class LocalWindows:
    """Fixed-window counters in this process, bounded in size.

    When the table is full, the windows that ended go first, then the lowest counts (the oldest
    first among equals), down to 90% of the bound: an attacker's one-attempt keys go before a
    victim's four. A window at its limit (a lock) is not evicted until the table holds
    ``LOCKED_KEYS_FACTOR`` times the bound.
    """

    def __init__(
        self, *, max_keys: int = MAX_LOCAL_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock
        # The size at which the next eviction runs. An eviction walks the whole table: when locks
        # keep it over the bound, the next one waits for a tenth of the bound more keys, so the
        # walk costs O(1) per increment on average instead of O(table).
        self._evict_at = max_keys + 1

    def __len__(self) -> int:
        return len(self._windows)

    def _current(self, key: str) -> _Window | None:
        entry = self._windows.get(key)
        if entry is not None and entry.ends <= self._clock():
            del self._windows[key]
            return None
        return entry

    def increment(self, key: str, window_seconds: int, *, protect_at: int | None = None) -> tuple[int, int]:
        entry = self._current(key)
        if entry is None:
            entry = _Window(0, self._clock() + window_seconds, protect_at or 0)
            self._windows[key] = entry
        entry.count += 1
        if protect_at is not None:
            entry.protect_at = protect_at
        self._windows.move_to_end(key)  # the most recently counted go last
        if len(self._windows) >= self._evict_at:
            self._evict(keep=key)
            self._evict_at = max(self._max_keys, len(self._windows)) + max(1, self._max_keys // 10)
        return entry.count, _seconds_left(entry.ends, self._clock())

    def _evict(self, keep: str) -> None:
        now = self._clock()
        for stale in [k for k, w in self._windows.items() if w.ends <= now]:
            del self._windows[stale]
        target = self._max_keys - max(1, self._max_keys // 10)
        if len(self._windows) <= self._max_keys:
            return
        unlocked = [
            (w.count, order, k)
            for order, (k, w) in enumerate(self._windows.items())
            if k != keep and (w.protect_at == 0 or w.count < w.protect_at)
        ]
        unlocked.sort()
        for _count, _order, k in unlocked[: max(0, len(self._windows) - target)]:
            del self._windows[k]
        while len(self._windows) > self._max_keys * LOCKED_KEYS_FACTOR:
            oldest = next(iter(self._windows))
            if oldest == keep:
                break
            del self._windows[oldest]

    def decrement(self, key: str) -> None:
        entry = self._current(key)
        if entry is not None and entry.count > 0:
            entry.count -= 1

    def peek(self, key: str) -> tuple[int, int]:
        entry = self._current(key)
        return (entry.count, _seconds_left(entry.ends, self._clock())) if entry else (0, 0)

    def delete(self, key: str) -> None:
        self._windows.pop(key, None)


def _seconds_left(ends: float, now: float) -> int:
    return max(1, int(ends - now + 0.999))


def client_key(address: str) -> str:
    """IPv4 as is; IPv6 by its /64 (one host usually holds a whole /64, so per-address counts
    would be endless fresh starts)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class Counted:
    """What one attempt counted, and where (the cache, or this process), to take it back."""

    keys: list[tuple[str, bool]] = field(default_factory=list)  # (key, counted in the cache)


class _Counters:
    def __init__(self, window_seconds: int, local: LocalWindows | None) -> None:
        self.window_seconds = window_seconds
        self.local = local or LocalWindows()

    async def count(self, cache: Cache | None, limits: list[tuple[str, int]]) -> Counted:
        """Count one attempt under each (key, limit), in order; raise :class:`Throttled` at the
        first that is over its limit (the keys after it are not counted). Each increment is
        atomic, so of N parallel attempts at most the limit get past."""
        counted = Counted()
        for key, limit in limits:
            in_cache = await cache.increment(key, self.window_seconds) if cache is not None else None
            if in_cache is None:
                count, left = self.local.increment(key, self.window_seconds, protect_at=limit)
            else:
                # Attempts counted here while the cache was down still count on this instance
                # (this attempt, counted in the cache, comes on top of them).
                local_count, local_left = self.local.peek(key)
                count, left = max(in_cache, (local_count + 1, local_left) if local_count else (0, 0))
            counted.keys.append((key, in_cache is not None))
            if count > limit:
                # Refused, not tried: the attempt counts nowhere. Otherwise attempts refused while
                # others were still waiting on the database (to be taken back as 503s) would stay
                # counted, and lock the account after an outage after all.
                await self.refund(cache, counted)
                raise Throttled(retry_after_seconds=max(1, left))
        return counted

    async def refund(self, cache: Cache | None, counted: Counted) -> None:
        """Take an attempt back from every key it was counted in."""
        for key, in_cache in counted.keys:
            if not in_cache or cache is None:
                self.local.decrement(key)
            elif not await cache.decrement(key):
                # The cache failed since it counted: the attempt stays counted there, until its
                # window ends. Logged, as it is the one way our failure can count against a user.
                log.warning("throttle count not taken back", extra={"key": key.rsplit(":", 1)[0]})


class LoginThrottle(_Counters):
    def __init__(self, settings: Settings, *, local: LocalWindows | None = None) -> None:
        super().__init__(settings.login_failure_window_seconds, local)
        self.max_per_account = settings.login_max_failures
        self.max_per_client = settings.login_max_failures_per_client

    @staticmethod
    def keys(email: str, client: str | None) -> list[tuple[str, str]]:
        """(kind, key) pairs, the client's first. ``email`` is the address as sign-up stores it
        (webapi.emails.canonical_email, which the login route applies once), hashed: no email
        address is stored in the cache."""
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        keys = [("client", f"login:fail:client:{client_key(client)}")] if client else []
        keys.append(("account", f"login:fail:account:{account}"))
        return keys

    async def attempt(self, cache: Cache | None, *, email: str, client: str | None) -> Counted:
        """Count this attempt, before the password is checked; :class:`Throttled` if it is one
        too many. :meth:`refund` takes it back if the attempt could not be judged."""
        limits = {"client": self.max_per_client, "account": self.max_per_account}
        return await self.count(cache, [(key, limits[kind]) for kind, key in self.keys(email, client)])

    async def succeeded(self, cache: Cache | None, *, email: str, client: str | None) -> None:
        """The account's count starts again; the client's attempt was not a failure after all."""
        keys = dict(self.keys(email, client))
        self.local.delete(keys["account"])
        if "client" in keys:
            self.local.decrement(keys["client"])
        if cache is not None:
            await cache.delete(keys["account"])
            if "client" in keys:
                await cache.decrement(keys["client"])


class SignUpThrottle(_Counters):
    """Sign-ups per client address: each costs a password hash, which logins wait behind."""

    def __init__(self, settings: Settings, *, local: LocalWindows | None = None) -> None:
        super().__init__(settings.signup_window_seconds, local)
        self.max_per_client = settings.signup_max_per_client

    async def attempt(self, cache: Cache | None, *, client: str | None) -> Counted:
        if not client:
            return Counted()
        return await self.count(cache, [(f"signup:client:{client_key(client)}", self.max_per_client)])
