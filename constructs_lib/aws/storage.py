"""The uploads bucket: private, TLS-only, encrypted, with CORS for browser uploads.

Clients upload and download through presigned URLs the function signs with its own role
(presigning needs no network call), so the role may touch objects under one prefix and
nothing else; the bytes never pass through the function.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib.aws.nag import suppress

# The bounds of the service's own settings (webapi.config: UPLOADS_PREFIX, UPLOAD_URL_EXPIRY_SECONDS),
# so the construct cannot deploy a configuration the service refuses at start.
PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-/]{0,62}/$")
MIN_URL_EXPIRY = Duration.minutes(1)
MAX_URL_EXPIRY = Duration.hours(1)  # well inside SigV4's 7 days (the role's session may end sooner)
# What the function does with an attachment: presigned POST (upload), presigned GET, delete.
OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
CORS_METHODS = (s3.HttpMethods.POST, s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD)
CORS_MAX_AGE = Duration.minutes(10)
MAX_UPLOAD = Size.gibibytes(5)  # a single PUT/POST


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """What a caller may choose about the bucket; everything else is a safe default."""

    prefix: str = "uploads/"
    max_upload: Size = field(default_factory=lambda: Size.mebibytes(10))
    url_expiry: Duration = field(default_factory=lambda: Duration.minutes(15))
    cors_origins: Sequence[str] = ()
    versioned: bool = True
    noncurrent_version_expiration: Duration = field(default_factory=lambda: Duration.days(90))
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
    # Empty the bucket on stack deletion (a custom resource); only with RemovalPolicy.DESTROY.
    auto_delete_objects: bool = False

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(
                f"prefix must look like 'uploads/' ({PREFIX_PATTERN.pattern}), got {self.prefix!r}"
            )
        if not 1 <= self.max_upload.to_bytes() <= MAX_UPLOAD.to_bytes():
            raise ValueError(f"max_upload must be 1 byte..5 GiB, got {self.max_upload.to_bytes()} bytes")
        expiry = self.url_expiry.to_seconds(integral=False)
        if not MIN_URL_EXPIRY.to_seconds() <= expiry <= MAX_URL_EXPIRY.to_seconds() or expiry != int(expiry):
            raise ValueError(f"url_expiry must be whole seconds in 60 s..1 hour, got {expiry} s")
        if self.noncurrent_version_expiration.to_days() < 1:
            raise ValueError("noncurrent_version_expiration must be at least 1 day")
        if self.auto_delete_objects and self.removal_policy != RemovalPolicy.DESTROY:
            raise ValueError("auto_delete_objects needs removal_policy=RemovalPolicy.DESTROY")

    @property
    def object_pattern(self) -> str:
        """The keys the service may use, as an IAM resource suffix."""
        return f"{self.prefix}*"


class UploadsBucket(Construct):
    """The bucket; :meth:`grant_objects` lets a principal sign URLs for keys under the prefix."""

    def __init__(self, scope: Construct, construct_id: str, *, options: StorageOptions) -> None:
        super().__init__(scope, construct_id)
        self.options = options
        lifecycle = [
            s3.LifecycleRule(
                id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)
            )
        ]
        if options.versioned:
            lifecycle.append(
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=options.noncurrent_version_expiration,
                    # Once a deleted attachment's old versions have expired, its delete marker is
                    # all that is left: remove it too (S3 never does by itself).
                    expired_object_delete_marker=True,
                )
            )
        cors = None
        if options.cors_origins:
            cors = [
                s3.CorsRule(
                    allowed_origins=list(options.cors_origins),
                    allowed_methods=list(CORS_METHODS),
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=int(CORS_MAX_AGE.to_seconds()),
                )
            ]
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=options.versioned,
            lifecycle_rules=lifecycle,
            cors=cors,
            removal_policy=options.removal_policy,
            auto_delete_objects=options.auto_delete_objects,
        )
        suppress(
            self.bucket,
            "AwsSolutions-S1",
            "No server access logs: they need a second bucket and log every presigned GET/POST. Every URL "
            "is handed out by the API, whose access log records the request (request id, route, caller IP, "
            "status); CloudTrail S3 data events give an object-level audit where one is required.",
        )

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    def allow_through(self, endpoint: ec2.GatewayVpcEndpoint) -> None:
        """Let the VPC's S3 gateway endpoint carry the object actions on this bucket's prefix, and
        nothing else (its default policy would reach any bucket)."""
        endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=list(OBJECT_ACTIONS),
                resources=[self.bucket.arn_for_objects(self.options.object_pattern)],
            )
        )

    def grant_objects(self, grantee: iam.IGrantable) -> iam.Grant:
        """Put/Get/Delete on ``<bucket>/<prefix>*`` only: no listing, no other keys, no bucket settings."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(OBJECT_ACTIONS),
            resource_arns=[self.bucket.arn_for_objects(self.options.object_pattern)],
        )
