"""CloudRunService: a FastAPI container on Cloud Run + Cloud SQL for PostgreSQL + Secret Manager,
optionally with a Memorystore cache (through Direct VPC egress) and an uploads bucket.

The counterpart of the AWS FastApiLambdaService, for CDK for Terraform. It creates no
provider and no backend (the stack owns those). Nested blocks are built with the
provider's generated struct classes, never plain dicts (jsii drops snake_case dict keys).

Deploy order, enforced with dependencies:
APIs -> registry -> image built by Cloud Build (tag = content hash of the source) ->
Cloud SQL, secrets, identities -> migration job executed -> service revision.

Two identities, two database roles: the migration job runs as its own service account and
connects as the built-in user that owns the schema; the service runs as the runtime account
and connects as ``app_service``, a role the migrations create with the privileges the service
needs. Neither account can read the other's database URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdktf import (
    AssetType,
    DataResource,
    LocalExecProvisioner,
    TerraformAsset,
    TerraformResource,
    TerraformResourceLifecycle,
)
from cdktf_cdktf_provider_google import (
    artifact_registry_repository as ar,
)
from cdktf_cdktf_provider_google import (
    cloud_run_v2_job as run_job,
)
from cdktf_cdktf_provider_google import (
    cloud_run_v2_service as run,
)
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from cdktf_cdktf_provider_google.cloud_run_v2_service_iam_member import CloudRunV2ServiceIamMember
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember, ProjectIamMemberCondition
from cdktf_cdktf_provider_google.project_service import ProjectService
from cdktf_cdktf_provider_google.secret_manager_secret import (
    SecretManagerSecret,
    SecretManagerSecretReplication,
    SecretManagerSecretReplicationAuto,
)
from cdktf_cdktf_provider_google.secret_manager_secret_iam_member import SecretManagerSecretIamMember
from cdktf_cdktf_provider_google.secret_manager_secret_version import SecretManagerSecretVersion
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.sql_database import SqlDatabase
from cdktf_cdktf_provider_google.sql_database_instance import (
    SqlDatabaseInstance,
    SqlDatabaseInstanceSettings,
    SqlDatabaseInstanceSettingsBackupConfiguration,
    SqlDatabaseInstanceSettingsBackupConfigurationBackupRetentionSettings,
    SqlDatabaseInstanceSettingsDatabaseFlags,
    SqlDatabaseInstanceSettingsInsightsConfig,
    SqlDatabaseInstanceSettingsIpConfiguration,
)
from cdktf_cdktf_provider_google.sql_user import SqlUser
from cdktf_cdktf_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
)
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from cdktf_cdktf_provider_random.password import Password
from constructs import Construct

from constructs_lib.gcp import limits
from constructs_lib.gcp.cache import CacheOptions, MemorystoreCache
from constructs_lib.gcp.image import source_hash
from constructs_lib.gcp.network import EgressNetwork, NetworkOptions
from constructs_lib.gcp.storage import StorageOptions, UploadsBucket, bucket_name

CLOUDSQL_MOUNT = "/cloudsql"
CONTAINER_PORT = 8080
# The APIs a fresh project must have for this construct; every resource depends on them.
REQUIRED_APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
)
# What the optional parts add to them.
CACHE_APIS = ("compute.googleapis.com", "redis.googleapis.com")
UPLOADS_APIS = ("iamcredentials.googleapis.com",)  # signBlob, for the signed URLs
BUILD_CONFIG = Path(__file__).resolve().parent / "cloudbuild.yaml"
IMAGE_RETENTION = "2592000s"  # untagged and superseded images older than 30 days go
POSTGRES_VERSIONS = {"16": "POSTGRES_16", "17": "POSTGRES_17"}
# PostgreSQL logging flags (what checkov's CIS checks ask of Cloud SQL for PostgreSQL).
POSTGRES_FLAGS = {
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_min_messages": "error",
    "log_min_error_statement": "error",
    "log_temp_files": "0",
    "log_min_duration_statement": "-1",
    "log_statement": "ddl",  # schema changes only: the migrations, never the data
}


# The role the service connects as. The migrations create it over SQL (APP_DB_USER,
# APP_DB_PASSWORD) with the privileges the service needs; a google_sql_user would make it a
# member of cloudsqlsuperuser, which is what the owner (the built-in user) already is.
APP_DB_ROLE = "app_service"
# The service's DATABASE_URL secret holds the app_service URL from version 2 on (version 1
# held the owner's): a stack deployed before gets a new secret version, not a stale URL.
SERVICE_DATABASE_URL_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class CloudSqlOptions:
    """``backup_retention_days`` days of daily automated backups (Cloud SQL counts backups:
    limits.retained_backups converts); with ``point_in_time_recovery``,
    ``transaction_log_retention_days`` of logs, fewer than the days of backups."""

    version: str = "17"
    tier: str = "db-f1-micro"
    database_name: str = "app"
    user_name: str = "app"  # the built-in user: owns the schema, used by the migrations only
    backup_retention_days: int = 7
    point_in_time_recovery: bool = True
    transaction_log_retention_days: int | None = 6
    deletion_protection: bool = True

    def __post_init__(self) -> None:
        if self.version not in POSTGRES_VERSIONS:
            raise ValueError(f"version must be one of {sorted(POSTGRES_VERSIONS)}, got {self.version!r}")
        problem = limits.tier_error(self.tier)
        if problem:
            raise ValueError(f"tier {problem}")
        problem = limits.backups_error(
            backup_retention_days=self.backup_retention_days,
            point_in_time_recovery=self.point_in_time_recovery,
            transaction_log_retention_days=self.transaction_log_retention_days,
        )
        if problem:
            raise ValueError(problem)
        if self.user_name == APP_DB_ROLE:
            raise ValueError(f"user_name must not be {APP_DB_ROLE!r}: that is the service's role")

    @property
    def retained_backups(self) -> int:
        return limits.retained_backups(self.backup_retention_days)


@dataclass
class _SecretParts:
    """A secret, its first version (None: the user adds it) and a read grant per identity."""

    secret: SecretManagerSecret
    version: SecretManagerSecretVersion | None
    grants: dict[str, SecretManagerSecretIamMember] = field(default_factory=dict)  # by reader


class CloudRunService(Construct):
    """Parts, as attributes: ``apis``, ``repository``, ``image``, ``build``,
    ``service_account`` (the service's), ``migrate_service_account``, ``build_service_account``,
    ``sql_instance``, ``database``, ``sql_user`` (the owner), ``secrets`` and
    ``migrate_secrets`` (what the service and the job read, by env var name),
    ``pool_size``, ``migrate_job``, ``migrate_run``, ``service``, ``url``; with their options:
    ``network`` (Direct VPC egress of the service), ``cache`` (needs ``network``),
    ``storage``; else None."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        source_dir: Path,
        build_context: str,
        command: Sequence[str] = ("python", "-m", "webapi.serve"),
        migrate_command: Sequence[str] = ("python", "-m", "webapi.migrate"),
        cpu: int = 1,
        memory_mib: int = 1024,
        min_instances: int = 0,
        max_instances: int = 5,
        concurrency: int = 80,
        request_timeout_seconds: int = 300,
        health_check_path: str = "/health",
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
        _validate(
            name=name,
            cpu=cpu,
            memory_mib=memory_mib,
            min_instances=min_instances,
            max_instances=max_instances,
            concurrency=concurrency,
            health_check_path=health_check_path,
            new_subnet_cidr=network.subnet_cidr if network is not None and network.creates_network else None,
        )
        if cache is not None and network is None:
            raise ValueError("cache needs network: Memorystore has a private address only")
        if cache is not None and "REDIS_URL" in extra_secrets:
            raise ValueError("extra_secrets: REDIS_URL comes from the cache; leave it out or the cache off")
        database = database or CloudSqlOptions()
        # Raises when not even one connection per instance fits the tier.
        self.pool_size = limits.pool_size(
            tier=database.tier, max_instances=max_instances, concurrency=concurrency
        )
        self.project, self.region, self.name = project, region, name

        apis = [
            *REQUIRED_APIS,
            *(CACHE_APIS if cache is not None else ()),
            *(UPLOADS_APIS if storage is not None else ()),
        ]
        self.apis = {
            api: ProjectService(
                self, f"api-{api.split('.')[0]}", project=project, service=api, disable_on_destroy=False
            )
            for api in apis
        }
        after_apis: list[TerraformResource] = list(self.apis.values())

        # --- the image --------------------------------------------------------------
        self.repository = ar.ArtifactRegistryRepository(
            self,
            "repository",
            project=project,
            location=region,
            repository_id=name,
            format="DOCKER",
            description=f"Images of {name}",
            cleanup_policies=[
                ar.ArtifactRegistryRepositoryCleanupPolicies(
                    id="delete-old",
                    action="DELETE",
                    condition=ar.ArtifactRegistryRepositoryCleanupPoliciesCondition(
                        tag_state="ANY", older_than=IMAGE_RETENTION
                    ),
                ),
                # KEEP wins over DELETE: the ten newest images stay whatever their age,
                # so a rollback target is always there.
                ar.ArtifactRegistryRepositoryCleanupPolicies(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=ar.ArtifactRegistryRepositoryCleanupPoliciesMostRecentVersions(
                        keep_count=10
                    ),
                ),
            ],
            depends_on=after_apis,
        )
        self.source_hash = source_hash(source_dir)
        self.image = f"{region}-docker.pkg.dev/{project}/{name}/api:{self.source_hash[:16]}"
        self.build_service_account = ServiceAccount(
            self,
            "builder",
            project=project,
            account_id=_account_id(name, "build"),
            display_name=f"Cloud Build for {name}",
            depends_on=after_apis,
        )
        builder = f"serviceAccount:{self.build_service_account.email}"
        build_grants: list[TerraformResource] = [
            ArtifactRegistryRepositoryIamMember(
                self,
                "builder-pushes-images",
                project=project,
                location=region,
                repository=self.repository.name,
                role="roles/artifactregistry.writer",
                member=builder,
            ),
            ProjectIamMember(
                self, "builder-writes-logs", project=project, role="roles/logging.logWriter", member=builder
            ),
            # Reads the uploaded source from the staging bucket gcloud creates.
        ]
        # The source upload goes to a bucket of its own, which alone the builder may read
        # (a project-wide grant would let builds read every bucket, Terraform state included).
        self.staging_bucket = StorageBucket(
            self,
            "build-staging",
            project=project,
            name=bucket_name(project, name, "build"),
            location=region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=True,
            lifecycle_rule=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(age=7),
                )
            ],
            depends_on=after_apis,
        )
        build_grants.append(
            StorageBucketIamMember(
                self,
                "builder-reads-source",
                bucket=self.staging_bucket.name,
                role="roles/storage.objectViewer",
                member=builder,
            )
        )
        build_config = TerraformAsset(self, "build-config", path=str(BUILD_CONFIG), type=AssetType.FILE)
        self.build = DataResource(
            self,
            "image-build",
            triggers_replace={"image": self.image, "config": build_config.asset_hash},
            provisioners=[
                LocalExecProvisioner(
                    type="local-exec",
                    command=" ".join(
                        [
                            "gcloud builds submit",
                            build_context,
                            f"--project={project}",
                            f"--region={region}",
                            f"--config=${{path.module}}/{build_config.path}",
                            f"--substitutions=_IMAGE={self.image}",
                            f"--gcs-source-staging-dir=gs://{self.staging_bucket.name}/source",
                            f"--service-account=projects/{project}/serviceAccounts/{self.build_service_account.email}",
                            "--quiet",
                        ]
                    ),
                )
            ],
            depends_on=[self.repository, *build_grants],
        )

        # --- the identities: the service's, and the migration job's -------------------
        self.service_account = ServiceAccount(
            self,
            "runtime",
            project=project,
            account_id=_account_id(name, "run"),
            display_name=f"Cloud Run runtime of {name}",
            depends_on=after_apis,
        )
        runtime = f"serviceAccount:{self.service_account.email}"
        # Its own account: only the job may read the owner's URL and the role's password.
        self.migrate_service_account = ServiceAccount(
            self,
            "migrator",
            project=project,
            account_id=_account_id(name, "migrate"),
            display_name=f"Migration job of {name}",
            depends_on=after_apis,
        )
        migrator = f"serviceAccount:{self.migrate_service_account.email}"

        # --- Cloud SQL ------------------------------------------------------------------
        self.sql_instance = SqlDatabaseInstance(
            self,
            "sql",
            project=project,
            region=region,
            name=f"{name}-pg",
            database_version=POSTGRES_VERSIONS[database.version],
            deletion_protection=database.deletion_protection,
            settings=SqlDatabaseInstanceSettings(
                tier=database.tier,
                edition="ENTERPRISE",  # shared-core tiers (db-f1-micro, db-g1-small) exist only there
                availability_type="ZONAL",
                deletion_protection_enabled=database.deletion_protection,
                disk_autoresize=True,
                backup_configuration=SqlDatabaseInstanceSettingsBackupConfiguration(
                    enabled=True,
                    point_in_time_recovery_enabled=database.point_in_time_recovery,
                    # Without PITR there are no transaction logs to keep: left unset (and no
                    # value of 1..7 would be below a single day of backups).
                    transaction_log_retention_days=(
                        database.transaction_log_retention_days if database.point_in_time_recovery else None
                    ),
                    # Daily backups, counted: N of them keep N days.
                    backup_retention_settings=SqlDatabaseInstanceSettingsBackupConfigurationBackupRetentionSettings(
                        retained_backups=database.retained_backups, retention_unit="COUNT"
                    ),
                ),
                # Public IP with no authorized network: reachable only through the Cloud SQL
                # connector (the Cloud Run /cloudsql volume), which authenticates with IAM and
                # a short-lived client certificate, so mutual TLS can be required of everyone.
                ip_configuration=SqlDatabaseInstanceSettingsIpConfiguration(
                    ipv4_enabled=True, ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
                ),
                insights_config=SqlDatabaseInstanceSettingsInsightsConfig(query_insights_enabled=True),
                database_flags=[
                    SqlDatabaseInstanceSettingsDatabaseFlags(name=flag, value=value)
                    for flag, value in POSTGRES_FLAGS.items()
                ],
                user_labels={"app": name},
            ),
            depends_on=after_apis,
        )
        self.database = SqlDatabase(
            self, "database", project=project, instance=self.sql_instance.name, name=database.database_name
        )
        db_password = Password(self, "db-password", length=32, special=False)
        # The built-in user (a cloudsqlsuperuser member): the migration identity only.
        self.sql_user = SqlUser(
            self,
            "user",
            project=project,
            instance=self.sql_instance.name,
            name=database.user_name,
            password_wo=db_password.result,
            # The migrations make this user own the tables, and PostgreSQL refuses to drop
            # an owner: on destroy the user goes with the instance instead.
            deletion_policy="ABANDON",
            password_wo_version=1,
        )
        connection_name = self.sql_instance.connection_name

        # --- secrets: the service's and the job's ----------------------------------------
        service_parts, job_parts = self._database_secrets(
            database=database,
            owner_password=db_password.result,
            readers={"runtime": runtime, "migrator": migrator},
            extra_secrets=extra_secrets,
            after=after_apis,
        )

        # --- optional: the cache, behind Direct VPC egress; the uploads bucket ----------
        # The service alone uses them: the migration job gets neither their variables nor
        # a VPC path, and does not wait for them.
        service_env, optional_parts, optional_grants = self._optional_parts(
            network=network, cache=cache, storage=storage, runtime=runtime, after=after_apis
        )
        service_parts.update(optional_parts)
        self.secrets = {env_name: parts.secret for env_name, parts in service_parts.items()}
        self.migrate_secrets = {env_name: parts.secret for env_name, parts in job_parts.items()}
        self.sql_client_grant, self.migrate_sql_client_grant = (
            ProjectIamMember(
                self,
                grant_id,
                project=project,
                role="roles/cloudsql.client",
                member=member,
                condition=ProjectIamMemberCondition(
                    title=f"only {name}-pg",
                    expression=f'resource.name == "projects/{project}/instances/{name}-pg"',
                ),
            )
            for grant_id, member in (("runtime-sql-client", runtime), ("migrator-sql-client", migrator))
        )
        # What each reads, there before it reads it: versions and the grants of its own identity.
        service_needs = [self.sql_client_grant, *optional_grants, *_ready(service_parts.values(), "runtime")]
        job_needs = [self.migrate_sql_client_grant, *_ready(job_parts.values(), "migrator")]

        plain_env = {
            "ENVIRONMENT": app_environment,
            "GOOGLE_CLOUD_PROJECT": project,
            "DB_POOL_SIZE": str(self.pool_size),
            "DB_MAX_OVERFLOW": "0",
            # The /cloudsql socket is encrypted by the connector (see _database_secrets).
            "DB_SSL_MODE": "disable",
            **(environment or {}),
        }

        # --- migrations: a job run on every deploy that changes the image --------------
        self.migrate_job = run_job.CloudRunV2Job(
            self,
            "migrate",
            project=project,
            location=region,
            name=f"{name}-migrate",
            deletion_protection=deletion_protection,
            template=run_job.CloudRunV2JobTemplate(
                task_count=1,
                template=run_job.CloudRunV2JobTemplateTemplate(
                    service_account=self.migrate_service_account.email,
                    max_retries=0,
                    timeout="600s",
                    containers=[
                        run_job.CloudRunV2JobTemplateTemplateContainers(
                            image=self.image,
                            command=list(migrate_command),
                            env=_env(
                                {**plain_env, "APP_DB_USER": APP_DB_ROLE},
                                self.migrate_secrets,
                                env=run_job.CloudRunV2JobTemplateTemplateContainersEnv,
                                source=run_job.CloudRunV2JobTemplateTemplateContainersEnvValueSource,
                                ref=run_job.CloudRunV2JobTemplateTemplateContainersEnvValueSourceSecretKeyRef,
                            ),
                            volume_mounts=[
                                _cloudsql_mount(run_job.CloudRunV2JobTemplateTemplateContainersVolumeMounts)
                            ],
                        )
                    ],
                    volumes=[
                        _cloudsql_volume(
                            connection_name,
                            volume=run_job.CloudRunV2JobTemplateTemplateVolumes,
                            instance=run_job.CloudRunV2JobTemplateTemplateVolumesCloudSqlInstance,
                        )
                    ],
                ),
            ),
            depends_on=[self.build, *job_needs, self.database, self.sql_user],
        )
        self.migrate_run = DataResource(
            self,
            "migrate-run",
            triggers_replace={"image": self.image},
            provisioners=[
                LocalExecProvisioner(
                    type="local-exec",
                    command=(
                        f"gcloud run jobs execute {name}-migrate --project={project} "
                        f"--region={region} --wait --quiet"
                    ),
                )
            ],
            depends_on=[self.migrate_job],
        )

        # --- the service ----------------------------------------------------------------
        probe_get = run.CloudRunV2ServiceTemplateContainersStartupProbeHttpGet(
            path=health_check_path, port=CONTAINER_PORT
        )
        self.service = run.CloudRunV2Service(
            self,
            "service",
            project=project,
            location=region,
            name=name,
            deletion_protection=deletion_protection,
            ingress="INGRESS_TRAFFIC_ALL",
            invoker_iam_disabled=False,
            template=run.CloudRunV2ServiceTemplate(
                service_account=self.service_account.email,
                max_instance_request_concurrency=concurrency,
                timeout=f"{request_timeout_seconds}s",
                scaling=run.CloudRunV2ServiceTemplateScaling(
                    min_instance_count=min_instances, max_instance_count=max_instances
                ),
                containers=[
                    run.CloudRunV2ServiceTemplateContainers(
                        image=self.image,
                        command=list(command),
                        ports=run.CloudRunV2ServiceTemplateContainersPorts(container_port=CONTAINER_PORT),
                        resources=run.CloudRunV2ServiceTemplateContainersResources(
                            limits={"cpu": str(cpu), "memory": f"{memory_mib}Mi"},
                            cpu_idle=True,  # CPU only while serving requests
                            startup_cpu_boost=True,
                        ),
                        env=_env(
                            {**plain_env, **service_env},
                            self.secrets,
                            env=run.CloudRunV2ServiceTemplateContainersEnv,
                            source=run.CloudRunV2ServiceTemplateContainersEnvValueSource,
                            ref=run.CloudRunV2ServiceTemplateContainersEnvValueSourceSecretKeyRef,
                        ),
                        startup_probe=run.CloudRunV2ServiceTemplateContainersStartupProbe(
                            http_get=probe_get, period_seconds=2, failure_threshold=30, timeout_seconds=2
                        ),
                        liveness_probe=run.CloudRunV2ServiceTemplateContainersLivenessProbe(
                            http_get=run.CloudRunV2ServiceTemplateContainersLivenessProbeHttpGet(
                                path=health_check_path, port=CONTAINER_PORT
                            ),
                            period_seconds=30,
                            failure_threshold=3,
                            timeout_seconds=5,
                        ),
                        volume_mounts=[_cloudsql_mount(run.CloudRunV2ServiceTemplateContainersVolumeMounts)],
                    )
                ],
                volumes=[
                    _cloudsql_volume(
                        connection_name,
                        volume=run.CloudRunV2ServiceTemplateVolumes,
                        instance=run.CloudRunV2ServiceTemplateVolumesCloudSqlInstance,
                    )
                ],
                vpc_access=_direct_vpc_egress(self.network) if self.network is not None else None,
            ),
            depends_on=[self.migrate_run, *service_needs],
        )
        self.invoker: CloudRunV2ServiceIamMember | None = None
        if public:
            self.invoker = CloudRunV2ServiceIamMember(
                self,
                "public-invoker",
                project=project,
                location=region,
                name=self.service.name,
                role="roles/run.invoker",
                member="allUsers",
            )
        self.url = self.service.uri

    def _database_secrets(
        self,
        *,
        database: CloudSqlOptions,
        owner_password: str,
        readers: Mapping[str, str],
        extra_secrets: Sequence[str],
        after: Sequence[TerraformResource],
    ) -> tuple[dict[str, _SecretParts], dict[str, _SecretParts]]:
        """The secrets of the service and of the migration job, by env var name.

        Both connect through the /cloudsql Unix socket: Cloud Run's built-in Cloud SQL
        connection encrypts (mutual TLS, IAM-authorized) up to the instance, so the URLs carry
        no TLS settings. Generated passwords have no special characters: safe in a URL as
        they are."""
        service_only, job_only = {"runtime": readers["runtime"]}, {"migrator": readers["migrator"]}
        secret_key = Password(self, "secret-key", length=64, special=False)
        app_password = Password(self, "app-db-password", length=32, special=False)
        path = f"/{database.database_name}?host={CLOUDSQL_MOUNT}/{self.sql_instance.connection_name}"
        service_parts: dict[str, _SecretParts] = {
            "DATABASE_URL": self._secret(
                "database-url",
                readers=service_only,
                value=f"postgresql+asyncpg://{APP_DB_ROLE}:{app_password.result}@{path}",
                version=SERVICE_DATABASE_URL_VERSION,
                after=after,
            ),
            # The migrations read the settings too, which refuse a deployed start without it.
            "SECRET_KEY": self._secret("secret-key", readers=readers, value=secret_key.result, after=after),
        }
        job_parts: dict[str, _SecretParts] = {
            # Same variable name in the job, the owner's URL behind it.
            "DATABASE_URL": self._secret(
                "migrate-database-url",
                readers=job_only,
                value=f"postgresql+asyncpg://{database.user_name}:{owner_password}@{path}",
                after=after,
            ),
            "APP_DB_PASSWORD": self._secret(
                "app-db-password", readers=job_only, value=app_password.result, after=after
            ),
            "SECRET_KEY": service_parts["SECRET_KEY"],
        }
        # Extra secrets get no version here: add the value yourself (gcloud secrets versions add).
        # Both read them, as before this split: a data migration may need one.
        for env_name in extra_secrets:
            service_parts[env_name] = job_parts[env_name] = self._secret(
                _slug(env_name), readers=readers, value=None, after=after
            )
        return service_parts, job_parts

    def _optional_parts(
        self,
        *,
        network: NetworkOptions | None,
        cache: CacheOptions | None,
        storage: StorageOptions | None,
        runtime: str,
        after: list[TerraformResource],
    ) -> tuple[dict[str, str], dict[str, _SecretParts], list[TerraformResource]]:
        """The network, the cache and the uploads bucket, as asked; returns what the service
        (only) gets from them: plain variables, secrets and grants to wait for."""
        project, region, name = self.project, self.region, self.name
        service_env: dict[str, str] = {}
        service_secrets: dict[str, _SecretParts] = {}
        service_grants: list[TerraformResource] = []
        self.network: EgressNetwork | None = None
        if network is not None:
            self.network = EgressNetwork(
                self, "egress", project=project, region=region, name=name, options=network, depends_on=after
            )
        self.cache: MemorystoreCache | None = None
        if cache is not None and self.network is not None:
            self.cache = MemorystoreCache(
                self,
                "cache",
                project=project,
                region=region,
                name=name,
                authorized_network=self.network.network_id,
                options=cache,
                depends_on=after,
            )
            # The URL carries the AUTH string: Secret Manager. Its version is written once
            # (write-only), so a new instance (new host, new AUTH string) replaces it.
            service_secrets["REDIS_URL"] = self._secret(
                "redis-url",
                readers={"runtime": runtime},
                value=self.cache.url,
                after=after,
                replace_when_changed=[self.cache.instance],
            )
            # The server CA's certificate is public: a plain variable, and a new revision
            # whenever it changes.
            service_env["REDIS_CA_CERT"] = self.cache.ca_cert
        self.storage: UploadsBucket | None = None
        if storage is not None:
            self.storage = UploadsBucket(
                self,
                "uploads",
                project=project,
                region=region,
                name=name,
                runtime=self.service_account,
                options=storage,
                depends_on=after,
            )
            service_grants += self.storage.grants
            service_env.update(self.storage.environment)
        return service_env, service_secrets, service_grants

    def _secret(
        self,
        slug: str,
        *,
        readers: Mapping[str, str],
        value: str | None,
        after: Sequence[TerraformResource],
        version: int = 1,
        replace_when_changed: Sequence[TerraformResource] = (),
    ) -> _SecretParts:
        """A secret that ``readers`` (only) may read; with a generated value, its version,
        written through the write-only attribute so the secret's state holds no copy."""
        secret = SecretManagerSecret(
            self,
            f"secret-{slug}",
            project=self.project,
            secret_id=f"{self.name}-{slug}",
            replication=SecretManagerSecretReplication(auto=SecretManagerSecretReplicationAuto()),
            depends_on=list(after),
        )
        grants = {
            reader_id: SecretManagerSecretIamMember(
                self,
                f"{reader_id}-reads-{slug}",
                project=self.project,
                secret_id=secret.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=member,
            )
            for reader_id, member in readers.items()
        }
        secret_version = None
        if value is not None:
            secret_version = SecretManagerSecretVersion(
                self,
                f"secret-{slug}-version",
                secret=secret.id,
                secret_data_wo=value,
                secret_data_wo_version=version,
                lifecycle=(
                    TerraformResourceLifecycle(
                        replace_triggered_by=[_address(r) for r in replace_when_changed]
                    )
                    if replace_when_changed
                    else None
                ),
            )
        return _SecretParts(secret=secret, version=secret_version, grants=grants)


