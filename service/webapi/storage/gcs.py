"""Google Cloud Storage: V4 signed URLs ("GOOG4-RSA-SHA256") built with the standard library.

Cloud Run has no private key to sign with, so the signature comes from the IAM
Credentials API (``signBlob``) on behalf of the service account, authenticated with an
access token from the metadata server. Both HTTP endpoints are injectable for tests.

The signing process (https://cloud.google.com/storage/docs/access-control/signing-urls-manually):

1. canonical request = method, path, canonical query string, canonical headers, a blank
   line, signed header names, ``UNSIGNED-PAYLOAD``, joined by newlines;
2. string to sign = ``GOOG4-RSA-SHA256``, the request timestamp, the credential scope
   (``<date>/auto/storage/goog4_request``) and the hex SHA-256 of the canonical request;
3. signature = RSA-SHA256 of the string to sign (here: signBlob), hex-encoded, appended
   as ``X-Goog-Signature``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

import anyio

from webapi.storage.base import StorageError, UploadTicket, content_disposition

ALGORITHM = "GOOG4-RSA-SHA256"
STORAGE_HOST = "storage.googleapis.com"
METADATA_URL = "http://metadata.google.internal"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"
_ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"
_TOKEN_REFRESH_MARGIN_SECONDS = 300
_HTTP_TIMEOUT_SECONDS = 5.0


class TokenSource(Protocol):
    """An OAuth access token for Google APIs. Blocking: called in a worker thread."""

    def token(self) -> str: ...


class Signer(Protocol):
    """Signs bytes as a service account (RSA-SHA256). Blocking: called in a worker thread."""

    def email(self) -> str: ...

    def sign(self, payload: bytes) -> bytes: ...


def _http_json(request: urllib.request.Request) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            body = response.read()
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
        raise StorageError(f"{request.get_method()} {request.full_url} failed: {exc}") from exc
    try:
        data = json.loads(body)
    except ValueError:
        raise StorageError(f"{request.full_url} answered something other than JSON") from None
    if not isinstance(data, dict):
        raise StorageError(f"{request.full_url} answered something other than a JSON object")
    return data


class MetadataTokenSource:
    """The instance's service-account access token, cached until shortly before it expires."""

    def __init__(self, *, base_url: str = METADATA_URL, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0

    def _get(self, path: str) -> urllib.request.Request:
        if not self.base_url.startswith(("http://", "https://")):
            raise StorageError("the metadata server URL must be http(s)")
        return urllib.request.Request(self.base_url + path, headers={"Metadata-Flavor": "Google"})  # noqa: S310 - scheme checked

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._valid_until:
                data = _http_json(self._get(_ACCOUNT_PATH + "token"))
                try:
                    token, lifetime = str(data["access_token"]), float(data["expires_in"])
                except (KeyError, TypeError, ValueError):
                    raise StorageError("the metadata server's token answer is malformed") from None
                self._token = token
                self._valid_until = self.clock() + lifetime - _TOKEN_REFRESH_MARGIN_SECONDS
            return self._token

    def email(self) -> str:
        request = self._get(_ACCOUNT_PATH + "email")
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                return str(response.read().decode().strip())
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
            raise StorageError(f"metadata server: {exc}") from exc


class IamSigner:
    """signBlob on the IAM Credentials API, as ``service_account`` (by default the
    instance's own account, which then needs roles/iam.serviceAccountTokenCreator on itself)."""

    def __init__(
        self,
        *,
        tokens: MetadataTokenSource,
        service_account: str | None = None,
        base_url: str = IAM_CREDENTIALS_URL,
    ) -> None:
        self.tokens = tokens
        self._email = service_account
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()

    def email(self) -> str:
        with self._lock:
            if self._email is None:
                self._email = self.tokens.email()
            return self._email

    def sign(self, payload: bytes) -> bytes:
        if not self.base_url.startswith(("http://", "https://")):
            raise StorageError("the IAM Credentials URL must be http(s)")
        url = f"{self.base_url}/v1/projects/-/serviceAccounts/{quote(self.email(), safe='@')}:signBlob"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=json.dumps({"payload": base64.b64encode(payload).decode("ascii")}).encode(),
            headers={"Authorization": f"Bearer {self.tokens.token()}", "Content-Type": "application/json"},
            method="POST",
        )
        data = _http_json(request)
        try:
            return base64.b64decode(data["signedBlob"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise StorageError("signBlob's answer has no valid signedBlob") from None


def _quote(value: str) -> str:
    # RFC 3986 unreserved characters stay, everything else is percent-encoded.
    return quote(value, safe="~")


@dataclass(frozen=True)
class V4Request:
    """A request ready to sign: what goes into the signature, and the URL without it."""

    canonical_request: str
    string_to_sign: str
    url_without_signature: str


def v4_request(
    *,
    method: str,
    bucket: str,
    key: str,
    email: str,
    now: datetime,
    expiry_seconds: int,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    host: str = STORAGE_HOST,
) -> V4Request:
    timestamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{timestamp[:8]}/auto/storage/goog4_request"
    canonical_headers = {name.lower(): " ".join(value.split()) for name, value in (headers or {}).items()}
    canonical_headers["host"] = host
    names = sorted(canonical_headers)
    signed_headers = ";".join(names)
    params = {
        **(query or {}),
        "X-Goog-Algorithm": ALGORITHM,
        "X-Goog-Credential": f"{email}/{scope}",
        "X-Goog-Date": timestamp,
        "X-Goog-Expires": str(expiry_seconds),
        "X-Goog-SignedHeaders": signed_headers,
    }
    query_string = "&".join(f"{k}={v}" for k, v in sorted((_quote(k), _quote(v)) for k, v in params.items()))
    path = f"/{bucket}/{quote(key, safe='/~')}"
    canonical_request = "\n".join(
        [
            method,
            path,
            query_string,
            "".join(f"{name}:{canonical_headers[name]}\n" for name in names),
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    return V4Request(canonical_request, string_to_sign, f"https://{host}{path}?{query_string}")


class GcsStorage:
    def __init__(
        self,
        *,
        bucket: str,
        expiry_seconds: int,
        signer: Signer,
        tokens: TokenSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bucket = bucket
        self.expiry_seconds = expiry_seconds
        self.signer = signer
        self.tokens = tokens  # for deletes (JSON API); signing needs none
        self.clock = clock

    def _signed_url(
        self, method: str, key: str, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[str, datetime]:
        now = self.clock().replace(microsecond=0)
        request = v4_request(
            method=method,
            bucket=self.bucket,
            key=key,
            email=self.signer.email(),
            now=now,
            expiry_seconds=self.expiry_seconds,
            headers=headers,
            query=query,
        )
        signature = self.signer.sign(request.string_to_sign.encode()).hex()
        url = f"{request.url_without_signature}&X-Goog-Signature={signature}"
        return url, now + timedelta(seconds=self.expiry_seconds)

    async def presign_upload(self, *, key: str, content_type: str, size: int, filename: str) -> UploadTicket:
        # The PUT must carry these headers with these values, or GCS refuses the signature.
        headers = {"Content-Type": content_type, "x-goog-content-length-range": f"{size},{size}"}
        url, expires_at = await anyio.to_thread.run_sync(self._signed_url, "PUT", key, headers, {})
        return UploadTicket(method="PUT", url=url, headers=headers, expires_at=expires_at)

    async def presign_download(self, *, key: str, filename: str, content_type: str) -> tuple[str, datetime]:
        query = {
            "response-content-disposition": content_disposition(filename),
            "response-content-type": content_type,
        }
        return await anyio.to_thread.run_sync(self._signed_url, "GET", key, {}, query)

    async def delete(self, key: str) -> None:
        tokens = self.tokens
        if tokens is None:
            raise StorageError("deleting needs an access token source")
        url = f"https://{STORAGE_HOST}/storage/v1/b/{_quote(self.bucket)}/o/{quote(key, safe='')}"

        def call() -> None:
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {tokens.token()}"}, method="DELETE"
            )
            try:
                with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS):  # noqa: S310
                    pass
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # already gone is fine
                    raise StorageError(f"GCS delete failed: HTTP {exc.code}") from exc
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
                raise StorageError(f"GCS delete failed: {exc}") from exc

        await anyio.to_thread.run_sync(call)
