"""The spec holds every limit the clouds and our constructs enforce.

Two directions: a table of documents the spec must refuse, each error naming every field at
fault; and boundary values of each field, in both stages, whose accepted specs must pass
every construct's own validation with the arguments the stacks would give (so synth never
fails later with a plain ValueError). The constructs' validations are called directly:
no synth, so hundreds of specs take a second or two.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.spec import Spec, SpecError, Stage, load_spec

STAGES = ("dev", "prod")


def write(tmp_path: Path, text: str = "project: shop\n") -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    return path


# (stage, context overrides, every field the message must name)
INVALID: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
    # Cloud Run: 512 MiB at least (Lambda would take 128), CPU and memory pairs.
    ("dev", {"spec.compute.memory_mib": "256"}, ("compute.memory_mib",)),
    ("dev", {"spec.compute.memory_mib": "10241"}, ("compute.memory_mib",)),  # Lambda's maximum
    ("dev", {"spec.compute.memory_mib": "4097"}, ("compute.memory_mib", "compute.cpu")),
    (
        "dev",
        {"spec.compute.memory_mib": "8193", "spec.compute.cpu": "2"},
        ("compute.memory_mib", "compute.cpu"),
    ),
    (
        "dev",
        {"spec.compute.cpu": "4", "spec.compute.memory_mib": "1024"},
        ("compute.cpu", "compute.memory_mib"),
    ),
    (
        "dev",
        {"spec.compute.cpu": "8", "spec.compute.memory_mib": "2048"},
        ("compute.cpu", "compute.memory_mib"),
    ),
    ("dev", {"spec.compute.cpu": "6"}, ("compute.cpu",)),  # Cloud Run has 6; the spec offers 1, 2, 4, 8
    ("dev", {"spec.compute.timeout_seconds": "29"}, ("compute.timeout_seconds",)),
    ("dev", {"spec.scaling.concurrency": "1001"}, ("scaling.concurrency",)),
    ("dev", {"spec.scaling.concurrency": "0"}, ("scaling.concurrency",)),
    ("prod", {"spec.scaling.max_instances": "1001"}, ("scaling.max_instances",)),
    # AWS: provisioned concurrency (min_instances) above the reserved (max_instances).
    (
        "prod",
        {
            "spec.scaling.min_instances": "6",
            "spec.scaling.max_instances": "5",
            "spec.scaling.reserve_concurrency": "true",
        },
        ("scaling.min_instances", "scaling.max_instances"),
    ),
    # AWS: RDS Proxy keeps Aurora from pausing (dev's min_capacity_acu is 0).
    ("dev", {"spec.database.rds_proxy": "true"}, ("database.rds_proxy", "database.min_capacity_acu")),
    (
        "prod",
        {"spec.database.rds_proxy": "true", "spec.database.min_capacity_acu": "0"},
        ("database.rds_proxy", "database.min_capacity_acu"),
    ),
    ("dev", {"spec.database.max_capacity_acu": "0.5"}, ("database.max_capacity_acu",)),
    ("dev", {"spec.database.backup_retention_days": "36"}, ("database.backup_retention_days",)),
    # Cloud SQL: more daily backups than days of transaction logs, logs 1..7 (Enterprise).
    (
        "dev",
        {"spec.database.transaction_log_retention_days": "2"},
        (
            "database.backup_retention_days",
            "database.transaction_log_retention_days",
            "database.point_in_time_recovery",
        ),
    ),
    (
        "prod",
        {"spec.database.backup_retention_days": "7"},
        ("database.backup_retention_days", "database.transaction_log_retention_days"),
    ),
    (
        "prod",
        {"spec.database.transaction_log_retention_days": "8"},
        ("database.transaction_log_retention_days",),
    ),
    # Cloud SQL tiers we can size connections for, and the connections themselves.
    ("dev", {"spec.database.tier": "db-n1-standard-1"}, ("database.tier",)),
    ("dev", {"spec.database.tier": "db-custom-3-7680"}, ("database.tier",)),
    ("dev", {"spec.scaling.max_instances": "11"}, ("database.tier", "scaling.max_instances")),
    ("prod", {"spec.database.tier": "db-f1-micro"}, ("database.tier", "scaling.max_instances")),
    ("prod", {"spec.scaling.max_instances": "199"}, ("database.tier", "scaling.max_instances")),
    # Direct VPC egress: a private range, large enough for the instances (the subnet we create).
    (
        "prod",
        {
            "spec.cache.enabled": "true",
            "spec.gcp.subnet_cidr": "10.8.0.0/26",
            "spec.scaling.max_instances": "30",
        },
        ("gcp.subnet_cidr", "scaling.max_instances"),
    ),
    ("dev", {"spec.gcp.subnet_cidr": "8.8.8.0/24"}, ("gcp.subnet_cidr",)),
    ("dev", {"spec.gcp.subnet_cidr": "10.8.0.1/24"}, ("gcp.subnet_cidr",)),
    ("dev", {"spec.gcp.subnet_cidr": "10.8.0.0/27"}, ("gcp.subnet_cidr",)),
    # Memorystore: 1..300 GB in either tier.
    ("dev", {"spec.cache.gcp_memory_gb": "301"}, ("cache.gcp_memory_gb",)),
    ("dev", {"spec.cache.gcp_memory_gb": "0"}, ("cache.gcp_memory_gb",)),
    # Names the constructs or the platforms set.
    ("dev", {"spec.secrets": "[REDIS_URL]"}, ("secrets",)),
    ("dev", {"spec.secrets": "[DATABASE_URL]"}, ("secrets",)),
    ("dev", {"spec.environment": "{APP_DB_USER: x}"}, ("environment",)),
    ("dev", {"spec.environment": "{PORT: '80'}"}, ("environment",)),
    ("dev", {"spec.environment": "{AWS_REGION: x}"}, ("environment",)),
    # The service's own bounds for attachments.
    ("dev", {"spec.storage.url_expiry_seconds": "59"}, ("storage.url_expiry_seconds",)),
    ("dev", {"spec.storage.max_upload_mib": "5121"}, ("storage.max_upload_mib",)),
    ("dev", {"spec.storage.noncurrent_days": "3651"}, ("storage.noncurrent_days",)),
]


@pytest.mark.parametrize(("stage", "context", "fields"), INVALID)
def test_the_spec_refuses_naming_every_field(
    tmp_path: Path, stage: str, context: dict[str, str], fields: tuple[str, ...]
) -> None:
    with pytest.raises(SpecError) as error:
        load_spec(write(tmp_path), context=context, stage=stage)
    message = str(error.value)
    for field in fields:
        assert field in message, f"{field} not named in:\n{message}"


# --- Every accepted spec passes every construct -----------------------------------------

# Boundary values, each varied alone from each stage's defaults ...
BOUNDARIES: dict[str, list[str]] = {
    "compute.memory_mib": ["512", "4096", "10240"],
    "compute.cpu": ["1", "2", "4", "8"],
    "compute.timeout_seconds": ["1", "28"],
    "scaling.min_instances": ["0", "1", "5", "100"],
    "scaling.max_instances": ["1", "5", "10", "11", "100", "198", "199", "1000"],
    "scaling.concurrency": ["1", "80", "1000"],
    "scaling.reserve_concurrency": ["true", "false"],
    "database.tier": [
        "db-f1-micro",
        "db-g1-small",
        "db-custom-1-3840",
        "db-custom-2-8192",
        "db-custom-96-368640",
    ],
    "database.backup_retention_days": ["1", "2", "7", "8", "35"],
    "database.point_in_time_recovery": ["true", "false"],
    "database.transaction_log_retention_days": ["1", "6", "7"],
    "database.min_capacity_acu": ["0", "0.5", "8"],
    "database.max_capacity_acu": ["1", "8", "256"],
    "database.rds_proxy": ["true", "false"],
    "cache.enabled": ["true", "false"],
    "cache.gcp_tier": ["BASIC", "STANDARD_HA"],
    "cache.gcp_memory_gb": ["1", "300"],
    "storage.enabled": ["true", "false"],
    "storage.max_upload_mib": ["1", "5120"],
    "storage.url_expiry_seconds": ["60", "3600"],
    "storage.noncurrent_days": ["1", "3650"],
    "gcp.subnet_cidr": ["10.8.0.0/26", "10.8.0.0/24", "172.16.0.0/16"],
    "secrets": ["[]", "[STRIPE_API_KEY]"],
}
# ... and the fields that constrain each other, in every combination.
GROUPS: list[dict[str, list[str]]] = [
    {
        "compute.cpu": ["1", "2", "4", "8"],
        "compute.memory_mib": ["512", "2047", "2048", "4096", "4097", "8192", "8193"],
    },
    {
        "database.tier": BOUNDARIES["database.tier"],
        "scaling.max_instances": BOUNDARIES["scaling.max_instances"],
    },
    {
        "database.backup_retention_days": BOUNDARIES["database.backup_retention_days"],
        "database.point_in_time_recovery": ["true", "false"],
        "database.transaction_log_retention_days": BOUNDARIES["database.transaction_log_retention_days"],
    },
    {
        "cache.enabled": ["true"],
        "gcp.subnet_cidr": BOUNDARIES["gcp.subnet_cidr"],
        "scaling.max_instances": ["1", "24", "30", "100", "120", "121"],
        "database.tier": ["db-custom-2-8192"],
    },
    {
        "database.rds_proxy": ["true", "false"],
        "database.min_capacity_acu": ["0", "0.5"],
        "database.max_capacity_acu": ["1", "8"],
    },
    {
        "cache.enabled": ["true"],
        "cache.gcp_tier": BOUNDARIES["cache.gcp_tier"],
        "cache.gcp_memory_gb": BOUNDARIES["cache.gcp_memory_gb"],
        "cache.gcp_redis_version": ["REDIS_7_2", "REDIS_6_X"],
    },
    {
        "storage.enabled": ["true"],
        "storage.max_upload_mib": BOUNDARIES["storage.max_upload_mib"],
        "storage.url_expiry_seconds": BOUNDARIES["storage.url_expiry_seconds"],
        "storage.noncurrent_days": BOUNDARIES["storage.noncurrent_days"],
        "cors_origins": ["[]", "[https://app.example.com]"],
    },
    {
        "scaling.min_instances": ["0", "5", "6"],
        "scaling.max_instances": ["5", "6"],
        "scaling.reserve_concurrency": ["true", "false"],
    },
]


def candidates() -> Iterator[tuple[str, dict[str, str]]]:
    for stage in STAGES:
        for field, values in BOUNDARIES.items():
            for value in values:
                yield stage, {f"spec.{field}": value}
        for group in GROUPS:
            for combination in itertools.product(*group.values()):
                yield stage, {f"spec.{field}": value for field, value in zip(group, combination, strict=True)}


def gcp_constructs_accept(spec: Spec) -> None:
    """What GcpServiceStack passes, through each construct's own validation."""
    from constructs_lib.gcp import limits
    from constructs_lib.gcp.cloud_run_service import _validate
    from stacks.gcp_stack import _cache, _database, _network, _storage

    network = _network(spec) if spec.cache.enabled else None
    _validate(
        name=spec.name,
        cpu=spec.compute.cpu,
        memory_mib=spec.compute.memory_mib,
        min_instances=spec.scaling.min_instances,
        max_instances=spec.scaling.max_instances,
        concurrency=spec.scaling.concurrency,
        health_path=spec.app.health_path,
        new_subnet_cidr=network.subnet_cidr if network is not None and network.creates_network else None,
    )
    if spec.app.database.enabled:
        database = _database(spec)
        limits.pool_size(
            tier=database.tier, max_instances=spec.scaling.max_instances, concurrency=spec.scaling.concurrency
        )
    if spec.cache.enabled:
        _cache(spec)
        assert "REDIS_URL" not in spec.secrets  # CloudRunService refuses it with the cache
    if spec.storage.enabled:
        _storage(spec, force_destroy=spec.stage is not Stage.PROD)