def _slug(env_name: str) -> str:
    return env_name.lower().replace("_", "-")


def _ready(parts: Iterable[_SecretParts], reader: str) -> list[TerraformResource]:
    """What a container running as ``reader`` waits for before its first read: each secret's
    version (if we write one) and ``reader``'s grant on it."""
    needed: list[TerraformResource] = []
    for part in parts:
        needed.append(part.grants[reader])
        if part.version is not None:
            needed.append(part.version)
    return list(dict.fromkeys(needed))


def _env(
    plain: Mapping[str, str], secrets: Mapping[str, SecretManagerSecret], *, env: Any, source: Any, ref: Any
) -> list[Any]:
    """Plain variables, then secrets as references to their latest version (the service's and
    the job's env structs are distinct generated classes of the same shape)."""
    entries = [env(name=key, value=value) for key, value in sorted(plain.items())]
    entries += [
        env(name=key, value_source=source(secret_key_ref=ref(secret=secret.secret_id, version="latest")))
        for key, secret in sorted(secrets.items())
    ]
    return entries


def _cloudsql_mount(mount: Any) -> Any:
    return mount(name="cloudsql", mount_path=CLOUDSQL_MOUNT)


def _cloudsql_volume(connection_name: str, *, volume: Any, instance: Any) -> Any:
    """Cloud Run's built-in Cloud SQL connection: the instance's socket under /cloudsql."""
    return volume(name="cloudsql", cloud_sql_instance=instance(instances=[connection_name]))


