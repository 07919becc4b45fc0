"""Files on the local disk, for development and tests.

Uploads and downloads go through the app itself (see :mod:`webapi.storage.local_routes`)
with the same shape as S3's: an upload is a form POST whose fields carry a policy (key,
content type, exact size, expiry) and an HMAC of it; a download is a GET of a signed token.
The HMAC key is derived from the app's SECRET_KEY, so nothing else needs configuring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import anyio

from webapi.storage.base import UploadTicket

# Relative to the app's root (its root_path), where local_routes is mounted under /api/v1.
UPLOAD_PATH = "api/v1/storage/local/upload"
DOWNLOAD_PATH = "api/v1/storage/local/"
_CHUNK = 64 * 1024


class SignatureError(Exception):
    """A policy or token that is tampered with, malformed or expired."""


class UploadRejected(Exception):
    """An upload that does not match its policy (size, content type, key)."""


@dataclass(frozen=True)
class UploadPolicy:
    key: str
    content_type: str
    size: int
    expires: int  # Unix time


@dataclass(frozen=True)
class DownloadGrant:
    key: str
    filename: str
    content_type: str
    expires: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError("malformed") from None


class LocalStorage:
    def __init__(
        self,
        *,
        root: Path,
        secret: str,
        expiry_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root.resolve()
        self._key = hmac.new(secret.encode(), b"webapi.storage.local.v1", hashlib.sha256).digest()
        self.expiry_seconds = expiry_seconds
        self.clock = clock

    # Signing ---------------------------------------------------------------------------

    def _mac(self, purpose: bytes, payload: str) -> str:
        return hmac.new(self._key, purpose + b":" + payload.encode("ascii"), hashlib.sha256).hexdigest()

    def _sign(self, purpose: bytes, doc: dict[str, Any]) -> tuple[str, str]:
        """The encoded ``doc`` and its signature for ``purpose``: what :meth:`_check` reverses."""
        payload = _b64encode(json.dumps(doc, separators=(",", ":")).encode())
        return payload, self._mac(purpose, payload)

    def _expiry(self) -> int:
        return int(self.clock()) + self.expiry_seconds

    def _check(self, purpose: bytes, payload: str, signature: str) -> dict[str, Any]:
        if not (payload.isascii() and signature.isascii()):
            raise SignatureError("malformed")  # ours are ASCII; compare_digest refuses anything else
        if not hmac.compare_digest(self._mac(purpose, payload), signature):
            raise SignatureError("signature does not match")
        try:
            data = json.loads(_b64decode(payload))
        except ValueError:
            raise SignatureError("malformed") from None
        if not isinstance(data, dict) or not isinstance(data.get("expires"), int):
            raise SignatureError("malformed")
        if data["expires"] <= self.clock():
            raise SignatureError("expired")
        return data

    def policy(self, *, key: str, content_type: str, size: int) -> tuple[str, str, int]:
        """The encoded policy, its signature and its expiry."""
        expires = self._expiry()
        doc = {"key": key, "content_type": content_type, "size": size, "expires": expires}
        payload, signature = self._sign(b"upload", doc)
        return payload, signature, expires

    def verify_policy(self, payload: str, signature: str) -> UploadPolicy:
        data = self._check(b"upload", payload, signature)
        try:
            return UploadPolicy(
                key=str(data["key"]),
                content_type=str(data["content_type"]),
                size=int(data["size"]),
                expires=data["expires"],
            )
        except (KeyError, TypeError, ValueError):
            raise SignatureError("malformed") from None

    def download_token(self, *, key: str, filename: str, content_type: str) -> tuple[str, int]:
        expires = self._expiry()
        doc = {"key": key, "filename": filename, "content_type": content_type, "expires": expires}
        payload, signature = self._sign(b"download", doc)
        return f"{payload}.{signature}", expires

    def verify_download_token(self, token: str) -> DownloadGrant:
        payload, _, signature = token.partition(".")
        data = self._check(b"download", payload, signature)
        try:
            return DownloadGrant(
                key=str(data["key"]),
                filename=str(data["filename"]),
                content_type=str(data["content_type"]),
                expires=data["expires"],
            )
        except KeyError:
            raise SignatureError("malformed") from None

    # Storage ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise SignatureError("key outside the storage directory")
        return path

    async def presign_upload(self, *, key: str, content_type: str, size: int, filename: str) -> UploadTicket:
        payload, signature, expires = self.policy(key=key, content_type=content_type, size=size)
        return UploadTicket(
            method="POST",
            url=UPLOAD_PATH,
            fields={"key": key, "Content-Type": content_type, "policy": payload, "signature": signature},
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    async def presign_download(self, *, key: str, filename: str, content_type: str) -> tuple[str, datetime]:
        token, expires = self.download_token(key=key, filename=filename, content_type=content_type)
        return DOWNLOAD_PATH + token, datetime.fromtimestamp(expires, UTC)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self.path_for(key).unlink, True)

    async def write(self, policy: UploadPolicy, source: IO[bytes]) -> None:
        """Copy exactly ``policy.size`` bytes to the key's file, atomically (tmp + rename)."""
        await anyio.to_thread.run_sync(self._write, self.path_for(policy.key), policy.size, source)

    @staticmethod
    def _write(target: Path, size: int, source: IO[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            written = 0
            with os.fdopen(fd, "wb") as tmp:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > size:
                        break
                    tmp.write(chunk)
            if written != size:
                raise UploadRejected(f"the file must be exactly {size} bytes")
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
