"""The deployment spec: one typed description of the service, read by both clouds.

Plain pydantic, no CDK or CDKTF types, so both stacks (and tests) import it cheaply.
Sources, later ones winning: the stage's defaults, the YAML file (``deploy.yaml``),
then CDK/CDKTF context overrides given as dotted keys (``-c spec.compute.memory_mib=2048``).
An invalid value raises :class:`SpecError` naming the field and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

# Plain Python (no CDK, no cdktf): the constructs' description of an app; Google Cloud's limits,
# shared with the constructs' backstops.
from constructs_lib.app import AppOptions, DatabaseSettings
from constructs_lib.gcp import limits

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC_FILE = ROOT / "deploy.yaml"
CONTEXT_PREFIX = "spec."
LOCK_DIR_NAME = ".deploy-locks"
# In service/requirements.txt for the container, never imported on Lambda: uvicorn runs the
# container, h11 and click are its own dependencies (the service imports neither). The AWS
# stack leaves them out of the Lambda bundle; bench/ measures that same bundle.
LAMBDA_DROP_PACKAGES = ("uvicorn", "h11", "click")
# The cache client, imported only when a cache is configured: in the Lambda bundle only when
# the spec turns the cache on (0.55 MB zipped that a cache-less service would carry for nothing).
CACHE_CLIENT_PACKAGES = ("redis",)


class SpecError(ValueError):
    """The deployment spec is invalid; the message names each field at fault."""


class Stage(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Architecture(StrEnum):
    ARM64 = "arm64"
    X86_64 = "x86_64"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=128)]
# Variables the constructs set themselves (a second definition would clash: Cloud Run refuses
# a name twice), and the platforms' own: Cloud Run reserves PORT and K_* (container
# contract), Lambda reserves AWS_* and LAMBDA_* (Lambda "Defined runtime environment variables").
PLATFORM_ENV = frozenset(
    {
        "DATABASE_URL",
        "SECRET_KEY",
        "REDIS_URL",
        "APP_DB_USER",
        "APP_DB_PASSWORD",
        "PORT",
        "K_SERVICE",
        "K_REVISION",
        "K_CONFIGURATION",
    }
)
PLATFORM_ENV_PREFIXES = ("AWS_", "LAMBDA_", "X_GOOGLE_", "CLOUD_RUN_", "FASTAPI_DEPLOY_")


class Compute(Model):
    # Both clouds read it: at least Cloud Run's 512 MiB (second-generation execution
    # environment), at most Lambda's 10240 MiB.
    memory_mib: int = Field(
        1024,
        ge=limits.CLOUD_RUN_MIN_MEMORY_MIB,
        le=10240,
        description="Lambda memory; Cloud Run memory limit",
    )
    cpu: Literal[1, 2, 4, 8] = Field(1, description="Cloud Run vCPUs (Lambda's CPU follows memory)")
    timeout_seconds: int = Field(
        28, ge=1, le=28, description="Request timeout, under the HTTP API integration's 29 s"
    )
    architecture: Architecture = Architecture.ARM64
    python: Literal["auto", "3.11", "3.12", "3.13", "3.14"] = Field(
        "auto",
        description="Lambda's Python; auto: the newest Lambda runs that this machine has, so the "
        "bundle carries bytecode for it",
    )
    snap_start: bool = Field(
        False, description="AWS: Lambda SnapStart on the API function's published versions"
    )

    @field_validator("python", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # YAML and -c read 3.13 as a number: a version is text ("3.13"; 3.10 would read 3.1).
        return f"{value}" if isinstance(value, float) else value

    @model_validator(mode="after")
    def _cloud_run_pair(self) -> Compute:
        problem = limits.cloud_run_resources_error(
            cpu=self.cpu,
            memory_mib=self.memory_mib,
            cpu_field="compute.cpu",
            memory_field="compute.memory_mib",
        )
        if problem:
            raise ValueError(problem)
        return self


class Scaling(Model):
    min_instances: int = Field(0, ge=0, le=1000, description="Cloud Run minimum; AWS provisioned concurrency")
    max_instances: int = Field(
        5, ge=1, le=1000, description="Cloud Run maximum per revision; AWS reserved concurrency (if reserved)"
    )
    concurrency: int = Field(
        80, ge=1, le=limits.CLOUD_RUN_MAX_CONCURRENCY, description="Requests per Cloud Run instance"
    )
    reserve_concurrency: bool = Field(
        False, description="AWS: reserve max_instances of the account's Lambda concurrency"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Scaling:
        # Also AWS's rule: provisioned concurrency (min_instances) never above the reserved
        # concurrency (max_instances, with reserve_concurrency).
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"scaling.min_instances ({self.min_instances}) must be <= scaling.max_instances "
                f"({self.max_instances}) (on AWS: provisioned concurrency <= reserved concurrency)"
            )
        return self


class Database(Model):
    engine: Literal["postgresql"] = "postgresql"
    version: Literal["16", "17"] = Field("17", description="PostgreSQL major version")
    min_capacity_acu: float = Field(0, ge=0, le=256, description="Aurora Serverless v2; 0 pauses when idle")
    max_capacity_acu: float = Field(2, ge=1, le=256)
    tier: str = Field(
        "db-f1-micro",
        pattern=r"^db-[a-z0-9-]+$",
        description="Cloud SQL machine tier: db-f1-micro, db-g1-small or db-custom-<vCPUs>-<memory MiB>",
    )
    name: str = Field("app", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # Days on both clouds: Aurora's backup retention period; on Cloud SQL that many daily
    # automated backups (retained_backups, COUNT).
    backup_retention_days: int = Field(1, ge=1, le=35)
    # Cloud SQL only (Aurora restores to any point within its backup retention anyway).
    point_in_time_recovery: bool = Field(False, description="Cloud SQL: keep transaction logs for PITR")
    transaction_log_retention_days: int = Field(
        limits.ENTERPRISE_MAX_LOG_DAYS,
        ge=1,
        le=limits.ENTERPRISE_MAX_LOG_DAYS,
        description="Cloud SQL Enterprise: days of transaction logs for PITR",
    )
    deletion_protection: bool = Field(
        False,
        description="AWS: stack termination protection (the cluster is kept on deletion anyway); "
        "Google Cloud: the Cloud SQL instance's deletion protection",
    )
    rds_proxy: bool = False

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, tier: str) -> str:
        problem = limits.tier_error(tier)
        if problem:
            raise ValueError(problem)
        return tier

    @model_validator(mode="after")
    def _backups(self) -> Database:
        problem = limits.backups_error(
            backup_retention_days=self.backup_retention_days,
            point_in_time_recovery=self.point_in_time_recovery,
            transaction_log_retention_days=self.transaction_log_retention_days,
            days_field="database.backup_retention_days",
            pitr_field="database.point_in_time_recovery",
            logs_field="database.transaction_log_retention_days",
        )
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _proxy(self) -> Database:
        # The AWS construct's backstop (DatabaseOptions) refuses it too: RDS Proxy keeps
        # its connections open, so an Aurora cluster that may pause (0 ACU) never would.
        if self.rds_proxy and self.min_capacity_acu == 0:
            raise ValueError(
                "database.rds_proxy needs database.min_capacity_acu > 0: RDS Proxy keeps Aurora "
                "Serverless from pausing (set min_capacity_acu to 0.5 or more, or rds_proxy false)"
            )
        return self

    @model_validator(mode="after")
    def _capacity(self) -> Database:
        if self.min_capacity_acu > self.max_capacity_acu:
            raise ValueError(
                f"database.min_capacity_acu ({self.min_capacity_acu}) must be <= "
                f"database.max_capacity_acu ({self.max_capacity_acu})"
            )
        for name in ("min_capacity_acu", "max_capacity_acu"):
            value = getattr(self, name)
            if (value * 2) % 1:
                raise ValueError(f"database.{name} must be a multiple of 0.5 ACU, got {value}")
        return self


class Cache(Model):
    """A Redis-compatible cache: login throttling shared by every instance, and a read-through
    cache of the user looked up on each authenticated request. Off by default (it costs money
    while idle; docs/costs.md)."""

    enabled: bool = False
    # AWS: ElastiCache Serverless, billed by stored data (100 MB minimum for Valkey) and ECPUs.
    aws_engine: Literal["valkey", "redis"] = Field(
        "valkey", description="ElastiCache Serverless engine; Valkey is the cheaper one"
    )
    aws_max_data_gb: int = Field(1, ge=1, le=5000, description="ElastiCache Serverless data-storage cap")
    aws_max_ecpu_per_second: int = Field(
        5000, ge=1000, le=15_000_000, description="ElastiCache Serverless ECPU cap"
    )
    # Google Cloud: Memorystore for Redis (no serverless tier): one instance of this size.
    gcp_tier: Literal["BASIC", "STANDARD_HA"] = Field("BASIC", description="Memorystore tier")
    gcp_memory_gb: int = Field(1, ge=1, le=300, description="Memorystore capacity")
    gcp_redis_version: Literal["REDIS_7_2", "REDIS_7_0", "REDIS_6_X"] = "REDIS_7_2"


class Storage(Model):
    """A bucket for item attachments, uploaded and downloaded by the client through short-lived
    presigned URLs (the bytes never pass through the function). Off by default."""

    enabled: bool = False
    prefix: str = Field(
        "uploads/", pattern=r"^[a-z0-9][a-z0-9_\-/]{0,62}/$", description="Key prefix the service may use"
    )
    max_upload_mib: int = Field(10, ge=1, le=5120, description="Largest attachment accepted")
    url_expiry_seconds: int = Field(900, ge=60, le=3600, description="Lifetime of presigned URLs")
    versioned: bool = Field(False, description="Keep overwritten/deleted objects (prod default: on)")
    noncurrent_days: int = Field(30, ge=1, le=3650, description="Days old versions are kept")


class Gcp(Model):
    project: str = Field(
        "my-gcp-project", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="Google Cloud project id"
    )
    region: str = Field("europe-west1", pattern=r"^[a-z]+-[a-z]+\d$")
    state_bucket: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", description="GCS bucket for Terraform state"
    )
    # How Cloud Run reaches private addresses (Memorystore has nothing else): "direct" is
    # Direct VPC egress (no connector to pay for); "none" sends nothing through a VPC.
    vpc_egress: Literal["direct", "none"] = "direct"
    network: str | None = Field(
        None,
        pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Existing VPC network (default: a new one)",
    )
    subnetwork: str | None = Field(
        None, pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description="Subnet of `network` in `region`"
    )
    subnet_cidr: str = Field(
        # A /24: 252 usable addresses, room for 2 per instance up to 120 instances.
        "10.8.0.0/24",
        pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/(1[6-9]|2[0-6])$",
        description="Range of the subnet created for Direct VPC egress (/26 or larger, private)",
    )

    @field_validator("subnet_cidr")
    @classmethod
    def _private_network(cls, cidr: str) -> str:
        problem = limits.subnet_error(cidr, max_instances=1)
        if problem:
            raise ValueError(problem)
        return cidr

    @model_validator(mode="after")
    def _network_and_subnet(self) -> Gcp:
        if (self.network is None) != (self.subnetwork is None):
            raise ValueError("network and subnetwork go together: give both (an existing VPC) or neither")
        return self


Module = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")]
RelativePath = Annotated[str, StringConstraints(pattern=r"^[^/\\][^\\]*$|^\.$", max_length=255)]


class Migrations(StrEnum):
    ALEMBIC = "alembic"
    COMMAND = "command"
    NONE = "none"


class AppMigrations(Model):
    """How the app migrates its schema, run at deploy before the new code takes traffic."""

    kind: Migrations = Field(Migrations.NONE, description="alembic, command or none")
    config: RelativePath = Field("alembic.ini", description="alembic: the ini file, relative to app.path")
    command: tuple[str, ...] = Field(
        (), description="command: argv run in app.path (python is the runtime's)"
    )

    @model_validator(mode="after")
    def _command(self) -> AppMigrations:
        if self.kind is Migrations.COMMAND and not self.command:
            raise ValueError("app.migrations.command is required when app.migrations.kind is command")
        if self.kind is not Migrations.COMMAND and self.command:
            raise ValueError(
                "app.migrations.command is only read when app.migrations.kind is command "
                f"(got {self.kind.value})"
            )
        return self


class DatabaseParts(Model):
    """The variable names of a database given in parts (pydantic-settings' POSTGRES_* habit)."""

    host: EnvName = "POSTGRES_SERVER"
    port: EnvName = "POSTGRES_PORT"
    user: EnvName = "POSTGRES_USER"
    password: EnvName = "POSTGRES_PASSWORD"  # noqa: S105 - a variable name
    database: EnvName = "POSTGRES_DB"


class AppDatabase(Model):
    """Whether the app needs PostgreSQL, and how it reads where it is."""

    enabled: bool = Field(True, description="false: no Aurora, no Cloud SQL, no database settings")
    driver: Literal["asyncpg", "psycopg", "psycopg2"] = "asyncpg"
    settings: Literal["url", "parts", "secret-arns"] = Field(
        "url",
        description="url: one variable (url_variable) in the driver's form; parts: POSTGRES_* "
        "variables; secret-arns: the app reads Secrets Manager itself (our sample)",
    )
    url_variable: EnvName = "DATABASE_URL"
    url_scheme: str | None = Field(
        None,
        pattern=r"^postgres(ql)?(\+[a-z0-9]+)?$",
        description="Default: postgresql+<driver> (SQLAlchemy's); postgresql for a driver used directly",
    )
    host_required: bool = Field(
        False, description="The app validates its URL with a host required (pydantic's PostgresDsn)"
    )
    parts: DatabaseParts = DatabaseParts()


class App(Model):
    """The FastAPI app to deploy. Paths are relative to the spec file's directory."""

    path: RelativePath = Field("service", description="The app's directory")
    entrypoint: str = Field(
        "main:app",
        pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$",
        description="module:attribute, an ASGI app or an app factory",
    )
    factory: bool | None = Field(None, description="The attribute is a factory (default: detected at start)")
    source_root: RelativePath = Field(".", description="Where the app's modules import from (src, say)")
    dependencies: RelativePath | None = Field(
        None, description="requirements*.txt or pyproject.toml (with its lock); default: detected"
    )
    dockerfile: RelativePath | None = Field(
        None,
        description="Cloud Run: the app's Dockerfile (default: app.path/Dockerfile if any, else generated)",
    )
    build_context: RelativePath | None = Field(
        None, description="Cloud Run: the directory the Dockerfile builds from (default: app.path)"
    )
    command: tuple[str, ...] | None = Field(
        None, description="Cloud Run: the container's command (default: the image's own CMD)"
    )
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="Cloud Run: the port the container listens on (it sets $PORT to it)",
    )
    health_path: str = Field("/health", pattern=r"^/[\w\-./]*$")
    lambda_drop: tuple[str, ...] = Field(
        (), description="Locked distributions the Lambda bundle leaves out (the container's server, say)"
    )
    lambda_drop_without_cache: tuple[str, ...] = Field(
        (), description="Left out of the Lambda bundle too while cache.enabled is false"
    )
    migrations: AppMigrations = AppMigrations()
    database: AppDatabase = AppDatabase()
    secret_key_variable: EnvName | None = Field(
        "SECRET_KEY", description="A generated signing key, in this variable (null: none)"
    )
    # Where the spec file lies: the base of the paths above (set by load_spec).
    base_dir: Path = Field(ROOT, exclude=True)

    @property
    def directory(self) -> Path:
        return (self.base_dir / self.path).resolve()

    def options(self) -> AppOptions:
        """This section as both clouds' constructs take it."""
        database = self.database
        return AppOptions(
            entrypoint=self.entrypoint,
            factory=self.factory,
            source_root=self.source_root,
            dependencies=self.directory / self.dependencies if self.dependencies else None,
            migrations=self.migrations.kind.value,
            alembic_config=self.migrations.config,
            migrate_command=self.migrations.command,
            database=(
                DatabaseSettings(
                    driver=database.driver,
                    settings=database.settings,
                    url_variable=database.url_variable,
                    url_scheme=database.url_scheme,
                    host_required=database.host_required,
                    parts=database.parts.model_dump(),
                )
                if database.enabled
                else None
            ),
            secret_key_variable=self.secret_key_variable,
            health_path=self.health_path,
            port=self.port,
        )

    def delivered_variables(self) -> set[str]:
        """The variables the deployment sets for the app: its database's and its signing key."""
        names = {self.secret_key_variable} if self.secret_key_variable else set()
        database = self.database
        if database.enabled and database.settings == "url":
            names.add(database.url_variable)
        elif database.enabled and database.settings == "parts":
            names.update(database.parts.model_dump().values())
        return names

    @property
    def module(self) -> str:
        return self.entrypoint.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.entrypoint.partition(":")[2]


