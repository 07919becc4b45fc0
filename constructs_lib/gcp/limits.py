"""What Google Cloud refuses, and the arithmetic our constructs derive from it: plain Python.

No cdktf import, so the deployment spec (stacks/spec.py) checks the same rules before any
synth and the unit tests run in milliseconds. Each rule cites the page it comes from. The
functions return a message (``None`` when the values are fine) or the derived value; the
callers name their own fields in what they raise.
"""

from __future__ import annotations

import ipaddress
import math
import re

# --- Cloud Run: CPU and memory -----------------------------------------------------------
# cloud.google.com/run/docs/configuring/services/memory-limits ("Required minimum CPUs",
# "Maximum amount of memory", "Minimum memory": 512 MiB in the second generation execution
# environment) and .../services/cpu ("CPU and memory": minimum memory per CPU count).
CLOUD_RUN_CPUS = (1, 2, 4, 6, 8)
CLOUD_RUN_MIN_MEMORY_MIB = 512
CLOUD_RUN_MAX_MEMORY_MIB = 32 * 1024
# Memory above the first figure (MiB) needs at least the second number of CPUs.
CLOUD_RUN_CPUS_FOR_MEMORY = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))
# A CPU count needs at least this much memory (MiB).
CLOUD_RUN_MEMORY_FOR_CPUS = {4: 2 * 1024, 6: 4 * 1024, 8: 4 * 1024}
# Requests per instance (services/concurrency). Fractional CPUs (which would force a
# concurrency of 1) are not offered: cpu is a whole number here.
CLOUD_RUN_MAX_CONCURRENCY = 1000


def cloud_run_resources_error(
    *, cpu: int, memory_mib: int, cpu_field: str = "cpu", memory_field: str = "memory_mib"
) -> str | None:
    """Why Cloud Run would refuse this CPU and memory pair, naming the fields; else None."""
    if cpu not in CLOUD_RUN_CPUS:
        return f"{cpu_field} must be one of {', '.join(map(str, CLOUD_RUN_CPUS))} on Cloud Run, got {cpu}"
    if not CLOUD_RUN_MIN_MEMORY_MIB <= memory_mib <= CLOUD_RUN_MAX_MEMORY_MIB:
        return (
            f"{memory_field} must be {CLOUD_RUN_MIN_MEMORY_MIB}..{CLOUD_RUN_MAX_MEMORY_MIB} on Cloud Run, "
            f"got {memory_mib}"
        )
    for above, cpus in CLOUD_RUN_CPUS_FOR_MEMORY:
        if memory_mib > above and cpu < cpus:
            return (
                f"{memory_field} {memory_mib} needs {cpu_field} >= {cpus} on Cloud Run "
                f"(more than {above} MiB), got {cpu_field} {cpu}"
            )
    needed = CLOUD_RUN_MEMORY_FOR_CPUS.get(cpu, 0)
    if memory_mib < needed:
        return f"{cpu_field} {cpu} needs {memory_field} >= {needed} on Cloud Run, got {memory_mib}"
    return None


# --- Cloud Run: the Cloud SQL Auth Proxy sidecar --------------------------------------------
# Apps that read the database in parts get the proxy beside them (constructs_lib/gcp/sql_proxy.py).
# Each container has its own limits and Cloud Run checks their sum: its refusal "Total cpu < 1 is
# not supported with concurrency > 1" is about the total, and Google's own multi-container sample
# (GoogleCloudPlatform/cloud-run-samples, multi-container/hello-nginx-sample/service.yaml) runs a
# 500m ingress container beside a 1000m sidecar at the default concurrency. So a fractional
# sidecar in a service is allowed; a job needs at least 1 CPU (.../jobs/cpu), which we give the
# job's proxy outright. Memory: 512 MiB, the smallest instance memory of the second generation.
# What the sum must still respect, checked conservatively: at most 8 CPUs for the instance, and
# the app's memory plus the proxy's within what the app's own CPU count allows (the memory table
# read for the sum, without crediting the proxy's half CPU).
SQL_PROXY_SERVICE_CPU = "500m"
SQL_PROXY_SERVICE_MILLICPU = 500
SQL_PROXY_JOB_CPU = "1"
SQL_PROXY_MEMORY_MIB = 512
CLOUD_RUN_MAX_CPUS = max(CLOUD_RUN_CPUS)


