"""ElastiCache Serverless (Valkey or Redis OSS) with a password user in Secrets Manager.

Serverless rather than a node: billed per stored data (Valkey: 100 MB minimum) and per request,
no instance running for an idle dev stage, always TLS in transit, always encrypted at rest.
Access is role-based (RBAC is the only access control serverless offers): one user, its
password generated into a JSON secret ``{"username", "password"}`` that the service reads, and
passed to ElastiCache by a CloudFormation dynamic reference (never in the template).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from aws_cdk import Names, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from constructs_lib.aws.cache_acl import APP_ACCESS_STRING, DEFAULT_USER_ACCESS_STRING
from constructs_lib.aws.nag import suppress

# The serverless primary endpoint; the reader endpoint (reads from replicas) is the next port.
CACHE_PORT = 6379
READER_PORT = 6380
# ElastiCache names (cache, user and user group ids): a letter, then letters, digits and single hyphens.
NAME_MAX_LENGTH = 40
PASSWORD_LENGTH = 64  # ElastiCache accepts 16-128 printable characters


class CacheEngine(StrEnum):
    VALKEY = "valkey"
    REDIS = "redis"


# Pinned so a new major is an explicit change: Valkey 8 and Redis OSS 7 are the newest
# majors ElastiCache Serverless offers for each engine.
MAJOR_VERSIONS = {CacheEngine.VALKEY: "8", CacheEngine.REDIS: "7"}


@dataclass(frozen=True, kw_only=True)
class CacheOptions:
    """What a caller may choose about the cache; everything else is a safe default."""

    engine: CacheEngine = CacheEngine.VALKEY
    max_data_gb: int = 1
    max_ecpu_per_second: int = 5000
    snapshot_retention_days: int = 0
    user_name: str = "app"
    # Admit the function on the reader endpoint's port too (only for clients that read from replicas).
    reader_endpoint: bool = False
    # The cache, its user group and users share one policy. DESTROY by default: what the service
    # keeps there is disposable, and their names are fixed (CloudFormation requires them), so a
    # cache kept after a stack deletion blocks the next create of the same stack.
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY

    def __post_init__(self) -> None:
        if not isinstance(self.engine, CacheEngine):
            raise ValueError(f"engine must be one of {[e.value for e in CacheEngine]}, got {self.engine!r}")
        if not 1 <= self.max_data_gb <= 5000:
            raise ValueError(f"max_data_gb must be 1..5000, got {self.max_data_gb}")
        if not 1000 <= self.max_ecpu_per_second <= 15_000_000:
            raise ValueError(f"max_ecpu_per_second must be 1000..15000000, got {self.max_ecpu_per_second}")
        if not 0 <= self.snapshot_retention_days <= 35:
            raise ValueError(f"snapshot_retention_days must be 0..35, got {self.snapshot_retention_days}")
        if self.removal_policy is RemovalPolicy.RETAIN:
            raise ValueError(
                "removal_policy RETAIN also keeps the cache when its creation rolls back, and its fixed "
                "names then block the retry: use DESTROY or RETAIN_ON_UPDATE_OR_DELETE"
            )
        if not self.user_name or self.user_name == "default" or any(c.isspace() for c in self.user_name):
            raise ValueError(
                f"user_name must be a non-empty name other than 'default', got {self.user_name!r}"
            )


class ServerlessCache(Construct):
    """The serverless cache, its security group (admits nobody until :meth:`allow_from`),
    its user and user group, and the user's credentials secret."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        options: CacheOptions,
    ) -> None:
        super().__init__(scope, construct_id)
        self.options = options
        removal = options.removal_policy
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"ElastiCache Serverless ({options.engine.value}) - admits only the API function",
            allow_all_outbound=False,
        )
        self.connections = ec2.Connections(
            security_groups=[self.security_group], default_port=ec2.Port.tcp(CACHE_PORT)
        )

        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="ElastiCache user of the FastAPI service: JSON with username and password",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": options.user_name}),
                generate_string_key="password",
                password_length=PASSWORD_LENGTH,
                # ElastiCache refuses some punctuation (" / @ and spaces); the URL the service
                # builds would need escaping for others.
                exclude_punctuation=True,
            ),
            removal_policy=removal,
        )
        suppress(
            self.secret,
            "AwsSolutions-SMG4",
            "Not rotated automatically: a rotation must change the ElastiCache user's password too, and "
            "each Lambda environment reads the secret once. Rotate by changing the secret and redeploying "
            "(CloudFormation passes the new value to the user through the dynamic reference).",
        )
        password = self.secret.secret_value_from_json("password").unsafe_unwrap()  # a dynamic reference

        base_name = Names.unique_resource_name(
            self, max_length=NAME_MAX_LENGTH - len("-default"), separator="-", allowed_special_characters="-"
        ).lower()
        self.user = elasticache.CfnUser(
            self,
            "User",
            engine=options.engine.value,
            user_id=f"{base_name}-app",
            user_name=options.user_name,
            access_string=APP_ACCESS_STRING,  # least privilege: see cache_acl
            authentication_mode={"Type": "password", "Passwords": [password]},
        )
        users = [self.user]
        if options.engine is CacheEngine.REDIS:
            # A Redis OSS user group must hold a user named "default" (a Valkey group need not, and
            # may only hold users that authenticate). This one is switched off: it can run nothing.
            self.default_user: elasticache.CfnUser | None = elasticache.CfnUser(
                self,
                "DefaultUser",
                engine=options.engine.value,
                user_id=f"{base_name}-default",
                user_name="default",
                access_string=DEFAULT_USER_ACCESS_STRING,
                authentication_mode={"Type": "password", "Passwords": [password]},
            )
            users.append(self.default_user)
        else:
            self.default_user = None
        self.user_group = elasticache.CfnUserGroup(
            self,
            "UserGroup",
            engine=options.engine.value,
            user_group_id=base_name,
            user_ids=[user.ref for user in users],
        )

        subnet_ids = vpc.select_subnets(
            availability_zones=subnets.availability_zones,
            one_per_az=subnets.one_per_az,
            subnet_filters=subnets.subnet_filters,
            subnet_group_name=subnets.subnet_group_name,
            subnets=subnets.subnets,
            subnet_type=subnets.subnet_type,
        ).subnet_ids
        self.cache = elasticache.CfnServerlessCache(
            self,
            "Cache",
            engine=options.engine.value,
            major_engine_version=MAJOR_VERSIONS[options.engine],
            serverless_cache_name=base_name,
            description="Cache of the FastAPI service",
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                    unit="GB", maximum=options.max_data_gb
                ),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(
                    maximum=options.max_ecpu_per_second
                ),
            ),
            security_group_ids=[self.security_group.security_group_id],
            subnet_ids=subnet_ids,
            user_group_id=self.user_group.ref,
            snapshot_retention_limit=options.snapshot_retention_days or None,
        )
        for resource in (self.cache, self.user_group, *users):
            resource.apply_removal_policy(removal)

    @property
    def endpoint_address(self) -> str:
        return self.cache.attr_endpoint_address

    @property
    def endpoint_port(self) -> str:
        return self.cache.attr_endpoint_port

    def allow_from(self, peer: ec2.IConnectable) -> None:
        """Admit ``peer`` on the cache port(s) (ingress here, egress on the peer)."""
        self.connections.allow_from(peer, ec2.Port.tcp(CACHE_PORT), "Cache primary endpoint from the API")
        if self.options.reader_endpoint:
            self.connections.allow_from(peer, ec2.Port.tcp(READER_PORT), "Cache reader endpoint from the API")
