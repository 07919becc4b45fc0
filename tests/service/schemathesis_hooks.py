"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): bearer auth for a test user, and
fresh emails for the stateful phase's sign-ups (see before_call).

A static ``--header Authorization: ...`` does not survive the run: schemathesis learns the
user's id from ``GET /users/me`` and feeds it to ``DELETE /users/{user_id}``, which (rightly)
deletes the account; every authenticated operation then only answers 401 and is not really
tested. (Re-registering the same email is no way back either: schemathesis also replays the
learned email into ``POST /users``.) So this provider starts with the token the test obtained
and, when schemathesis sees a 401 on an authenticated request (its default ``retry_on``),
signs up a new user and uses that one's token.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from pydantic import ValidationError

# Set by tests/service/test_schemathesis.py.
BASE_URL = "WEBAPI_BASE_URL"
TOKEN = "WEBAPI_TEST_TOKEN"
PASSWORD = "correct horse battery"
SIGN_UP = ("POST", "/api/v1/users")

# Schemathesis loads this file by path: the service's own request model decides which emails
# it accepts.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "service"))
from webapi.schemas import UserCreate  # noqa: E402


def new_user_token() -> str:
    email = f"schemathesis-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=f"{os.environ[BASE_URL]}/api/v1", timeout=10.0, trust_env=False) as client:
        created = client.post("/users", json={"email": email, "name": "Schemathesis", "password": PASSWORD})
        created.raise_for_status()
        login = client.post("/auth/token", data={"username": email, "password": PASSWORD})
        login.raise_for_status()
        return str(login.json()["access_token"])


@schemathesis.auth()
class AccountBearer:
    def __init__(self) -> None:
        self.initial: str | None = os.environ.get(TOKEN)

    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
        token, self.initial = self.initial, None
        return token or new_user_token()

    def set(self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


def _accepted(body: object) -> bool:
    try:
        UserCreate.model_validate(body)
    except ValidationError:
        return False
    return True


def fresh_email(body: dict[str, Any]) -> dict[str, Any] | None:
    """``body`` with its email's local part replaced by a new random one (same domain), if the
    service accepts both the body and the result; else None."""
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email or not _accepted(body):
        return None
    fresh = {**body, "email": f"{uuid.uuid4().hex[:16]}@{email.rpartition('@')[2]}"}
    return fresh if _accepted(fresh) else None


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    """A positive sign-up in the stateful phase gets an email of its own.

    Hypothesis replays the start of earlier scenarios to find new ones; a replayed sign-up
    with the email it had the first time answers 409 where it answered 201, the links from
    the 201 then have nothing to follow, and Hypothesis stops the whole phase as flaky
    ("Inconsistent data generation"): in one measured run after 22 of 150 scenarios. The
    other phases keep the generated emails, so duplicates (409) are still tested there.
    """
    meta = case.meta
    if (
        (case.operation.method.upper(), case.operation.path) != SIGN_UP
        or meta is None
        or meta.phase.name != "stateful"
        or meta.generation.mode != "positive"
        or not isinstance(case.body, dict)
    ):
        return
    fresh = fresh_email(case.body)
    if fresh is not None:
        case.body = fresh
