"""The app a construct deploys, as both clouds' constructs take it (plain Python, no CDK).

What the runtime entry (``constructs_lib/runtime/serverless_fastapi_entry``) needs to know:
the entrypoint, how the app migrates, and how it reads its database and secrets. The
constructs turn it into the entry's ``FASTAPI_DEPLOY_*`` variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from constructs_lib.runtime import serverless_fastapi_entry as entry

DEFAULT_PARTS = {
    "host": "POSTGRES_SERVER",
    "port": "POSTGRES_PORT",
    "user": "POSTGRES_USER",
    "password": "POSTGRES_PASSWORD",
    "database": "POSTGRES_DB",
}


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """How the app reads its database: ``url`` (one variable, the driver's form), ``parts``
    (POSTGRES_* variables) or ``secret-arns`` (the app reads Secrets Manager itself, as our
    sample service does, and its migrations create the service's own role)."""

    driver: Literal["asyncpg", "psycopg", "psycopg2"] = "asyncpg"
    settings: Literal["url", "parts", "secret-arns"] = "url"
    url_variable: str = "DATABASE_URL"
    url_scheme: str | None = None
    host_required: bool = False
    parts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PARTS))

    @property
    def reads_secret_arns(self) -> bool:
        return self.settings == "secret-arns"

    def entry_config(self, *, secret_arn: str, database: str, host: str | None = None) -> dict[str, Any]:
        """``FASTAPI_DEPLOY_DATABASE``: where the entry finds the credentials and what it sets."""
        return {
            "secret_arn": secret_arn,
            "host": host,
            "database": database,
            "driver": self.driver,
            "settings": self.settings,
            "url_variable": self.url_variable,
            "scheme": self.url_scheme,
            "parts": dict(self.parts),
            "tls": True,
        }


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """``entrypoint`` is ``module:attribute`` (an ASGI app, or a factory: ``factory`` True,
    False, or None to tell at start); ``source_root`` is where its modules import from.
    ``migrations`` is ``none``, ``alembic`` (``alembic_config``) or ``command``
    (``migrate_command``, run in the app's directory). ``database`` None: the app has none."""

    entrypoint: str
    factory: bool | None = None
    source_root: str = "."
    dependencies: Path | None = None
    migrations: Literal["none", "alembic", "command"] = "none"
    alembic_config: str = "alembic.ini"
    migrate_command: tuple[str, ...] = ()
    database: DatabaseSettings | None = field(default_factory=DatabaseSettings)
    secret_key_variable: str | None = "SECRET_KEY"  # noqa: S105 - a variable name
    health_path: str = "/health"
    port: int = 8080  # Cloud Run: the container's port ($PORT)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", self.entrypoint):
            raise ValueError(f"entrypoint must look like 'module:attribute', got {self.entrypoint!r}")
        if self.migrations == "command" and not self.migrate_command:
            raise ValueError("migrations 'command' needs migrate_command")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.migrations != "none" and self.database is None:
            raise ValueError(f"migrations {self.migrations!r} need a database (database is None)")

    def entry_environment(self) -> dict[str, str]:
        """What the entry reads to load the app."""
        env = {entry.ENTRYPOINT_VARIABLE: self.entrypoint}
        if self.factory is not None:
            env[entry.FACTORY_VARIABLE] = "1" if self.factory else "0"
        if self.source_root not in ("", "."):
            env[entry.SOURCE_ROOT_VARIABLE] = self.source_root
        return env

    def migrations_config(self) -> str:
        """``FASTAPI_DEPLOY_MIGRATIONS``."""
        if self.migrations == "alembic":
            return json.dumps({"kind": "alembic", "config": self.alembic_config})
        if self.migrations == "command":
            return json.dumps({"kind": "command", "command": list(self.migrate_command)})
        return json.dumps({"kind": "none"})
