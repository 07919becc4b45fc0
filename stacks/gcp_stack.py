"""The Google Cloud stack: the deployment spec, applied to CloudRunService (CDK for Terraform)."""

from __future__ import annotations

from pathlib import Path

from cdktf import GcsBackend, LocalBackend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_google.provider import GoogleProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from constructs_lib.gcp import limits
from constructs_lib.gcp.cache import CacheOptions, RedisTier
from constructs_lib.gcp.cloud_run_service import CloudRunService, CloudSqlOptions
from constructs_lib.gcp.dockerfile import DEFAULT_STAGING_DIR, lock_image_requirements, stage_build_context
from constructs_lib.gcp.image import BuildContext, own_build_context
from constructs_lib.gcp.network import NetworkOptions
from constructs_lib.gcp.storage import StorageOptions
from stacks.spec import ROOT, Spec, Stage

# cdktf writes each stack to cdktf.out/stacks/<name>/, where Terraform runs its
# provisioners: a build context of the app's own is named from there.
PROJECT_ROOT_FROM_STACK_DIR = "../../.."


class GcpServiceStack(TerraformStack):
    def __init__(self, scope: Construct, stack_id: str, *, spec: Spec) -> None:
        super().__init__(scope, stack_id)
        prod = spec.stage is Stage.PROD
        GoogleProvider(
            self,
            "google",
            project=spec.gcp.project,
            region=spec.gcp.region,
            default_labels={"project": spec.project, "stage": spec.stage.value},
        )
        RandomProvider(self, "random")
        if spec.gcp.state_bucket:
            GcsBackend(self, bucket=spec.gcp.state_bucket, prefix=f"{spec.name}/state")
        else:
            # At the project root, not in cdktf.out/ (which cdktf rewrites and may delete).
            LocalBackend(self, path=f"{PROJECT_ROOT_FROM_STACK_DIR}/terraform.{stack_id}.tfstate")
        # The write-only attributes (password_wo, secret_data_wo) need Terraform 1.11.
        self.add_override("terraform.required_version", ">= 1.11")
        _check_sql_proxy_room(spec)
        self.service = CloudRunService(
            self,
            "service",
            project=spec.gcp.project,
            region=spec.gcp.region,
            name=spec.name,
            app=spec.app.options(),
            build=build_context(spec, stack_id),
            command=spec.app.command,
            cpu=spec.compute.cpu,
            memory_mib=spec.compute.memory_mib,
            min_instances=spec.scaling.min_instances,
            max_instances=spec.scaling.max_instances,
            concurrency=spec.scaling.concurrency,
            request_timeout_seconds=spec.compute.timeout_seconds,
            environment=environment(spec),
            extra_secrets=spec.secrets,
            public=spec.public,
            # The service and the job hold no data. Terraform's deletion protection on them would
            # block the replacement of a first revision that failed (tainted), so a failed first
            # deploy could not be retried; the data (Cloud SQL) keeps its own protection.
            deletion_protection=False,
            app_environment=spec.stage.value,
            database=_database(spec) if spec.app.database.enabled else None,
            # The cache is the only private destination: no VPC path without it.
            network=_network(spec) if spec.cache.enabled else None,
            cache=_cache(spec) if spec.cache.enabled else None,
            storage=_storage(spec, force_destroy=not prod) if spec.storage.enabled else None,
        )
        TerraformOutput(self, "service_url", value=self.service.url, description="The service's HTTPS URL")
        TerraformOutput(self, "image", value=self.service.image)
        if self.service.cache is not None:
            TerraformOutput(
                self, "redis_host", value=self.service.cache.host, description="Memorystore's private address"
            )
        if self.service.storage is not None:
            TerraformOutput(
                self,
                "uploads_bucket",
                value=self.service.storage.bucket.name,
                description="Attachments bucket",
            )


def build_context(spec: Spec, stack_id: str, *, staging_dir: Path | None = None) -> BuildContext:
    """The app's own Dockerfile (``app.dockerfile``, else ``Dockerfile`` if the app has one) built
    from ``app.build_context``; without one, a generated Dockerfile in a context staged outside
    the app's directory, its requirements locked for the image in ``spec.lock_dir``."""
    app = spec.app
    dockerfile = app.dockerfile or ("Dockerfile" if (app.directory / "Dockerfile").is_file() else None)
    if dockerfile is not None:
        return own_build_context(
            app.directory,
            dockerfile=dockerfile,
            context=app.build_context or ".",
            deploy_base=ROOT / "cdktf.out" / "stacks" / stack_id,
            deploy_prefix="${path.module}",
        )
    requirements = lock_image_requirements(
        app.directory,
        dependencies=app.directory / app.dependencies if app.dependencies else None,
        lock_dir=spec.lock_dir,
    )
    options = spec.app.options()
    return stage_build_context(
        app.directory,
        environment=options.entry_environment(),
        requirements=requirements,
        staging_dir=staging_dir or DEFAULT_STAGING_DIR,
    )


def environment(spec: Spec) -> dict[str, str]:
    """The spec's variables; our sample's settings also read APP_NAME and CORS_ORIGINS."""
    if spec.app.database.enabled and spec.app.database.settings == "secret-arns":
        return {
            "APP_NAME": spec.project,
            **spec.environment,
            **({"CORS_ORIGINS": ",".join(spec.cors_origins)} if spec.cors_origins else {}),
        }
    return dict(spec.environment)


def _check_sql_proxy_room(spec: Spec) -> None:
    """An app reading its database in parts gets the Cloud SQL Auth Proxy beside it on Cloud Run:
    the instance's CPU and memory must hold both (named by the spec's fields)."""
    if not (spec.app.database.enabled and spec.app.database.settings == "parts"):
        return
    problem = limits.sql_proxy_resources_error(
        cpu=spec.compute.cpu,
        memory_mib=spec.compute.memory_mib,
        cpu_field="compute.cpu",
        memory_field="compute.memory_mib",
    )
    if problem:
        raise ValueError(problem)


def _database(spec: Spec) -> CloudSqlOptions:
    """Days stay days: CloudSqlOptions turns them into a count of daily backups."""
    database = spec.database
    return CloudSqlOptions(
        version=database.version,
        tier=database.tier,
        database_name=database.name,
        backup_retention_days=database.backup_retention_days,
        point_in_time_recovery=database.point_in_time_recovery,
        transaction_log_retention_days=(
            database.transaction_log_retention_days if database.point_in_time_recovery else None
        ),
        deletion_protection=database.deletion_protection,
    )


def _network(spec: Spec) -> NetworkOptions:
    return NetworkOptions(
        existing_network=spec.gcp.network,
        existing_subnetwork=spec.gcp.subnetwork,
        subnet_cidr=spec.gcp.subnet_cidr,
    )


def _cache(spec: Spec) -> CacheOptions:
    return CacheOptions(
        tier=RedisTier(spec.cache.gcp_tier),
        memory_gb=spec.cache.gcp_memory_gb,
        redis_version=spec.cache.gcp_redis_version,
    )


def _storage(spec: Spec, *, force_destroy: bool) -> StorageOptions:
    """force_destroy in dev only: a dev stack's destroy empties the bucket; prod keeps it."""
    storage = spec.storage
    return StorageOptions(
        prefix=storage.prefix,
        max_upload_mib=storage.max_upload_mib,
        url_expiry_seconds=storage.url_expiry_seconds,
        versioned=storage.versioned,
        noncurrent_days=storage.noncurrent_days,
        cors_origins=spec.cors_origins,
        force_destroy=force_destroy,
    )