# service/, the repository's example app: what a spec without an `app` section deploys.
SAMPLE_APP = App(
    path="service",
    entrypoint="webapi.main:create_app",
    factory=True,
    dependencies="requirements.txt",
    migrations=AppMigrations(kind=Migrations.COMMAND, command=("python", "-m", "webapi.migrate")),
    health_path="/health",
    lambda_drop=LAMBDA_DROP_PACKAGES,
    lambda_drop_without_cache=CACHE_CLIENT_PACKAGES,
    database=AppDatabase(driver="asyncpg", settings="secret-arns"),
)


class Spec(Model):
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$", description="lowercase, 3-30 chars")
    stage: Stage = Stage.DEV
    app: App = Field(default_factory=lambda: SAMPLE_APP)
    compute: Compute = Compute()
    scaling: Scaling = Scaling()
    database: Database = Database()
    environment: dict[EnvName, str] = Field(default_factory=dict)
    secrets: tuple[EnvName, ...] = Field((), description="Extra secrets, by env var name")
    cors_origins: tuple[str, ...] = ()
    log_retention_days: int = Field(7, ge=1, le=3653)
    public: bool = Field(True, description="Cloud Run: allow unauthenticated invocation")
    cache: Cache = Cache()
    storage: Storage = Storage()
    gcp: Gcp = Gcp()

    @model_validator(mode="after")
    def _checks(self) -> Spec:
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"cors_origins: {origin!r} is not an origin like https://app.example.com")
        clash = set(self.environment) & set(self.secrets)
        if clash:
            raise ValueError(f"environment and secrets both define {sorted(clash)}")
        taken = sorted(
            name
            for name in (*self.environment, *self.secrets)
            if name in PLATFORM_ENV or name.startswith(PLATFORM_ENV_PREFIXES)
        )
        if taken:
            raise ValueError(
                f"environment / secrets: {taken} are set by the constructs or reserved by the platform"
            )
        app_reads_platform = self.app.database.enabled and self.app.database.settings == "secret-arns"
        for section in ("cache", "storage"):
            if getattr(self, section).enabled and not app_reads_platform:
                raise ValueError(
                    f"{section}.enabled: the {section} reaches the app through the example service's own "
                    "settings (app.database.settings: secret-arns); for an app of your own, leave it "
                    "off and give the app its address through environment / secrets"
                )
        given = {*self.environment, *self.secrets}
        delivered = self.app.delivered_variables()
        if given & delivered:
            raise ValueError(
                f"environment / secrets: {sorted(given & delivered)} are set by the deployment from "
                "app.database / app.secret_key_variable"
            )
        snap_start_problem = self._snap_start_problem()
        if snap_start_problem:
            raise ValueError(snap_start_problem)
        if self.cache.enabled and self.gcp.vpc_egress == "none":
            raise ValueError(
                "cache.enabled needs a VPC path on Google Cloud (Memorystore has only a private "
                "address): set gcp.vpc_egress to direct, or leave the cache off"
            )
        if self.app.database.enabled and (
            limits.connections_per_instance(tier=self.database.tier, max_instances=self.scaling.max_instances)
            < 1
        ):
            raise ValueError(
                limits.pool_error(
                    tier=self.database.tier,
                    max_instances=self.scaling.max_instances,
                    tier_field="database.tier",
                    instances_field="scaling.max_instances",
                )
            )
        if self.cache.enabled and self.gcp.network is None:
            # The subnet we create for Direct VPC egress (an existing one is the user's to size).
            problem = limits.subnet_error(
                self.gcp.subnet_cidr,
                max_instances=self.scaling.max_instances,
                cidr_field="gcp.subnet_cidr",
                instances_field="scaling.max_instances",
            )
            if problem:
                raise ValueError(problem)
        return self

    def _snap_start_problem(self) -> str | None:
        """What Lambda would refuse about ``compute.snap_start`` (EFS and ephemeral storage over
        512 MB, which it also refuses, are not spec fields)."""
        if not self.compute.snap_start:
            return None
        if self.scaling.min_instances > 0:
            return (
                "compute.snap_start: Lambda refuses SnapStart with provisioned concurrency "
                f"(scaling.min_instances is {self.scaling.min_instances}): choose one"
            )
        if self.compute.python == "3.11":
            return (
                "compute.snap_start: Lambda's SnapStart runs Python 3.12 and later, and "
                "compute.python is 3.11: set compute.python to 3.12 or later, or turn "
                "SnapStart off"
            )
        return None

    @property
    def lambda_drop_packages(self) -> tuple[str, ...]:
        """Locked distributions the Lambda bundle leaves out for this spec."""
        return self.app.lambda_drop + (() if self.cache.enabled else self.app.lambda_drop_without_cache)

    @property
    def service_path(self) -> Path:
        """The app's directory (``app.path``, relative to the spec file's directory)."""
        return self.app.directory

    @property
    def lock_dir(self) -> Path:
        """Where the dependencies resolved for each target are kept (commit it): beside the
        spec file, so every synth of the same inputs installs the same versions."""
        return self.app.base_dir / LOCK_DIR_NAME

    @property
    def name(self) -> str:
        return f"{self.project}-{self.stage.value}"


