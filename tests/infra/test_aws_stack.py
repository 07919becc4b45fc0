"""Fine-grained assertions on the synthesized AWS stack: each bullet of the design."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match

from constructs_lib.aws.fastapi_lambda_service import API_HANDLER, MIGRATE_HANDLER
from tests.infra.conftest import SynthesizedAws

# A generated RDS secret is referenced through its attachment (the ARN is the secret's).
SECRET_TYPES = ("AWS::SecretsManager::Secret", "AWS::SecretsManager::SecretTargetAttachment")


def resources(synth: SynthesizedAws, kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = synth.template.find_resources(kind)
    return found


def api_function(synth: SynthesizedAws) -> tuple[str, dict[str, Any]]:
    functions = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": API_HANDLER}}
    )
    assert len(functions) == 1
    return next(iter(functions.items()))


def migrate_function(synth: SynthesizedAws) -> tuple[str, dict[str, Any]]:
    functions = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": MIGRATE_HANDLER}}
    )
    assert len(functions) == 1
    return next(iter(functions.items()))


def single(synth: SynthesizedAws, kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(synth, kind)
    assert len(found) == 1, f"{kind}: {len(found)}"
    return next(iter(found.items()))


# --- Lambda -----------------------------------------------------------------------


def test_function_runtime_architecture_memory_timeout_tracing(aws_dev: SynthesizedAws) -> None:
    _, function = api_function(aws_dev)
    props = function["Properties"]
    assert (
        props["Runtime"] == "python3.14"
    )  # compute.python as conftest pins it (auto: test_python_runtime.py)
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 28  # under the integration's 29 s (API Gateway allows 30)
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert "ReservedConcurrentExecutions" not in props  # dev: no reservation (fresh accounts have little)


def test_function_logs_to_a_group_with_retention(aws_dev: SynthesizedAws, aws_prod: SynthesizedAws) -> None:
    for synth, days in ((aws_dev, 7), (aws_prod, 90)):
        _, function = api_function(synth)
        log_group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = synth.json["Resources"][log_group_id]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == days


def test_function_environment_has_arns_never_values(aws_dev: SynthesizedAws) -> None:
    _, function = api_function(aws_dev)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["ENVIRONMENT"] == "dev"
    assert env["APP_NAME"] == "FastAPI Service"
    assert env["CORS_ORIGINS"] == '["https://app.example.com"]'
    for name in ("DATABASE_SECRET_ARN", "SECRET_KEY_SECRET_ARN"):
        ref = env[name]["Ref"]
        assert aws_dev.json["Resources"][ref]["Type"] in SECRET_TYPES
    assert not {"DATABASE_URL", "SECRET_KEY", "PASSWORD"} & set(env)


def test_function_runs_in_isolated_subnets(aws_dev: SynthesizedAws) -> None:
    _, function = api_function(aws_dev)
    vpc_config = function["Properties"]["VpcConfig"]
    assert len(vpc_config["SubnetIds"]) == 2
    for subnet in vpc_config["SubnetIds"]:
        subnet_id = subnet["Ref"]
        tags = {t["Key"]: t["Value"] for t in aws_dev.json["Resources"][subnet_id]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"
    aws_dev.template.resource_count_is("AWS::EC2::NatGateway", 0)
    aws_dev.template.resource_count_is("AWS::EC2::InternetGateway", 0)


def test_reserved_concurrency_is_optional(aws_prod: SynthesizedAws) -> None:
    _, function = api_function(aws_prod)
    assert function["Properties"]["ReservedConcurrentExecutions"] == 20  # prod's scaling.max_instances


def test_the_api_points_at_a_published_version_through_an_alias(aws_dev: SynthesizedAws) -> None:
    function_id, _ = api_function(aws_dev)
    aliases = aws_dev.template.find_resources(
        "AWS::Lambda::Alias", {"Properties": {"FunctionName": {"Ref": function_id}, "Name": "live"}}
    )
    assert len(aliases) == 1
    alias_id = next(iter(aliases))
    _, integration = single(aws_dev, "AWS::ApiGatewayV2::Integration")
    assert integration["Properties"]["IntegrationUri"] == {"Ref": alias_id}


# --- HTTP API ---------------------------------------------------------------------


def test_http_api_proxy_integration_payload_v2(aws_dev: SynthesizedAws) -> None:
    aws_dev.template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})
    aws_dev.template.has_resource_properties(
        "AWS::ApiGatewayV2::Integration",
        {"IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0", "TimeoutInMillis": 29000},
    )
    aws_dev.template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "$default"})


def test_http_api_cors_from_the_spec(aws_dev: SynthesizedAws, aws_prod: SynthesizedAws) -> None:
    aws_dev.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "CorsConfiguration": Match.object_like(
                {"AllowOrigins": ["https://app.example.com"], "AllowCredentials": True}
            )
        },
    )
    _, api = single(aws_prod, "AWS::ApiGatewayV2::Api")
    assert api["Properties"]["CorsConfiguration"]["AllowOrigins"] == ["https://app.example.org"]
    # With credentials, "*" is not a wildcard for browsers: every method the API serves, by name.
    methods = set(api["Properties"]["CorsConfiguration"]["AllowMethods"])
    assert methods == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


def test_default_stage_has_json_access_logs_and_throttling(aws_dev: SynthesizedAws) -> None:
    _, stage = single(aws_dev, "AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 1000, "ThrottlingRateLimit": 500}
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert log_format["requestId"] == "$context.requestId"
    assert {"status", "integrationLatency", "routeKey", "ip"} <= log_format.keys()
    destination = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert aws_dev.json["Resources"][destination]["Type"] == "AWS::Logs::LogGroup"


def test_api_url_is_an_output(aws_dev: SynthesizedAws) -> None:
    outputs = aws_dev.template.find_outputs("ApiUrl")
    assert len(outputs) == 1
    value = json.dumps(next(iter(outputs.values()))["Value"])
    assert "execute-api" in value


# --- Aurora Serverless v2 --------------------------------------------------------


def test_aurora_serverless_v2_postgres(aws_dev: SynthesizedAws) -> None:
    _, cluster = single(aws_dev, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert re.fullmatch(r"17\.\d+", props["EngineVersion"])
    assert props["StorageEncrypted"] is True
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": 0,
        "MaxCapacity": 2,
        "SecondsUntilAutoPause": 600,
    }
    aws_dev.template.has_resource_properties(
        "AWS::RDS::DBInstance", {"DBInstanceClass": "db.serverless", "Engine": "aurora-postgresql"}
    )


def test_dev_may_be_destroyed_prod_is_retained_and_protected(
    aws_dev: SynthesizedAws, aws_prod: SynthesizedAws
) -> None:
    _, dev = single(aws_dev, "AWS::RDS::DBCluster")
    _, prod = single(aws_prod, "AWS::RDS::DBCluster")
    assert dev["DeletionPolicy"] in ("Delete", "Snapshot")
    assert dev["Properties"].get("DeletionProtection", False) is False
    # Kept on deletion and replacement, deleted when its own creation rolls back.
    assert prod["DeletionPolicy"] == "RetainExceptOnCreate" and prod["UpdateReplacePolicy"] == "Retain"
    # RDS's own flag stays off: RDS refuses to delete a protected cluster, so a first create
    # that failed after the cluster would not roll back. The prod stack is termination-protected.
    assert prod["Properties"].get("DeletionProtection", False) is False
    assert aws_prod.stack.termination_protection is True and aws_dev.stack.termination_protection is False
    assert prod["Properties"]["BackupRetentionPeriod"] == 14
    assert dev["Properties"]["BackupRetentionPeriod"] == 2
    assert prod["Properties"]["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0.5


def test_database_in_isolated_subnets(aws_dev: SynthesizedAws) -> None:
    _, group = single(aws_dev, "AWS::RDS::DBSubnetGroup")
    for subnet in group["Properties"]["SubnetIds"]:
        tags = {t["Key"]: t["Value"] for t in aws_dev.json["Resources"][subnet["Ref"]]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


def test_database_admits_only_the_functions_on_its_port(aws_dev: SynthesizedAws) -> None:
    _, cluster = single(aws_dev, "AWS::RDS::DBCluster")
    db_group = cluster["Properties"]["VpcSecurityGroupIds"][0]["Fn::GetAtt"][0]
    ingress = [
        r["Properties"]
        for r in resources(aws_dev, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == db_group
    ]
    function_groups = {
        fn["Properties"]["VpcConfig"]["SecurityGroupIds"][0]["Fn::GetAtt"][0]
        for fn in (api_function(aws_dev)[1], migrate_function(aws_dev)[1])
    }
    assert {rule["SourceSecurityGroupId"]["Fn::GetAtt"][0] for rule in ingress} == function_groups
    assert all(rule["FromPort"] == rule["ToPort"] == 5432 for rule in ingress)
    inline = aws_dev.json["Resources"][db_group]["Properties"].get("SecurityGroupIngress", [])
    assert inline == []


def test_optional_rds_proxy(aws_dev: SynthesizedAws, aws_prod: SynthesizedAws) -> None:
    aws_dev.template.resource_count_is("AWS::RDS::DBProxy", 0)
    aws_prod.template.has_resource_properties(
        "AWS::RDS::DBProxy", {"RequireTLS": True, "EngineFamily": "POSTGRESQL"}
    )
    _, function = api_function(aws_prod)
    assert "DATABASE_HOST" in function["Properties"]["Environment"]["Variables"]


# --- Secrets ----------------------------------------------------------------------


def test_generated_credentials_and_secret_key(aws_dev: SynthesizedAws) -> None:
    secrets = resources(aws_dev, "AWS::SecretsManager::Secret")
    generators = [s["Properties"]["GenerateSecretString"] for s in secrets.values()]
    assert {"PasswordLength": 64, "ExcludePunctuation": True} in generators
    assert any(g.get("GenerateStringKey") == "password" for g in generators)
    # The master user's and the application role's, each with the cluster's host and port.
    aws_dev.template.resource_count_is("AWS::SecretsManager::SecretTargetAttachment", 2)


def _secrets_read_by(synth: SynthesizedAws, function: dict[str, Any]) -> set[str]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        p
        for p in resources(synth, "AWS::IAM::Policy").values()
        if role in {r["Ref"] for r in p["Properties"]["Roles"]}
    ]
    assert policies
    read_secrets: set[str] = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Resource"] == "*":
                assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, statement
            if "secretsmanager:GetSecretValue" in actions:
                refs = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                read_secrets |= {ref["Ref"] for ref in refs}
    return read_secrets


def test_functions_may_read_exactly_their_secrets(aws_dev: SynthesizedAws) -> None:
    """The API reads the application role's credentials, never the master user's; the migrations
    read both (they create the role from its secret)."""
    secret_ids = {k for kind in SECRET_TYPES for k in resources(aws_dev, kind)}
    attachments = resources(aws_dev, "AWS::SecretsManager::SecretTargetAttachment")
    secret_of = {k: a["Properties"]["SecretId"]["Ref"] for k, a in attachments.items()}
    secrets = resources(aws_dev, "AWS::SecretsManager::Secret")

    def user_of(ref: str) -> str:
        template = secrets[secret_of.get(ref, ref)]["Properties"].get("GenerateSecretString", {})
        return str(json.loads(template.get("SecretStringTemplate", "{}")).get("username", "<key>"))

    api_reads = _secrets_read_by(aws_dev, api_function(aws_dev)[1])
    migrate_reads = _secrets_read_by(aws_dev, migrate_function(aws_dev)[1])
    assert api_reads <= secret_ids and migrate_reads <= secret_ids
    assert sorted(map(user_of, api_reads)) == ["<key>", "app_service"]
    assert sorted(map(user_of, migrate_reads)) == ["<key>", "app_admin", "app_service"]
    api_env = api_function(aws_dev)[1]["Properties"]["Environment"]["Variables"]
    migrate_env = migrate_function(aws_dev)[1]["Properties"]["Environment"]["Variables"]
    assert user_of(api_env["DATABASE_SECRET_ARN"]["Ref"]) == "app_service"
    assert user_of(migrate_env["DATABASE_SECRET_ARN"]["Ref"]) == "app_admin"
    assert user_of(migrate_env["APP_DB_SECRET_ARN"]["Ref"]) == "app_service"
    assert "APP_DB_SECRET_ARN" not in api_env
    # Both name the stack's database: RDS's generated master secret carries no dbname.
    assert api_env["DATABASE_NAME"] == migrate_env["DATABASE_NAME"] == "app"


def test_secrets_manager_is_reached_through_an_interface_endpoint(aws_dev: SynthesizedAws) -> None:
    _, endpoint = single(aws_dev, "AWS::EC2::VPCEndpoint")
    props = endpoint["Properties"]
    assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True
    assert "secretsmanager" in json.dumps(props["ServiceName"])


def test_no_secret_value_in_the_template(aws_dev: SynthesizedAws, aws_prod: SynthesizedAws) -> None:
    for synth in (aws_dev, aws_prod):
        text = json.dumps(synth.json)
        assert not re.search(r'"SecretString":', text)  # generated, never given
        assert not re.search(r"postgres(ql)?(\+asyncpg)?://[^\"]*:[^\"@]+@", text)
        assert 'SECRET_KEY":' not in text


# --- Migrations -------------------------------------------------------------------


def test_migrations_run_in_the_vpc_before_the_new_code(aws_dev: SynthesizedAws) -> None:
    migrate_id, migrate = migrate_function(aws_dev)
    assert "VpcConfig" in migrate["Properties"]
    triggers = resources(aws_dev, "Custom::Trigger")
    assert len(triggers) == 1
    trigger_id, trigger = next(iter(triggers.items()))
    versions = aws_dev.template.find_resources(
        "AWS::Lambda::Version", {"Properties": {"FunctionName": {"Ref": migrate_id}}}
    )
    assert trigger["Properties"]["HandlerArn"] == {"Ref": next(iter(versions))}
    assert trigger["Properties"]["InvocationType"] == "RequestResponse"
    cluster_id, _ = single(aws_dev, "AWS::RDS::DBCluster")
    assert cluster_id in trigger["DependsOn"]
    _, function = api_function(aws_dev)
    assert trigger_id in function.get("DependsOn", [])