def sql_proxy_resources_error(
    *, cpu: int, memory_mib: int, cpu_field: str = "cpu", memory_field: str = "memory_mib"
) -> str | None:
    """Why the app's CPU and memory leave no room for the Cloud SQL Auth Proxy sidecar; else None."""
    if cpu * 1000 + SQL_PROXY_SERVICE_MILLICPU > CLOUD_RUN_MAX_CPUS * 1000:
        return (
            f"{cpu_field} {cpu} leaves no room for the Cloud SQL Auth Proxy sidecar (0.5 CPU), which apps "
            f"reading the database in parts get: an instance's containers share at most "
            f"{CLOUD_RUN_MAX_CPUS} CPUs; use {cpu_field} 6 or less"
        )
    problem = cloud_run_resources_error(
        cpu=cpu, memory_mib=memory_mib + SQL_PROXY_MEMORY_MIB, cpu_field=cpu_field, memory_field=memory_field
    )
    if problem:
        return (
            f"{memory_field} {memory_mib} plus {SQL_PROXY_MEMORY_MIB} MiB for the Cloud SQL Auth Proxy "
            f"sidecar (apps reading the database in parts) is too much for {cpu_field} {cpu}: {problem}"
        )
    return None


# --- Cloud SQL for PostgreSQL: connections ----------------------------------------------
# Default max_connections by tier memory: cloud.google.com/sql/docs/postgres/quotas
# ("Maximum concurrent connections") and the max_connections entry of
# .../postgres/flags. We set no max_connections flag, so these defaults apply.
SHARED_CORE_MAX_CONNECTIONS = {"db-f1-micro": 25, "db-g1-small": 50}
# (memory from, in MiB; connections): 3.75 GB up to 6 GB: 100, and so on upwards.
MAX_CONNECTIONS_BY_MEMORY = (
    (120 * 1024, 1000),
    (60 * 1024, 800),
    (30 * 1024, 600),
    (15 * 1024, 500),
    (7680, 400),  # 7.5 GB
    (6 * 1024, 200),
    (3840, 100),  # 3.75 GB, the smallest dedicated-core memory
)
# PostgreSQL keeps superuser_reserved_connections (3 on Cloud SQL) for superusers; our roles,
# cloudsqlsuperuser members included, are not superusers, so those slots are not ours.
SUPERUSER_RESERVED_CONNECTIONS = 3
# The migration job: one task, one connection at a time (NullPool in migrations/env.py).
MIGRATION_CONNECTIONS = 1
# During a rollout the old revision's instances keep their pools open while the new
# revision scales up; max_instance_count limits each revision, not the service.
REVISIONS_DURING_ROLLOUT = 2
POOL_SIZE_CAP = 10  # the most a single instance gets, whatever the database allows
_CUSTOM_TIER = re.compile(r"db-custom-(\d+)-(\d+)")
# Custom machine types: 1 or an even number of vCPUs up to 96; memory a multiple of 256 MB,
# 0.9 to 6.5 GB per vCPU, at least 3.75 GB (cloud.google.com/sql/docs/postgres/instance-settings).
CUSTOM_MAX_CPUS = 96
CUSTOM_MEMORY_STEP_MIB = 256
CUSTOM_MIN_MEMORY_PER_CPU_MIB = 0.9 * 1024
CUSTOM_MAX_MEMORY_PER_CPU_MIB = 6.5 * 1024


