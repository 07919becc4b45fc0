"""Google Cloud's limits and the arithmetic derived from them (constructs_lib/gcp/limits.py):
plain Python, no synth, except the last test, which checks the synthesized pool sizes."""

from __future__ import annotations

import pytest

from constructs_lib.gcp import limits
from tests.infra.gcp_synth import SynthesizedGcp

# --- Cloud SQL connections and the pool -----------------------------------------------


@pytest.mark.parametrize(
    ("tier", "connections"),
    [
        ("db-f1-micro", 25),
        ("db-g1-small", 50),
        ("db-custom-1-3840", 100),  # 3.75 GB up to 6 GB
        ("db-custom-1-6144", 200),  # 6 GB up to 7.5 GB
        ("db-custom-2-7680", 400),  # 7.5 GB up to 15 GB
        ("db-custom-2-8192", 400),  # prod's default
        ("db-custom-4-15360", 500),
        ("db-custom-8-30720", 600),
        ("db-custom-16-61440", 800),
        ("db-custom-32-122880", 1000),
    ],
)
def test_max_connections_follow_the_tier_memory(tier: str, connections: int) -> None:
    assert limits.max_connections(tier) == connections


@pytest.mark.parametrize(
    ("tier", "problem"),
    [
        ("db-n1-standard-1", "must be db-f1-micro or db-g1-small or db-custom-"),
        ("db-custom-3-7680", "vCPUs must be 1 or an even number"),
        ("db-custom-1-3328", "at least 3840 MiB"),
        ("db-custom-2-8000", "a multiple of 256 MiB"),
        ("db-custom-1-7168", "0.9 to 6.5 GB per vCPU"),
        ("db-custom-8-6144", "0.9 to 6.5 GB per vCPU"),
    ],
)
def test_tiers_we_cannot_size_are_refused(tier: str, problem: str) -> None:
    message = limits.tier_error(tier)
    assert message is not None and problem in message
    with pytest.raises(ValueError, match="tier "):
        limits.max_connections(tier)


@pytest.mark.parametrize(
    ("tier", "max_instances", "concurrency", "pool"),
    [
        # (25 - 3 reserved - 1 migration) // (2 revisions x 5 instances) = 2
        ("db-f1-micro", 5, 80, 2),
        ("db-f1-micro", 10, 80, 1),
        ("db-g1-small", 5, 80, 4),  # 46 // 10
        ("db-custom-1-3840", 10, 80, 4),  # 96 // 20
        ("db-custom-2-8192", 100, 80, 1),  # 396 // 200: prod's default
        ("db-custom-2-8192", 5, 40, 10),  # capped at POOL_SIZE_CAP
        ("db-custom-2-8192", 5, 3, 3),  # never more than the requests an instance serves at once
        ("db-custom-32-122880", 1, 1000, 10),
    ],
)
def test_pool_size_is_the_instance_share_of_the_tier(
    tier: str, max_instances: int, concurrency: int, pool: int
) -> None:
    assert limits.pool_size(tier=tier, max_instances=max_instances, concurrency=concurrency) == pool


@pytest.mark.parametrize(
    ("tier", "most"), [("db-f1-micro", 10), ("db-g1-small", 23), ("db-custom-2-8192", 198)]
)
def test_more_instances_than_the_tier_serves_are_refused(tier: str, most: int) -> None:
    assert limits.pool_size(tier=tier, max_instances=most, concurrency=80) == 1
    with pytest.raises(ValueError) as error:
        limits.pool_size(tier=tier, max_instances=most + 1, concurrency=80)
    message = str(error.value)
    assert f"tier {tier} allows {limits.max_connections(tier)} connections" in message
    assert f"max_instances is {most + 1}" in message


def test_pools_never_exceed_the_connection_limit_across_a_rollout() -> None:
    """Every accepted combination: both revisions at max_instances with full pools, the
    migration job and the reserved slots fit within max_connections."""
    tiers = [*limits.SHARED_CORE_MAX_CONNECTIONS, "db-custom-1-3840", "db-custom-2-8192", "db-custom-4-16384"]
    checked = 0
    for tier in tiers:
        for max_instances in range(1, 1001):
            for concurrency in (1, 10, 80, 1000):
                try:
                    pool = limits.pool_size(tier=tier, max_instances=max_instances, concurrency=concurrency)
                except ValueError:
                    assert limits.connections_per_instance(tier=tier, max_instances=max_instances) == 0
                    continue
                used = 2 * max_instances * pool + limits.MIGRATION_CONNECTIONS
                assert used + limits.SUPERUSER_RESERVED_CONNECTIONS <= limits.max_connections(tier)
                assert 1 <= pool <= min(concurrency, limits.POOL_SIZE_CAP)
                checked += 1
    assert checked > 1000


# --- Backups and point-in-time recovery -------------------------------------------------


def test_days_of_backups_are_a_count_of_daily_backups() -> None:
    assert [limits.retained_backups(days) for days in (1, 2, 14, 35)] == [1, 2, 14, 35]


