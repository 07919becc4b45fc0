"""The L3 on its own: typed inputs, an existing VPC, options, and errors at synth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from constructs_lib.app import AppOptions, DatabaseSettings
from constructs_lib.aws.cache import CacheEngine, CacheOptions, ServerlessCache
from constructs_lib.aws.database import DatabaseOptions
from constructs_lib.aws.fastapi_lambda_service import FastApiLambdaService
from constructs_lib.aws.storage import StorageOptions, UploadsBucket
from tests.conftest import SERVICE_DIR
from tests.infra.conftest import CDK_CONTEXT, SKIP_BUNDLING


def build(**kwargs: Any) -> tuple[cdk.Stack, FastApiLambdaService]:
    app = cdk.App(context={**CDK_CONTEXT, **SKIP_BUNDLING})
    stack = cdk.Stack(app, "Test")
    vpc_factory: Callable[[cdk.Stack], ec2.IVpc] | None = kwargs.pop("vpc_factory", None)
    if vpc_factory is not None:
        kwargs["vpc"] = vpc_factory(stack)
    kwargs.setdefault("app", SAMPLE)
    service = FastApiLambdaService(stack, "Service", code_path=SERVICE_DIR, **kwargs)
    return stack, service


# The example service, as the stack describes it (deploy.yaml's app section).
SAMPLE = AppOptions(
    entrypoint="webapi.main:create_app",
    factory=True,
    migrations="command",
    migrate_command=("python", "-m", "webapi.migrate"),
    database=DatabaseSettings(settings="secret-arns"),
)


@pytest.fixture(scope="module")
def with_options() -> tuple[Template, FastApiLambdaService]:
    stack, service = build(
        vpc_factory=lambda stack: ec2.Vpc(stack, "Existing", max_azs=2),
        architecture=lambda_.Architecture.X86_64,
        snap_start=True,
        reserved_concurrency=20,
        memory_mib=2048,
        app=AppOptions(
            entrypoint="webapi.main:create_app", database=DatabaseSettings(settings="secret-arns")
        ),
        database=DatabaseOptions(min_capacity_acu=1, max_capacity_acu=4, version="16"),
        cache=CacheOptions(engine=CacheEngine.REDIS, reader_endpoint=True, max_data_gb=2),
        storage=StorageOptions(
            prefix="files/",
            versioned=False,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        ),
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
    assert isinstance(service.cache, ServerlessCache) and isinstance(service.storage, UploadsBucket)
    assert service.cache.secret is not None and service.cache.security_group is not None
    assert service.cache.cache.engine == "redis"
    assert service.storage.bucket.bucket_name is not None


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
            "DeletionProtection": False,  # RDS would refuse to roll back a failed first create
        },
    )
    template.has_resource("AWS::RDS::DBCluster", {"DeletionPolicy": "RetainExceptOnCreate"})
    template.resource_count_is("Custom::Trigger", 0)


def test_no_cors_origins_no_cors(with_options: tuple[Template, FastApiLambdaService]) -> None:
    template, _ = with_options
    for api in template.find_resources("AWS::ApiGatewayV2::Api").values():
        assert "CorsConfiguration" not in api["Properties"]
    for bucket in template.find_resources("AWS::S3::Bucket").values():
        assert "CorsConfiguration" not in bucket["Properties"]


def test_a_redis_oss_user_group_holds_a_disabled_default_user(
    with_options: tuple[Template, FastApiLambdaService],
) -> None:
    template, _ = with_options
    users = template.find_resources("AWS::ElastiCache::User")
    assert {u["Properties"]["Engine"] for u in users.values()} == {"redis"}
    by_name = {u["Properties"]["UserName"]: (logical_id, u) for logical_id, u in users.items()}
    assert set(by_name) == {"app", "default"}
    default = by_name["default"][1]["Properties"]
    assert default["AccessString"] == "off -@all"  # may not authenticate, may run nothing
    app_user = by_name["app"][1]["Properties"]
    assert app_user["AccessString"].startswith(
        "on ~login:fail:* ~signup:* ~user:v1:* -@all "
    )  # same on Redis OSS
    assert default["AuthenticationMode"]["Type"] == "password"
    template.has_resource_properties(
        "AWS::ElastiCache::UserGroup",
        {
            "Engine": "redis",
            "UserIds": Match.array_with([{"Ref": logical_id} for logical_id, _ in by_name.values()]),
        },
    )
    template.has_resource_properties(
        "AWS::ElastiCache::ServerlessCache",
        {
            "Engine": "redis",
            "MajorEngineVersion": "7",
            "CacheUsageLimits": Match.object_like({"DataStorage": {"Maximum": 2, "Unit": "GB"}}),
        },
    )
    cache = next(iter(template.find_resources("AWS::ElastiCache::ServerlessCache").values()))
    assert "SnapshotRetentionLimit" not in cache["Properties"]  # the default: no snapshots


def test_reader_endpoint_port_on_request(with_options: tuple[Template, FastApiLambdaService]) -> None:
    template, _ = with_options
    (cache,) = template.find_resources("AWS::ElastiCache::ServerlessCache").values()
    (cache_group,) = cache["Properties"]["SecurityGroupIds"]
    ports = sorted(
        rule["Properties"]["FromPort"]
        for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == cache_group
    )
    assert ports == [6379, 6380]  # the primary endpoint and the reader endpoint


def test_a_disposable_bucket_is_emptied_on_delete_and_keeps_no_versions(
    with_options: tuple[Template, FastApiLambdaService],
) -> None:
    template, _ = with_options
    (bucket,) = template.find_resources("AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == "Delete"
    assert "VersioningConfiguration" not in bucket["Properties"]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [rule["AbortIncompleteMultipartUpload"] for rule in rules] == [{"DaysAfterInitiation": 1}]
    template.resource_count_is("Custom::S3AutoDeleteObjects", 1)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like({"UPLOADS_PREFIX": "files/", "STORAGE_BACKEND": "s3"})
            }
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Resource": {"Fn::Join": ["", [Match.any_value(), "/files/*"]]}})]
                )
            }
        },
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_data_gb": 0}, "max_data_gb must be 1..5000, got 0"),
        ({"max_ecpu_per_second": 10}, "max_ecpu_per_second must be 1000..15000000, got 10"),
        ({"snapshot_retention_days": 36}, "snapshot_retention_days must be 0..35, got 36"),
        ({"user_name": "default"}, "user_name must be a non-empty name other than 'default'"),
        ({"engine": "memcached"}, "engine must be one of"),
    ],
)
def test_invalid_cache_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CacheOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": "Uploads"}, "prefix must look like 'uploads/'"),
        ({"max_upload": cdk.Size.gibibytes(6)}, "max_upload must be 1 byte..5 GiB"),
        ({"prefix": 'up"loads/'}, "prefix must look like 'uploads/'"),
        (
            {"prefix": "a" * 64 + "/"},
            "prefix must look like 'uploads/'",
        ),  # 65 characters: the service caps it at 64
        # The service's UPLOAD_URL_EXPIRY_SECONDS bounds (60..3600), not SigV4's 7 days.
        ({"url_expiry": cdk.Duration.seconds(59)}, "url_expiry must be whole seconds in 60 s..1 hour"),
        ({"url_expiry": cdk.Duration.seconds(3601)}, "url_expiry must be whole seconds in 60 s..1 hour"),
        ({"url_expiry": cdk.Duration.days(7)}, "url_expiry must be whole seconds in 60 s..1 hour"),
        ({"url_expiry": cdk.Duration.millis(60_500)}, "url_expiry must be whole seconds in 60 s..1 hour"),
        ({"auto_delete_objects": True}, "auto_delete_objects needs removal_policy=RemovalPolicy.DESTROY"),
    ],
)
def test_invalid_storage_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StorageOptions(**options)


def test_storage_options_accept_the_service_bounds() -> None:
    for seconds in (60, 3600):
        assert StorageOptions(url_expiry=cdk.Duration.seconds(seconds)).url_expiry.to_seconds() == seconds
    assert StorageOptions(prefix="a/b_c-d/").prefix == "a/b_c-d/"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory_mib": 64}, "memory_mib must be 128..10240 MiB, got 64"),
        ({"timeout": cdk.Duration.seconds(29)}, "timeout must be under the HTTP API integration's 29 s"),
        ({"reserved_concurrency": 0}, "reserved_concurrency must be >= 1"),
        ({"provisioned_concurrency": 5, "reserved_concurrency": 2}, "must not exceed reserved_concurrency"),
        ({"code_path": SERVICE_DIR / "missing"}, "code_path must be a directory"),
    ],
)
def test_invalid_inputs_fail_at_synth_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app = cdk.App(context=SKIP_BUNDLING)
        stack = cdk.Stack(app, "Test")
        FastApiLambdaService(stack, "Service", **{"code_path": SERVICE_DIR, "app": SAMPLE, **kwargs})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"version": "12"}, "version must be one of"),
        ({"min_capacity_acu": 4, "max_capacity_acu": 2}, "0 <= min_capacity_acu <= max_capacity_acu"),
        ({"max_capacity_acu": 0.5}, "max_capacity_acu must be >= 1"),
        ({"rds_proxy": True, "min_capacity_acu": 0}, "rds_proxy needs min_capacity_acu > 0"),
    ],
)
def test_invalid_database_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatabaseOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"entrypoint": "main"}, "entrypoint must look like 'module:attribute'"),
        ({"entrypoint": "main:app", "migrations": "command"}, "needs migrate_command"),
        ({"entrypoint": "main:app", "migrations": "alembic", "database": None}, "need a database"),
    ],
)
def test_invalid_app_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppOptions(**options)


def test_an_app_without_a_database_or_cache_runs_outside_any_vpc() -> None:
    stack, service = build(app=AppOptions(entrypoint="main:app", database=None))
    template = Template.from_stack(stack)
    for kind in ("AWS::EC2::VPC", "AWS::EC2::VPCEndpoint", "AWS::RDS::DBCluster", "AWS::EC2::SecurityGroup"):
        template.resource_count_is(kind, 0)
    assert service.vpc is None and service.database is None and service.migrate_function is None
    (function,) = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "serverless_fastapi_entry.lambda_api.handler"}}
    ).values()
    assert "VpcConfig" not in function["Properties"]
    env = function["Properties"]["Environment"]["Variables"]
    # The entry reads the signing key into SECRET_KEY; nothing of the example service's.
    assert env["FASTAPI_DEPLOY_ENTRYPOINT"] == "main:app"
    parts = env["FASTAPI_DEPLOY_SECRETS"]["Fn::Join"][1]
    assert parts[0] == '{"SECRET_KEY": "' and parts[1] == {
        "Ref": stack.get_logical_id(service.secret_key.node.default_child)
    }
    assert not {
        "ENVIRONMENT",
        "DATABASE_SECRET_ARN",
        "SECRET_KEY_SECRET_ARN",
        "DB_CONNECT_TIMEOUT_SECONDS",
    } & set(env)


def test_variables_over_lambdas_4_kb_fail_at_synth() -> None:
    """Lambda refuses a function whose variables exceed 4 KB in all: synth says so first,
    counting each deploy-time ARN at its resolved length."""
    with pytest.raises(ValueError, match=r"environment: .* over Lambda's 4096"):
        build(environment={"CONFIG": "x" * 3600})
    build(environment={"CONFIG": "x" * 1500})  # the sample's own variables leave room for this
