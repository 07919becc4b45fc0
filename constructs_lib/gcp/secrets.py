"""Secret Manager secrets that named identities (only) may read, with write-only versions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable, TerraformResource, TerraformResourceLifecycle
from cdktf_cdktf_provider_google.secret_manager_secret import (
    SecretManagerSecret,
    SecretManagerSecretReplication,
    SecretManagerSecretReplicationAuto,
)
from cdktf_cdktf_provider_google.secret_manager_secret_iam_member import SecretManagerSecretIamMember
from cdktf_cdktf_provider_google.secret_manager_secret_version import SecretManagerSecretVersion
from constructs import Construct


@dataclass
class SecretParts:
    """A secret, its first version (None: the user adds it) and a read grant per identity."""

    secret: SecretManagerSecret
    version: SecretManagerSecretVersion | None
    grants: dict[str, SecretManagerSecretIamMember] = field(default_factory=dict)  # by reader


def readable_secret(
    scope: Construct,
    slug: str,
    *,
    project: str,
    name: str,
    readers: Mapping[str, str],
    value: str | None,
    after: Sequence[ITerraformDependable],
    version: int = 1,
    replace_when_changed: Sequence[TerraformResource] = (),
) -> SecretParts:
    """The secret ``<name>-<slug>`` that ``readers`` (id -> member) only may read; with a
    generated value, its version, written through the write-only attribute so the secret's
    state holds no copy."""
    secret = SecretManagerSecret(
        scope,
        f"secret-{slug}",
        project=project,
        secret_id=f"{name}-{slug}",
        replication=SecretManagerSecretReplication(auto=SecretManagerSecretReplicationAuto()),
        depends_on=list(after),
    )
    grants = {
        reader_id: SecretManagerSecretIamMember(
            scope,
            f"{reader_id}-reads-{slug}",
            project=project,
            secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor",
            member=member,
        )
        for reader_id, member in readers.items()
    }
    secret_version = None
    if value is not None:
        secret_version = SecretManagerSecretVersion(
            scope,
            f"secret-{slug}-version",
            secret=secret.id,
            secret_data_wo=value,
            secret_data_wo_version=version,
            lifecycle=(
                TerraformResourceLifecycle(replace_triggered_by=[address(r) for r in replace_when_changed])
                if replace_when_changed
                else None
            ),
        )
    return SecretParts(secret=secret, version=secret_version, grants=grants)


def ready(parts: Iterable[SecretParts], reader: str) -> list[TerraformResource]:
    """What a container running as ``reader`` waits for before its first read: each secret's
    version (if we write one) and ``reader``'s grant on it."""
    needed: list[TerraformResource] = []
    for part in parts:
        needed.append(part.grants[reader])
        if part.version is not None:
            needed.append(part.version)
    return list(dict.fromkeys(needed))


def address(resource: TerraformResource) -> str:
    """``type.name``, bare: replace_triggered_by takes no ``${...}``, which is what cdktf writes
    for a resource given there (hashicorp/terraform-cdk#3196, #3546)."""
    return f"{resource.terraform_resource_type}.{resource.friendly_unique_id}"