# Where dev and prod differ by default; any of it can still be overridden.
STAGE_DEFAULTS: dict[Stage, dict[str, Any]] = {
    Stage.DEV: {
        # Two days of backups and one of transaction logs: Cloud SQL needs more daily backups
        # than days of logs (limits.backups_error), and both are explicit in both stages (the
        # Enterprise default of 7 days of logs would exceed a short backup retention).
        # Five instances: with db-f1-micro's 25 connections that leaves each 2 (limits.pool_size).
        "database": {
            "deletion_protection": False,
            "backup_retention_days": 2,
            "point_in_time_recovery": True,
            "transaction_log_retention_days": 1,
            "tier": "db-f1-micro",
        },
        "scaling": {"max_instances": 5},
        "log_retention_days": 7,
    },
    Stage.PROD: {
        # 14 days of backups, 7 of transaction logs (the Enterprise maximum): PITR to any
        # second of the last week. A dedicated-core tier: shared-core ones have no SLA, and
        # 8 GB gives 400 connections: a pool of 9 for each of 20 instances across a rollout.
        "database": {
            "deletion_protection": True,
            "backup_retention_days": 14,
            "point_in_time_recovery": True,
            "transaction_log_retention_days": 7,
            "tier": "db-custom-2-8192",
            "min_capacity_acu": 0.5,
            "max_capacity_acu": 8,
        },
        # 20 instances (1,600 requests at once at concurrency 80) leave each a pool of 9 of the
        # tier's 400 connections; at 100 each would get 1, and its requests would queue for it.
        "scaling": {"max_instances": 20},
        "log_retention_days": 90,
        "storage": {"versioned": True, "noncurrent_days": 90},
    },
}


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _context_overrides(context: Mapping[str, Any]) -> dict[str, Any]:
    """``{"spec.compute.memory_mib": "2048"}`` -> ``{"compute": {"memory_mib": "2048"}}``.
    Values arrive as strings from the command line; YAML parsing gives them types."""
    nested: dict[str, Any] = {}
    for key, raw in context.items():
        if not key.startswith(CONTEXT_PREFIX):
            continue
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        *parents, leaf = key[len(CONTEXT_PREFIX) :].split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"] if part != "[key]") or "spec"
        message = problem["msg"].removeprefix("Value error, ")
        given = problem.get("input")
        # A whole section (a cross-field check) is not worth echoing back.
        suffix = "" if isinstance(given, Mapping) else f" (got {given!r})"
        lines.append(f"  {field}: {message}{suffix}")
    return "invalid deployment spec:\n" + "\n".join(lines)


