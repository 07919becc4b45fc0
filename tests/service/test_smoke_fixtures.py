from __future__ import annotations

import httpx

from tests.service.conftest import API, SignedUp


async def test_sign_up_and_me(client: httpx.AsyncClient, user: SignedUp) -> None:
    response = await client.get(f"{API}/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == user.email


async def test_previous_test_left_nothing(client: httpx.AsyncClient, user: SignedUp) -> None:
    response = await client.get(f"{API}/users", headers=user.headers)
    assert response.json()["total"] == 1
