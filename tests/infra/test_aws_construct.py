"""The L3 on its own: typed inputs, an existing VPC, options, and errors at synth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from constructs_lib.aws.database import DatabaseOptions
from constructs_lib.aws.fastapi_lambda_service import FastApiLambdaService, lambda_handler_name
from tests.conftest import SERVICE_DIR
from tests.infra.conftest import CDK_CONTEXT, SKIP_BUNDLING


def build(**kwargs: Any) -> tuple[cdk.Stack, FastApiLambdaService]:
    app = cdk.App(context={**CDK_CONTEXT, **SKIP_BUNDLING})
    stack = cdk.Stack(app, "Test")
    vpc_factory: Callable[[cdk.Stack], ec2.IVpc] | None = kwargs.pop("vpc_factory", None)
    if vpc_factory is not None:
        kwargs["vpc"] = vpc_factory(stack)
    service = FastApiLambdaService(stack, "Service", code_path=SERVICE_DIR, **kwargs)
    return stack, service


@pytest.fixture(scope="module")
def with_options() -> tuple[Template, FastApiLambdaService]:
    stack, service = build(
        vpc_factory=lambda stack: ec2.Vpc(stack, "Existing", max_azs=2),
        architecture=lambda_.Architecture.X86_64,
        snap_start=True,
        reserved_concurrency=20,
        memory_size=2048,
        migrate_handler=None,
        database=DatabaseOptions(min_capacity_acu=1, max_capacity_acu=4, engine_version="16"),
    )
    return Template.from_stack(stack), service


def test_exposes_its_parts_as_typed_attributes(with_options: tuple[Template, FastApiLambdaService]) -> None:
    _, service = with_options
    assert isinstance(service.function, lambda_.Function)
    assert isinstance(service.alias, lambda_.Alias)
    assert service.http_api is service.api.http_api
    assert service.database.cluster.cluster_endpoint is not None
    assert service.database.secret is not None and service.secret_key is not None
    assert service.migrations is None and service.migrate_function is None


def test_uses_an_existing_vpc(with_options: tuple[Template, FastApiLambdaService]) -> None:
    template, service = with_options
    template.resource_count_is("AWS::EC2::VPC", 1)  # the caller's, no second one
    assert service.vpc.node.id == "Existing"


def test_snap_start_publishes_a_version_the_api_calls_through_an_alias(
    with_options: tuple[Template, FastApiLambdaService],
) -> None:
    template, _ = with_options
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "SnapStart": {"ApplyOn": "PublishedVersions"},
            "Architectures": ["x86_64"],
            "MemorySize": 2048,
            "ReservedConcurrentExecutions": 20,
        },
    )
    template.resource_count_is("AWS::Lambda::Version", 1)
    template.has_resource_properties("AWS::Lambda::Alias", {"Name": "live"})


def test_database_options_reach_the_cluster(with_options: tuple[Template, FastApiLambdaService]) -> None:
    template, _ = with_options
    template.has_resource_properties(
        "AWS::RDS::DBCluster",
        {
            "EngineVersion": Match.string_like_regexp(r"^16\."),
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 1, "MaxCapacity": 4},
            "DeletionProtection": True,
        },
    )
    template.has_resource("AWS::RDS::DBCluster", {"DeletionPolicy": "Retain"})
    template.resource_count_is("Custom::Trigger", 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory_size": 64}, "memory_size must be 128..10240 MiB, got 64"),
        ({"timeout": cdk.Duration.seconds(29)}, "timeout must be under the HTTP API integration's 29 s"),
        ({"reserved_concurrency": 0}, "reserved_concurrency must be >= 1"),
        ({"provisioned_concurrency": 5, "reserved_concurrency": 2}, "must not exceed reserved_concurrency"),
        ({"handler": "not a handler"}, "handler must look like 'module:attribute'"),
        ({"code_path": SERVICE_DIR / "missing"}, "code_path must be a directory"),
    ],
)
def test_invalid_inputs_fail_at_synth_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app = cdk.App(context=SKIP_BUNDLING)
        stack = cdk.Stack(app, "Test")
        FastApiLambdaService(stack, "Service", **{"code_path": SERVICE_DIR, **kwargs})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine_version": "12"}, "engine_version must be one of"),
        ({"min_capacity_acu": 4, "max_capacity_acu": 2}, "0 <= min_capacity_acu <= max_capacity_acu"),
        ({"max_capacity_acu": 0.5}, "max_capacity_acu must be >= 1"),
        ({"rds_proxy": True, "min_capacity_acu": 0}, "rds_proxy needs min_capacity_acu > 0"),
    ],
)
def test_invalid_database_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatabaseOptions(**options)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("lambda_handler:handler", "lambda_handler.handler"), ("pkg.mod.handler", "pkg.mod.handler")],
)
def test_handler_spellings(given: str, expected: str) -> None:
    assert lambda_handler_name(given) == expected
