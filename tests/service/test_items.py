from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from tests.service.conftest import API, SignedUp, SignUp


async def test_item_lifecycle(client: httpx.AsyncClient, user: SignedUp) -> None:
    created = await client.post(
        f"{API}/items", json={"title": " Milk ", "description": "2 l"}, headers=user.headers
    )
    assert created.status_code == 201
    item = created.json()
    assert (item["title"], item["description"], item["owner_id"]) == ("Milk", "2 l", user.id)

    fetched = await client.get(f"{API}/items/{item['id']}", headers=user.headers)
    assert fetched.json() == item

    patched = await client.patch(
        f"{API}/items/{item['id']}", json={"description": None}, headers=user.headers
    )
    assert patched.status_code == 200
    assert patched.json()["title"] == "Milk" and patched.json()["description"] is None
    assert patched.json()["updated_at"] >= item["updated_at"]

    renamed = await client.patch(
        f"{API}/items/{item['id']}", json={"title": "Oat milk"}, headers=user.headers
    )
    assert renamed.json()["title"] == "Oat milk"

    deleted = await client.delete(f"{API}/items/{item['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{API}/items/{item['id']}", headers=user.headers)).status_code == 404


async def test_list_is_own_items_paginated(client: httpx.AsyncClient, user_factory: SignUp) -> None:
    me, other = await user_factory(), await user_factory()
    for n in range(5):
        await client.post(f"{API}/items", json={"title": f"mine {n}"}, headers=me.headers)
    await client.post(f"{API}/items", json={"title": "theirs"}, headers=other.headers)

    page = await client.get(f"{API}/items", params={"page": 2, "per_page": 2}, headers=me.headers)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert [i["title"] for i in body["items"]] == ["mine 2", "mine 3"]
    beyond = await client.get(f"{API}/items", params={"page": 9, "per_page": 2}, headers=me.headers)
    assert beyond.json()["items"] == [] and beyond.json()["total"] == 5


async def test_another_users_item_is_404_for_every_operation(
    client: httpx.AsyncClient, user_factory: SignUp
) -> None:
    owner, intruder = await user_factory(), await user_factory()
    item = (await client.post(f"{API}/items", json={"title": "private"}, headers=owner.headers)).json()
    url = f"{API}/items/{item['id']}"

    assert (await client.get(url, headers=intruder.headers)).status_code == 404
    assert (await client.patch(url, json={"title": "pwned"}, headers=intruder.headers)).status_code == 404
    assert (await client.delete(url, headers=intruder.headers)).status_code == 404

    untouched = await client.get(url, headers=owner.headers)
    assert untouched.status_code == 200 and untouched.json()["title"] == "private"
    listing = await client.get(f"{API}/items", headers=intruder.headers)
    assert listing.json()["total"] == 0


async def test_unknown_item_is_404(client: httpx.AsyncClient, user: SignedUp) -> None:
    response = await client.get(f"{API}/items/{uuid.uuid4()}", headers=user.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "Item not found"


async def test_item_validation(client: httpx.AsyncClient, user: SignedUp) -> None:
    for payload in ({}, {"title": ""}, {"title": "x" * 201}, {"title": "t", "owner_id": str(uuid.uuid4())}):
        response = await client.post(f"{API}/items", json=payload, headers=user.headers)
        assert response.status_code == 422, payload
    item = (await client.post(f"{API}/items", json={"title": "t"}, headers=user.headers)).json()
    response = await client.patch(
        f"{API}/items/{item['id']}", json={"owner_id": user.id}, headers=user.headers
    )
    assert response.status_code == 422


async def test_items_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{API}/items")).status_code == 401
    assert (await client.post(f"{API}/items", json={"title": "t"})).status_code == 401


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [("GET", None, 200), ("POST", {"title": "t"}, 201)],
    ids=["list", "create"],
)
async def test_hot_paths_run_two_statements_built_once(
    client: httpx.AsyncClient, user: SignedUp, method: str, body: dict[str, str] | None, status: int
) -> None:
    """GET /items is the user lookup and one page query (its total in the same round trip);
    POST /items is the user lookup and one INSERT (no unit-of-work flush). Both are the same
    statement objects on every request: built once, so SQLAlchemy's memoized cache key is reused
    instead of being recomputed per request (docs/performance.md)."""
    statements: list[object] = []

    def record(state: ORMExecuteState) -> None:
        statements.append(state.statement)

    event.listen(Session, "do_orm_execute", record)
    try:
        for _ in range(2):
            response = await client.request(method, f"{API}/items", json=body, headers=user.headers)
            assert response.status_code == status
    finally:
        event.remove(Session, "do_orm_execute", record)
    assert len(statements) == 4
    first, second = statements[:2], statements[2:]
    assert all(a is b for a, b in zip(first, second, strict=True))
