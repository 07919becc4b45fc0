"""Object storage for attachments: one interface, three backends (s3, gcs, local)."""

from __future__ import annotations

from pathlib import Path

from webapi.config import Settings, SettingsError
from webapi.storage.base import Storage, StorageError, UploadTicket, content_disposition
from webapi.storage.gcs import GcsStorage, IamSigner, MetadataTokenSource
from webapi.storage.local import LocalStorage
from webapi.storage.s3 import S3Storage

__all__ = ["Storage", "StorageError", "UploadTicket", "build_storage", "content_disposition"]


def build_storage(settings: Settings) -> Storage | None:
    """The configured backend, or None when attachments are off. Once per process."""
    backend = settings.storage_backend
    if backend is None:
        return None
    if backend == "local":
        return LocalStorage(
            root=Path(settings.local_storage_dir),
            secret=settings.signing_key,
            expiry_seconds=settings.upload_url_expiry_seconds,
        )
    bucket = settings.uploads_bucket
    if not bucket:  # the settings validator already refuses this
        raise SettingsError(f"UPLOADS_BUCKET is required with STORAGE_BACKEND={backend}")
    if backend == "s3":
        return S3Storage(
            bucket=bucket,
            expiry_seconds=settings.upload_url_expiry_seconds,
            region=settings.aws_region,  # the client is made on first use
        )
    tokens = MetadataTokenSource()
    return GcsStorage(
        bucket=bucket,
        expiry_seconds=settings.upload_url_expiry_seconds,
        signer=IamSigner(tokens=tokens, service_account=settings.signing_service_account),
        tokens=tokens,
    )
