"""Login throttling: too many failed logins for one account, or from one client address,
answer 429 with ``Retry-After`` until the window that counted them ends.

With a cache the counters live there, so every Lambda environment and Cloud Run instance
sees the same counts. Without one (or while it is unreachable) each instance counts on
its own: still a brake on one attacker hitting one instance, but N instances allow N
times the attempts. That fallback is documented, not hidden.

Every attempt is counted before its password is checked (so parallel guesses cannot all slip
through a read-only check); a successful one clears the account's count and takes itself back
from the client's (one known password must not reset a spray across accounts). The window is
fixed: it starts at the first attempt and ends ``window`` seconds later.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
        self._windows.move_to_end(key)  # the most recently counted go last, evicted last
        if len(self._windows) > self._max_keys:
            self._evict()
        return count, _seconds_left(ends, self._clock())

    def _evict(self) -> None:
        now = self._clock()
        for stale in [k for k, (_count, ends) in self._windows.items() if ends <= now]:
            del self._windows[stale]
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)  # the least recently counted

    def decrement(self, key: str) -> None:
        entry = self._current(key)
        if entry is not None and entry[0] > 0:
            self._windows[key] = (entry[0] - 1, entry[1])

    def peek(self, key: str) -> tuple[int, int]:
        entry = self._current(key)
        return (entry[0], _seconds_left(entry[1], self._clock())) if entry else (0, 0)

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
            keys.append(("client", f"login:fail:client:{client_key(client)}"))
        return keys

    def _limit(self, kind: str) -> int:
        return self.max_per_account if kind == "account" else self.max_per_client

    async def attempt(self, cache: Cache | None, *, email: str, client: str | None) -> None:
        """Count this attempt, before the password is checked, and raise :class:`Throttled` if it is
        one too many. Counting first is what makes the limit hold for concurrent guesses: each
        one's increment is atomic, so of N parallel attempts at most the limit get a password check.
        """
        for kind, key in self.keys(email, client):
            counted = await cache.increment(key, self.window_seconds) if cache is not None else None
            if counted is None:
                counted = self.local.increment(key, self.window_seconds)
            else:
                # Failures counted here while the cache was down still count on this instance.
                local = self.local.peek(key)
                counted = max(counted, local)
            count, left = counted
            if count > self._limit(kind):
                raise Throttled(retry_after_seconds=max(1, left))

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
