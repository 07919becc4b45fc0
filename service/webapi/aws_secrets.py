"""Secrets Manager reads for Lambda, where secrets arrive as ARNs.

boto3 ships with the Lambda Python runtime, so it is not bundled; it is imported
only here, only when an ARN is configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


def _client() -> Any:
    import boto3  # noqa: PLC0415 - deferred: only Lambda deployments need it

    return boto3.client("secretsmanager")


def read_secret_string(arn: str, *, client: Any = None) -> str:
    response = (client or _client()).get_secret_value(SecretId=arn)
    value = response.get("SecretString")
    if not value:
        raise ValueError(f"secret {arn} has no SecretString")
    return str(value)


@dataclass(frozen=True)
class DatabaseSecret:
    """The JSON document RDS / Aurora writes for generated credentials."""

    username: str
    password: str
    host: str
    port: int
    dbname: str

    @classmethod
    def parse(cls, raw: str) -> DatabaseSecret:
        try:
            data = json.loads(raw)
            return cls(
                username=str(data["username"]),
                password=str(data["password"]),
                host=str(data["host"]),
                port=int(data.get("port", 5432)),
                dbname=str(data.get("dbname", "postgres")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                "DATABASE_SECRET_ARN must name a JSON secret with username, password, host"
                f" (and optional port, dbname): {type(exc).__name__}"
            ) from None

    def sqlalchemy_url(self) -> str:
        return (
            f"postgresql+asyncpg://{quote(self.username, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.dbname, safe='')}"
        )
