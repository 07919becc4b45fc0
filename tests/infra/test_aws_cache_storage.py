"""The optional cache (ElastiCache Serverless) and uploads bucket (S3): on in the prod fixture,
off in dev (whose template must stay exactly as without the features)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import SynthesizedAws
from tests.infra.test_aws_stack import api_function, migrate_function, resources, single

CACHE_ENV = ("REDIS_HOST", "REDIS_PORT", "REDIS_SECRET_ARN")
STORAGE_ENV = (
    "STORAGE_BACKEND",
    "UPLOADS_BUCKET",
    "UPLOADS_PREFIX",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_URL_EXPIRY_SECONDS",
)
OBJECT_ACTIONS = {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def group_of(ref: dict[str, Any]) -> str:
    """The logical id of a security group referenced as ``{"Fn::GetAtt": [id, "GroupId"]}``."""
    return ref["Fn::GetAtt"][0]  # type: ignore[no-any-return]


def role_statements(synth: SynthesizedAws, function: dict[str, Any]) -> list[dict[str, Any]]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources(synth, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def cache_secret_id(synth: SynthesizedAws) -> str:
    _, cache_user = single(synth, "AWS::ElastiCache::User")
    password = cache_user["Properties"]["AuthenticationMode"]["Passwords"][0]
    return password["Fn::Join"][1][1]["Ref"]  # type: ignore[no-any-return]


# --- Off: the dev template has none of it -------------------------------------------


def test_dev_has_no_cache_no_bucket_no_settings(aws_dev: SynthesizedAws) -> None:
    for kind in (
        "AWS::ElastiCache::ServerlessCache",
        "AWS::ElastiCache::User",
        "AWS::ElastiCache::UserGroup",
        "AWS::S3::Bucket",
        "AWS::S3::BucketPolicy",
        "Custom::S3AutoDeleteObjects",
    ):
        aws_dev.template.resource_count_is(kind, 0)
    for function in resources(aws_dev, "AWS::Lambda::Function").values():
        env = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [name for name in env if name.startswith(("REDIS_", "STORAGE_", "UPLOAD"))]
    assert not {"CacheEndpoint", "CacheSecretArn", "UploadsBucketName"} & set(aws_dev.json["Outputs"])
    assert "s3:" not in json.dumps(resources(aws_dev, "AWS::IAM::Policy"))


# --- Cache --------------------------------------------------------------------------


def test_serverless_valkey_with_the_spec_limits(aws_prod: SynthesizedAws) -> None:
    _, cache = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    props = cache["Properties"]
    assert props["Engine"] == "valkey"
    assert props["MajorEngineVersion"] == "8"
    assert props["CacheUsageLimits"] == {
        "DataStorage": {"Maximum": 1, "Unit": "GB"},
        "ECPUPerSecond": {"Maximum": 5000},
    }
    assert props["SnapshotRetentionLimit"] == 1  # prod keeps a day of snapshots
    assert "KmsKeyId" not in props  # encrypted at rest with the AWS-owned key (always on)
    assert len(props["ServerlessCacheName"]) <= 40


def test_cache_lives_in_the_function_subnets(aws_prod: SynthesizedAws) -> None:
    _, cache = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    _, function = api_function(aws_prod)
    assert cache["Properties"]["SubnetIds"] == function["Properties"]["VpcConfig"]["SubnetIds"]
    for subnet in cache["Properties"]["SubnetIds"]:
        tags = {t["Key"]: t["Value"] for t in aws_prod.json["Resources"][subnet["Ref"]]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


def test_cache_admits_only_the_api_function_on_its_port(aws_prod: SynthesizedAws) -> None:
    _, cache = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    (group_ref,) = cache["Properties"]["SecurityGroupIds"]
    cache_group = group_of(group_ref)
    ingress = [
        rule["Properties"]
        for rule in resources(aws_prod, "AWS::EC2::SecurityGroupIngress").values()
        if group_of(rule["Properties"]["GroupId"]) == cache_group
    ]
    _, function = api_function(aws_prod)
    (function_group,) = {group_of(ref) for ref in function["Properties"]["VpcConfig"]["SecurityGroupIds"]}
    _, migrate = migrate_function(aws_prod)
    assert [group_of(rule["SourceSecurityGroupId"]) for rule in ingress] == [function_group]
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in ingress] == [
        ("tcp", 6379, 6379)
    ]
    assert group_of(migrate["Properties"]["VpcConfig"]["SecurityGroupIds"][0]) != function_group
    group = aws_prod.json["Resources"][cache_group]["Properties"]
    assert group.get("SecurityGroupIngress", []) == []
    # No egress: CDK's placeholder rule that matches no traffic.
    assert group["SecurityGroupEgress"] == [
        {
            "CidrIp": "255.255.255.255/32",
            "Description": "Disallow all traffic",
            "FromPort": 252,
            "IpProtocol": "icmp",
            "ToPort": 86,
        }
    ]
    # ...and the function may open connections to it (the matching egress rule).
    aws_prod.template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {
            "GroupId": {"Fn::GetAtt": [function_group, "GroupId"]},
            "DestinationSecurityGroupId": {"Fn::GetAtt": [cache_group, "GroupId"]},
            "FromPort": 6379,
            "ToPort": 6379,
        },
    )


def test_one_password_user_in_the_group_attached_to_the_cache(aws_prod: SynthesizedAws) -> None:
    user_id, user = single(aws_prod, "AWS::ElastiCache::User")
    group_id, group = single(aws_prod, "AWS::ElastiCache::UserGroup")
    _, cache = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    props = user["Properties"]
    assert props["Engine"] == "valkey" and group["Properties"]["Engine"] == "valkey"
    assert props["UserName"] == "app"
    # Only the service's two key families and the commands its cache client sends
    # (tests/service/test_cache_acl.py runs that client as this user on a real redis-server).
    assert props["AccessString"] == (
        "on ~login:fail:* ~signup:* ~user:v1:* -@all +ping +get +set +del +evalsha +script|load "
        "+incr +decr +expire +ttl +cluster|slots +command"
    )
    assert props["AuthenticationMode"]["Type"] == "password"
    assert "NoPasswordRequired" not in props
    # A Valkey group needs no "default" user (a Redis OSS one does: test_aws_construct.py).
    assert group["Properties"]["UserIds"] == [{"Ref": user_id}]
    assert cache["Properties"]["UserGroupId"] == {"Ref": group_id}


def test_the_password_comes_from_the_secret_by_dynamic_reference(aws_prod: SynthesizedAws) -> None:
    _, user = single(aws_prod, "AWS::ElastiCache::User")
    (password,) = user["Properties"]["AuthenticationMode"]["Passwords"]
    secret_id = cache_secret_id(aws_prod)
    assert password == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:password::}}"]]
    }
    secret = aws_prod.json["Resources"][secret_id]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generator = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generator["SecretStringTemplate"]) == {"username": "app"}
    assert generator["GenerateStringKey"] == "password"
    assert generator["ExcludePunctuation"] is True
    assert 16 <= generator["PasswordLength"] <= 128  # ElastiCache's password length
    assert "SecretString" not in secret["Properties"]
    assert "Passwords" not in user["Properties"]  # only the dynamic reference, nowhere a value


def test_the_api_function_gets_the_cache_settings_and_may_read_its_secret(aws_prod: SynthesizedAws) -> None:
    cache_id, _ = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    secret_id = cache_secret_id(aws_prod)
    _, function = api_function(aws_prod)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REDIS_HOST"] == {"Fn::GetAtt": [cache_id, "Endpoint.Address"]}
    assert env["REDIS_PORT"] == {"Fn::GetAtt": [cache_id, "Endpoint.Port"]}
    assert env["REDIS_SECRET_ARN"] == {"Ref": secret_id}
    readable = {
        ref["Ref"]
        for statement in role_statements(aws_prod, function)
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for ref in as_list(statement["Resource"])
    }
    assert secret_id in readable
    # The migration function has no use for the cache: neither settings nor access.
    _, migrate = migrate_function(aws_prod)
    assert not set(CACHE_ENV) & set(migrate["Properties"]["Environment"]["Variables"])
    assert json.dumps({"Ref": secret_id}) not in json.dumps(role_statements(aws_prod, migrate))


def test_the_cache_and_its_credentials_go_with_the_stack(aws_prod: SynthesizedAws) -> None:
    """Fixed names (CloudFormation requires them) and disposable contents: a cache kept after a
    failed create or a deletion would only block the next create of the same stack."""
    kinds = ("AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::User", "AWS::ElastiCache::UserGroup")
    resources_ = [single(aws_prod, kind)[1] for kind in kinds]
    resources_.append(aws_prod.json["Resources"][cache_secret_id(aws_prod)])
    for resource in resources_:
        assert resource.get("DeletionPolicy", "Delete") == "Delete"


def test_cache_outputs(aws_prod: SynthesizedAws) -> None:
    cache_id, _ = single(aws_prod, "AWS::ElastiCache::ServerlessCache")
    outputs = aws_prod.json["Outputs"]
    assert outputs["CacheEndpoint"]["Value"] == {"Fn::GetAtt": [cache_id, "Endpoint.Address"]}
    assert outputs["CacheSecretArn"]["Value"] == {"Ref": cache_secret_id(aws_prod)}


# --- Uploads bucket -----------------------------------------------------------------


def test_bucket_is_private_encrypted_and_versioned(aws_prod: SynthesizedAws) -> None:
    _, bucket = single(aws_prod, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}  # prod's default
    skipped = {skip["id"] for skip in bucket["Metadata"]["checkov"]["skip"]}
    assert skipped == {"CKV_AWS_18"}  # access logs only; the versioning check applies and passes
    assert "WebsiteConfiguration" not in props


def test_bucket_policy_denies_anything_but_tls(aws_prod: SynthesizedAws) -> None:
    bucket_id, _ = single(aws_prod, "AWS::S3::Bucket")
    _, policy = single(aws_prod, "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert all(statement["Effect"] == "Deny" for statement in statements)  # the policy grants nothing
    conditions = [statement["Condition"] for statement in statements]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions


def test_bucket_lifecycle(aws_prod: SynthesizedAws) -> None:
    _, bucket = single(aws_prod, "AWS::S3::Bucket")
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}} in [
        {k: v for k, v in rule.items() if k == "AbortIncompleteMultipartUpload"} for rule in rules
    ]
    noncurrent = [
        rule["NoncurrentVersionExpiration"] for rule in rules if "NoncurrentVersionExpiration" in rule
    ]
    assert noncurrent == [{"NoncurrentDays": 90}]  # prod's default (spec storage.noncurrent_days)
    # A deleted attachment leaves a delete marker once its versions expire: cleaned up too.
    assert [
        rule.get("ExpiredObjectDeleteMarker") for rule in rules if "NoncurrentVersionExpiration" in rule
    ] == [True]
    assert all(rule["Status"] == "Enabled" and "ExpirationInDays" not in rule for rule in rules)


def test_bucket_cors_for_browser_uploads_from_the_spec_origins(aws_prod: SynthesizedAws) -> None:
    _, bucket = single(aws_prod, "AWS::S3::Bucket")
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == ["https://app.example.org"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "POST", "PUT"]
    assert rule["AllowedHeaders"] == ["*"]
    assert rule["ExposedHeaders"] == ["ETag"]
    assert rule["MaxAge"] > 0


def test_bucket_is_retained_in_prod(aws_prod: SynthesizedAws) -> None:
    _, bucket = single(aws_prod, "AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate" and bucket["UpdateReplacePolicy"] == "Retain"
    aws_prod.template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_the_api_function_gets_the_storage_settings(aws_prod: SynthesizedAws) -> None:
    bucket_id, _ = single(aws_prod, "AWS::S3::Bucket")
    _, function = api_function(aws_prod)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["STORAGE_BACKEND"] == "s3"
    assert env["UPLOADS_BUCKET"] == {"Ref": bucket_id}
    assert env["UPLOADS_PREFIX"] == "uploads/"
    assert env["UPLOAD_MAX_BYTES"] == str(10 * 1024 * 1024)
    assert env["UPLOAD_URL_EXPIRY_SECONDS"] == "900"
    _, migrate = migrate_function(aws_prod)
    assert not set(STORAGE_ENV) & set(migrate["Properties"]["Environment"]["Variables"])
    assert aws_prod.json["Outputs"]["UploadsBucketName"]["Value"] == {"Ref": bucket_id}


def test_s3_access_is_object_actions_under_the_prefix_only(aws_prod: SynthesizedAws) -> None:
    bucket_id, _ = single(aws_prod, "AWS::S3::Bucket")
    _, function = api_function(aws_prod)
    s3_statements = [
        statement
        for statement in role_statements(aws_prod, function)
        if any(action.startswith("s3:") for action in as_list(statement["Action"]))
    ]
    assert len(s3_statements) == 1
    (statement,) = s3_statements
    assert statement["Effect"] == "Allow"
    assert set(as_list(statement["Action"])) == OBJECT_ACTIONS  # no s3:*, no List*, no Get*/Put* globs
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/uploads/*"]]}
    _, migrate = migrate_function(aws_prod)
    assert "s3:" not in json.dumps(role_statements(aws_prod, migrate))


@pytest.mark.parametrize("kind", ["AWS::IAM::Policy", "AWS::IAM::Role"])
def test_no_principal_may_touch_the_whole_bucket(aws_prod: SynthesizedAws, kind: str) -> None:
    bucket_id, _ = single(aws_prod, "AWS::S3::Bucket")
    whole_bucket = [
        {"Fn::GetAtt": [bucket_id, "Arn"]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
    ]
    for resource in resources(aws_prod, kind).values():
        documents = [resource["Properties"].get("PolicyDocument")] + [
            p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])
        ]
        for document in filter(None, documents):
            for statement in document["Statement"]:
                if statement["Effect"] != "Allow":
                    continue
                assert "s3:*" not in as_list(statement["Action"])
                assert not [r for r in as_list(statement.get("Resource", [])) if r in whole_bucket]


def test_s3_is_reachable_from_the_isolated_subnets_for_this_bucket_only(
    aws_prod: SynthesizedAws, aws_dev: SynthesizedAws
) -> None:
    """DeleteObject goes through S3's gateway endpoint; its policy admits the prefix's objects only."""
    endpoints = [
        props["Properties"]
        for props in aws_prod.json["Resources"].values()
        if props["Type"] == "AWS::EC2::VPCEndpoint"
        and props["Properties"].get("VpcEndpointType") != "Interface"
    ]
    assert len(endpoints) == 1
    endpoint = endpoints[0]
    assert "s3" in json.dumps(endpoint["ServiceName"])
    assert len(endpoint["RouteTableIds"]) >= 2  # every isolated subnet's route table
    (statement,) = endpoint["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": "*"}
    assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert "/uploads/*" in json.dumps(statement["Resource"])
    assert not [
        p
        for p in aws_dev.json["Resources"].values()
        if p["Type"] == "AWS::EC2::VPCEndpoint" and p["Properties"].get("VpcEndpointType") != "Interface"
    ]
