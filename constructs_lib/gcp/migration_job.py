"""MigrationJob: a Cloud Run job that runs the app's migrations in its image, executed on every
deploy that changes the image, before the service's new revision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdktf import DataResource, ITerraformDependable, LocalExecProvisioner
from cdktf_cdktf_provider_google import cloud_run_v2_job as run_job
from cdktf_cdktf_provider_google.secret_manager_secret import SecretManagerSecret
from constructs import Construct

from constructs_lib.gcp.addresses import Part, flat
from constructs_lib.gcp.containers import cloudsql_mounts, cloudsql_volumes, env_entries
from constructs_lib.gcp.sql_proxy import SQL_PROXY_CONTAINER, job_proxy_container, quit_after

# The job's own container, named once the proxy is beside it.
MIGRATE_CONTAINER = "migrate"


class MigrationJob(Part):
    """``job`` (``<name>-migrate``, run as ``service_account``) and ``run``, its execution:
    replaced, so run again, whenever ``image`` changes; a failure fails the deploy. With
    ``sql_proxy`` the instance is reached through the Cloud SQL Auth Proxy sidecar instead of the
    /cloudsql volume, and ``command`` stops the proxy once it has exited (the task then ends)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        image: str,
        command: Sequence[str],
        service_account: str,
        environment: Mapping[str, str],
        secrets: Mapping[str, SecretManagerSecret],
        connection_name: str | None,
        deletion_protection: bool,
        depends_on: Sequence[ITerraformDependable],
        sql_proxy: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        proxy = connection_name if sql_proxy else None
        socket = None if sql_proxy else connection_name
        self.job = flat(
            run_job.CloudRunV2Job(
                self,
                "migrate",
                project=project,
                location=region,
                name=f"{name}-migrate",
                deletion_protection=deletion_protection,
                template=run_job.CloudRunV2JobTemplate(
                    task_count=1,
                    template=run_job.CloudRunV2JobTemplateTemplate(
                        service_account=service_account,
                        max_retries=0,
                        timeout="600s",
                        containers=[
                            run_job.CloudRunV2JobTemplateTemplateContainers(
                                name=MIGRATE_CONTAINER if proxy is not None else None,
                                depends_on=[SQL_PROXY_CONTAINER] if proxy is not None else None,
                                image=image,
                                command=quit_after(command) if proxy is not None else list(command),
                                env=env_entries(
                                    environment,
                                    secrets,
                                    env=run_job.CloudRunV2JobTemplateTemplateContainersEnv,
                                    source=run_job.CloudRunV2JobTemplateTemplateContainersEnvValueSource,
                                    ref=run_job.CloudRunV2JobTemplateTemplateContainersEnvValueSourceSecretKeyRef,
                                ),
                                volume_mounts=cloudsql_mounts(
                                    socket,
                                    mount=run_job.CloudRunV2JobTemplateTemplateContainersVolumeMounts,
                                ),
                            ),
                            *([job_proxy_container(proxy)] if proxy is not None else []),
                        ],
                        volumes=cloudsql_volumes(
                            socket,
                            volume=run_job.CloudRunV2JobTemplateTemplateVolumes,
                            instance=run_job.CloudRunV2JobTemplateTemplateVolumesCloudSqlInstance,
                        ),
                    ),
                ),
                depends_on=list(depends_on),
            )
        )
        self.run = flat(
            DataResource(
                self,
                "migrate-run",
                triggers_replace={"image": image},
                provisioners=[
                    LocalExecProvisioner(
                        type="local-exec",
                        command=(
                            f"gcloud run jobs execute {name}-migrate --project={project} "
                            f"--region={region} --wait --quiet"
                        ),
                    )
                ],
                depends_on=[self.job],
            )
        )
