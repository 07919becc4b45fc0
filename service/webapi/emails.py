"""One form of an email address, for sign-up, login and the login throttle alike."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from webapi.schemas import Email

# The sign-up field's own type: what it stores is exactly what this returns.
_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def canonical_email(raw: str) -> str:
    """The address as sign-up stores it ("F1@\\uff45xample.com", "jose\\u0301@example.com" and
    "user@XN--BCHER-KVA.example.com" are "f1@example.com", "josé@example.com" and
    "user@bücher.example.com"). A string sign-up would refuse is only trimmed and lowercased:
    no account has it, and a login with it fails as any wrong address does."""
    try:
        return _EMAIL.validate_python(raw)
    except ValidationError:
        return raw.strip().lower()
