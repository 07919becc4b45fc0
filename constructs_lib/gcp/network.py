"""The VPC a Cloud Run service egresses into (Direct VPC egress): a new one, or an existing one.

Memorystore for Redis has a private address only, so the service reaches it through a VPC.
Direct VPC egress puts the service's instances in a subnet of that VPC (no Serverless VPC
Access connector to pay for). Memorystore peers with the VPC itself (DIRECT_PEERING), so no
private services access range is needed either.

Destroy: Cloud Run keeps the subnet's addresses for 1 to 2 hours after the service is deleted
(cloud.google.com/run/docs/configuring/vpc-direct-vpc, "Delete a subnet"), and until then
Compute Engine refuses to delete the subnet (resourceInUseByAnotherResource). A longer
``timeouts { delete }`` would not help: the google provider sends the DELETE once and retries
only transient errors (429, 5xx, and "resourceNotReady" for subnetworks:
google/transport/error_retry_predicates.go), not a resource in use. So the subnet we create
comes with a ``terraform_data`` whose destroy-time provisioner, run after the service is gone
and before Terraform deletes the subnet, retries that delete with gcloud until Cloud Run has
let go (at most ``RELEASE_WAIT_MINUTES``); Terraform's own delete then finds it gone (404,
which the provider takes as deleted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdktf import DataResource, LocalExecProvisioner, TerraformResource, Token
from cdktf_cdktf_provider_google.compute_network import ComputeNetwork
from cdktf_cdktf_provider_google.compute_subnetwork import ComputeSubnetwork, ComputeSubnetworkLogConfig
from constructs import Construct

from constructs_lib.gcp.limits import subnet_error

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
# Cloud Run documents 1 to 2 hours; the provisioner gives up after 3 (the destroy then fails,
# and running it again resumes the wait).
RELEASE_WAIT_MINUTES = 180
RELEASE_POLL_SECONDS = 60


@dataclass(frozen=True, kw_only=True)
class NetworkOptions:
    """``existing_network`` and ``existing_subnetwork`` (names, in the stack's project and
    region) go together: both to use an existing VPC, neither to create one whose subnet
    gets ``subnet_cidr``."""

    existing_network: str | None = None
    existing_subnetwork: str | None = None
    subnet_cidr: str = "10.8.0.0/24"

    def __post_init__(self) -> None:
        if (self.existing_network is None) != (self.existing_subnetwork is None):
            raise ValueError("existing_network and existing_subnetwork go together: give both or neither")
        for field, value in (
            ("existing_network", self.existing_network),
            ("existing_subnetwork", self.existing_subnetwork),
        ):
            if value is not None and not _NAME.fullmatch(value):
                raise ValueError(
                    f"{field} must be a network name (lowercase, digits, hyphens), got {value!r}"
                )
        # Its size against the instances is checked where both are known (CloudRunService).
        problem = subnet_error(self.subnet_cidr, max_instances=1)
        if problem:
            raise ValueError(problem)

    @property
    def creates_network(self) -> bool:
        return self.existing_network is None


class EgressNetwork(Construct):
    """Parts, as attributes: ``network``, ``subnetwork`` and ``release_wait`` (the destroy-time
    wait for Cloud Run to release the subnet; all three None for an existing VPC), and what
    the consumers take: ``network_name``, ``subnetwork_name`` (Cloud Run's network interface:
    read through ``release_wait``, so a service using it is destroyed before the wait runs)
    and ``network_id`` (``projects/<p>/global/networks/<n>``, Memorystore's authorized
    network)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        options: NetworkOptions,
        depends_on: list[TerraformResource],
    ) -> None:
        super().__init__(scope, construct_id)
        self.network: ComputeNetwork | None = None
        self.subnetwork: ComputeSubnetwork | None = None
        self.release_wait: DataResource | None = None
        if options.existing_network is not None and options.existing_subnetwork is not None:
            self.network_name = options.existing_network
            self.subnetwork_name = options.existing_subnetwork
            self.network_id = f"projects/{project}/global/networks/{options.existing_network}"
            return
        self.network = ComputeNetwork(
            self,
            "network",
            project=project,
            name=name,
            description=f"Private egress of {name} (Direct VPC egress) and its Memorystore peering",
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            depends_on=depends_on,
        )
        self.subnetwork = ComputeSubnetwork(
            self,
            "subnetwork",
            project=project,
            region=region,
            name=f"{name}-egress",
            network=self.network.id,
            ip_cidr_range=options.subnet_cidr,
            # Google APIs (Secret Manager, Cloud Storage...) stay reachable on private
            # addresses, whatever the egress setting.
            private_ip_google_access=True,
            stack_type="IPV4_ONLY",
            # Flow logs record the service's connections to the cache (Direct VPC egress
            # traffic is logged, without the revision's name); sampled and aggregated over
            # 10 minutes, so the Cloud Logging volume stays small.
            log_config=ComputeSubnetworkLogConfig(
                aggregation_interval="INTERVAL_10_MIN", flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"
            ),
        )
        self.release_wait = DataResource(
            self,
            "subnetwork-release-wait",
            input={"project": project, "region": region, "subnetwork": self.subnetwork.name},
            provisioners=[
                LocalExecProvisioner(type="local-exec", when="destroy", command=_delete_once_released())
            ],
        )
        self.network_name = self.network.name
        # The output mirrors the input: the same name, and the dependency destroy needs.
        self.subnetwork_name = Token.as_string(
            self.release_wait.interpolation_for_attribute("output.subnetwork")
        )
        self.network_id = self.network.id


def _delete_once_released() -> str:
    """A POSIX sh loop: delete the subnet; while Compute Engine refuses (Cloud Run still holds
    addresses), wait and retry; stop when it is gone. Destroy-time provisioners may read only
    ``self``, hence ``self.input``."""
    where = "${self.input.subnetwork} --project=${self.input.project} --region=${self.input.region}"
    attempts = RELEASE_WAIT_MINUTES * 60 // RELEASE_POLL_SECONDS
    return (
        "n=0; "
        f"until gcloud compute networks subnets delete {where} --quiet; do "
        f"gcloud compute networks subnets describe {where} >/dev/null 2>&1 || exit 0; "
        f"n=$((n+1)); if [ $n -ge {attempts} ]; then "
        "echo 'Cloud Run still holds addresses in the subnet: run destroy again later' >&2; exit 1; fi; "
        "echo 'Cloud Run releases Direct VPC egress addresses 1-2 hours after the service is "
        f"deleted: retrying in {RELEASE_POLL_SECONDS} s'; sleep {RELEASE_POLL_SECONDS}; "
        "done"
    )