def tier_error(tier: str) -> str | None:
    """Why this is not a tier we can size connections for (shared-core or db-custom-CPU-MB)."""
    if tier in SHARED_CORE_MAX_CONNECTIONS:
        return None
    match = _CUSTOM_TIER.fullmatch(tier)
    if match is None:
        return (
            f"must be {' or '.join(SHARED_CORE_MAX_CONNECTIONS)} or db-custom-<vCPUs>-<memory MiB> "
            f"(its connection limit follows from the memory), got {tier!r}"
        )
    cpus, memory = int(match[1]), int(match[2])
    if not (cpus == 1 or (cpus % 2 == 0 and cpus <= CUSTOM_MAX_CPUS)):
        return f"{tier!r}: vCPUs must be 1 or an even number up to {CUSTOM_MAX_CPUS}"
    if memory % CUSTOM_MEMORY_STEP_MIB or memory < MAX_CONNECTIONS_BY_MEMORY[-1][0]:
        return f"{tier!r}: memory must be a multiple of 256 MiB and at least 3840 MiB"
    if not CUSTOM_MIN_MEMORY_PER_CPU_MIB <= memory / cpus <= CUSTOM_MAX_MEMORY_PER_CPU_MIB:
        return f"{tier!r}: memory must be 0.9 to 6.5 GB per vCPU"
    return None


def max_connections(tier: str) -> int:
    """Cloud SQL's default max_connections for ``tier``; ValueError for a tier we cannot size."""
    problem = tier_error(tier)
    if problem is not None:
        raise ValueError(f"tier {problem}")
    if tier in SHARED_CORE_MAX_CONNECTIONS:
        return SHARED_CORE_MAX_CONNECTIONS[tier]
    match = _CUSTOM_TIER.fullmatch(tier)
    assert match is not None
    memory = int(match[2])
    return next(connections for floor, connections in MAX_CONNECTIONS_BY_MEMORY if memory >= floor)


def connections_per_instance(*, tier: str, max_instances: int) -> int:
    """What each Cloud Run instance may hold when every instance of two revisions is up, the
    migration job runs, and the reserved slots stay free (0: not even one fits)."""
    budget = max_connections(tier) - SUPERUSER_RESERVED_CONNECTIONS - MIGRATION_CONNECTIONS
    return budget // (REVISIONS_DURING_ROLLOUT * max_instances)


def pool_size(*, tier: str, max_instances: int, concurrency: int) -> int:
    """DB_POOL_SIZE for each instance (DB_MAX_OVERFLOW is 0): no more than it can use
    (``concurrency``), ``POOL_SIZE_CAP``, or its share of the tier's connections."""
    share = connections_per_instance(tier=tier, max_instances=max_instances)
    if share < 1:
        raise ValueError(pool_error(tier=tier, max_instances=max_instances))
    return min(concurrency, POOL_SIZE_CAP, share)


def pool_error(
    *, tier: str, max_instances: int, tier_field: str = "tier", instances_field: str = "max_instances"
) -> str:
    limit = max_connections(tier)
    budget = limit - SUPERUSER_RESERVED_CONNECTIONS - MIGRATION_CONNECTIONS
    fits = budget // REVISIONS_DURING_ROLLOUT
    return (
        f"{tier_field} {tier} allows {limit} connections: {budget} after the "
        f"{SUPERUSER_RESERVED_CONNECTIONS} reserved and the migration job's, so at most {fits} "
        f"instances with one connection each across a rollout (two revisions); {instances_field} "
        f"is {max_instances}: lower it or choose a larger tier"
    )


# --- Cloud SQL: backups and point-in-time recovery ----------------------------------------
# Automated backups are daily, so keeping N backups (retention_unit COUNT) keeps N days.
# Transaction logs for PITR: 1..7 days on the Enterprise edition (1..35 on Enterprise Plus),
# default 7; Cloud SQL refuses "backup retention should be > transaction log retention", and
# recommends one more backup than days of logs (.../backup-recovery/pitr, "Log storage for
# PITR"; sql_database_instance docs, backup_configuration.transaction_log_retention_days).
BACKUPS_PER_DAY = 1
MAX_RETAINED_BACKUPS = 365  # backup_retention_settings.retained_backups
ENTERPRISE_MAX_LOG_DAYS = 7


