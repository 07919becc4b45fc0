from __future__ import annotations

import uuid

import httpx
import pytest

from tests.service.conftest import API, SignedUp, SignUp


async def test_sign_up_returns_the_public_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/users", json={"email": "Ada@Example.COM", "name": " Ada ", "password": "s3cret-password"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"  # normalised, so sign-in is case-insensitive
    assert body["name"] == "Ada"
    assert body["is_active"] is True
    assert "password" not in response.text and "hashed" not in response.text
    uuid.UUID(body["id"])


async def test_duplicate_email_is_409_whatever_the_case(client: httpx.AsyncClient, user: SignedUp) -> None:
    response = await client.post(
        f"{API}/users", json={"email": user.email.upper(), "name": "Other", "password": "another-password"}
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "Email already registered"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "name": "A", "password": "password123"}, "email"),
        ({"email": "a@example.com", "name": "", "password": "password123"}, "name"),
        ({"email": "a@example.com", "name": "A", "password": "short"}, "password"),
        ({"email": "a@example.com", "name": "A\x00B", "password": "password123"}, "name"),
        ({"email": "a@example.com", "name": "A", "password": "password123", "is_active": False}, "is_active"),
        ({"email": "a@example.com", "name": "A"}, "password"),
    ],
)
async def test_sign_up_validation_is_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post(f"{API}/users", json=payload)
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert ["body", field] in locations


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/users", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"


async def test_list_users_paginates_with_total(client: httpx.AsyncClient, user_factory: SignUp) -> None:
    users = [await user_factory() for _ in range(3)]
    first = await client.get(f"{API}/users", params={"page": 1, "per_page": 2}, headers=users[0].headers)
    second = await client.get(f"{API}/users", params={"page": 2, "per_page": 2}, headers=users[0].headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["total"] == second.json()["total"] == 3
    assert len(first.json()["items"]) == 2 and len(second.json()["items"]) == 1
    seen = {u["id"] for u in first.json()["items"] + second.json()["items"]}
    assert seen == {u.id for u in users}
    assert (first.json()["page"], first.json()["per_page"]) == (1, 2)
    # Nobody's address is listed, not even one's own (that is /users/me): the addresses are the
    # login names an attacker would need to lock accounts.
    assert {frozenset(u) for u in first.json()["items"]} == {frozenset({"id", "name", "created_at"})}


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": -1}, {"per_page": 0}, {"per_page": 101}, {"page": "x"}, {"page": 100_001}],
)
async def test_pagination_bounds_are_422(
    client: httpx.AsyncClient, user: SignedUp, params: dict[str, object]
) -> None:
    response = await client.get(f"{API}/users", params=params, headers=user.headers)
    assert response.status_code == 422


async def test_pagination_upper_bound_is_accepted(client: httpx.AsyncClient, user: SignedUp) -> None:
    response = await client.get(f"{API}/users", params={"per_page": 100}, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["per_page"] == 100


async def test_users_need_a_token(client: httpx.AsyncClient, user: SignedUp) -> None:
    for path in (f"{API}/users", f"{API}/users/me", f"{API}/users/{user.id}"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


async def test_get_user_by_id_and_unknown_is_404(client: httpx.AsyncClient, user_factory: SignUp) -> None:
    me, other = await user_factory(), await user_factory()
    found = await client.get(f"{API}/users/{other.id}", headers=me.headers)
    assert found.status_code == 200
    assert found.json() == {"id": other.id, "name": "Test User", "created_at": found.json()["created_at"]}
    missing = await client.get(f"{API}/users/{uuid.uuid4()}", headers=me.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "User not found"
    malformed = await client.get(f"{API}/users/not-a-uuid", headers=me.headers)
    assert malformed.status_code == 422


async def test_delete_self_removes_account_items_and_token(client: httpx.AsyncClient, user: SignedUp) -> None:
    created = await client.post(f"{API}/items", json={"title": "mine"}, headers=user.headers)
    assert created.status_code == 201
    deleted = await client.delete(f"{API}/users/{user.id}", headers=user.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"{API}/users/me", headers=user.headers)).status_code == 401
    login = await client.post(f"{API}/auth/token", data={"username": user.email, "password": user.password})
    assert login.status_code == 401


async def test_cannot_delete_another_user(client: httpx.AsyncClient, user_factory: SignUp) -> None:
    me, other = await user_factory(), await user_factory()
    response = await client.delete(f"{API}/users/{other.id}", headers=me.headers)
    assert response.status_code == 403
    assert (await client.get(f"{API}/users/{other.id}", headers=me.headers)).status_code == 200
