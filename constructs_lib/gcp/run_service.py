"""RunService: the Cloud Run service that serves the app, and who may invoke it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google import cloud_run_v2_service as run
from cdktf_cdktf_provider_google.cloud_run_v2_service_iam_member import CloudRunV2ServiceIamMember
from cdktf_cdktf_provider_google.secret_manager_secret import SecretManagerSecret
from constructs import Construct

from constructs_lib.gcp.addresses import Part, flat
from constructs_lib.gcp.containers import cloudsql_mounts, cloudsql_volumes, env_entries
from constructs_lib.gcp.network import EgressNetwork
from constructs_lib.gcp.sql_proxy import APP_CONTAINER, SQL_PROXY_CONTAINER, service_proxy_container

CONTAINER_PORT = 8080  # the default of app.port


class RunService(Part):
    """``service`` (the image's own command unless ``command`` is given; probes on
    ``health_path``; requests and probes on ``port``, which Cloud Run sets PORT to) and
    ``invoker`` (allUsers, when ``public``; else None). The instance ``connection_name`` is
    reached through the /cloudsql volume, or with ``sql_proxy`` through the Cloud SQL Auth Proxy
    sidecar on 127.0.0.1."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        image: str,
        command: Sequence[str] | None,
        service_account: str,
        cpu: int,
        memory_mib: int,
        min_instances: int,
        max_instances: int,
        concurrency: int,
        request_timeout_seconds: int,
        health_path: str,
        port: int = 8080,
        environment: Mapping[str, str],
        secrets: Mapping[str, SecretManagerSecret],
        connection_name: str | None,
        network: EgressNetwork | None,
        public: bool,
        deletion_protection: bool,
        depends_on: Sequence[ITerraformDependable],
        sql_proxy: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        proxy = connection_name if sql_proxy else None
        socket = None if sql_proxy else connection_name
        self.service = flat(
            run.CloudRunV2Service(
                self,
                "service",
                project=project,
                location=region,
                name=name,
                deletion_protection=deletion_protection,
                ingress="INGRESS_TRAFFIC_ALL",
                invoker_iam_disabled=False,
                template=run.CloudRunV2ServiceTemplate(
                    service_account=service_account,
                    max_instance_request_concurrency=concurrency,
                    timeout=f"{request_timeout_seconds}s",
                    scaling=run.CloudRunV2ServiceTemplateScaling(
                        min_instance_count=min_instances, max_instance_count=max_instances
                    ),
                    containers=[
                        run.CloudRunV2ServiceTemplateContainers(
                            # Named, and started after the proxy, when the proxy is beside it.
                            name=APP_CONTAINER if proxy is not None else None,
                            depends_on=[SQL_PROXY_CONTAINER] if proxy is not None else None,
                            image=image,
                            command=list(command) if command is not None else None,
                            ports=run.CloudRunV2ServiceTemplateContainersPorts(container_port=port),
                            resources=run.CloudRunV2ServiceTemplateContainersResources(
                                limits={"cpu": str(cpu), "memory": f"{memory_mib}Mi"},
                                cpu_idle=True,  # CPU only while serving requests
                                startup_cpu_boost=True,
                            ),
                            env=env_entries(
                                environment,
                                secrets,
                                env=run.CloudRunV2ServiceTemplateContainersEnv,
                                source=run.CloudRunV2ServiceTemplateContainersEnvValueSource,
                                ref=run.CloudRunV2ServiceTemplateContainersEnvValueSourceSecretKeyRef,
                            ),
                            startup_probe=run.CloudRunV2ServiceTemplateContainersStartupProbe(
                                http_get=run.CloudRunV2ServiceTemplateContainersStartupProbeHttpGet(
                                    path=health_path, port=port
                                ),
                                period_seconds=2,
                                failure_threshold=30,
                                timeout_seconds=2,
                            ),
                            liveness_probe=run.CloudRunV2ServiceTemplateContainersLivenessProbe(
                                http_get=run.CloudRunV2ServiceTemplateContainersLivenessProbeHttpGet(
                                    path=health_path, port=port
                                ),
                                period_seconds=30,
                                failure_threshold=3,
                                timeout_seconds=5,
                            ),
                            volume_mounts=cloudsql_mounts(
                                socket, mount=run.CloudRunV2ServiceTemplateContainersVolumeMounts
                            ),
                        ),
                        *([service_proxy_container(proxy)] if proxy is not None else []),
                    ],
                    volumes=cloudsql_volumes(
                        socket,
                        volume=run.CloudRunV2ServiceTemplateVolumes,
                        instance=run.CloudRunV2ServiceTemplateVolumesCloudSqlInstance,
                    ),
                    vpc_access=_direct_vpc_egress(network) if network is not None else None,
                ),
                depends_on=list(depends_on),
            )
        )
        self.invoker: CloudRunV2ServiceIamMember | None = None
        if public:
            self.invoker = flat(
                CloudRunV2ServiceIamMember(
                    self,
                    "public-invoker",
                    project=project,
                    location=region,
                    name=self.service.name,
                    role="roles/run.invoker",
                    member="allUsers",
                )
            )


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
