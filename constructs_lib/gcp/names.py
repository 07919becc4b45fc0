"""Names of Google Cloud resources derived from the service's name (plain Python)."""

from __future__ import annotations


def account_id(name: str, suffix: str) -> str:
    """A service account id (6-30 characters, lowercase letters, digits, hyphens)."""
    base = name[: 30 - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def slug(env_name: str) -> str:
    """An environment variable's name as part of a resource id (``SECRET_KEY``: ``secret-key``)."""
    return env_name.lower().replace("_", "-")
