"""The Google Cloud stack: the deployment spec, applied to CloudRunService (CDK for Terraform)."""

from __future__ import annotations

from cdktf import GcsBackend, LocalBackend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_google.provider import GoogleProvider
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from constructs_lib.gcp.cache import CacheOptions, RedisTier
from constructs_lib.gcp.cloud_run_service import CloudRunService, CloudSqlOptions
from constructs_lib.gcp.network import NetworkOptions
from constructs_lib.gcp.storage import StorageOptions
from stacks.spec import Spec, Stage

# cdktf writes each stack to cdktf.out/stacks/<name>/, where Terraform runs its
# provisioners: the build context is the service directory, three levels up.
PROJECT_ROOT_FROM_STACK_DIR = "../../.."
BUILD_CONTEXT_FROM_STACK_DIR = "${path.module}/" + PROJECT_ROOT_FROM_STACK_DIR


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
        self.service = CloudRunService(
            self,
            "service",
            project=spec.gcp.project,
            region=spec.gcp.region,
            name=spec.name,
            source_dir=spec.service_path,
            build_context=f"{BUILD_CONTEXT_FROM_STACK_DIR}/{spec.service_dir}",
            command=spec.container_command,
            migrate_command=spec.migrate_command,
            cpu=spec.compute.cpu,
            memory_mib=spec.compute.memory_mib,
            min_instances=spec.scaling.min_instances,
            max_instances=spec.scaling.max_instances,
            concurrency=spec.scaling.concurrency,
            health_check_path=spec.health_check_path,
            request_timeout_seconds=spec.compute.timeout_seconds,
            environment={
                "APP_NAME": spec.project,
                **spec.environment,
                **({"CORS_ORIGINS": ",".join(spec.cors_origins)} if spec.cors_origins else {}),
            },
            extra_secrets=spec.secrets,
            public=spec.public,
            # The service and the job hold no data. Terraform's deletion protection on them would
            # block the replacement of a first revision that failed (tainted), so a failed first
            # deploy could not be retried; the data (Cloud SQL) keeps its own protection.
            deletion_protection=False,
            app_environment=spec.stage.value,
            database=_database(spec),
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
