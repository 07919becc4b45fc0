"""Login throttling: too many failed logins for one account, or from one client address,
answer 429 with ``Retry-After`` until the window that counted them ends.

With a cache the counters live there, so every Lambda environment and Cloud Run instance
sees the same counts. Without one (or while it is unreachable) each instance counts on
its own: still a brake on one attacker hitting one instance, but N instances allow N
times the attempts. That fallback is documented, not hidden.

The window is fixed: it starts at the first failure and ends ``window`` seconds later,
whatever happens in between. A successful login clears the account's count (not the
client's: one known password must not reset a spray across accounts).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from webapi.cache import Cache
from webapi.config import Settings

MAX_LOCAL_KEYS = 10_000


class LocalWindows:
    """Fixed-window counters in this process, bounded in size (oldest windows dropped first)."""

    def __init__(
        self, *, max_keys: int = MAX_LOCAL_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._windows: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def _current(self, key: str) -> tuple[int, float] | None:
        entry = self._windows.get(key)
        if entry is not None and entry[1] <= self._clock():
            del self._windows[key]
            return None
        return entry

    def increment(self, key: str, window_seconds: int) -> tuple[int, int]:
        entry = self._current(key)
        count, ends = (entry[0] + 1, entry[1]) if entry else (1, self._clock() + window_seconds)
        self._windows[key] = (count, ends)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        return count, _seconds_left(ends, self._clock())

    def peek(self, key: str) -> tuple[int, int]:
        entry = self._current(key)
        return (entry[0], _seconds_left(entry[1], self._clock())) if entry else (0, 0)

    def delete(self, key: str) -> None:
        self._windows.pop(key, None)


def _seconds_left(ends: float, now: float) -> int:
    return max(1, int(ends - now + 0.999))


class Throttled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


class LoginThrottle:
    def __init__(self, settings: Settings, *, local: LocalWindows | None = None) -> None:
        self.max_per_account = settings.login_max_failures
        self.max_per_client = settings.login_max_failures_per_client
        self.window_seconds = settings.login_failure_window_seconds
        self.local = local or LocalWindows()

    @staticmethod
    def keys(email: str, client: str | None) -> list[tuple[str, str]]:
        """(kind, key) pairs. The account is hashed: no email address is stored in the cache."""
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        keys = [("account", f"login:fail:account:{account}")]
        if client:
            keys.append(("client", f"login:fail:client:{client}"))
        return keys

    def _limit(self, kind: str) -> int:
        return self.max_per_account if kind == "account" else self.max_per_client

    async def check(self, cache: Cache | None, *, email: str, client: str | None) -> None:
        """Raise :class:`Throttled` if the account or the client is over its limit."""
        for kind, key in self.keys(email, client):
            # The local count matters too: failures counted here while the cache was down.
            count, left = self.local.peek(key)
            seen = await cache.peek(key) if cache is not None else None
            if seen is not None and seen[0] > count:
                count, left = seen
            if count >= self._limit(kind):
                raise Throttled(retry_after_seconds=max(1, left))

    async def failed(self, cache: Cache | None, *, email: str, client: str | None) -> None:
        for _kind, key in self.keys(email, client):
            counted = await cache.increment(key, self.window_seconds) if cache is not None else None
            if counted is None:
                self.local.increment(key, self.window_seconds)

    async def succeeded(self, cache: Cache | None, *, email: str) -> None:
        _kind, key = self.keys(email, None)[0]
        self.local.delete(key)
        if cache is not None:
            await cache.delete(key)
