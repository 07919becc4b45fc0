"""The uploads bucket: attachments that clients PUT and GET through V4 signed URLs.

The bytes never pass through the service: it signs URLs as its own runtime service account,
with the IAM Credentials API's signBlob (no key file), so that account may create tokens for
itself (and no other), and may touch objects under the uploads prefix of this bucket only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import TerraformResource
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktf_cdktf_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketCors,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
    StorageBucketVersioning,
)
from cdktf_cdktf_provider_google.storage_bucket_iam_member import (
    StorageBucketIamMember,
    StorageBucketIamMemberCondition,
)
from constructs import Construct

MIB = 1024 * 1024
# What a browser sends and reads on a signed-URL upload or download.
CORS_METHODS = ("PUT", "GET", "HEAD", "POST")
CORS_HEADERS = ("Content-Type", "x-goog-content-length-range", "ETag")
# The bounds of the service's own settings (webapi.config: UPLOADS_PREFIX, UPLOAD_URL_EXPIRY_SECONDS),
# so the construct cannot deploy a configuration the service refuses at start.
PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-/]{0,62}/$")
MIN_URL_EXPIRY_SECONDS = 60
MAX_URL_EXPIRY_SECONDS = 3600  # well inside V4 signing's 7 days
OBJECT_ROLE = "roles/storage.objectUser"  # create, read, overwrite, delete: no bucket settings, no IAM
SIGNER_ROLE = "roles/iam.serviceAccountTokenCreator"  # holds iam.serviceAccounts.signBlob


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    prefix: str = "uploads/"
    max_upload_mib: int = 10
    url_expiry_seconds: int = 900
    versioned: bool = True
    noncurrent_days: int = 30
    cors_origins: Sequence[str] = ()
    cors_max_age_seconds: int = 3600
    # Keep the objects when the stack is destroyed (destroy fails on a non-empty bucket).
    force_destroy: bool = False

    def __post_init__(self) -> None:
        if not PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(
                f"prefix must look like 'uploads/' ({PREFIX_PATTERN.pattern}), got {self.prefix!r}"
            )
        if not 1 <= self.max_upload_mib <= 5 * 1024:
            raise ValueError(
                f"max_upload_mib must be 1..5120 (a single PUT's limit), got {self.max_upload_mib}"
            )
        if not MIN_URL_EXPIRY_SECONDS <= self.url_expiry_seconds <= MAX_URL_EXPIRY_SECONDS:
            raise ValueError(
                f"url_expiry_seconds must be {MIN_URL_EXPIRY_SECONDS}..{MAX_URL_EXPIRY_SECONDS} "
                f"(the service's UPLOAD_URL_EXPIRY_SECONDS), got {self.url_expiry_seconds}"
            )
        if not 1 <= self.noncurrent_days <= 3650:
            raise ValueError(f"noncurrent_days must be 1..3650, got {self.noncurrent_days}")
        if not 0 <= self.cors_max_age_seconds <= 86400:
            raise ValueError(f"cors_max_age_seconds must be 0..86400, got {self.cors_max_age_seconds}")


class UploadsBucket(Construct):
    """Parts, as attributes: ``bucket``, ``object_grant`` (the runtime account, on objects
    under the prefix), ``signer_grant`` (the runtime account may sign as itself), ``grants``
    (both), ``environment`` (what the service reads)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        runtime: ServiceAccount,
        options: StorageOptions,
        depends_on: list[TerraformResource],
    ) -> None:
        super().__init__(scope, construct_id)
        bucket_id = bucket_name(project, name, "uploads")
        self.bucket = StorageBucket(
            self,
            "bucket",
            project=project,
            name=bucket_id,
            location=region,
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=options.force_destroy,
            versioning=StorageBucketVersioning(enabled=options.versioned),
            lifecycle_rule=[
                # Overwritten and deleted attachments: kept noncurrent_days, then gone.
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(
                        days_since_noncurrent_time=options.noncurrent_days, with_state="ARCHIVED"
                    ),
                ),
                # Multipart uploads a client started and never finished: their parts are billed.
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="AbortIncompleteMultipartUpload"),
                    condition=StorageBucketLifecycleRuleCondition(age=1),
                ),
            ],
            cors=(
                [
                    StorageBucketCors(
                        origin=list(options.cors_origins),
                        method=list(CORS_METHODS),
                        response_header=list(CORS_HEADERS),
                        max_age_seconds=options.cors_max_age_seconds,
                    )
                ]
                if options.cors_origins
                else None
            ),
            labels={"app": name},
            depends_on=depends_on,
        )
        member = f"serviceAccount:{runtime.email}"
        # Conditions on bucket grants need uniform bucket-level access (on above). Object
        # permissions are checked against the object's name, so this also denies listing.
        objects = f"projects/_/buckets/{bucket_id}/objects/{options.prefix}"
        if '"' in objects or "\\" in objects:
            # Pasted into a CEL string literal below. PREFIX_PATTERN keeps quotes and backslashes
            # out of the prefix, and valid project ids and names hold none; checked again here so
            # nothing can break out of the expression.
            raise ValueError(f"the IAM condition cannot quote {objects!r}")
        self.object_grant = StorageBucketIamMember(
            self,
            "runtime-uses-objects",
            bucket=self.bucket.name,
            role=OBJECT_ROLE,
            member=member,
            condition=StorageBucketIamMemberCondition(
                title=f"only {options.prefix}",
                description=f"Objects under {options.prefix} of {bucket_id}",
                expression=f'resource.name.startsWith("{objects}")',
            ),
        )
        # signBlob on itself only: a project-wide grant would let it sign as every account.
        self.signer_grant = ServiceAccountIamMember(
            self,
            "runtime-signs-as-itself",
            service_account_id=runtime.name,
            role=SIGNER_ROLE,
            member=member,
        )
        self.grants: list[TerraformResource] = [self.object_grant, self.signer_grant]
        self.environment = {
            "STORAGE_BACKEND": "gcs",
            "UPLOADS_BUCKET": self.bucket.name,
            "UPLOADS_PREFIX": options.prefix,
            "UPLOAD_MAX_BYTES": str(options.max_upload_mib * MIB),
            "UPLOAD_URL_EXPIRY_SECONDS": str(options.url_expiry_seconds),
            "SIGNING_SERVICE_ACCOUNT": runtime.email,
        }


def bucket_name(project: str, name: str, suffix: str) -> str:
    """A globally unique bucket name (project ids are unique), at most 63 characters."""
    return f"{project}-{name}"[: 62 - len(suffix)].rstrip("-") + f"-{suffix}"
