"""The VPC a Cloud Run service egresses into (Direct VPC egress): a new one, or an existing one.

Memorystore for Redis has a private address only, so the service reaches it through a VPC.
Direct VPC egress puts the service's instances in a subnet of that VPC (no Serverless VPC
Access connector to pay for). Memorystore peers with the VPC itself (DIRECT_PEERING), so no
private services access range is needed either.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cdktf import TerraformResource
from cdktf_cdktf_provider_google.compute_network import ComputeNetwork
from cdktf_cdktf_provider_google.compute_subnetwork import ComputeSubnetwork, ComputeSubnetworkLogConfig
from constructs import Construct

# Direct VPC egress wants a subnet of /26 or larger: Cloud Run takes addresses in blocks
# as it scales (docs: cloud.google.com/run/docs/configuring/vpc-direct-vpc, IP allocation).
DIRECT_VPC_MAX_PREFIX = 26
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True, kw_only=True)
class NetworkOptions:
    """``existing_network`` and ``existing_subnetwork`` (names, in the stack's project and
    region) go together: both to use an existing VPC, neither to create one whose subnet
    gets ``subnet_cidr``."""

    existing_network: str | None = None
    existing_subnetwork: str | None = None
    subnet_cidr: str = "10.8.0.0/26"

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
        try:
            cidr = ipaddress.IPv4Network(self.subnet_cidr)
        except ValueError:
            raise ValueError(
                f"subnet_cidr must be an IPv4 network like 10.8.0.0/26, got {self.subnet_cidr!r}"
            ) from None
        if not cidr.is_private:
            raise ValueError(f"subnet_cidr must be a private range, got {self.subnet_cidr}")
        if cidr.prefixlen > DIRECT_VPC_MAX_PREFIX:
            raise ValueError(
                f"subnet_cidr must be /{DIRECT_VPC_MAX_PREFIX} or larger for Direct VPC egress, "
                f"got {self.subnet_cidr}"
            )

    @property
    def creates_network(self) -> bool:
        return self.existing_network is None


class EgressNetwork(Construct):
    """Parts, as attributes: ``network`` and ``subnetwork`` (None for an existing VPC), and
    what the consumers take: ``network_name``, ``subnetwork_name`` (Cloud Run's
    network interface) and ``network_id`` (``projects/<p>/global/networks/<n>``, Memorystore's
    authorized network)."""

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
        self.network_name = self.network.name
        self.subnetwork_name = self.subnetwork.name
        self.network_id = self.network.id