SPEC_VARIABLE = "SPEC"


def spec_file_from_environment() -> Path | None:
    """``SPEC=path/to/file.yaml``: another spec than ``deploy.yaml`` for both clouds (relative to
    the directory the synth runs in, the repository's root under ``make synth``)."""
    value = os.environ.get(SPEC_VARIABLE, "").strip()
    return Path(value) if value else None


def load_spec(
    path: Path | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    stage: str | None = None,
) -> Spec:
    """Read the spec file (if any), apply stage defaults and context overrides, validate."""
    named = path or spec_file_from_environment()
    path = named or DEFAULT_SPEC_FILE
    if named is not None and not named.is_file():
        raise SpecError(f"{SPEC_VARIABLE}={named}: no such spec file")
    document: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SpecError(f"{path.name}: expected a mapping at the top level")
        document = loaded
    overrides = _context_overrides(context or {})
    context_stage = (context or {}).get("stage")
    chosen = stage or context_stage or overrides.get("stage") or document.get("stage") or Stage.DEV.value
    try:
        chosen_stage = Stage(chosen)
    except ValueError:
        raise SpecError(
            f"invalid deployment spec:\n  stage: must be one of dev, prod (got {chosen!r})"
        ) from None
    merged = _merge(_merge(STAGE_DEFAULTS[chosen_stage], document), overrides)
    merged["stage"] = chosen_stage.value
    app = merged.get("app")
    if isinstance(app, Mapping):
        if "base_dir" in app:
            raise SpecError(
                "invalid deployment spec:\n  app.base_dir: not a spec field "
                "(paths are relative to the spec file)"
            )
        # The app's paths are relative to the spec file (without an `app` section: service/).
        merged["app"] = {**app, "base_dir": str(path.resolve().parent)}
    try:
        spec = Spec.model_validate(merged)
    except ValidationError as error:
        raise SpecError(_describe(error)) from None
    from stacks.app_checks import check_app  # noqa: PLC0415 - reads the app's source, after the spec

    problems = check_app(spec.app)
    if problems:
        raise SpecError("invalid deployment spec:\n" + "\n".join(f"  {problem}" for problem in problems))
    return spec
