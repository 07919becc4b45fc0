"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): bearer auth for a test user.

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
import uuid
from typing import Any

import httpx
import schemathesis

# Set by tests/service/test_schemathesis.py.
BASE_URL = "WEBAPI_BASE_URL"
TOKEN = "WEBAPI_TEST_TOKEN"
PASSWORD = "correct horse battery"


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
