"""The AWS output held to CloudFormation's and the services' own rules, not to our intent.

* Every call the service makes at run time, found in its code, has a network path (egress from
  the function's security group, ingress or an endpoint on the far side) and a grant.
* The deploy lifecycle: a first create that fails halfway leaves nothing behind (no plain
  ``Retain``), and no fixed name is introduced unseen; dev's destroy leaves nothing; what the
  first deploy reads exists before it is read.
* The Aurora engine version is the newest the installed library knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_rds as rds

from constructs_lib.aws.database import ENGINE_VERSIONS
from tests.conftest import SERVICE_DIR
from tests.infra.conftest import SynthesizedAws
from tests.infra.test_aws_stack import api_function, migrate_function, resources, single

WEBAPI = SERVICE_DIR / "webapi"


@pytest.fixture(params=["dev", "prod"])
def synthesized(request: pytest.FixtureRequest) -> SynthesizedAws:
    """dev: every option off; prod: cache, storage and RDS Proxy on (tests/infra/conftest.py)."""
    return request.getfixturevalue(f"aws_{request.param}")  # type: ignore[no-any-return]


# --- network paths ----------------------------------------------------------------------------


def _ref(value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return json.dumps(value)


def _rules(synth: SynthesizedAws, kind: str, group: str) -> list[dict[str, Any]]:
    """A security group's rules: inline and separate (``Egress``/``Ingress``)."""
    inline_key = "SecurityGroupEgress" if kind == "Egress" else "SecurityGroupIngress"
    rules = list(synth.json["Resources"][group]["Properties"].get(inline_key, []))
    rules += [
        r["Properties"]
        for r in resources(synth, f"AWS::EC2::SecurityGroup{kind}").values()
        if _ref(r["Properties"]["GroupId"]) == group
    ]
    return rules


def _covers(rule: dict[str, Any], port: int) -> bool:
    low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
    if not isinstance(low, int) or not isinstance(high, int):
        return False  # a port known only at deploy time (GetAtt) proves nothing here
    return rule.get("IpProtocol") in ("tcp", "-1") and rule.get("FromPort", 0) <= port <= rule.get(
        "ToPort", 65535
    )


def assert_path(synth: SynthesizedAws, source: str, target: str, port: int) -> None:
    """Egress from ``source`` to ``target`` on ``port``, and ``target``'s ingress from ``source``."""
    egress = [
        r
        for r in _rules(synth, "Egress", source)
        if _ref(r.get("DestinationSecurityGroupId")) == target or r.get("CidrIp") == "0.0.0.0/0"
    ]
    ingress = [r for r in _rules(synth, "Ingress", target) if _ref(r.get("SourceSecurityGroupId")) == source]
    assert any(_covers(r, port) for r in egress), f"no egress {source} -> {target}:{port}"
    assert any(_covers(r, port) for r in ingress), f"no ingress {target}:{port} <- {source}"


def function_group(function: dict[str, Any]) -> str:
    (group,) = function["Properties"]["VpcConfig"]["SecurityGroupIds"]
    return _ref(group)


def function_subnets(function: dict[str, Any]) -> set[str]:
    return {_ref(s) for s in function["Properties"]["VpcConfig"]["SubnetIds"]}