def _address(resource: TerraformResource) -> str:
    """``type.name``, bare: replace_triggered_by takes no ``${...}``, which is what cdktf writes
    for a resource given there (hashicorp/terraform-cdk#3196, #3546)."""
    return f"{resource.terraform_resource_type}.{resource.friendly_unique_id}"


def _direct_vpc_egress(network: EgressNetwork) -> run.CloudRunV2ServiceTemplateVpcAccess:
    """Direct VPC egress: instances take addresses in the subnet; only private ranges (the
    cache) go through the VPC, the rest of the traffic leaves as before."""
    return run.CloudRunV2ServiceTemplateVpcAccess(
        egress="PRIVATE_RANGES_ONLY",
        network_interfaces=[
            run.CloudRunV2ServiceTemplateVpcAccessNetworkInterfaces(
                network=network.network_name, subnetwork=network.subnetwork_name
            )
        ],
    )


def _account_id(name: str, suffix: str) -> str:
    """A service account id (6-30 characters, lowercase letters, digits, hyphens)."""
    base = name[: 30 - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def _validate(
    *,
    name: str,
    cpu: int,
    memory_mib: int,
    min_instances: int,
    max_instances: int,
    concurrency: int,
    health_check_path: str,
    new_subnet_cidr: str | None = None,
) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}[a-z0-9]", name):
        raise ValueError(f"name must be 3-42 lowercase letters, digits or hyphens, got {name!r}")
    problem = limits.cloud_run_resources_error(cpu=cpu, memory_mib=memory_mib)
    if problem:
        raise ValueError(problem)
    if not 0 <= min_instances <= max_instances:
        raise ValueError(f"need 0 <= min_instances <= max_instances, got {min_instances}..{max_instances}")
    if not 1 <= concurrency <= limits.CLOUD_RUN_MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{limits.CLOUD_RUN_MAX_CONCURRENCY}, got {concurrency}")
    if not health_check_path.startswith("/"):
        raise ValueError(f"health_check_path must start with '/', got {health_check_path!r}")
    if new_subnet_cidr is not None:
        problem = limits.subnet_error(new_subnet_cidr, max_instances=max_instances)
        if problem:
            raise ValueError(problem)
