"""CloudRunService: a FastAPI app's container on Cloud Run, with Cloud SQL for PostgreSQL and
Secret Manager when the app has a database, optionally a Memorystore cache (through Direct VPC
egress) and an uploads bucket.

The counterpart of the AWS FastApiLambdaService, for CDK for Terraform. It creates no
provider and no backend (the stack owns those). Nested blocks are built with the
provider's generated struct classes, never plain dicts (jsii drops snake_case dict keys).

Deploy order, enforced with dependencies:
APIs -> registry -> image built by Cloud Build (tag = content hash of the build context) ->
Cloud SQL, secrets, identities -> migration job executed -> service revision.

How the app reads its database (``AppOptions.database``):

* ``url``/``parts``: the variables it names (its driver's Unix-socket URL form, or POSTGRES_*
  parts), from Secret Manager; the service and the migrations both connect as the built-in user.
  Parts name a host and a port, which an app validates as a URL host (a /cloudsql socket path is
  refused): those apps reach the instance through the Cloud SQL Auth Proxy sidecar on
  127.0.0.1:5432 (constructs_lib/gcp/sql_proxy.py), the others through the /cloudsql volume.
* ``secret-arns`` (our sample): two identities, two database roles. The migration job runs as
  its own service account and connects as the built-in user that owns the schema; the service
  connects as ``app_service``, a role the sample's migrations create with the privileges it
  needs. Neither account can read the other's database URL.

The parts are sub-constructs (``container_image``, ``database``, ``migrations``, ``run``) whose
resources keep the Terraform addresses of a flat construct (constructs_lib/gcp/addresses.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import TerraformResource
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember, ProjectIamMemberCondition
from cdktf_cdktf_provider_google.project_service import ProjectService
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_random.password import Password
from constructs import Construct

from constructs_lib.app import AppOptions, DatabaseSettings
from constructs_lib.gcp import limits
from constructs_lib.gcp.addresses import check_unique_addresses
from constructs_lib.gcp.cache import CacheOptions, MemorystoreCache
from constructs_lib.gcp.cloud_sql import APP_DB_ROLE, POSTGRES_PORT, CloudSqlOptions, CloudSqlPostgres
from constructs_lib.gcp.container_image import BUILD_CONFIG, ContainerImage
from constructs_lib.gcp.image import BuildContext
from constructs_lib.gcp.migration_job import MigrationJob
from constructs_lib.gcp.names import account_id, slug
from constructs_lib.gcp.network import EgressNetwork, NetworkOptions
from constructs_lib.gcp.run_service import CONTAINER_PORT, RunService
from constructs_lib.gcp.secrets import SecretParts, readable_secret, ready
from constructs_lib.gcp.sql_proxy import SQL_PROXY_ADDRESS
from constructs_lib.gcp.storage import StorageOptions, UploadsBucket
from constructs_lib.runtime import ALEMBIC_RUNNER_SOURCE
from constructs_lib.runtime.serverless_fastapi_entry import MIGRATIONS_VARIABLE
from constructs_lib.runtime.serverless_fastapi_entry.dburl import database_url

__all__ = [
    "BUILD_CONFIG",
    "CONTAINER_PORT",
    "CloudRunService",
    "CloudSqlOptions",
]

# The APIs a fresh project must have for this construct; every resource depends on them.
REQUIRED_APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)
# What the optional parts add to them.
DATABASE_APIS = ("sqladmin.googleapis.com",)
CACHE_APIS = ("compute.googleapis.com", "redis.googleapis.com")
UPLOADS_APIS = ("iamcredentials.googleapis.com",)  # signBlob, for the signed URLs
# Our sample's service secret holds the app_service URL from version 2 on (version 1 held the
# owner's): a stack deployed before gets a new secret version, not a stale URL.
SERVICE_DATABASE_URL_VERSION = 2
# The migration job's command in a generated image (which holds our runtime entry).
ENTRY_MIGRATE = ("python", "-m", "serverless_fastapi_entry", "migrate")
# Stands for the generated password while the URL is built (a Terraform reference would not
# survive the URL's percent-encoding); generated passwords are URL-safe as they are.
_PASSWORD_MARK = "PASSWORDMARK"  # noqa: S105 - a placeholder, replaced below


@dataclass
class _Settings:
    """What the service and the migration job read: plain variables and secrets, by name."""

    service_env: dict[str, str] = field(default_factory=dict)
    service_secrets: dict[str, SecretParts] = field(default_factory=dict)
    job_env: dict[str, str] = field(default_factory=dict)
    job_secrets: dict[str, SecretParts] = field(default_factory=dict)

    def add_both(self, env_name: str, secret: SecretParts) -> None:
        self.service_secrets[env_name] = self.job_secrets[env_name] = secret

    def merge(self, other: _Settings) -> None:
        self.service_env.update(other.service_env)
        self.service_secrets.update(other.service_secrets)
        self.job_env.update(other.job_env)
        self.job_secrets.update(other.job_secrets)


class CloudRunService(Construct):
    """Parts, as attributes: ``apis``; ``container_image`` (``repository``,
    ``build_service_account``, ``staging_bucket``, ``build``) and ``image`` (the reference);
    ``service_account`` (the service's) and ``migrate_service_account``; ``database``
    (CloudSqlPostgres: ``instance``, ``database``, ``user``); ``secrets`` and ``migrate_secrets``
    (what the service and the job read, by env var name); ``pool_size``; ``migrations``
    (MigrationJob: ``job``, ``run``); ``run`` (RunService: ``service``, ``invoker``), ``url``;
    with their options: ``network`` (Direct VPC egress of the service), ``cache`` (needs
    ``network``), ``storage``. A part the app does not need is None: no database
    (``app.database`` None), no migrations (``app.migrations`` none). ``sql_proxy``: the service
    and the job reach the database through the Cloud SQL Auth Proxy sidecar (apps reading it in
    parts), not the /cloudsql volume."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        app: AppOptions,
        build: BuildContext,
        command: Sequence[str] | None = None,
        cpu: int = 1,
        memory_mib: int = 1024,
        min_instances: int = 0,
        max_instances: int = 5,
        concurrency: int = 80,
        request_timeout_seconds: int = 300,
        environment: Mapping[str, str] | None = None,
        extra_secrets: Sequence[str] = (),
        public: bool = True,
        deletion_protection: bool = True,
        database: CloudSqlOptions | None = None,
        app_environment: str = "prod",
        network: NetworkOptions | None = None,
        cache: CacheOptions | None = None,
        storage: StorageOptions | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.sql_proxy = app.database is not None and app.database.settings == "parts"
        _validate(
            name=name,
            cpu=cpu,
            memory_mib=memory_mib,
            min_instances=min_instances,
            max_instances=max_instances,
            concurrency=concurrency,
            health_path=app.health_path,
            new_subnet_cidr=network.subnet_cidr if network is not None and network.creates_network else None,
            sql_proxy=self.sql_proxy,
        )
        if cache is not None and network is None:
            raise ValueError("cache needs network: Memorystore has a private address only")
        if cache is not None and "REDIS_URL" in extra_secrets:
            raise ValueError("extra_secrets: REDIS_URL comes from the cache; leave it out or the cache off")
        if command is not None and not command:
            raise ValueError("command must not be empty (None: the image's own CMD)")
        self.project, self.region, self.name, self.app = project, region, name, app
        database_options = (database or CloudSqlOptions()) if app.database is not None else None
        # Raises when not even one connection per instance fits the tier.
        self.pool_size = (
            limits.pool_size(tier=database_options.tier, max_instances=max_instances, concurrency=concurrency)
            if database_options is not None
            else None
        )

        self.apis = {
            api: ProjectService(
                self, f"api-{api.split('.')[0]}", project=project, service=api, disable_on_destroy=False
            )
            for api in [
                *sorted([*REQUIRED_APIS, *(DATABASE_APIS if database_options is not None else ())]),
                *(CACHE_APIS if cache is not None else ()),
                *(UPLOADS_APIS if storage is not None else ()),
            ]
        }
        after_apis: list[TerraformResource] = list(self.apis.values())

        self.container_image = ContainerImage(
            self,
            "container-image",
            project=project,
            region=region,
            name=name,
            context=build,
            depends_on=after_apis,
        )
        self.image = self.container_image.image

        # The identities: the service's, and the migration job's (only the job may read what
        # it alone needs).
        self.service_account = ServiceAccount(
            self,
            "runtime",
            project=project,
            account_id=account_id(name, "run"),
            display_name=f"Cloud Run runtime of {name}",
            depends_on=after_apis,
        )
        self.migrate_service_account: ServiceAccount | None = None
        if app.migrations != "none":
            self.migrate_service_account = ServiceAccount(
                self,
                "migrator",
                project=project,
                account_id=account_id(name, "migrate"),
                display_name=f"Migration job of {name}",
                depends_on=after_apis,
            )
        readers = {"runtime": f"serviceAccount:{self.service_account.email}"}
        if self.migrate_service_account is not None:
            readers["migrator"] = f"serviceAccount:{self.migrate_service_account.email}"

        self.database: CloudSqlPostgres | None = None
        if database_options is not None:
            self.database = CloudSqlPostgres(
                self,
                "database",
                project=project,
                region=region,
                name=name,
                options=database_options,
                depends_on=after_apis,
            )

        # The cache and the uploads bucket: the service alone uses them; the migration job gets
        # neither their variables nor a VPC path, and does not wait for them.
        self.network = (
            EgressNetwork(
                self,
                "egress",
                project=project,
                region=region,
                name=name,
                options=network,
                depends_on=after_apis,
            )
            if network is not None
            else None
        )
        self.cache = (
            MemorystoreCache(
                self,
                "cache",
                project=project,
                region=region,
                name=name,
                authorized_network=self.network.network_id,
                options=cache,
                depends_on=after_apis,
            )
            if cache is not None and self.network is not None
            else None
        )
        self.storage = (
            UploadsBucket(
                self,
                "uploads",
                project=project,
                region=region,
                name=name,
                runtime=self.service_account,
                options=storage,
                depends_on=after_apis,
            )
            if storage is not None
            else None
        )

        settings = self._settings(
            build=build,
            readers=readers,
            environment=environment or {},
            extra_secrets=extra_secrets,
            app_environment=app_environment,
            after=after_apis,
        )
        self.secrets = {env_name: parts.secret for env_name, parts in settings.service_secrets.items()}
        self.migrate_secrets = {env_name: parts.secret for env_name, parts in settings.job_secrets.items()}

        sql_grants = self._sql_client_grants(readers) if self.database is not None else {}
        self.sql_client_grant = sql_grants.get("runtime")
        self.migrate_sql_client_grant = sql_grants.get("migrator")
        connection_name = self.database.connection_name if self.database is not None else None

        self.migrations: MigrationJob | None = None
        if self.migrate_service_account is not None and self.database is not None:
            self.migrations = MigrationJob(
                self,
                "migrations",
                project=project,
                region=region,
                name=name,
                image=self.image,
                command=self._migrate_command(build),
                service_account=self.migrate_service_account.email,
                environment=settings.job_env,
                secrets=self.migrate_secrets,
                connection_name=connection_name,
                sql_proxy=self.sql_proxy,
                deletion_protection=deletion_protection,
                depends_on=[
                    self.container_image.build,
                    sql_grants["migrator"],
                    *ready(settings.job_secrets.values(), "migrator"),
                    self.database.database,
                    self.database.user,
                ],
            )

        # What the service reads, there before it reads it: versions and its own grants.
        self.run = RunService(
            self,
            "run",
            project=project,
            region=region,
            name=name,
            image=self.image,
            command=command,
            service_account=self.service_account.email,
            cpu=cpu,
            memory_mib=memory_mib,
            min_instances=min_instances,
            max_instances=max_instances,
            concurrency=concurrency,
            request_timeout_seconds=request_timeout_seconds,
            health_path=app.health_path,
            port=app.port,
            environment=settings.service_env,
            secrets=self.secrets,
            connection_name=connection_name,
            sql_proxy=self.sql_proxy,
            network=self.network,
            public=public,
            deletion_protection=deletion_protection,
            depends_on=[
                self.migrations.run if self.migrations is not None else self.container_image.build,
                *([self.sql_client_grant] if self.sql_client_grant is not None else []),
                *(self.storage.grants if self.storage is not None else []),
                *ready(settings.service_secrets.values(), "runtime"),
            ],
        )
        self.service = self.run.service
        self.url = self.run.service.uri
        check_unique_addresses(self)

    def _settings(
        self,
        *,
        build: BuildContext,
        readers: Mapping[str, str],
        environment: Mapping[str, str],
        extra_secrets: Sequence[str],
        app_environment: str,
        after: Sequence[TerraformResource],
    ) -> _Settings:
        """The variables and secrets of the service and of the migration job (none without
        one)."""
        app = self.app
        platform = app.database is not None and app.database.reads_secret_arns
        if platform:
            # Our sample's settings: its own variables, and its pool sized to the tier.
            common = {
                "ENVIRONMENT": app_environment,
                "GOOGLE_CLOUD_PROJECT": self.project,
                "DB_POOL_SIZE": str(self.pool_size),
                "DB_MAX_OVERFLOW": "0",
                "DB_SSL_MODE": "disable",  # the /cloudsql socket is encrypted by the connector
                **environment,
            }
        else:
            common = {"GOOGLE_CLOUD_PROJECT": self.project, **environment}
        settings = _Settings(service_env=dict(common), job_env=dict(common))
        if build.runs_entry and app.migrations != "none":
            settings.job_env[MIGRATIONS_VARIABLE] = app.migrations_config()

        if self.database is not None and app.database is not None:
            if platform:
                settings.merge(self._platform_database(self.database, readers=readers, after=after))
            else:
                settings.merge(self._app_database(self.database, app.database, readers=readers, after=after))
        secret_key_variable = "SECRET_KEY" if platform else app.secret_key_variable
        if secret_key_variable is not None:
            secret_key = Password(self, "secret-key", length=64, special=False)
            # The migrations read the settings too, which may refuse a start without it.
            key = self._secret(
                slug(secret_key_variable), readers=readers, value=secret_key.result, after=after
            )
            settings.add_both(secret_key_variable, key)
        # Extra secrets get no version here: add the value yourself (gcloud secrets versions add).
        # Both read them: a data migration may need one.
        for env_name in extra_secrets:
            settings.add_both(
                env_name, self._secret(slug(env_name), readers=readers, value=None, after=after)
            )
        if self.cache is not None:
            # The URL carries the AUTH string: Secret Manager. Its version is written once
            # (write-only), so a new instance (new host, new AUTH string) replaces it.
            settings.service_secrets["REDIS_URL"] = self._secret(
                "redis-url",
                readers={"runtime": readers["runtime"]},
                value=self.cache.url,
                after=after,
                replace_when_changed=[self.cache.instance],
            )
            # The server CA's certificate is public: a plain variable, and a new revision
            # whenever it changes.
            settings.service_env["REDIS_CA_CERT"] = self.cache.ca_cert
        if self.storage is not None:
            settings.service_env.update(self.storage.environment)
        if self.migrate_service_account is None:
            return _Settings(service_env=settings.service_env, service_secrets=settings.service_secrets)
        return settings

    def _platform_database(
        self, database: CloudSqlPostgres, *, readers: Mapping[str, str], after: Sequence[TerraformResource]
    ) -> _Settings:
        """Our sample's: the service connects as app_service, which its migrations create from
        APP_DB_USER / APP_DB_PASSWORD; the job as the owner, under the same variable name."""
        options = database.options
        app_password = Password(self, "app-db-password", length=32, special=False)
        path = f"/{options.database_name}?host={database.socket_dir}"
        settings = _Settings()
        settings.service_secrets["DATABASE_URL"] = self._secret(
            "database-url",
            readers={"runtime": readers["runtime"]},
            value=f"postgresql+asyncpg://{APP_DB_ROLE}:{app_password.result}@{path}",
            version=SERVICE_DATABASE_URL_VERSION,
            after=after,
        )
        if "migrator" in readers:
            job_only = {"migrator": readers["migrator"]}
            settings.job_secrets["DATABASE_URL"] = self._secret(
                "migrate-database-url",
                readers=job_only,
                value=f"postgresql+asyncpg://{options.user_name}:{database.owner_password.result}@{path}",
                after=after,
            )
            settings.job_secrets["APP_DB_PASSWORD"] = self._secret(
                "app-db-password", readers=job_only, value=app_password.result, after=after
            )
            settings.job_env["APP_DB_USER"] = APP_DB_ROLE
        return settings

    def _app_database(
        self,
        database: CloudSqlPostgres,
        how: DatabaseSettings,
        *,
        readers: Mapping[str, str],
        after: Sequence[TerraformResource],
    ) -> _Settings:
        """Any other app: the variables it names, for the built-in user (its migrations create
        its tables, so it owns them), read by the service and the job alike."""
        options = database.options
        password = database.owner_password.result
        settings = _Settings()
        if how.settings == "parts":
            # The Cloud SQL Auth Proxy sidecar's TCP listener (see sql_proxy.py).
            parts = how.parts
            plain = {
                parts["host"]: SQL_PROXY_ADDRESS,
                parts["port"]: str(POSTGRES_PORT),
                parts["user"]: options.user_name,
                parts["database"]: options.database_name,
            }
            settings.service_env.update(plain)
            settings.job_env.update(plain)
            secret = self._secret("database-password", readers=readers, value=password, after=after)
            settings.add_both(parts["password"], secret)
            return settings
        url = database_url(
            driver=how.driver,
            user=options.user_name,
            password=_PASSWORD_MARK,
            database=options.database_name,
            socket_dir=database.socket_dir,
            scheme=how.url_scheme,
            host_required=how.host_required,
        )
        secret = self._secret(
            "database-url", readers=readers, value=url.replace(_PASSWORD_MARK, password), after=after
        )
        settings.add_both(how.url_variable, secret)
        return settings

    def _sql_client_grants(self, readers: Mapping[str, str]) -> dict[str, ProjectIamMember]:
        """Each identity may connect to this instance (and no other)."""
        instance = f"{self.name}-pg"
        return {
            reader: ProjectIamMember(
                self,
                f"{reader}-sql-client",
                project=self.project,
                role="roles/cloudsql.client",
                member=member,
                condition=ProjectIamMemberCondition(
                    title=f"only {instance}",
                    expression=f'resource.name == "projects/{self.project}/instances/{instance}"',
                ),
            )
            for reader, member in readers.items()
        }

    def _migrate_command(self, build: BuildContext) -> list[str]:
        """The job's command: our entry in a generated image; else the app's command, or our
        Alembic runner given to the image's python (both apply the "database newer than this
        code" rule)."""
        app = self.app
        if build.runs_entry:
            return list(ENTRY_MIGRATE)
        if app.migrations == "command":
            return list(app.migrate_command)
        # The app's own image does not hold the entry: the Alembic runner's source goes in the
        # command itself (standard library + the app's Alembic), with the same rollback rule.
        return ["python", "-c", ALEMBIC_RUNNER_SOURCE, app.alembic_config]

    def _secret(
        self,
        secret_slug: str,
        *,
        readers: Mapping[str, str],
        value: str | None,
        after: Sequence[TerraformResource],
        version: int = 1,
        replace_when_changed: Sequence[TerraformResource] = (),
    ) -> SecretParts:
        return readable_secret(
            self,
            secret_slug,
            project=self.project,
            name=self.name,
            readers=readers,
            value=value,
            after=after,
            version=version,
            replace_when_changed=replace_when_changed,
        )


def _validate(
    *,
    name: str,
    cpu: int,
    memory_mib: int,
    min_instances: int,
    max_instances: int,
    concurrency: int,
    health_path: str,
    new_subnet_cidr: str | None = None,
    sql_proxy: bool = False,
) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}[a-z0-9]", name):
        raise ValueError(f"name must be 3-42 lowercase letters, digits or hyphens, got {name!r}")
    problem = limits.cloud_run_resources_error(cpu=cpu, memory_mib=memory_mib)
    if problem:
        raise ValueError(problem)
    problem = limits.sql_proxy_resources_error(cpu=cpu, memory_mib=memory_mib) if sql_proxy else None
    if problem:
        raise ValueError(problem)
    if not 0 <= min_instances <= max_instances:
        raise ValueError(f"need 0 <= min_instances <= max_instances, got {min_instances}..{max_instances}")
    if not 1 <= concurrency <= limits.CLOUD_RUN_MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{limits.CLOUD_RUN_MAX_CONCURRENCY}, got {concurrency}")
    if not health_path.startswith("/"):
        raise ValueError(f"health_path must start with '/', got {health_path!r}")
    if new_subnet_cidr is not None:
        problem = limits.subnet_error(new_subnet_cidr, max_instances=max_instances)
        if problem:
            raise ValueError(problem)