def aws_constructs_accept(spec: Spec) -> None:
    """The spec's values as AwsServiceStack passes them, through the AWS checks that stand
    alone: the stack's own DatabaseOptions, the Lambda service's _validate."""
    from aws_cdk import Duration

    from constructs_lib.aws.fastapi_lambda_service import _validate
    from stacks.aws_stack import database_options

    _validate(
        code_path=spec.service_path,
        memory_mib=spec.compute.memory_mib,
        timeout=Duration.seconds(spec.compute.timeout_seconds),
        reserved_concurrency=spec.scaling.max_instances if spec.scaling.reserve_concurrency else None,
        provisioned_concurrency=spec.scaling.min_instances,
    )
    database_options(spec)


def test_every_accepted_spec_passes_every_construct(tmp_path: Path) -> None:
    path = write(tmp_path)
    accepted: list[tuple[str, dict[str, str]]] = []
    refused = 0
    for stage, context in candidates():
        try:
            spec = load_spec(path, context=context, stage=stage)
        except SpecError:
            refused += 1  # a SpecError names the field; anything else would escape this test
            continue
        try:
            gcp_constructs_accept(spec)
            aws_constructs_accept(spec)
        except ValueError as error:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{stage} {context}: the spec accepts it, a construct refuses: {error}")
        accepted.append((stage, context))
    assert len(accepted) > 300 and refused > 50, (len(accepted), refused)
    # Each stage's defaults and the boundaries of every field are among the accepted.
    for stage in STAGES:
        for field in BOUNDARIES:
            assert any(s == stage and f"spec.{field}" in c for s, c in accepted), (stage, field)


@pytest.mark.parametrize("stage", STAGES)
def test_the_repository_spec_passes_every_construct(stage: str) -> None:
    spec = load_spec(stage=stage)
    gcp_constructs_accept(spec)
    aws_constructs_accept(spec)
    with_everything: dict[str, Any] = {"spec.cache.enabled": "true", "spec.storage.enabled": "true"}
    gcp_constructs_accept(load_spec(context=with_everything, stage=stage))
