"""What the service's and the job's containers share: their variables and the /cloudsql volume
(the two resources' structs are distinct generated classes of the same shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdktf_cdktf_provider_google.secret_manager_secret import SecretManagerSecret

from constructs_lib.gcp.cloud_sql import CLOUDSQL_MOUNT

CLOUDSQL_VOLUME = "cloudsql"


def env_entries(
    plain: Mapping[str, str], secrets: Mapping[str, SecretManagerSecret], *, env: Any, source: Any, ref: Any
) -> list[Any]:
    """Plain variables, then secrets as references to their latest version."""
    entries = [env(name=key, value=value) for key, value in sorted(plain.items())]
    entries += [
        env(name=key, value_source=source(secret_key_ref=ref(secret=secret.secret_id, version="latest")))
        for key, secret in sorted(secrets.items())
    ]
    return entries


def cloudsql_mounts(connection_name: str | None, *, mount: Any) -> list[Any] | None:
    return [mount(name=CLOUDSQL_VOLUME, mount_path=CLOUDSQL_MOUNT)] if connection_name is not None else None


def cloudsql_volumes(connection_name: str | None, *, volume: Any, instance: Any) -> list[Any] | None:
    """Cloud Run's built-in Cloud SQL connection: the instance's socket under /cloudsql."""
    if connection_name is None:
        return None
    return [volume(name=CLOUDSQL_VOLUME, cloud_sql_instance=instance(instances=[connection_name]))]
