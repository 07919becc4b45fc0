"""Memorystore for Redis: the service's cache, private to a VPC, with AUTH and TLS.

Memorystore has no serverless tier: one instance of a fixed size, billed while it exists.
It peers with the given VPC directly (``DIRECT_PEERING``: Google allocates its range; no
private services access to set up) and serves TLS on port 6378 with a certificate of its own
server CA (``SERVER_AUTHENTICATION``), so a client verifies it with that CA's PEM.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cdktf import Fn, TerraformResource, Token
from cdktf_cdktf_provider_google.redis_instance import RedisInstance
from constructs import Construct

REDIS_VERSIONS = ("REDIS_7_2", "REDIS_7_0", "REDIS_6_X")
MAX_MEMORY_GB = 300  # the largest Memorystore for Redis instance, either tier
INSTANCE_ID_MAX = 40


class RedisTier(StrEnum):
    BASIC = "BASIC"  # one node: a restart or maintenance empties the cache
    STANDARD_HA = "STANDARD_HA"  # a replica in another zone, automatic failover (twice the price)


@dataclass(frozen=True, kw_only=True)
class CacheOptions:
    tier: RedisTier = RedisTier.BASIC
    memory_gb: int = 1
    redis_version: str = "REDIS_7_2"

    def __post_init__(self) -> None:
        if not isinstance(self.tier, RedisTier):
            raise ValueError(f"tier must be one of {[t.value for t in RedisTier]}, got {self.tier!r}")
        if not 1 <= self.memory_gb <= MAX_MEMORY_GB:
            raise ValueError(f"memory_gb must be 1..{MAX_MEMORY_GB}, got {self.memory_gb}")
        if self.redis_version not in REDIS_VERSIONS:
            raise ValueError(
                f"redis_version must be one of {list(REDIS_VERSIONS)}, got {self.redis_version!r}"
            )


class MemorystoreCache(Construct):
    """Parts, as attributes: ``instance``; for the client: ``url`` (``rediss://`` with the AUTH
    string: a secret, for Secret Manager only), ``ca_cert`` (PEM of the server CAs: public),
    ``host`` and ``port``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        authorized_network: str,
        options: CacheOptions,
        depends_on: list[TerraformResource],
    ) -> None:
        super().__init__(scope, construct_id)
        self.instance = RedisInstance(
            self,
            "instance",
            project=project,
            region=region,
            name=_instance_id(name),
            display_name=f"Cache of {name}",
            tier=options.tier.value,
            memory_size_gb=options.memory_gb,
            redis_version=options.redis_version,
            authorized_network=authorized_network,
            connect_mode="DIRECT_PEERING",
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            labels={"app": name},
            depends_on=depends_on,
        )
        self.host = self.instance.host
        self.port = Token.as_string(self.instance.port)  # 6378 with TLS
        # Database 0; "rediss" is TLS. The AUTH string goes in URL-encoded, whatever it holds.
        self.url = f"rediss://:{Fn.urlencode(self.instance.auth_string)}@{self.host}:{self.port}/0"
        # Every server CA, as one PEM bundle: a new CA is published five years into the
        # instance's life while the old one stays valid, so a client trusts both.
        self.ca_cert = Fn.join(
            "\n", Token.as_list(self.instance.interpolation_for_attribute("server_ca_certs[*].cert"))
        )


def _instance_id(name: str) -> str:
    """A Memorystore instance id: at most 40 lowercase letters, digits or hyphens."""
    suffix = "-cache"
    return name[: INSTANCE_ID_MAX - len(suffix)].rstrip("-") + suffix
