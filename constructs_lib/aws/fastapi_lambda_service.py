"""FastApiLambdaService: any FastAPI app on Lambda + HTTP API + Aurora Serverless v2.

Composes :class:`ServerlessPostgres` and :class:`HttpApiFunction`, wires them with
connections and grants, and runs the app's migrations inside the VPC on deploy,
before the new code takes traffic. The app's code is unchanged: the runtime entry
(``serverless_fastapi_entry``, shipped into the bundle) is the Lambda handler.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack, Token, triggers
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from constructs_lib.app import AppOptions
from constructs_lib.aws.bundling import Dependencies, lambda_code
from constructs_lib.aws.cache import CacheOptions, ServerlessCache
from constructs_lib.aws.database import DatabaseOptions, ServerlessPostgres
from constructs_lib.aws.http_function import INTEGRATION_TIMEOUT_LIMIT, HttpApiFunction, newest_python_runtime
from constructs_lib.aws.nag import (
    suppress,
    suppress_lambda_baseline,
    suppress_object_prefix_grant,
    suppress_sdk_call_provider,
)
from constructs_lib.aws.storage import StorageOptions, UploadsBucket
from constructs_lib.runtime import ENTRY_DIR, ENTRY_PACKAGE, LAMBDA_REQUIREMENTS
from constructs_lib.runtime.serverless_fastapi_entry import (
    DATABASE_VARIABLE,
    MIGRATIONS_VARIABLE,
    SECRETS_VARIABLE,
)

MIGRATION_TIMEOUT = Duration.minutes(5)
DEFAULT_TIMEOUT = Duration.seconds(28)
# The runtime entry's handlers, shipped in the bundle: the app's authors write no Lambda code.
API_HANDLER = f"{ENTRY_PACKAGE}.lambda_api.handler"
MIGRATE_HANDLER = f"{ENTRY_PACKAGE}.lambda_migrate.handler"


class FastApiLambdaService(Construct):
    """A FastAPI app directory, deployed. Its parts are public attributes:
    ``vpc``, ``database`` (``cluster``, ``secret``), ``function``, ``alias``,
    ``http_api``, ``secret_key``, ``migrations``, and the optional ``cache``
    (``cache``, ``secret``, ``security_group``) and ``storage`` (``bucket``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code_path: Path,
        app: AppOptions,
        bundle_drop_packages: Sequence[str] = (),
        lock_dir: Path | None = None,
        docker_fallback: bool = False,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
        runtime: lambda_.Runtime | None = None,
        memory_mib: int = 1024,
        timeout: Duration | None = None,
        environment: Mapping[str, str] | None = None,
        extra_secrets: Sequence[str] = (),
        reserved_concurrency: int | None = None,
        provisioned_concurrency: int = 0,
        snap_start: bool = False,
        cors_origins: Sequence[str] = (),
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        database: DatabaseOptions | None = None,
        cache: CacheOptions | None = None,
        storage: StorageOptions | None = None,
        throttle_rate_limit: int = 500,
        throttle_burst_limit: int = 1000,
        app_environment: str = "prod",
    ) -> None:
        super().__init__(scope, construct_id)
        timeout = timeout or DEFAULT_TIMEOUT
        _validate(
            code_path=code_path,
            memory_mib=memory_mib,
            timeout=timeout,
            reserved_concurrency=reserved_concurrency,
            provisioned_concurrency=provisioned_concurrency,
        )
        self.app = app
        database = database or DatabaseOptions()
        runtime = runtime or newest_python_runtime()
        # The sample's own settings read our platform's variables (secret ARNs, ENVIRONMENT);
        # any other app gets the variables it names, resolved by the runtime entry.
        platform_settings = app.database is not None and app.database.reads_secret_arns

        # A VPC only to reach something private: the database, the cache.
        needs_vpc = vpc is not None or app.database is not None or cache is not None
        self.vpc: ec2.IVpc | None = (
            (vpc or _isolated_vpc(self, log_retention=log_retention, removal_policy=removal_policy))
            if needs_vpc
            else None
        )
        subnets = (vpc_subnets or _private_subnets(self.vpc)) if self.vpc is not None else None
        # Secrets Manager through an interface endpoint: works in isolated subnets (no NAT).
        self.secrets_endpoint: ec2.InterfaceVpcEndpoint | None = (
            self.vpc.add_interface_endpoint(
                "SecretsManagerEndpoint",
                service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
                subnets=subnets,
                private_dns_enabled=True,
                open=False,
            )
            if self.vpc is not None
            else None
        )

        self.database: ServerlessPostgres | None = (
            ServerlessPostgres(self, "Database", vpc=self.vpc, subnets=subnets, options=database)
            if self.vpc is not None and subnets is not None and app.database is not None
            else None
        )
        self.secret_key: secretsmanager.Secret | None = None
        if app.secret_key_variable is not None or platform_settings:
            self.secret_key = secretsmanager.Secret(
                self,
                "SecretKey",
                description="JWT signing key of the FastAPI service",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=64, exclude_punctuation=True
                ),
                removal_policy=removal_policy,
            )
            suppress(
                self.secret_key,
                "AwsSolutions-SMG4",
                "The signing key is not rotated automatically: rotating it signs every user out and "
                "each Lambda environment reads it once. Rotate by changing the secret and redeploying.",
            )
        self.extra_secrets = {
            name: secretsmanager.Secret(
                self,
                f"Secret{name.title().replace('_', '')}",
                description=f"{name} (set its value after deploy)",
                removal_policy=removal_policy,
            )
            for name in extra_secrets
        }

        api_env, migrate_env, api_database_secrets, migrate_database_secrets = self._settings(
            app,
            database=database,
            platform_settings=platform_settings,
            environment=environment or {},
            app_environment=app_environment,
            cors_origins=cors_origins,
        )
        migrate_env[MIGRATIONS_VARIABLE] = app.migrations_config()
        # The cache and the bucket serve requests: only the API function gets them (and their
        # settings), the migration function stays as it is.
        api_env.update(self._backing_services(cache, storage, subnets=subnets, own_vpc=vpc is None))
        for function_env in (api_env, migrate_env):
            check_environment_size(function_env)

        # Mangum serves the app on Lambda: an ASGI server in the requirements (for a container)
        # would only add to the zip and the cold start. The runtime entry goes in beside the app.
        code = lambda_code(
            source_dir=code_path,
            runtime=runtime,
            architecture=architecture,
            dependencies=(
                Dependencies.from_path(app.dependencies)
                if app.dependencies is not None
                else Dependencies.detect(code_path)
            ),
            extra_requirements=LAMBDA_REQUIREMENTS,
            extra_sources={ENTRY_PACKAGE: ENTRY_DIR},
            drop_packages=bundle_drop_packages,
            lock_dir=lock_dir,
            docker_fallback=docker_fallback,
        )
        self.api = HttpApiFunction(
            self,
            "Api",
            code=code,
            handler=API_HANDLER,
            runtime=runtime,
            architecture=architecture,
            memory_mib=memory_mib,
            timeout=timeout,
            environment=api_env,
            vpc=self.vpc,
            subnets=subnets,
            log_retention=log_retention,
            log_removal_policy=removal_policy,
            reserved_concurrency=reserved_concurrency,
            provisioned_concurrency=provisioned_concurrency,
            snap_start=snap_start,
            cors_origins=cors_origins,
            throttle_rate_limit=throttle_rate_limit,
            throttle_burst_limit=throttle_burst_limit,
        )
        self.function = self.api.function
        self.alias = self.api.alias
        self.http_api = self.api.http_api
        self._grant_runtime_access(self.function, database_secrets=api_database_secrets)
        if self.database is not None:
            if platform_settings or self.database.proxy is not None:
                self.database.allow_from(self.function)
            else:
                self.database.allow_direct_from(self.function)
        if self.cache is not None:
            self.cache.secret.grant_read(self.function)
            self.cache.allow_from(self.function)
        if self.storage is not None:
            self.storage.grant_objects(self.function)
            if self.api.security_group is not None:
                # DeleteObject leaves from the function's security group: egress to S3's
                # addresses (its managed prefix list, the destination of the gateway endpoint's
                # routes, and of S3's public addresses behind a NAT in a VPC passed in).
                self.function.connections.allow_to(
                    ec2.Peer.prefix_list(s3_prefix_list_id(self)), ec2.Port.tcp(443), "HTTPS to S3"
                )
            role = self.function.role
            assert role is not None
            suppress_object_prefix_grant(
                role.node.find_child("DefaultPolicy"), storage_prefix=self.storage.options.prefix
            )

        self.migrations: triggers.Trigger | None = None
        self.migrate_function: lambda_.Function | None = None
        if app.migrations != "none" and self.database is not None:
            self._migrate_on_deploy(
                code=code,
                runtime=runtime,
                architecture=architecture,
                environment=migrate_env,
                subnets=subnets,
                database_secrets=migrate_database_secrets,
                log_retention=log_retention,
                removal_policy=removal_policy,
            )

    def _migrate_on_deploy(
        self,
        *,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        environment: dict[str, str],
        subnets: ec2.SubnetSelection | None,
        database_secrets: list[secretsmanager.ISecret],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        """The migration function, and the Trigger that runs it on deploy before the new code."""
        assert self.vpc is not None and self.database is not None and self.secrets_endpoint is not None
        self.migrate_function = lambda_.Function(
            self,
            "MigrateFunction",
            code=code,
            handler=MIGRATE_HANDLER,
            runtime=runtime,
            architecture=architecture,
            memory_size=512,
            timeout=MIGRATION_TIMEOUT,
            environment=environment,
            vpc=self.vpc,
            vpc_subnets=subnets,
            security_groups=[
                ec2.SecurityGroup(
                    self,
                    "MigrateSecurityGroup",
                    vpc=self.vpc,
                    description="The migration function",
                    allow_all_outbound=False,
                )
            ],
            tracing=lambda_.Tracing.ACTIVE,
            log_group=logs.LogGroup(
                self, "MigrateLogs", retention=log_retention, removal_policy=removal_policy
            ),
            description="Applies the database migrations on deploy",
        )
        self._grant_runtime_access(self.migrate_function, database_secrets=database_secrets)
        self.database.allow_direct_from(self.migrate_function)
        role = self.migrate_function.role
        assert role is not None
        suppress_lambda_baseline(role, role.node.try_find_child("DefaultPolicy"))
        suppress(
            self.migrate_function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by the deployment's trigger: a failure fails the deployment.",
        )
        # Runs on every deploy whose code changed (the handler's version changes),
        # after the database exists and before the API function's new version.
        self.migrations = triggers.Trigger(
            self,
            "Migrate",
            handler=self.migrate_function,
            # The cluster (with its writer), both credentials secrets with the cluster's
            # address attached, the endpoint; not the proxy, which the migrations bypass.
            execute_after=[*self.database.ready_for_migrations, self.secrets_endpoint],
            execute_before=[self.api.function, self.api.alias],
            timeout=MIGRATION_TIMEOUT,
            invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
            execute_on_handler_change=True,
        )

    def _settings(
        self,
        app: AppOptions,
        *,
        database: DatabaseOptions,
        platform_settings: bool,
        environment: Mapping[str, str],
        app_environment: str,
        cors_origins: Sequence[str],
    ) -> tuple[dict[str, str], dict[str, str], list[secretsmanager.ISecret], list[secretsmanager.ISecret]]:
        """The API function's and the migration function's variables, and the database
        secrets each reads."""
        entry_env = app.entry_environment()
        if platform_settings:
            assert self.secret_key is not None and self.database is not None
            env = {
                **entry_env,
                "ENVIRONMENT": app_environment,
                "SECRET_KEY_SECRET_ARN": self.secret_key.secret_arn,
                # Both roles' URLs name the stack's database (the generated master secret has no dbname).
                "DATABASE_NAME": database.database_name,
                "CORS_ORIGINS": json.dumps(list(cors_origins)),
                # Aurora resumes from zero capacity in ~15 s: give the first connection time.
                "DB_CONNECT_TIMEOUT_SECONDS": "20" if database.scales_to_zero else "5",
                **{f"{name}_SECRET_ARN": secret.secret_arn for name, secret in self.extra_secrets.items()},
                **environment,
            }
            # The service connects as the application role; the migrations as the master user,
            # and they create the application role from its secret.
            migrate_env = {
                **env,
                "DATABASE_SECRET_ARN": self.database.secret.secret_arn,
                "APP_DB_SECRET_ARN": self.database.app_secret.secret_arn,
            }
            # With RDS Proxy the service goes through it; the migrations connect to the cluster
            # directly, so they never wait on the proxy's target (whose health may need the role
            # the migrations are about to create).
            api_env = {
                **env,
                **(
                    {"DATABASE_HOST": self.database.proxy.endpoint} if self.database.proxy is not None else {}
                ),
                "DATABASE_SECRET_ARN": self.database.app_secret.secret_arn,
            }
            api_database_secrets: list[secretsmanager.ISecret] = [self.database.app_secret]
            migrate_database_secrets: list[secretsmanager.ISecret] = [
                self.database.secret,
                self.database.app_secret,
            ]
        else:
            # The runtime entry reads these secrets into the variables the app names, before
            # the app is imported. The app connects as the database's owner (its migrations
            # create its tables), through the proxy when there is one.
            named_secrets = {
                **(
                    {app.secret_key_variable: self.secret_key.secret_arn}
                    if self.secret_key and app.secret_key_variable
                    else {}
                ),
                **{name: secret.secret_arn for name, secret in self.extra_secrets.items()},
            }
            env = {
                **entry_env,
                **({SECRETS_VARIABLE: json.dumps(named_secrets)} if named_secrets else {}),
                **environment,
            }
            api_env, migrate_env = dict(env), dict(env)
            api_database_secrets, migrate_database_secrets = [], []
            if self.database is not None and app.database is not None:
                proxy_host = self.database.proxy.endpoint if self.database.proxy is not None else None
                for target, host in ((api_env, proxy_host), (migrate_env, None)):
                    target[DATABASE_VARIABLE] = json.dumps(
                        app.database.entry_config(
                            secret_arn=self.database.secret.secret_arn,
                            database=database.database_name,
                            host=host,
                        )
                    )
                api_database_secrets = migrate_database_secrets = [self.database.secret]
        return api_env, migrate_env, api_database_secrets, migrate_database_secrets

    def _backing_services(
        self,
        cache: CacheOptions | None,
        storage: StorageOptions | None,
        *,
        subnets: ec2.SubnetSelection | None,
        own_vpc: bool,
    ) -> dict[str, str]:
        """The optional cache and bucket; returns the API function's settings for them."""
        env: dict[str, str] = {}
        self.cache: ServerlessCache | None = None
        if cache is not None:
            assert self.vpc is not None and subnets is not None  # a cache puts the function in a VPC
            self.cache = ServerlessCache(self, "Cache", vpc=self.vpc, subnets=subnets, options=cache)
            env |= {
                "REDIS_HOST": self.cache.endpoint_address,
                "REDIS_PORT": self.cache.endpoint_port,
                "REDIS_SECRET_ARN": self.cache.secret.secret_arn,
            }
        self.storage: UploadsBucket | None = None
        self.s3_endpoint: ec2.GatewayVpcEndpoint | None = None
        if storage is not None:
            self.storage = UploadsBucket(self, "Storage", options=storage)
            if own_vpc and self.vpc is not None and subnets is not None:
                # Presigning needs no network, but deleting an attachment calls S3: from isolated
                # subnets, through S3's gateway endpoint (free). A VPC passed in brings its own
                # route (an endpoint of its own, or a NAT): a second endpoint would clash with it.
                self.s3_endpoint = self.vpc.add_gateway_endpoint(
                    "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[subnets]
                )
                self.storage.allow_through(self.s3_endpoint)
            env |= {
                "STORAGE_BACKEND": "s3",
                "UPLOADS_BUCKET": self.storage.bucket_name,
                "UPLOADS_PREFIX": storage.prefix,
                "UPLOAD_MAX_BYTES": str(int(storage.max_upload.to_bytes())),
                "UPLOAD_URL_EXPIRY_SECONDS": str(int(storage.url_expiry.to_seconds())),
            }
        return env

    def _grant_runtime_access(
        self, function: lambda_.Function, *, database_secrets: Sequence[secretsmanager.ISecret]
    ) -> None:
        for database_secret in database_secrets:
            database_secret.grant_read(function)
        if self.secret_key is not None:
            self.secret_key.grant_read(function)
        for secret in self.extra_secrets.values():
            secret.grant_read(function)
        if self.secrets_endpoint is not None:
            # Connections add the ingress rule on the target and the egress rule on the function.
            self.secrets_endpoint.connections.allow_default_port_from(function, "HTTPS to Secrets Manager")


def s3_prefix_list_id(scope: Construct) -> str:
    """The id of the region's S3 managed prefix list (``com.amazonaws.<region>.s3``), read at
    deploy time: CloudFormation has no attribute for it, and a synth-time lookup would need
    credentials and a fixed region. One read-only EC2 call by aws-cdk-lib's custom resource."""
    stack = Stack.of(scope)
    lookup = stack.node.try_find_child("S3PrefixList")  # one per stack
    if not isinstance(lookup, cr.AwsCustomResource):
        call = cr.AwsSdkCall(
            service="EC2",
            action="DescribeManagedPrefixLists",
            parameters={
                "Filters": [{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{stack.region}.s3"]}]
            },
            physical_resource_id=cr.PhysicalResourceId.of("s3-prefix-list"),
            output_paths=["PrefixLists.0.PrefixListId"],
        )
        lookup = cr.AwsCustomResource(
            stack,
            "S3PrefixList",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE
            ),
            install_latest_aws_sdk=False,
            memory_size=128,  # one small SDK call
            # Without one, the library makes a log group that CloudFormation retains, even when
            # its creation rolls back; this one goes with the stack.
            log_group=logs.LogGroup(
                stack,
                "S3PrefixListLogs",
                retention=logs.RetentionDays.ONE_WEEK,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        suppress_sdk_call_provider(
            lookup,
            stack.node.find_child("AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")),
            "ec2:DescribeManagedPrefixLists supports no resource-level permissions (Resource '*' is the "
            "only form IAM accepts); it reads prefix list metadata only.",
        )
    return lookup.get_response_field("PrefixLists.0.PrefixListId")


# Lambda: "The total size of all environment variables doesn't exceed 4 KB" (keys and values).
LAMBDA_ENVIRONMENT_LIMIT = 4096
# What a deploy-time value (an ARN, an endpoint) may take once resolved: a secret's ARN is
# about 100 characters (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6>).
RESOLVED_TOKEN_ESTIMATE = 128


def check_environment_size(environment: Mapping[str, str]) -> None:
    """Refuse at synth what Lambda would refuse at deploy: variables over 4 KB in all. A value
    known only at deploy counts for RESOLVED_TOKEN_ESTIMATE per token in it."""
    total = 0
    for key, value in environment.items():
        tokens = Token.is_unresolved(value)
        literal = re.sub(r"\$\{Token\[[^\]]*\]\}", "", value) if tokens else value
        count = len(re.findall(r"\$\{Token\[", value)) or int(tokens)
        total += len(key.encode()) + len(literal.encode()) + count * RESOLVED_TOKEN_ESTIMATE
    if total > LAMBDA_ENVIRONMENT_LIMIT:
        raise ValueError(
            f"environment: the function's variables would take about {total} bytes, over Lambda's "
            f"{LAMBDA_ENVIRONMENT_LIMIT} (4 KB, names and values together): move large values to "
            "secrets or to files in the app"
        )


def _private_subnets(vpc: ec2.IVpc) -> ec2.SubnetSelection:
    """Isolated subnets when the VPC has them, else private ones with egress."""
    if vpc.isolated_subnets:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    if vpc.private_subnets:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
    raise ValueError("vpc must have isolated or private subnets (the database is never public)")


def _isolated_vpc(
    scope: Construct, *, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
) -> ec2.Vpc:
    vpc = ec2.Vpc(
        scope,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(
                name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
            )
        ],
    )
    flow_logs = logs.LogGroup(scope, "FlowLogs", retention=log_retention, removal_policy=removal_policy)
    vpc.add_flow_log(
        "FlowLogs",
        traffic_type=ec2.FlowLogTrafficType.REJECT,
        destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
    )
    return vpc


def _validate(
    *,
    code_path: Path,
    memory_mib: int,
    timeout: Duration,
    reserved_concurrency: int | None,
    provisioned_concurrency: int,
) -> None:
    if not code_path.is_dir():
        raise ValueError(f"code_path must be a directory, got {code_path}")
    if not 128 <= memory_mib <= 10240:
        raise ValueError(f"memory_mib must be 128..10240 MiB, got {memory_mib}")
    if timeout.to_seconds() >= INTEGRATION_TIMEOUT_LIMIT.to_seconds():
        raise ValueError(
            f"timeout must be under the HTTP API integration's "
            f"{INTEGRATION_TIMEOUT_LIMIT.to_seconds():.0f} s, got {timeout.to_seconds():.0f} s"
        )
    if reserved_concurrency is not None and reserved_concurrency < 1:
        raise ValueError(f"reserved_concurrency must be >= 1 or None, got {reserved_concurrency}")
    if provisioned_concurrency < 0:
        raise ValueError(f"provisioned_concurrency must be >= 0, got {provisioned_concurrency}")
    if reserved_concurrency is not None and provisioned_concurrency > reserved_concurrency:
        raise ValueError("provisioned_concurrency must not exceed reserved_concurrency")
