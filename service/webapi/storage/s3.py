"""Amazon S3: presigned POST for uploads (the policy pins key, type and exact size),
presigned GET for downloads. Signing is local (SigV4), no network.

boto3 ships with the Lambda runtime and is not bundled (see :mod:`webapi.aws_secrets`):
it is imported here, only when STORAGE_BACKEND=s3.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio

from webapi.storage.base import StorageError, UploadTicket, content_disposition


def s3_client(region: str | None) -> Any:
    import boto3  # noqa: PLC0415 - deferred: only the s3 backend needs it
    from botocore.config import Config  # type: ignore[import-untyped]  # noqa: PLC0415

    # SigV4 against the regional endpoint, in virtual-hosted style
    # (https://<bucket>.s3.<region>.amazonaws.com): no redirect from the global endpoint.
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=f"https://s3.{region}.amazonaws.com" if region else None,
        # Presigning is local; only DeleteObject calls S3, and a slow S3 must not hold a request.
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "virtual"},
            connect_timeout=2,
            read_timeout=5,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        expiry_seconds: int,
        client: Any = None,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket = bucket
        self.expiry_seconds = expiry_seconds
        self._client = client
        self.region = region
        self.clock = clock

    @property
    def client(self) -> Any:
        """Made on first use: creating an S3 client loads botocore's S3 model (tens of ms), which a
        cold start that never touches attachments should not pay."""
        if self._client is None:
            self._client = s3_client(self.region)
        return self._client

    def _expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.clock() + self.expiry_seconds, UTC)

    async def presign_upload(self, *, key: str, content_type: str, size: int, filename: str) -> UploadTicket:
        with _as_storage_error("presign POST"):
            return self._presign_upload(key=key, content_type=content_type, size=size)

    def _presign_upload(self, *, key: str, content_type: str, size: int) -> UploadTicket:
        expires_at = self._expires_at()
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,  # boto3 adds the {"bucket"} and {"key"} conditions itself
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=self.expiry_seconds,
        )
        return UploadTicket(
            method="POST",
            url=str(post["url"]),
            fields={str(k): str(v) for k, v in post["fields"].items()},
            expires_at=expires_at,
        )

    async def presign_download(self, *, key: str, filename: str, content_type: str) -> tuple[str, datetime]:
        with _as_storage_error("presign GET"):
            return self._presign_download(key=key, filename=filename, content_type=content_type)

    def _presign_download(self, *, key: str, filename: str, content_type: str) -> tuple[str, datetime]:
        expires_at = self._expires_at()
        url = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=self.expiry_seconds,
        )
        return str(url), expires_at

    async def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]  # noqa: PLC0415

        call = functools.partial(self.client.delete_object, Bucket=self.bucket, Key=key)
        try:
            await anyio.to_thread.run_sync(call)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 DeleteObject failed: {type(exc).__name__}") from exc


@contextlib.contextmanager
def _as_storage_error(operation: str) -> Iterator[None]:
    """botocore's failures (no credentials, no region, a client error) as StorageError: a 503."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"S3 {operation} failed: {type(exc).__name__}") from exc
