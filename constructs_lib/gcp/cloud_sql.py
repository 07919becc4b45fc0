"""CloudSqlPostgres: a Cloud SQL for PostgreSQL instance, its database and its built-in user
(the twin of the AWS ServerlessPostgres)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
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
from cdktf_cdktf_provider_random.password import Password
from constructs import Construct

from constructs_lib.gcp import limits
from constructs_lib.gcp.addresses import Part, flat

CLOUDSQL_MOUNT = "/cloudsql"
POSTGRES_PORT = 5432
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
# The role our sample service connects as. Its migrations create it over SQL (APP_DB_USER,
# APP_DB_PASSWORD) with the privileges the service needs; a google_sql_user would make it a
# member of cloudsqlsuperuser, which is what the owner (the built-in user) already is.
APP_DB_ROLE = "app_service"


@dataclass(frozen=True, kw_only=True)
class CloudSqlOptions:
    """``backup_retention_days`` days of daily automated backups (Cloud SQL counts backups:
    limits.retained_backups converts); with ``point_in_time_recovery``,
    ``transaction_log_retention_days`` of logs, fewer than the days of backups."""

    version: str = "17"
    tier: str = "db-f1-micro"
    database_name: str = "app"
    user_name: str = "app"  # the built-in user: owns the schema
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


class CloudSqlPostgres(Part):
    """``instance``, ``database``, ``owner_password`` (generated) and ``user`` (the built-in
    user, with that password); ``connection_name`` and ``socket_dir`` (where Cloud Run's
    /cloudsql volume puts the instance's Unix socket)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        options: CloudSqlOptions,
        depends_on: Sequence[ITerraformDependable],
    ) -> None:
        super().__init__(scope, construct_id)
        self.options = options
        self.instance = flat(
            SqlDatabaseInstance(
                self,
                "sql",
                project=project,
                region=region,
                name=f"{name}-pg",
                database_version=POSTGRES_VERSIONS[options.version],
                deletion_protection=options.deletion_protection,
                settings=SqlDatabaseInstanceSettings(
                    tier=options.tier,
                    edition="ENTERPRISE",  # shared-core tiers (db-f1-micro, db-g1-small) exist only there
                    availability_type="ZONAL",
                    deletion_protection_enabled=options.deletion_protection,
                    disk_autoresize=True,
                    backup_configuration=SqlDatabaseInstanceSettingsBackupConfiguration(
                        enabled=True,
                        point_in_time_recovery_enabled=options.point_in_time_recovery,
                        # Without PITR there are no transaction logs to keep: left unset (and no
                        # value of 1..7 would be below a single day of backups).
                        transaction_log_retention_days=(
                            options.transaction_log_retention_days if options.point_in_time_recovery else None
                        ),
                        # Daily backups, counted: N of them keep N days.
                        backup_retention_settings=SqlDatabaseInstanceSettingsBackupConfigurationBackupRetentionSettings(
                            retained_backups=options.retained_backups, retention_unit="COUNT"
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
                depends_on=list(depends_on),
            )
        )
        self.database = flat(
            SqlDatabase(
                self, "database", project=project, instance=self.instance.name, name=options.database_name
            )
        )
        self.owner_password = flat(Password(self, "db-password", length=32, special=False))
        # The built-in user (a cloudsqlsuperuser member), owner of the schema.
        self.user = flat(
            SqlUser(
                self,
                "user",
                project=project,
                instance=self.instance.name,
                name=options.user_name,
                password_wo=self.owner_password.result,
                # The migrations make this user own the tables, and PostgreSQL refuses to drop
                # an owner: on destroy the user goes with the instance instead.
                deletion_policy="ABANDON",
                password_wo_version=1,
            )
        )
        self.connection_name = self.instance.connection_name
        self.socket_dir = f"{CLOUDSQL_MOUNT}/{self.connection_name}"
