"""Hostile clients without a cache (the default deployment): the per-instance login limit cannot be
flushed by the attacker's own traffic, and sign-up is throttled and costs no hash for a duplicate."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.service.conftest import API, SignUp
from webapi import security
from webapi.config import Settings
from webapi.throttle import LocalWindows, LoginThrottle, Throttled

PASSWORD = "correct horse battery"


async def _login(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post(f"{API}/auth/token", data={"username": email, "password": password})
    return response.status_code


def _other_address(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_flood_of_fresh_emails_does_not_unlock_an_account(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user_factory: SignUp
) -> None:
    """Lock a victim with 5 guesses (and count 4 against another), then flood from the same
    address with 10 times the counter table's size in random emails: the counts hold. The table here holds 200
    keys (10,000 in production) so the flood stays short; the rule is the same."""
    app.state.login_throttle = LoginThrottle(settings, local=LocalWindows(max_keys=200))
    victim = await user_factory(password=PASSWORD)
    partly = await user_factory(password=PASSWORD)
    assert [await _login(client, victim.email, "wrong guess") for _ in range(5)] == [401] * 5
    assert [await _login(client, partly.email, "wrong guess") for _ in range(4)] == [401] * 4
    flood = [await _login(client, f"r{n}-{uuid.uuid4().hex[:6]}@example.com", "x") for n in range(2000)]
    # The address's own limit (20, of which the guesses took 9): then 429 without counting more.
    assert flood[:11] == [401] * 11 and set(flood[11:]) == {429}
    # The next guesses, from another address (whose own count is fresh), meet the lock.
    async with _other_address(app, "198.51.100.9") as elsewhere:
        assert await _login(elsewhere, victim.email, "another guess") == 429
        assert await _login(elsewhere, victim.email, PASSWORD) == 429  # locked means locked
        assert await _login(elsewhere, partly.email, "another guess") == 401  # its 5th
        assert await _login(elsewhere, partly.email, PASSWORD) == 429
    assert len(app.state.login_throttle.local) < 50  # the flood added nothing to the table


async def test_sign_ups_are_throttled_per_address(settings: Settings, app: FastAPI) -> None:
    app.state.signup_throttle.max_per_client = 3  # SIGNUP_MAX_PER_CLIENT (20 by default)
    async with _other_address(app, "198.51.100.7") as first, _other_address(app, "198.51.100.8") as second:
        statuses = []
        for n in range(5):
            body = {
                "email": f"flood-{n}-{uuid.uuid4().hex[:6]}@example.com",
                "name": "F",
                "password": PASSWORD,
            }
            statuses.append((await first.post(f"{API}/users", json=body)).status_code)
        assert statuses == [201, 201, 201, 429, 429]
        refused = await first.post(
            f"{API}/users", json={"email": "late@example.com", "name": "L", "password": PASSWORD}
        )
        assert refused.json()["detail"] == "Too many sign-ups; try again later"
        assert 1 <= int(refused.headers["Retry-After"]) <= settings.signup_window_seconds
        body = {"email": f"other-{uuid.uuid4().hex[:6]}@example.com", "name": "O", "password": PASSWORD}
        assert (await second.post(f"{API}/users", json=body)).status_code == 201  # its own count


async def test_a_duplicate_sign_up_costs_no_password_hash(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real_hash = security.password_hash.hash

    def counting_hash(password: str) -> str:
        hashed.append(password)
        return real_hash(password)

    monkeypatch.setattr(security.password_hash, "hash", counting_hash)
    body = {"email": f"dup-{uuid.uuid4().hex[:8]}@example.com", "name": "D", "password": PASSWORD}
    assert (await client.post(f"{API}/users", json=body)).status_code == 201
    assert len(hashed) == 1
    again = await client.post(f"{API}/users", json={**body, "email": body["email"].upper()})
    assert again.status_code == 409
    assert again.json()["detail"] == "Email already registered"
    assert len(hashed) == 1  # refused before hashing


async def test_attempts_refused_during_an_outage_do_not_outlive_it(settings: Settings) -> None:
    """Five attempts wait on a hung database (counted, not yet judged); five more are refused
    meanwhile; the five end in 503 and are taken back. The refused ones counted nowhere, so the
    user logs in when the database returns (they stayed counted: 429, Retry-After 900)."""
    throttle = LoginThrottle(settings)
    pending = [await throttle.attempt(None, email="a@example.com", client=f"192.0.2.{n}") for n in range(5)]
    for n in range(5):
        with pytest.raises(Throttled):
            await throttle.attempt(None, email="a@example.com", client=f"192.0.2.{10 + n}")
    for counted in pending:
        await throttle.refund(None, counted)
    await throttle.attempt(None, email="a@example.com", client="192.0.2.99")  # not Throttled


async def test_every_form_of_an_address_counts_against_one_account(
    app: FastAPI, client: httpx.AsyncClient, user_factory: SignUp
) -> None:
    """The throttle counts by the address sign-up stores: guesses spread over its other forms
    (case, fullwidth letters, a decomposed accent), from two addresses, lock the one account."""
    victim = await user_factory(email="jos\u00e9@example.com", password=PASSWORD)
    forms = [
        "JOS\u00c9@example.com",
        "jose\u0301@example.com",
        "jos\u00e9@\uff45xample.com",
        " Jos\u00e9@EXAMPLE.com ",
    ]
    async with _other_address(app, "198.51.100.20") as first, _other_address(app, "198.51.100.21") as second:
        statuses = [await _login((first, second)[n % 2], forms[n % len(forms)], "wrong") for n in range(5)]
        assert statuses == [401] * 5
        assert await _login(first, victim.email, PASSWORD) == 429


def test_a_table_kept_over_its_bound_by_locks_is_not_walked_on_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    windows = LocalWindows(max_keys=100)
    walks = []
    evict = windows._evict
    monkeypatch.setattr(windows, "_evict", lambda keep: (walks.append(keep), evict(keep)))
    for n in range(300):
        windows.increment(f"locked-{n}", 900, protect_at=1)
    assert len(windows) == 300  # every lock kept
    assert len(walks) <= 25, len(walks)  # one walk per 10 new keys past the bound, not 200
