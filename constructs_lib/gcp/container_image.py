"""ContainerImage: the Artifact Registry repository, the build's own identity and staging
bucket, and a Cloud Build run that builds the image when its content hash changes."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cdktf import AssetType, DataResource, ITerraformDependable, LocalExecProvisioner, TerraformAsset
from cdktf_cdktf_provider_google import artifact_registry_repository as ar
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
)
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from constructs import Construct

from constructs_lib.gcp.addresses import Part, flat
from constructs_lib.gcp.image import BuildContext, gcloud_ignore_text, source_hash
from constructs_lib.gcp.names import account_id
from constructs_lib.gcp.storage import bucket_name

BUILD_CONFIG = Path(__file__).resolve().parent / "cloudbuild.yaml"
IMAGE_RETENTION = "2592000s"  # untagged and superseded images older than 30 days go


class ContainerImage(Part):
    """``repository``, ``build_service_account``, ``staging_bucket``, ``build`` (the Cloud
    Build run of ``context``) and ``image`` (its reference, tagged with ``source_hash`` of the
    context)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        region: str,
        name: str,
        context: BuildContext,
        depends_on: Sequence[ITerraformDependable],
    ) -> None:
        super().__init__(scope, construct_id)
        after_apis = list(depends_on)
        self.context = context
        self.repository = flat(
            ar.ArtifactRegistryRepository(
                self,
                "repository",
                project=project,
                location=region,
                repository_id=name,
                format="DOCKER",
                description=f"Images of {name}",
                cleanup_policies=[
                    ar.ArtifactRegistryRepositoryCleanupPolicies(
                        id="delete-old",
                        action="DELETE",
                        condition=ar.ArtifactRegistryRepositoryCleanupPoliciesCondition(
                            tag_state="ANY", older_than=IMAGE_RETENTION
                        ),
                    ),
                    # KEEP wins over DELETE: the ten newest images stay whatever their age,
                    # so a rollback target is always there.
                    ar.ArtifactRegistryRepositoryCleanupPolicies(
                        id="keep-recent",
                        action="KEEP",
                        most_recent_versions=ar.ArtifactRegistryRepositoryCleanupPoliciesMostRecentVersions(
                            keep_count=10
                        ),
                    ),
                ],
                depends_on=after_apis,
            )
        )
        self.source_hash = source_hash(context.directory, context.dockerfile)
        self.image = f"{region}-docker.pkg.dev/{project}/{name}/api:{self.source_hash[:16]}"
        self.build_service_account = flat(
            ServiceAccount(
                self,
                "builder",
                project=project,
                account_id=account_id(name, "build"),
                display_name=f"Cloud Build for {name}",
                depends_on=after_apis,
            )
        )
        builder = f"serviceAccount:{self.build_service_account.email}"
        # The source upload goes to a bucket of its own, which alone the builder may read
        # (a project-wide grant would let builds read every bucket, Terraform state included).
        self.staging_bucket = flat(
            StorageBucket(
                self,
                "build-staging",
                project=project,
                name=bucket_name(project, name, "build"),
                location=region,
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                force_destroy=True,
                lifecycle_rule=[
                    StorageBucketLifecycleRule(
                        action=StorageBucketLifecycleRuleAction(type="Delete"),
                        condition=StorageBucketLifecycleRuleCondition(age=7),
                    )
                ],
                depends_on=after_apis,
            )
        )
        grants = [
            flat(
                ArtifactRegistryRepositoryIamMember(
                    self,
                    "builder-pushes-images",
                    project=project,
                    location=region,
                    repository=self.repository.name,
                    role="roles/artifactregistry.writer",
                    member=builder,
                )
            ),
            flat(
                ProjectIamMember(
                    self,
                    "builder-writes-logs",
                    project=project,
                    role="roles/logging.logWriter",
                    member=builder,
                )
            ),
            flat(
                StorageBucketIamMember(
                    self,
                    "builder-reads-source",
                    bucket=self.staging_bucket.name,
                    role="roles/storage.objectViewer",
                    member=builder,
                )
            ),
        ]
        build_config = TerraformAsset(self, "build-config", path=str(BUILD_CONFIG), type=AssetType.FILE)
        upload_rules: list[str] = []
        self.upload_rules: Path | None = None  # an own context's rules for gcloud's upload
        if context.deploy_path is None:
            # A generated context: copied into the synth output beside the stack.
            staged = TerraformAsset(self, "context", path=str(context.directory), type=AssetType.DIRECTORY)
            build_context = f"${{path.module}}/{staged.path}"
        else:
            build_context = context.deploy_path
            # The app's own context: gcloud uploads what Docker would see (.dockerignore).
            self.upload_rules = _ignore_file(context.directory, context.dockerfile)
            ignore = TerraformAsset(self, "upload-rules", path=str(self.upload_rules), type=AssetType.FILE)
            upload_rules = [f"--ignore-file=${{abspath(path.module)}}/{ignore.path}"]
        self.build = flat(
            DataResource(
                self,
                "image-build",
                triggers_replace={"image": self.image, "config": build_config.asset_hash},
                provisioners=[
                    LocalExecProvisioner(
                        type="local-exec",
                        command=" ".join(
                            [
                                "gcloud builds submit",
                                build_context,
                                f"--project={project}",
                                f"--region={region}",
                                f"--config=${{path.module}}/{build_config.path}",
                                f"--substitutions=_IMAGE={self.image},_DOCKERFILE={context.dockerfile}",
                                f"--gcs-source-staging-dir=gs://{self.staging_bucket.name}/source",
                                *upload_rules,
                                f"--service-account=projects/{project}/serviceAccounts/{self.build_service_account.email}",
                                "--quiet",
                            ]
                        ),
                    )
                ],
                depends_on=[self.repository, *grants],
            )
        )


def _ignore_file(context: Path, dockerfile: str) -> Path:
    """The upload rules of ``context`` in a file of their own (named by content, outside the
    user's directory: the asset copies it into the synth output)."""
    text = gcloud_ignore_text(context, dockerfile)
    directory = (
        Path(tempfile.gettempdir())
        / "serverless-fastapi-upload-rules"
        / hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gcloudignore"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path