def retained_backups(backup_retention_days: int) -> int:
    """The COUNT of daily automated backups that keeps ``backup_retention_days`` days."""
    return backup_retention_days * BACKUPS_PER_DAY


def backups_error(
    *,
    backup_retention_days: int,
    point_in_time_recovery: bool,
    transaction_log_retention_days: int | None,
    days_field: str = "backup_retention_days",
    pitr_field: str = "point_in_time_recovery",
    logs_field: str = "transaction_log_retention_days",
) -> str | None:
    if not 1 <= retained_backups(backup_retention_days) <= MAX_RETAINED_BACKUPS:
        return f"{days_field} must be 1..{MAX_RETAINED_BACKUPS}, got {backup_retention_days}"
    if not point_in_time_recovery:
        return None
    if transaction_log_retention_days is None:
        return f"{pitr_field} needs {logs_field} (1..{ENTERPRISE_MAX_LOG_DAYS})"
    if not 1 <= transaction_log_retention_days <= ENTERPRISE_MAX_LOG_DAYS:
        return (
            f"{logs_field} must be 1..{ENTERPRISE_MAX_LOG_DAYS} on Cloud SQL Enterprise, "
            f"got {transaction_log_retention_days}"
        )
    if retained_backups(backup_retention_days) <= transaction_log_retention_days:
        return (
            f"{days_field} ({backup_retention_days}) must be greater than {logs_field} "
            f"({transaction_log_retention_days}) with {pitr_field}: Cloud SQL keeps more daily "
            f"backups than days of transaction logs (at least 2 days of backups for 1 day of logs)"
        )
    return None


# --- Direct VPC egress: the subnet --------------------------------------------------------
# cloud.google.com/run/docs/configuring/vpc-direct-vpc ("IP address allocation"): a /26 or
# larger subnet; in steady state Cloud Run uses 2 addresses per instance and reserves them 16
# (a /28) at a time; every subnet keeps 4 addresses of its primary range for itself
# (cloud.google.com/vpc/docs/subnets, "Reserved IP addresses in IPv4 subnets").
DIRECT_VPC_MAX_PREFIX = 26
ADDRESSES_PER_INSTANCE = 2
ADDRESS_BLOCK = 16
SUBNET_RESERVED_ADDRESSES = 4


def subnet_error(
    cidr: str, *, max_instances: int, cidr_field: str = "subnet_cidr", instances_field: str = "max_instances"
) -> str | None:
    """Why ``cidr`` cannot be a Direct VPC egress subnet for ``max_instances``; else None."""
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        return f"{cidr_field} must be an IPv4 network like 10.8.0.0/24 (no host bits), got {cidr!r}"
    if not network.is_private:
        return f"{cidr_field} must be a private range, got {cidr}"
    if network.prefixlen > DIRECT_VPC_MAX_PREFIX:
        return f"{cidr_field} must be /{DIRECT_VPC_MAX_PREFIX} or larger for Direct VPC egress, got {cidr}"
    needed = math.ceil(ADDRESSES_PER_INSTANCE * max_instances / ADDRESS_BLOCK) * ADDRESS_BLOCK
    usable = network.num_addresses - SUBNET_RESERVED_ADDRESSES
    if needed > usable:
        return (
            f"{cidr_field} {cidr} has {usable} usable addresses; Direct VPC egress takes "
            f"{ADDRESSES_PER_INSTANCE} per instance in blocks of {ADDRESS_BLOCK}, {needed} for "
            f"{instances_field} {max_instances}: use a larger range or fewer instances"
        )
    return None
