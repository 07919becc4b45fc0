"""A Lambda function behind an API Gateway HTTP API (payload 2.0, proxy integration)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.aws.nag import suppress, suppress_lambda_baseline

# The longest HTTP API integration timeout aws-cdk-lib accepts (API Gateway's limit
# is 30 s); the function must finish before it, so API Gateway never cuts it off.
INTEGRATION_TIMEOUT_LIMIT = Duration.seconds(29)

# HTTP API access-log fields ($context variables documented for HTTP APIs).
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "userAgent": "$context.identity.userAgent",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))


def newest_python_runtime() -> lambda_.Runtime:
    """The newest Python runtime this aws-cdk-lib knows (it adds one when Lambda does)."""
    versions = []
    for name in dir(lambda_.Runtime):
        if name.startswith("PYTHON_3_"):
            versions.append((int(name.removeprefix("PYTHON_3_")), name))
    return getattr(lambda_.Runtime, max(versions)[1])  # type: ignore[no-any-return]


def python_runtime(version: str) -> lambda_.Runtime:
    """``Runtime.PYTHON_3_13`` for ``"3.13"``; ValueError when this aws-cdk-lib does not know it."""
    major, _, minor = version.partition(".")
    runtime = getattr(lambda_.Runtime, f"PYTHON_{major}_{minor}", None)
    if not isinstance(runtime, lambda_.Runtime):
        raise ValueError(f"aws-cdk-lib {_cdk_version()} has no Lambda runtime python{version}")
    return runtime


def _cdk_version() -> str:
    from importlib.metadata import version  # noqa: PLC0415 - only for the message

    return version("aws-cdk-lib")


class HttpApiFunction(Construct):
    """The function, a live alias (SnapStart and provisioned concurrency attach to
    published versions), its log group, and the HTTP API's $default stage."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        memory_mib: int,
        timeout: Duration,
        environment: Mapping[str, str],
        vpc: ec2.IVpc | None,
        subnets: ec2.SubnetSelection | None,
        log_retention: logs.RetentionDays,
        log_removal_policy: RemovalPolicy,
        reserved_concurrency: int | None,
        provisioned_concurrency: int,
        snap_start: bool,
        cors_origins: Sequence[str],
        throttle_rate_limit: int,
        throttle_burst_limit: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=log_removal_policy
        )
        # In a VPC only when it reaches something private (the database, the cache).
        self.security_group: ec2.SecurityGroup | None = (
            ec2.SecurityGroup(
                self, "SecurityGroup", vpc=vpc, description="The API function", allow_all_outbound=False
            )
            if vpc is not None
            else None
        )
        self.function = lambda_.Function(
            self,
            "Function",
            code=code,
            handler=handler,
            runtime=runtime,
            architecture=architecture,
            memory_size=memory_mib,
            timeout=timeout,
            environment=dict(environment),
            vpc=vpc,
            vpc_subnets=subnets if vpc is not None else None,
            security_groups=[self.security_group] if self.security_group is not None else None,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            description="FastAPI service (Mangum) behind an HTTP API",
        )
        role = self.function.role
        assert role is not None
        suppress_lambda_baseline(role, role.node.try_find_child("DefaultPolicy"))
        suppress(
            self.function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway: the caller gets the error; "
            "a DLQ only applies to asynchronous invocations.",
        )
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name="live",
            version=self.function.current_version,
            provisioned_concurrent_executions=provisioned_concurrency or None,
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=log_removal_policy
        )
        cors = None
        if cors_origins:
            cors = apigw.CorsPreflightOptions(
                allow_origins=list(cors_origins),
                # Named, not "*": with credentials allowed, browsers read "*" as a method called
                # "*" (Fetch standard, CORS protocol), and a credentialed PATCH or DELETE would
                # fail its preflight.
                allow_methods=[
                    apigw.CorsHttpMethod.GET,
                    apigw.CorsHttpMethod.HEAD,
                    apigw.CorsHttpMethod.POST,
                    apigw.CorsHttpMethod.PUT,
                    apigw.CorsHttpMethod.PATCH,
                    apigw.CorsHttpMethod.DELETE,
                ],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                allow_credentials="*" not in cors_origins,
                max_age=Duration.minutes(10),
            )
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="FastAPI service",
            create_default_stage=False,
            cors_preflight=cors,
            default_integration=integrations.HttpLambdaIntegration(
                "Lambda",
                self.alias,
                payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
                timeout=INTEGRATION_TIMEOUT_LIMIT,
            ),
        )
        suppress(
            self.http_api.node.find_child("DefaultRoute"),
            "AwsSolutions-APIG4",
            "Authorization is the application's: OAuth2 bearer JWTs checked by the FastAPI service; "
            "sign-up, login, health and docs must stay public.",
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(self.access_logs),
            throttle=apigw.ThrottleSettings(rate_limit=throttle_rate_limit, burst_limit=throttle_burst_limit),
        )

    @property
    def url(self) -> str:
        return self.stage.url
