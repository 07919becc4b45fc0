"""The AWS stack: the deployment spec, applied to FastApiLambdaService."""

from __future__ import annotations

import logging
from typing import get_args

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib.aws.bundling.target import python_version_of
from constructs_lib.aws.bundling.tools import PythonChoice, choose_python, missing_python_message
from constructs_lib.aws.cache import CacheEngine, CacheOptions
from constructs_lib.aws.database import DatabaseOptions
from constructs_lib.aws.fastapi_lambda_service import FastApiLambdaService
from constructs_lib.aws.http_function import newest_python_runtime, python_runtime
from constructs_lib.aws.nag import skip_checkov, suppress
from constructs_lib.aws.storage import StorageOptions
from stacks.spec import Architecture, Compute, Spec, SpecError, Stage

log = logging.getLogger(__name__)

ARCHITECTURES = {
    Architecture.ARM64: lambda_.Architecture.ARM_64,
    Architecture.X86_64: lambda_.Architecture.X86_64,
}


# The retention periods CloudWatch Logs accepts, in days.
RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
    1096: "THREE_YEARS", 1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS", 3288: "NINE_YEARS", 3653: "TEN_YEARS",
}  # fmt: skip


def retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention period that keeps logs at least ``days``."""
    allowed = min((d for d in RETENTION_DAYS if d >= days), default=max(RETENTION_DAYS))
    return getattr(logs.RetentionDays, RETENTION_DAYS[allowed])  # type: ignore[no-any-return]


class AwsServiceStack(Stack):
    """Environment-agnostic on purpose: `cdk synth` needs no credentials and looks
    nothing up; `cdk deploy` takes the account and region from the CLI's profile."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: Spec, **kwargs: object) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"{spec.name}: FastAPI on Lambda",
            # database.deletion_protection: the stack cannot be deleted until this is turned off;
            # the cluster itself is kept anyway (RetainExceptOnCreate). RDS's own flag stays off:
            # it would keep a failed first create from rolling back (DatabaseOptions).
            termination_protection=spec.database.deletion_protection,
            **kwargs,  # type: ignore[arg-type]
        )
        self.spec = spec
        # The one version both the function's runtime and its bundle (wheels, bytecode) are for.
        self.python = lambda_python(spec, bundling=self.bundling_required)
        removal = removal_policy(spec)
        self.service = FastApiLambdaService(
            self,
            "Service",
            code_path=spec.service_path,
            app=spec.app.options(),
            bundle_drop_packages=spec.lambda_drop_packages,
            lock_dir=spec.lock_dir,
            runtime=python_runtime(self.python.version),
            architecture=ARCHITECTURES[spec.compute.architecture],
            memory_mib=spec.compute.memory_mib,
            timeout=Duration.seconds(spec.compute.timeout_seconds),
            environment=(
                {"APP_NAME": spec.project, **spec.environment}
                if spec.app.database.settings == "secret-arns"
                else dict(spec.environment)
            ),
            extra_secrets=spec.secrets,
            provisioned_concurrency=spec.scaling.min_instances,
            snap_start=spec.compute.snap_start,
            reserved_concurrency=spec.scaling.max_instances if spec.scaling.reserve_concurrency else None,
            cors_origins=spec.cors_origins,
            log_retention=retention(spec.log_retention_days),
            removal_policy=removal,
            app_environment=spec.stage.value,
            database=database_options(spec) if spec.app.database.enabled else None,
            cache=cache_options(spec) if spec.cache.enabled else None,
            storage=storage_options(spec, removal) if spec.storage.enabled else None,
        )
        self._allow_older_python()
        for key, value in (("project", spec.project), ("stage", spec.stage.value)):
            # DBProxyTargetGroup takes no tags (CloudFormation would reject them).
            Tags.of(self).add(key, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
        skip_checkov(self)
        CfnOutput(self, "ApiUrl", value=self.service.api.url, description="Base URL of the API")
        CfnOutput(self, "FunctionName", value=self.service.function.function_name)
        if self.service.migrate_function is not None:
            # Invoke it to re-apply the application role's password after changing its secret.
            CfnOutput(self, "MigrateFunctionName", value=self.service.migrate_function.function_name)
        CfnOutput(self, "LogGroup", value=self.service.api.log_group.log_group_name)
        if self.service.database is not None:
            CfnOutput(self, "DatabaseSecretArn", value=self.service.database.secret.secret_arn)
        if self.service.cache is not None:
            CfnOutput(self, "CacheEndpoint", value=self.service.cache.endpoint_address)
            CfnOutput(self, "CacheSecretArn", value=self.service.cache.secret.secret_arn)
        if self.service.storage is not None:
            CfnOutput(self, "UploadsBucketName", value=self.service.storage.bucket_name)

    def _allow_older_python(self) -> None:
        """cdk-nag wants the newest Python runtime; an older one is chosen on purpose (auto: the
        newest this machine has, so that the bundle carries bytecode; or the spec names it)."""
        if self.python.version == python_version_of(newest_python_runtime()):
            return
        reason = (
            f"python{self.python.version} is deliberate: compute.python is {self.python.requested}, "
            f"and the bundle carries bytecode only for a CPython the synthesizing machine has "
            f"(a cold start without it compiles every import); a supported Lambda runtime"
        )
        for function in (self.service.function, self.service.migrate_function):
            if function is not None:
                for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
                    suppress(function, rule, reason)


# Lambda's Python runtimes on Amazon Linux 2 (glibc 2.26: manylinux2014 wheels only). auto never
# picks one: common dependencies no longer publish such wheels (greenlet 3.5.6 and
# argon2-cffi-bindings 26.2.0, locked by the example service, do not, so its bundle for 3.11
# cannot be built without Docker), and python3.11 reaches end of support on 2027-06-30.
AMAZON_LINUX_2_PYTHONS = frozenset({"3.10", "3.11"})


def lambda_python_versions() -> tuple[str, ...]:
    """The versions ``compute.python`` names (the Python runtimes Lambda supports: 3.11 on
    Amazon Linux 2, 3.12 and later on Amazon Linux 2023), less any this aws-cdk-lib lacks."""
    known = []
    for version in get_args(Compute.model_fields["python"].annotation):
        if version == "auto":
            continue
        try:
            python_runtime(version)
        except ValueError:
            continue
        known.append(version)
    return tuple(known)


def auto_python_versions() -> tuple[str, ...]:
    """The versions auto chooses among: those on Amazon Linux 2023 (3.12 and later); 3.11 only
    when ``compute.python`` names it (:data:`AMAZON_LINUX_2_PYTHONS`)."""
    return tuple(v for v in lambda_python_versions() if v not in AMAZON_LINUX_2_PYTHONS)


def lambda_python(spec: Spec, *, bundling: bool) -> PythonChoice:
    """The Lambda Python for ``spec.compute.python`` (:func:`choose_python`; auto: the newest of
    :func:`auto_python_versions` that this machine has, so that the bundle carries bytecode for it).

    When this machine has no CPython of the chosen version, the bundle would ship without
    bytecode and every cold start would compile every import again: prod fails the synth (a
    :class:`SpecError` naming ``compute.python`` and the fixes), dev warns. Only when this
    stack's bundle is built (``bundling``): a synth that skips bundling builds nothing.
    """
    versions = auto_python_versions()
    choice = choose_python(spec.compute.python, versions)
    if choice.bytecode or not bundling:
        return choice
    message = missing_python_message(choice, field="compute.python", supported=versions)
    if choice.requested == "auto":
        message += (
            " (auto leaves out 3.11: Lambda runs it on Amazon Linux 2, for which many current "
            'dependencies publish no wheels; compute.python: "3.11" names it)'
        )
    if spec.stage is Stage.PROD:
        raise SpecError(f"{message}. (prod refuses a bundle without bytecode; dev only warns)")
    log.warning("warning: %s. (dev: synthesized anyway; prod refuses this)", message)
    return choice


def removal_policy(spec: Spec) -> RemovalPolicy:
    """Prod keeps its data when the stack is deleted or a resource replaced, but not when the
    resource's own creation rolls back: CloudFormation's RetainExceptOnCreate. A failed first
    deploy then leaves nothing billing, and no fixed name for the retry to collide with."""
    return RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if spec.stage is Stage.PROD else RemovalPolicy.DESTROY


def database_options(spec: Spec) -> DatabaseOptions:
    return DatabaseOptions(
        version=spec.database.version,
        min_capacity_acu=spec.database.min_capacity_acu,
        max_capacity_acu=spec.database.max_capacity_acu,
        database_name=spec.database.name,
        backup_retention=Duration.days(spec.database.backup_retention_days),
        removal_policy=removal_policy(spec),
        rds_proxy=spec.database.rds_proxy,
        log_retention=retention(spec.log_retention_days),
    )


def cache_options(spec: Spec) -> CacheOptions:
    return CacheOptions(
        engine=CacheEngine(spec.cache.aws_engine),
        max_data_gb=spec.cache.aws_max_data_gb,
        max_ecpu_per_second=spec.cache.aws_max_ecpu_per_second,
        # A day of snapshots in prod (cents a month at this size); a dev cache is disposable.
        snapshot_retention_days=1 if spec.stage is Stage.PROD else 0,
        # Deleted with the stack in every stage: it holds login counters and copies of users,
        # nothing that must outlive the service, and its names are fixed (CloudFormation
        # requires them), so a retained cache would block the next create of the same stack.
        removal_policy=RemovalPolicy.DESTROY,
    )


def storage_options(spec: Spec, removal: RemovalPolicy) -> StorageOptions:
    return StorageOptions(
        prefix=spec.storage.prefix,
        max_upload=Size.mebibytes(spec.storage.max_upload_mib),
        url_expiry=Duration.seconds(spec.storage.url_expiry_seconds),
        cors_origins=spec.cors_origins,
        versioned=spec.storage.versioned,
        noncurrent_version_expiration=Duration.days(spec.storage.noncurrent_days),
        removal_policy=removal,
        auto_delete_objects=removal == RemovalPolicy.DESTROY,
    )