def _statements(synth: SynthesizedAws, function: dict[str, Any]) -> list[dict[str, Any]]:
    role = _ref(function["Properties"]["Role"])
    return [
        statement
        for policy in resources(synth, "AWS::IAM::Policy").values()
        if role in {r["Ref"] for r in policy["Properties"]["Roles"]}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(synth: SynthesizedAws, function: dict[str, Any], action: str) -> list[Any]:
    """The resources ``function`` may call ``action`` on."""
    return [
        resource
        for statement in _statements(synth, function)
        if statement["Effect"] == "Allow" and action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


def runtime_calls() -> set[str]:
    """What the service calls over the network, read from its code: the AWS services it makes
    boto3 clients for, and the database and cache drivers it imports."""
    calls: set[str] = set()
    for path in WEBAPI.rglob("*.py"):
        text = path.read_text()
        calls |= {f"aws:{name}" for name in re.findall(r"boto3\.client\(\s*\"([a-z0-9-]+)\"", text)}
        if re.search(r"^\s*import asyncpg|create_async_engine\(", text, re.M):
            calls.add("postgresql")
        if re.search(r"^\s*from redis\.asyncio", text, re.M):
            calls.add("redis")
    return calls


COVERED_CALLS = {"postgresql", "aws:secretsmanager", "aws:s3", "redis"}


def test_every_runtime_call_of_the_service_is_covered_here() -> None:
    """A new client in service/webapi (another AWS API, another server) fails here until its
    network path and grant are checked below."""
    assert runtime_calls() == COVERED_CALLS


def test_the_database_is_reachable_and_granted(synthesized: SynthesizedAws) -> None:
    """The API through RDS Proxy when there is one, the migrations always straight to the
    cluster (they must not wait on a proxy whose target may need the role they create)."""
    _, cluster = single(synthesized, "AWS::RDS::DBCluster")
    cluster_group = _ref(cluster["Properties"]["VpcSecurityGroupIds"][0])
    proxies = resources(synthesized, "AWS::RDS::DBProxy")
    _, api = api_function(synthesized)
    api_env = api["Properties"]["Environment"]["Variables"]
    if proxies:
        ((proxy_id, proxy),) = proxies.items()
        proxy_group = _ref(proxy["Properties"]["VpcSecurityGroupIds"][0])
        assert_path(synthesized, function_group(api), proxy_group, 5432)
        assert_path(synthesized, proxy_group, cluster_group, 5432)
        assert api_env["DATABASE_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}
        # The proxy can authenticate the role the API connects as.
        proxy_secrets = {_ref(auth["SecretArn"]) for auth in proxy["Properties"]["Auth"]}
        assert _ref(api_env["DATABASE_SECRET_ARN"]) in proxy_secrets
    else:
        assert_path(synthesized, function_group(api), cluster_group, 5432)
        assert "DATABASE_HOST" not in api_env
    _, migrate = migrate_function(synthesized)
    assert_path(synthesized, function_group(migrate), cluster_group, 5432)
    assert "DATABASE_HOST" not in migrate["Properties"]["Environment"]["Variables"]  # the secret's host
    (trigger,) = resources(synthesized, "Custom::Trigger").values()
    assert not set(trigger.get("DependsOn", [])) & {
        *proxies,
        *resources(synthesized, "AWS::RDS::DBProxyTargetGroup"),
    }


def test_secrets_manager_is_reachable_and_each_secret_granted(synthesized: SynthesizedAws) -> None:
    endpoints = [
        e["Properties"]
        for e in resources(synthesized, "AWS::EC2::VPCEndpoint").values()
        if "secretsmanager" in json.dumps(e["Properties"]["ServiceName"])
    ]
    (endpoint,) = endpoints
    assert endpoint["VpcEndpointType"] == "Interface" and endpoint["PrivateDnsEnabled"] is True
    endpoint_group = _ref(endpoint["SecurityGroupIds"][0])
    for _, function in (api_function(synthesized), migrate_function(synthesized)):
        assert function_subnets(function) <= {_ref(s) for s in endpoint["SubnetIds"]}
        assert_path(synthesized, function_group(function), endpoint_group, 443)
        readable = {_ref(r) for r in granted(synthesized, function, "secretsmanager:GetSecretValue")}
        arns = {
            _ref(value)
            for name, value in function["Properties"]["Environment"]["Variables"].items()
            if name.endswith("_SECRET_ARN")
        }
        assert arns and arns <= readable, f"secrets read but not granted: {arns - readable}"


def test_s3_is_reachable_and_granted_when_storage_is_on(
    aws_prod: SynthesizedAws, aws_dev: SynthesizedAws
) -> None:
    """DeleteObject leaves the function: egress to S3's prefix list, a route through the gateway
    endpoint from the function's subnets, and the object grant."""
    _, function = api_function(aws_prod)
    egress = _rules(aws_prod, "Egress", function_group(function))
    to_s3 = [r for r in egress if "DestinationPrefixListId" in r]
    assert len(to_s3) == 1 and _covers(to_s3[0], 443)
    ((lookup_id, lookup),) = resources(aws_prod, "Custom::AWS").items()
    assert to_s3[0]["DestinationPrefixListId"] == {"Fn::GetAtt": [lookup_id, "PrefixLists.0.PrefixListId"]}
    create = json.loads(json.dumps(lookup["Properties"]["Create"]))
    assert "DescribeManagedPrefixLists" in json.dumps(create) and "com.amazonaws." in json.dumps(create)
    assert ".s3" in json.dumps(create)

    gateways = [
        e["Properties"]
        for e in resources(aws_prod, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    (gateway,) = gateways
    assert "s3" in json.dumps(gateway["ServiceName"])
    associations = resources(aws_prod, "AWS::EC2::SubnetRouteTableAssociation").values()
    tables_of_function = {
        _ref(a["Properties"]["RouteTableId"])
        for a in associations
        if _ref(a["Properties"]["SubnetId"]) in function_subnets(function)
    }
    assert tables_of_function and tables_of_function <= {_ref(t) for t in gateway["RouteTableIds"]}
    assert any(
        "uploads/*" in json.dumps(resource) for resource in granted(aws_prod, function, "s3:DeleteObject")
    )
    # Storage off: no path and no grant to S3 at all.
    _, dev_function = api_function(aws_dev)
    assert not [
        r for r in _rules(aws_dev, "Egress", function_group(dev_function)) if "DestinationPrefixListId" in r
    ]
    assert not granted(aws_dev, dev_function, "s3:DeleteObject")


def test_the_cache_is_reachable_and_granted_when_on(aws_prod: SynthesizedAws) -> None:
    _, cache = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    _, function = api_function(aws_prod)
    cache_group = _ref(cache["Properties"]["SecurityGroupIds"][0])
    assert_path(aws_prod, function_group(function), cache_group, 6379)
    assert {_ref(s) for s in cache["Properties"]["SubnetIds"]} == function_subnets(function)
    env = function["Properties"]["Environment"]["Variables"]
    assert _ref(env["REDIS_SECRET_ARN"]) in {
        _ref(r) for r in granted(aws_prod, function, "secretsmanager:GetSecretValue")
    }
    # The migration function has no business with the cache.
    _, migrate = migrate_function(aws_prod)
    assert not [
        r
        for r in _rules(aws_prod, "Egress", function_group(migrate))
        if _ref(r.get("DestinationSecurityGroupId")) == cache_group
    ]


def test_functions_egress_nowhere_else(synthesized: SynthesizedAws) -> None:
    """allow_all_outbound is off: each egress rule is one of the paths checked above."""
    for _, function in (api_function(synthesized), migrate_function(synthesized)):
        for rule in _rules(synthesized, "Egress", function_group(function)):
            if rule.get("CidrIp") == "255.255.255.255/32":
                continue  # CDK's placeholder that means "no egress"
            assert "DestinationSecurityGroupId" in rule or "DestinationPrefixListId" in rule, rule
            assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"] in (443, 5432, 6379)


# --- the deploy lifecycle ---------------------------------------------------------------------

# Properties that give a resource a fixed physical name when they hold a literal string.
NAME_PROPERTIES = {
    "AWS::RDS::DBCluster": "DBClusterIdentifier",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ElastiCache::ServerlessCache": "ServerlessCacheName",
    "AWS::ElastiCache::User": "UserId",
    "AWS::ElastiCache::UserGroup": "UserGroupId",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::RDS::DBProxy": "DBProxyName",
}
# Each fixed name has a reason (CloudFormation requires the ElastiCache ones; the PostgreSQL log
# group must exist, with its retention, before the cluster writes to it, so it is named after the
# cluster's identifier). A new one must be added here knowingly.
EXPECTED_FIXED_NAMES = {
    "AWS::RDS::DBCluster",
    "AWS::Logs::LogGroup",
    "AWS::ElastiCache::ServerlessCache",
    "AWS::ElastiCache::User",
    "AWS::ElastiCache::UserGroup",
    "AWS::RDS::DBProxy",
}


def fixed_names(synth: SynthesizedAws) -> dict[str, str]:
    found = {}
    for logical_id, resource in synth.json["Resources"].items():
        name = resource.get("Properties", {}).get(NAME_PROPERTIES.get(resource["Type"], ""))
        if isinstance(name, str) or (isinstance(name, dict) and "Fn::Join" in name):
            found[logical_id] = resource["Type"]
    return found


def test_a_failed_first_create_leaves_nothing_behind(synthesized: SynthesizedAws) -> None:
    """`Retain` also keeps a resource whose own creation rolled back: the cluster keeps billing
    and a retry collides with its fixed name. Data is kept with RetainExceptOnCreate instead."""
    retained = {
        logical_id: resource["Type"]
        for logical_id, resource in synthesized.json["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    }
    assert retained == {}


def test_nothing_deleted_on_a_failed_create_is_protected_from_deletion(synthesized: SynthesizedAws) -> None:
    """RDS refuses to delete a cluster with DeletionProtection: a first create that failed after
    the cluster would end in ROLLBACK_FAILED, the cluster billing and blocking the retry."""
    for logical_id, resource in synthesized.json["Resources"].items():
        if resource.get("DeletionPolicy", "Delete") in ("Delete", "RetainExceptOnCreate", "Snapshot"):
            assert resource.get("Properties", {}).get("DeletionProtection", False) is False, logical_id


def test_fixed_names_are_known_and_never_retained_across_a_failed_create(synthesized: SynthesizedAws) -> None:
    names = fixed_names(synthesized)
    assert set(names.values()) <= EXPECTED_FIXED_NAMES, set(names.values()) - EXPECTED_FIXED_NAMES
    for logical_id in names:
        policy = synthesized.json["Resources"][logical_id].get("DeletionPolicy", "Delete")
        assert policy in ("Delete", "RetainExceptOnCreate", "Snapshot"), (logical_id, policy)


def test_a_dev_destroy_leaves_nothing(aws_dev: SynthesizedAws) -> None:
    kept = {
        logical_id: resource.get("DeletionPolicy")
        for logical_id, resource in aws_dev.json["Resources"].items()
        if resource.get("DeletionPolicy", "Delete") != "Delete"
    }
    assert kept == {}
    _, cluster = single(aws_dev, "AWS::RDS::DBCluster")
    assert cluster["Properties"].get("DeletionProtection", False) is False


def test_prod_keeps_its_data_on_delete_and_replace(aws_prod: SynthesizedAws) -> None:
    for kind in ("AWS::RDS::DBCluster", "AWS::S3::Bucket"):
        _, resource = single(aws_prod, kind)
        assert (
            resource["DeletionPolicy"] == "RetainExceptOnCreate"
            and resource["UpdateReplacePolicy"] == "Retain"
        )
    secrets = resources(aws_prod, "AWS::SecretsManager::Secret")
    database_secrets = [
        s
        for s in secrets.values()
        if "username" in s["Properties"].get("GenerateSecretString", {}).get("SecretStringTemplate", "")
        and "app_" in s["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    ]
    assert len(database_secrets) == 2  # master and application role: a kept database keeps them
    for secret in database_secrets:
        assert secret["DeletionPolicy"] == "RetainExceptOnCreate"


def test_the_first_deploy_reads_nothing_before_it_exists(synthesized: SynthesizedAws) -> None:
    """The migration trigger runs after the cluster, its writer, both credentials secrets (with
    the cluster's address attached) and the Secrets Manager endpoint; the API's new version only
    after the trigger has created the role it connects as."""
    ((trigger_id, trigger),) = resources(synthesized, "Custom::Trigger").items()
    depends = set(trigger.get("DependsOn", []))
    required = {
        *resources(synthesized, "AWS::RDS::DBCluster"),
        *resources(synthesized, "AWS::RDS::DBInstance"),
        *resources(synthesized, "AWS::SecretsManager::SecretTargetAttachment"),
        *[
            k
            for k, e in resources(synthesized, "AWS::EC2::VPCEndpoint").items()
            if "secretsmanager" in json.dumps(e["Properties"]["ServiceName"])
        ],
    }
    assert required <= depends, required - depends
    api_id, api = api_function(synthesized)
    assert trigger_id in api.get("DependsOn", [])
    aliases = resources(synthesized, "AWS::Lambda::Alias")
    assert all(trigger_id in alias.get("DependsOn", []) for alias in aliases.values())
    assert api_id


def test_the_aurora_engine_is_the_newest_minor_the_library_knows() -> None:
    """Old minors stop being offered for new clusters: raise the pin with the library."""
    known: dict[str, list[tuple[int, ...]]] = {}
    for name in dir(rds.AuroraPostgresEngineVersion):
        if match := re.fullmatch(r"VER_(\d+)_(\d+)", name):
            known.setdefault(match[1], []).append((int(match[1]), int(match[2])))
    for major, version in ENGINE_VERSIONS.items():
        chosen = tuple(int(part) for part in version.aurora_postgres_full_version.split("."))
        assert chosen == max(known[major]), f"{major}: {chosen} is not the newest {max(known[major])}"


def test_the_aws_guide_says_how_to_check_the_engine_versions() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "aws.md").read_text()
    assert "aws rds describe-db-engine-versions" in readme
