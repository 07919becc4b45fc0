"""cdk-nag suppressions for the design decisions of these constructs.

Each suppression names one resource (and, where the rule reports several findings,
the exact finding) with a reason a reviewer can check against the code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

MANAGED_LAMBDA_POLICIES = (
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
)


def suppress(construct: IConstruct, rule: str, reason: str, applies_to: Sequence[str] | None = None) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule, reason=reason, applies_to=list(applies_to) if applies_to else None)],
    )


def suppress_lambda_baseline(function_role: IConstruct, default_policy: IConstruct | None) -> None:
    """What every VPC function with active tracing carries."""
    suppress(
        function_role,
        "AwsSolutions-IAM4",
        "AWS's own minimal execution policies: CloudWatch Logs writes (AWSLambdaBasicExecutionRole) "
        "and the ENI actions a function in a VPC needs (AWSLambdaVPCAccessExecutionRole).",
        applies_to=MANAGED_LAMBDA_POLICIES,
    )
    if default_policy is not None:
        suppress(
            default_policy,
            "AwsSolutions-IAM5",
            "Only xray:PutTraceSegments/PutTelemetryRecords use Resource '*': X-Ray has no resource-level "
            "permissions. Secret access is granted per secret ARN "
            "(tests/infra/test_aws_stack.py::test_functions_may_read_exactly_their_secrets).",
            applies_to=["Resource::*"],
        )


def suppress_sdk_call_provider(resource: IConstruct, provider: IConstruct, policy_reason: str) -> None:
    """An aws-cdk-lib AwsCustomResource (one read-only SDK call at deploy time) and the provider
    function the stack's AwsCustomResources share."""
    NagSuppressions.add_resource_suppressions(
        resource,
        [NagPackSuppression(id="AwsSolutions-IAM5", reason=policy_reason, applies_to=["Resource::*"])],
        apply_to_children=True,
    )
    reason = (
        "aws-cdk-lib's provider of AwsCustomResource: invoked synchronously by CloudFormation for one "
        "read-only SDK call per deploy; its tracing and dead-letter settings are the library's."
    )
    NagSuppressions.add_resource_suppressions(
        provider,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM4",
                reason="CloudWatch Logs writes only (AWSLambdaBasicExecutionRole), as the library sets it.",
                applies_to=[MANAGED_LAMBDA_POLICIES[0]],
            ),
            NagPackSuppression(id="Serverless-LambdaDLQ", reason=reason),
            NagPackSuppression(id="Serverless-LambdaTracing", reason=reason),
        ],
        apply_to_children=True,
    )


def suppress_object_prefix_grant(default_policy: IConstruct, *, storage_prefix: str) -> None:
    """The one wildcard the uploads grant needs: the object keys under the service's prefix."""
    escaped = re.escape(storage_prefix).replace("/", r"\/")
    NagSuppressions.add_resource_suppressions(
        default_policy,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason=f"s3:PutObject/GetObject/DeleteObject on '<uploads bucket>/{storage_prefix}*' only: "
                "the service names each attachment's key at run time (presigned POST and GET); no listing, "
                "no other prefix, no bucket-level action (tests/infra/test_aws_cache_storage.py).",
                applies_to=[RegexAppliesTo(regex=rf"/^Resource::<[A-Za-z0-9]+\.Arn>\/{escaped}\*$/")],
            )
        ],
    )


# checkov (cloudformation framework): the checks this design does not follow, with the
# reason. Each is written into the resource's Metadata (checkov's per-resource skip).
CHECKOV_SKIPS: dict[str, tuple[tuple[str, ...], str]] = {
    "CKV_AWS_158": (
        ("AWS::Logs::LogGroup",),
        "Encrypted at rest by CloudWatch Logs with AWS-owned keys; a customer-managed KMS key adds "
        "cost and key-policy upkeep without a threat it addresses here.",
    ),
    "CKV_AWS_149": (
        ("AWS::SecretsManager::Secret",),
        "Encrypted with the account's aws/secretsmanager key; only this stack's functions may read it.",
    ),
    "CKV_AWS_118": (
        ("AWS::RDS::DBInstance",),
        "Aurora Serverless v2 publishes capacity and load metrics to CloudWatch; enhanced monitoring "
        "would add a monitoring role and per-instance cost.",
    ),
    "CKV_AWS_116": (
        ("AWS::Lambda::Function",),
        "Invoked synchronously (API Gateway, CloudFormation custom resources): errors return to the "
        "caller; a dead-letter queue only applies to asynchronous invocations.",
    ),
    "CKV_AWS_173": (
        ("AWS::Lambda::Function",),
        "The environment holds secret ARNs and settings, never secret values; Lambda encrypts it at rest.",
    ),
    "CKV_AWS_115": (
        ("AWS::Lambda::Function",),
        "Reserving concurrency is opt-in (spec scaling.reserve_concurrency): a new account's Lambda "
        "quota is too small to reserve any.",
    ),
    "CKV_AWS_117": (
        ("AWS::Lambda::Function",),
        "Only aws-cdk-lib's own provider functions run outside the VPC; "
        "they call AWS APIs, not the database.",
    ),
    "CKV_AWS_18": (
        ("AWS::S3::Bucket",),
        "No server access logs for the uploads bucket: they need a second bucket and record every "
        "presigned request. Every URL is handed out by the API, whose access log records the request; "
        "CloudTrail S3 data events give an object-level audit where one is required.",
    ),
    "CKV_AWS_21": (
        ("AWS::S3::Bucket",),
        "Versioning is off by choice for this stage (spec storage.versioned; on by default in prod): "
        "a dev bucket keeps no old versions.",
    ),
}


def skip_checkov(scope: IConstruct) -> None:
    """Write the CHECKOV_SKIPS that apply to each CloudFormation resource under ``scope``."""
    for construct in scope.node.find_all():
        if not isinstance(construct, CfnResource):
            continue
        kind = construct.cfn_resource_type
        skips = [
            {"id": check, "comment": reason}
            for check, (kinds, reason) in CHECKOV_SKIPS.items()
            if kind in kinds and _applies(check, construct)
        ]
        if skips:
            construct.add_metadata("checkov", {"skip": skips})


def _applies(check: str, resource: CfnResource) -> bool:
    if check == "CKV_AWS_115":
        return (
            not isinstance(resource, lambda_.CfnFunction) or resource.reserved_concurrent_executions is None
        )
    if check == "CKV_AWS_117":
        return not isinstance(resource, lambda_.CfnFunction) or resource.vpc_config is None
    if check == "CKV_AWS_21":
        return not isinstance(resource, s3.CfnBucket) or _versioning_off(resource)
    return True


def _versioning_off(bucket: s3.CfnBucket) -> bool:
    config = Stack.of(bucket).resolve(bucket.versioning_configuration)
    return not config or config.get("status", config.get("Status")) != "Enabled"
