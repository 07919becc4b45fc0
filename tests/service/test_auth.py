from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.service.conftest import API, SignedUp
from webapi.config import Settings
from webapi.security import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST, password_hash


async def test_token_is_a_jwt_for_the_user(
    client: httpx.AsyncClient, user: SignedUp, settings: Settings
) -> None:
    login = await client.post(
        f"{API}/auth/token", data={"username": user.email.upper(), "password": user.password}
    )
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60
    claims = jwt.decode(body["access_token"], settings.signing_key, algorithms=["HS256"])
    assert claims["sub"] == user.id


@pytest.mark.parametrize("password", ["wrong-password", ""])
async def test_wrong_password_is_401(client: httpx.AsyncClient, user: SignedUp, password: str) -> None:
    response = await client.post(f"{API}/auth/token", data={"username": user.email, "password": password})
    assert response.status_code in (401, 422)
    if password:
        assert response.status_code == 401
        assert response.json()["detail"] == "Incorrect email or password"


async def test_unknown_email_is_401_like_a_wrong_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/token", data={"username": "nobody@example.com", "password": "whatever1"}
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "Incorrect email or password"


async def test_token_needs_form_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/auth/token", data={"username": "a@example.com"})
    assert response.status_code == 422


def _forge(claims: dict[str, object], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(user_id: str, *, expires_in: timedelta = timedelta(minutes=5)) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"sub": user_id, "iat": now, "exp": now + expires_in, "type": "access"}


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda u, k: _forge(_claims(u, expires_in=timedelta(seconds=-1)), k), id="expired"),
        pytest.param(
            lambda u, k: _forge(_claims(u), "another-key-that-is-long-enough-000000"), id="wrong-key"
        ),
        pytest.param(lambda u, k: _forge(_claims(u), k)[:-3] + "AAA", id="tampered-signature"),
        pytest.param(
            lambda u, k: _unsigned({"sub": u, "iat": 0, "exp": 4_102_444_800, "type": "access"}),
            id="alg-none",
        ),
        pytest.param(lambda u, k: _forge(_claims(u), k, "HS512"), id="wrong-algorithm"),
        pytest.param(lambda u, k: _forge({"sub": u, "type": "access"}, k), id="no-expiry"),
        pytest.param(lambda u, k: _forge({**_claims(u), "type": "refresh"}, k), id="not-an-access-token"),
        pytest.param(lambda u, k: _forge(_claims("not-a-uuid"), k), id="bad-subject"),
        pytest.param(lambda u, k: _forge(_claims(str(uuid.uuid4())), k), id="unknown-user"),
        pytest.param(lambda u, k: "garbage", id="garbage"),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, user: SignedUp, settings: Settings, make_token
) -> None:  # type: ignore[no-untyped-def]
    token = make_token(user.id, settings.signing_key)
    response = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "Invalid or expired token"


async def test_a_valid_forged_token_is_accepted(
    client: httpx.AsyncClient, user: SignedUp, settings: Settings
) -> None:
    # The control for the cases above: the same construction with the right key works.
    token = _forge(_claims(user.id), settings.signing_key)
    response = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_passwords_are_argon2id_with_at_least_owasp_parameters() -> None:
    hashed = password_hash.hash("a password")
    assert hashed.startswith("$argon2id$")
    assert f"m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},p={ARGON2_PARALLELISM}" in hashed
    # OWASP minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
    assert ARGON2_MEMORY_KIB >= 19_456 and ARGON2_TIME_COST >= 2 and ARGON2_PARALLELISM >= 1
    assert password_hash.verify("a password", hashed)
    assert not password_hash.verify("another", hashed)


async def test_the_token_form_is_validated_as_published(
    app: FastAPI, client: httpx.AsyncClient, user: SignedUp
) -> None:
    """FastAPI reads an empty form field as an absent one. The published form says so: an empty
    grant_type is allowed (its pattern admits ""), any other is a 422; an empty username or
    password is refused by minLength, as the validation refuses it (found by schemathesis)."""
    form = app.openapi()
    body = form["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    ref = body["application/x-www-form-urlencoded"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = form["components"]["schemas"][ref]["properties"]
    assert fields["username"]["minLength"] == fields["password"]["minLength"] == 1
    assert fields["grant_type"]["anyOf"][0]["pattern"] == "^(password)?$"
    answers = {}
    for extra in ("grant_type=", "grant_type=password", "grant_type=foo"):
        response = await client.post(
            f"{API}/auth/token",
            content=f"username={user.email}&password={user.password}&{extra}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        answers[extra] = response.status_code
    assert answers == {"grant_type=": 200, "grant_type=password": 200, "grant_type=foo": 422}
    for empty in ({"username": "", "password": "x"}, {"username": user.email, "password": ""}):
        assert (await client.post(f"{API}/auth/token", data=empty)).status_code == 422