@pytest.mark.parametrize(
    ("days", "pitr", "logs", "problem"),
    [
        (1, False, None, None),  # dev: a day of backups, no logs
        (2, True, 1, None),  # the least PITR needs
        (14, True, 7, None),  # prod
        (8, True, 7, None),
        (1, True, 7, "backup_retention_days (1) must be greater than transaction_log_retention_days (7)"),
        (7, True, 7, "backup_retention_days (7) must be greater than transaction_log_retention_days (7)"),
        (14, True, 8, "transaction_log_retention_days must be 1..7 on Cloud SQL Enterprise"),
        (14, True, None, "point_in_time_recovery needs transaction_log_retention_days"),
        (0, False, None, "backup_retention_days must be 1..365"),
        (366, False, None, "backup_retention_days must be 1..365"),
    ],
)
def test_backups_against_transaction_logs(
    days: int, pitr: bool, logs: int | None, problem: str | None
) -> None:
    message = limits.backups_error(
        backup_retention_days=days, point_in_time_recovery=pitr, transaction_log_retention_days=logs
    )
    assert message == problem if problem is None else (message is not None and problem in message)


# --- Cloud Run CPU and memory -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "problem"),
    [
        (1, 512, None),
        (1, 511, "memory_mib must be 512..32768"),
        (1, 4096, None),
        (1, 4097, "memory_mib 4097 needs cpu >= 2"),
        (2, 8192, None),
        (2, 8193, "memory_mib 8193 needs cpu >= 4"),
        (4, 2047, "cpu 4 needs memory_mib >= 2048"),
        (4, 2048, None),
        (4, 16384, None),
        (4, 16385, "memory_mib 16385 needs cpu >= 6"),
        (6, 4096, None),
        (6, 24577, "memory_mib 24577 needs cpu >= 8"),
        (8, 4095, "cpu 8 needs memory_mib >= 4096"),
        (8, 32768, None),
        (8, 32769, "memory_mib must be 512..32768"),
        (3, 1024, "cpu must be one of 1, 2, 4, 6, 8"),
    ],
)
def test_cloud_run_cpu_and_memory_pairs(cpu: int, memory: int, problem: str | None) -> None:
    message = limits.cloud_run_resources_error(cpu=cpu, memory_mib=memory)
    assert message == problem if problem is None else (message is not None and problem in message)


@pytest.mark.parametrize(
    ("cpu", "memory", "problem"),
    [
        (1, 1024, None),
        (1, 3584, None),  # + 512 MiB for the proxy: 4 GiB, what 1 CPU allows
        (1, 3585, "memory_mib 3585 plus 512 MiB for the Cloud SQL Auth Proxy"),
        (2, 7680, None),
        (2, 7681, "needs cpu >= 4"),
        (4, 10240, None),
        (6, 4096, None),
        (8, 4096, "cpu 8 leaves no room for the Cloud SQL Auth Proxy sidecar"),
    ],
)
def test_room_for_the_sql_proxy_sidecar(cpu: int, memory: int, problem: str | None) -> None:
    """Apps reading the database in parts share their instance with the proxy (0.5 CPU, 512 MiB
    in a service): the total stays within 8 CPUs, and the memory within the app's CPU count."""
    message = limits.sql_proxy_resources_error(cpu=cpu, memory_mib=memory)
    assert message == problem if problem is None else (message is not None and problem in message)


# --- Direct VPC egress subnets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "max_instances", "problem"),
    [
        ("10.8.0.0/26", 24, None),  # 48 addresses, 3 blocks of 16, of 60 usable
        ("10.8.0.0/26", 30, "10.8.0.0/26 has 60 usable addresses"),  # 60 -> 4 blocks = 64
        ("10.8.0.0/24", 100, None),  # 200 -> 208 of 252: the default
        ("10.8.0.0/24", 120, None),
        ("10.8.0.0/24", 121, "10.8.0.0/24 has 252 usable addresses"),
        ("10.8.0.0/21", 1000, None),
        ("10.8.0.0/27", 1, "must be /26 or larger"),
        ("8.8.8.0/24", 1, "must be a private range"),
        ("10.8.0.1/24", 1, "must be an IPv4 network"),
    ],
)
def test_direct_vpc_subnet_against_max_instances(cidr: str, max_instances: int, problem: str | None) -> None:
    message = limits.subnet_error(cidr, max_instances=max_instances)
    assert message == problem if problem is None else (message is not None and problem in message)


# --- What the stack synthesizes -----------------------------------------------------------


def test_the_synthesized_pool_size_is_the_derived_one(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    from tests.infra.test_gcp_stack import JOB, SERVICE, container

    sizes = []
    for synth in (gcp_dev, gcp_prod, gcp_variant):
        spec = synth.spec
        expected = limits.pool_size(
            tier=spec.database.tier,
            max_instances=spec.scaling.max_instances,
            concurrency=spec.scaling.concurrency,
        )
        for kind in (SERVICE, JOB):
            env = {item["name"]: item.get("value") for item in container(synth, kind)["env"]}
            assert env["DB_POOL_SIZE"] == str(expected), (spec.stage, kind)
            assert env["DB_MAX_OVERFLOW"] == "0"
        sizes.append(expected)
    assert sizes == [2, 9, 10]  # dev (f1-micro, 5), prod (400 connections, 20), variant (5 instances)
