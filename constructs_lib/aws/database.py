"""Aurora Serverless v2 PostgreSQL with generated credentials in Secrets Manager."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration, Names, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IConstruct

from constructs_lib.aws.nag import suppress

POSTGRES_PORT = 5432

# The newest minor of each major that the installed aws-cdk-lib knows (a test holds this to
# the library, so an upgrade of it makes the choice again). New clusters are offered only recent
# minors: check a region with `aws rds describe-db-engine-versions --engine aurora-postgresql
# --query "DBEngineVersions[].EngineVersion"` (docs/aws.md). A running cluster
# then follows the minor upgrades (auto_minor_version_upgrade); pinned here, a later deploy
# never asks CloudFormation for a downgrade, since this only changes when it is raised. All
# accept 0 ACU (scale-to-zero needs 13.15 / 14.12 / 15.7 / 16.3 or newer).
ENGINE_VERSIONS: dict[str, rds.AuroraPostgresEngineVersion] = {
    "16": rds.AuroraPostgresEngineVersion.VER_16_13,
    "17": rds.AuroraPostgresEngineVersion.VER_17_9,
}
# The cluster's master user owns the schema and runs the migrations; the service connects as
# APP_ROLE, which the migrations create with the data privileges only (service/webapi/migrate.py).
MASTER_USER = "app_admin"
APP_ROLE = "app_service"


@dataclass(frozen=True, kw_only=True)
class DatabaseOptions:
    """What a caller may choose about the database; everything else is a safe default."""

    version: str = "17"
    min_capacity_acu: float = 0
    max_capacity_acu: float = 2
    database_name: str = "app"
    backup_retention: Duration = field(default_factory=lambda: Duration.days(7))
    # RDS's own flag, against deletion outside CloudFormation. Off by default: RDS refuses to
    # delete a protected cluster, so a first create that fails after the cluster exists (a
    # migration, the API function) could not roll back (ROLLBACK_FAILED, the cluster billing,
    # its identifier blocking the retry). The removal policy already keeps the cluster on stack
    # deletion and replacement; turn this on only once the stack exists.
    deletion_protection: bool = False
    # Kept on stack deletion and replacement, deleted when its own creation rolls back (a failed
    # first deploy leaves nothing billing and nothing whose fixed name a retry would collide with).
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
    rds_proxy: bool = False
    auto_pause: Duration = field(default_factory=lambda: Duration.minutes(10))
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH

    def __post_init__(self) -> None:
        if self.version not in ENGINE_VERSIONS:
            raise ValueError(f"version must be one of {sorted(ENGINE_VERSIONS)}, got {self.version!r}")
        if not 0 <= self.min_capacity_acu <= self.max_capacity_acu <= 256:
            raise ValueError(
                "capacity must satisfy 0 <= min_capacity_acu <= max_capacity_acu <= 256, "
                f"got {self.min_capacity_acu}..{self.max_capacity_acu}"
            )
        if self.max_capacity_acu < 1:
            raise ValueError(f"max_capacity_acu must be >= 1, got {self.max_capacity_acu}")
        if self.removal_policy is RemovalPolicy.RETAIN:
            raise ValueError(
                "removal_policy RETAIN also keeps the cluster when its creation rolls back (and its fixed "
                "identifier then blocks the retry): use RETAIN_ON_UPDATE_OR_DELETE, SNAPSHOT or DESTROY"
            )
        if self.rds_proxy and self.min_capacity_acu == 0:
            raise ValueError("rds_proxy needs min_capacity_acu > 0: RDS Proxy keeps Aurora from pausing")

    @property
    def scales_to_zero(self) -> bool:
        return self.min_capacity_acu == 0


class ServerlessPostgres(Construct):
    """The cluster, its security group, the master user's secret (``secret``: the migrations)
    and the application role's (``app_secret``: the service). Admits nobody: callers are
    admitted with :meth:`allow_from` (the database port only)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        options: DatabaseOptions,
    ) -> None:
        super().__init__(scope, construct_id)
        self.options = options
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Aurora PostgreSQL - admits only the service functions",
            allow_all_outbound=False,
        )
        # A fixed identifier lets the log group for the PostgreSQL log export exist (with
        # its retention) before the cluster writes to it: no log-retention custom resource.
        self.cluster_identifier = Names.unique_resource_name(self, max_length=60).lower()
        self.log_group = logs.LogGroup(
            self,
            "PostgresLogs",
            log_group_name=f"/aws/rds/cluster/{self.cluster_identifier}/postgresql",
            retention=options.log_retention,
            removal_policy=options.removal_policy,
        )
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSIONS[options.version]),
            writer=rds.ClusterInstance.serverless_v2("Writer", auto_minor_version_upgrade=True),
            serverless_v2_min_capacity=options.min_capacity_acu,
            serverless_v2_max_capacity=options.max_capacity_acu,
            serverless_v2_auto_pause_duration=options.auto_pause if options.scales_to_zero else None,
            credentials=rds.Credentials.from_generated_secret(MASTER_USER),
            default_database_name=options.database_name,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            storage_encrypted=True,
            iam_authentication=True,
            backup=rds.BackupProps(retention=options.backup_retention),
            deletion_protection=options.deletion_protection,
            removal_policy=options.removal_policy,
            copy_tags_to_snapshot=True,
            cluster_identifier=self.cluster_identifier,
            cloudwatch_logs_exports=["postgresql"],
        )
        self.cluster.node.add_dependency(self.log_group)
        if not options.deletion_protection:
            suppress(
                self.cluster,
                "AwsSolutions-RDS10",
                "RDS deletion protection would stop a first create that fails after the cluster exists "
                "from rolling back (RDS refuses to delete a protected cluster: ROLLBACK_FAILED, and the "
                "fixed identifier blocks the retry). In prod the cluster is kept by DeletionPolicy "
                "RetainExceptOnCreate on stack deletion and replacement, and the stack has termination "
                "protection; dev is meant to be destroyed.",
            )
        secret = self.cluster.secret
        assert secret is not None  # from_generated_secret always creates one
        self.secret: secretsmanager.ISecret = secret
        # aws-cdk-lib leaves the generated secret at DESTROY whatever the cluster's policy:
        # a retained database must keep its credentials.
        secret_resource = self.cluster.node.find_child("Secret")
        secret_resource.node.default_child.apply_removal_policy(options.removal_policy)  # type: ignore[union-attr]
        suppress(
            secret_resource,
            "AwsSolutions-SMG4",
            "Not rotated automatically: the service reads the credentials once per Lambda execution "
            "environment, so a rotation would break new connections from warm environments. Rotate "
            "by changing the secret and redeploying.",
        )

        # The service's own role: its password generated here; the migrations (as the master
        # user) create the role with it. The attachment adds the cluster's host, port and engine
        # to the secret, so it reads like the master's.
        app_secret = rds.DatabaseSecret(self, "AppSecret", username=APP_ROLE, dbname=options.database_name)
        app_secret.apply_removal_policy(options.removal_policy)
        suppress(
            app_secret,
            "AwsSolutions-SMG4",
            "Not rotated automatically: the migration function sets the role's password from this "
            "secret whenever it runs, and each Lambda environment reads it once. Rotate by changing "
            "the secret, invoking the migration function (output MigrateFunctionName), then "
            "publishing a new API version (a deploy).",
        )
        self.app_secret: secretsmanager.ISecret = app_secret.attach(self.cluster)

        self.proxy: rds.DatabaseProxy | None = None
        if options.rds_proxy:
            self.proxy = self.cluster.add_proxy(
                "Proxy", secrets=[secret, self.app_secret], vpc=vpc, vpc_subnets=subnets, require_tls=True
            )

    @property
    def endpoint_connections(self) -> ec2.Connections:
        """What clients connect to: the proxy when there is one, else the cluster."""
        return self.proxy.connections if self.proxy is not None else self.cluster.connections

    @property
    def ready_for_migrations(self) -> list[Construct]:
        """What the migrations need before they run: the cluster and its writer, and both
        credentials secrets with the cluster's address attached; not the proxy."""
        parts: list[IConstruct | None] = [
            self.cluster.node.default_child,
            self.cluster.node.find_child("Writer"),
            self.secret,
            self.app_secret,
        ]
        return [part for part in parts if isinstance(part, Construct)]

    def allow_direct_from(self, peer: ec2.IConnectable) -> None:
        """Admit ``peer`` on the cluster itself, bypassing any proxy (the migrations: DDL and a
        session-level advisory lock, which would pin a proxy connection anyway)."""
        self.cluster.connections.allow_from(peer, ec2.Port.tcp(POSTGRES_PORT), "PostgreSQL, direct")

    def allow_from(self, peer: ec2.IConnectable) -> None:
        """Admit ``peer`` on the PostgreSQL port (ingress here, egress on the peer)."""
        self.endpoint_connections.allow_from(peer, ec2.Port.tcp(POSTGRES_PORT), "PostgreSQL from the service")
        if self.proxy is not None:
            self.cluster.connections.allow_from(
                self.proxy, ec2.Port.tcp(POSTGRES_PORT), "PostgreSQL from RDS Proxy"
            )
