"""Secrets delivered as ARNs (Lambda), turned into the environment variables the app reads.

Runs before the app is imported, so settings classes that read the environment at import
(pydantic-settings, os.environ) see them. A variable already set wins: a local run, or a value
given in the spec's environment, is never overwritten.

``FASTAPI_DEPLOY_SECRETS``: ``{"SECRET_KEY": "arn:..."}``, each a plain string secret.
``FASTAPI_DEPLOY_DATABASE``: the database, from an RDS/Aurora JSON secret
(``username``, ``password``, ``host``, ``port``)::

    {"secret_arn": "arn:...", "host": null, "database": "app", "driver": "psycopg",
     "settings": "url" | "parts", "url_variable": "DATABASE_URL", "scheme": null,
     "parts": {"host": "POSTGRES_SERVER", "port": "POSTGRES_PORT", "user": "POSTGRES_USER",
               "password": "POSTGRES_PASSWORD", "database": "POSTGRES_DB"},
     "tls": true}

With ``tls``, the connection is verified against the RDS certificate authorities shipped in
this package, through libpq's (and asyncpg's) own variables ``PGSSLMODE``/``PGSSLROOTCERT``:
the same for every driver, whatever the URL looks like.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from . import DATABASE_VARIABLE, SECRETS_VARIABLE
from .dburl import database_url

RDS_CA_BUNDLE = Path(__file__).resolve().parent / "rds-ca-bundle.pem"
SecretReader = Callable[[str], str]


def secrets_manager_reader() -> SecretReader:
    import boto3  # noqa: PLC0415 - the Lambda runtime's own; only when an ARN is configured

    client = boto3.client("secretsmanager")

    def read(arn: str) -> str:
        value = client.get_secret_value(SecretId=arn).get("SecretString")
        if not value:
            raise RuntimeError(f"secret {arn} has no SecretString")
        return str(value)

    return read


def resolve(environ: MutableMapping[str, str] | None = None, *, read: SecretReader | None = None) -> None:
    """Set the variables named by ``FASTAPI_DEPLOY_SECRETS`` and ``FASTAPI_DEPLOY_DATABASE``."""
    env = os.environ if environ is None else environ
    secrets = _json(env, SECRETS_VARIABLE)
    database = _json(env, DATABASE_VARIABLE)
    if not secrets and not database:
        return
    read = read or secrets_manager_reader()
    for name, arn in sorted(secrets.items()):
        if name not in env:
            env[name] = read(arn)
    if database:
        _database(env, database, read)


def _database(env: MutableMapping[str, str], config: dict[str, Any], read: SecretReader) -> None:
    try:
        secret = json.loads(read(config["secret_arn"]))
        user, password = str(secret["username"]), str(secret["password"])
        host = str(config.get("host") or secret["host"])
        port = int(secret.get("port") or 5432)
    except (ValueError, KeyError, TypeError) as error:
        raise RuntimeError(
            f"{DATABASE_VARIABLE}: the database secret must be JSON with username, password, host "
            f"(and port): {type(error).__name__}"
        ) from None
    name = str(config["database"])
    if config.get("settings", "url") == "parts":
        parts = config["parts"]
        values = {"host": host, "port": str(port), "user": user, "password": password, "database": name}
        for part, variable in parts.items():
            env.setdefault(variable, values[part])
    else:
        variable = config.get("url_variable") or "DATABASE_URL"
        env.setdefault(
            variable,
            database_url(
                driver=config.get("driver") or "asyncpg",
                user=user,
                password=password,
                database=name,
                host=host,
                port=port,
                scheme=config.get("scheme"),
            ),
        )
    if config.get("tls"):
        env.setdefault("PGSSLMODE", "verify-full")
        env.setdefault("PGSSLROOTCERT", str(RDS_CA_BUNDLE))


def _json(env: MutableMapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise RuntimeError(f"{name} must be a JSON object")
    return value
