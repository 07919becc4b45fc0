"""The cloud backends' signatures, checked offline: S3 against a SigV4 recomputed here, GCS
against an RSA key made here and against google-cloud-storage's own V4 signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from webapi.storage import content_disposition
from webapi.storage.base import StorageError
from webapi.storage.gcs import GcsStorage, IamSigner, MetadataTokenSource
from webapi.storage.s3 import S3Storage, s3_client

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-3"
BUCKET = "webapi-uploads-test"
KEY = "uploads/0b6c7e2a-3f1e-4f55-9a57-0d3f0d6c1a11/7d1f/9a2b"
SA_EMAIL = "webapi-run@demo-project.iam.gserviceaccount.com"
FROZEN = datetime(2026, 11, 25, 9, 30, 5, tzinfo=UTC)
EXPIRY = 900


def hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sigv4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac_sha256(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = hmac_sha256(key, part)
    return key


# S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> S3Storage:
    # Fixed fake credentials, and nothing from this machine's AWS configuration.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return S3Storage(bucket=BUCKET, expiry_seconds=EXPIRY, client=s3_client(REGION))


async def test_s3_presigned_post_pins_key_type_and_exact_size(s3: S3Storage) -> None:
    before = datetime.now(UTC)
    ticket = await s3.presign_upload(key=KEY, content_type="image/png", size=1234, filename="cat.png")
    assert ticket.method == "POST" and ticket.headers == {}
    assert ticket.url == f"https://{BUCKET}.s3.{REGION}.amazonaws.com/"  # regional, virtual-hosted
    fields = ticket.fields
    assert fields["key"] == KEY and fields["Content-Type"] == "image/png"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    access_key, date, region, service, terminator = fields["x-amz-credential"].split("/")
    assert (access_key, region, service, terminator) == (ACCESS_KEY, REGION, "s3", "aws4_request")
    assert fields["x-amz-date"].startswith(date) and date == before.strftime("%Y%m%d")

    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    for condition in (
        {"bucket": BUCKET},
        {"key": KEY},
        {"Content-Type": "image/png"},
        ["content-length-range", 1234, 1234],
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": fields["x-amz-credential"]},
        {"x-amz-date": fields["x-amz-date"]},
    ):
        assert condition in conditions
    assert len(conditions) == 7  # nothing else, in particular no "starts-with" wildcard
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((expiration - (before + timedelta(seconds=EXPIRY))).total_seconds()) < 5
    assert abs((ticket.expires_at - expiration).total_seconds()) < 5

    # SigV4 for a POST policy: the signature is the HMAC of the base64 policy itself.
    expected = hmac.new(
        sigv4_signing_key(SECRET_KEY, date, REGION, "s3"), fields["policy"].encode(), hashlib.sha256
    ).hexdigest()
    assert fields["x-amz-signature"] == expected


async def test_s3_presigned_get_sets_expiry_and_disposition(s3: S3Storage) -> None:
    url, expires_at = await s3.presign_download(
        key=KEY, filename="résumé 1.pdf", content_type="application/pdf"
    )
    parts = urlsplit(url)
    assert parts.netloc == f"{BUCKET}.s3.{REGION}.amazonaws.com" and parts.path == f"/{KEY}"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["X-Amz-Expires"] == str(EXPIRY)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["response-content-disposition"] == content_disposition("résumé 1.pdf")
    assert query["response-content-disposition"].endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%201.pdf")
    assert query["response-content-type"] == "application/pdf"
    assert query["X-Amz-SignedHeaders"] == "host"
    _, date, region, service, _ = query["X-Amz-Credential"].split("/")
    assert (region, service) == (REGION, "s3")
    assert expires_at > datetime.now(UTC) + timedelta(seconds=EXPIRY - 5)

    # Recompute the query-string SigV4 from the URL: canonical request, string to sign, HMAC.
    pairs = sorted(
        (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
        for k, _, v in (p.partition("=") for p in parts.query.split("&"))
        if k != "X-Amz-Signature"
    )
    canonical = "\n".join(
        [
            "GET",
            quote(unquote(parts.path), safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            f"host:{parts.netloc}\n",
            "host",
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = f"{date}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = sigv4_signing_key(SECRET_KEY, date, REGION, "s3")
    assert query["X-Amz-Signature"] == hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()


# GCS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class KeySigner:
    """Stands in for signBlob: signs with a local key, as the service account would."""

    key: rsa.RSAPrivateKey
    signed: list[bytes] = field(default_factory=list)

    def email(self) -> str:
        return SA_EMAIL

    def sign(self, payload: bytes) -> bytes:
        self.signed.append(payload)
        return self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def gcs_storage(signer: Any) -> GcsStorage:
    return GcsStorage(bucket=BUCKET, expiry_seconds=EXPIRY, signer=signer, clock=lambda: FROZEN)


def gcs_string_to_sign(method: str, url: str, headers: dict[str, str]) -> tuple[str, str]:
    """Rebuilt from the URL and the headers the client will send, per Google's V4 process."""
    parts = urlsplit(url)
    pairs = [p.partition("=") for p in parts.query.split("&")]
    query = sorted((k, v) for k, _, v in pairs if k != "X-Goog-Signature")
    canonical_headers = {k.lower(): v.strip() for k, v in {**headers, "host": parts.netloc}.items()}
    names = sorted(canonical_headers)
    canonical = "\n".join(
        [
            method,
            parts.path,
            "&".join(f"{k}={v}" for k, v in query),
            "".join(f"{n}:{canonical_headers[n]}\n" for n in names),
            ";".join(names),
            "UNSIGNED-PAYLOAD",
        ]
    )
    params = {k: unquote(v) for k, _, v in pairs}
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            params["X-Goog-Date"],
            params["X-Goog-Credential"].split("/", 1)[1],
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    return to_sign, params["X-Goog-Signature"]


def verify(key: rsa.RSAPrivateKey, to_sign: str, signature_hex: str) -> None:
    key.public_key().verify(
        bytes.fromhex(signature_hex), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


async def test_gcs_upload_url_signs_type_and_length_range(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = KeySigner(rsa_key)
    ticket = await gcs_storage(signer).presign_upload(
        key=KEY, content_type="image/png", size=1234, filename="cat.png"
    )
    assert ticket.method == "PUT" and ticket.fields == {}
    assert ticket.headers == {"Content-Type": "image/png", "x-goog-content-length-range": "1234,1234"}
    assert ticket.expires_at == FROZEN.replace(microsecond=0) + timedelta(seconds=EXPIRY)
    parts = urlsplit(ticket.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "storage.googleapis.com", f"/{BUCKET}/{KEY}")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Credential"] == f"{SA_EMAIL}/20261125/auto/storage/goog4_request"
    assert query["X-Goog-Date"] == "20261125T093005Z"
    assert query["X-Goog-Expires"] == str(EXPIRY)
    assert query["X-Goog-SignedHeaders"] == "content-type;host;x-goog-content-length-range"

    to_sign, signature = gcs_string_to_sign("PUT", ticket.url, ticket.headers)
    assert signer.signed == [to_sign.encode()]
    verify(rsa_key, to_sign, signature)
    with pytest.raises(InvalidSignature):  # the headers are part of what is signed
        verify(
            rsa_key,
            gcs_string_to_sign("PUT", ticket.url, {**ticket.headers, "Content-Type": "text/html"})[0],
            signature,
        )


async def test_gcs_download_url_sets_disposition(rsa_key: rsa.RSAPrivateKey) -> None:
    url, expires_at = await gcs_storage(KeySigner(rsa_key)).presign_download(
        key=KEY, filename="résumé 1.pdf", content_type="application/pdf"
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["response-content-disposition"] == content_disposition("résumé 1.pdf")
    assert query["response-content-type"] == "application/pdf"
    assert query["X-Goog-SignedHeaders"] == "host"
    assert expires_at == FROZEN.replace(microsecond=0) + timedelta(seconds=EXPIRY)
    verify(rsa_key, *gcs_string_to_sign("GET", url, {}))


@pytest.fixture
def google_signer(rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> Any:
    """google-cloud-storage's V4 signer, with service-account credentials from the same key,
    at the same frozen time."""
    from google.cloud import storage as gcs  # type: ignore[import-untyped]
    from google.cloud.storage import _signing  # type: ignore[import-untyped]
    from google.oauth2 import service_account

    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        {
            "type": "service_account",
            "client_email": SA_EMAIL,
            "private_key": pem,
            "private_key_id": "test",
            "token_uri": "https://oauth2.googleapis.com/token",
            "project_id": "demo-project",
        }
    )
    stamp = FROZEN.strftime("%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(_signing, "get_v4_now_dtstamps", lambda: (stamp, stamp[:8]))
    client = gcs.Client(project="demo-project", credentials=credentials)
    return client.bucket(BUCKET), credentials


@pytest.mark.parametrize("key", [KEY, "uploads/odd name/é+~(1)!*'.bin"])
async def test_gcs_urls_match_google_cloud_storage(
    rsa_key: rsa.RSAPrivateKey, google_signer: Any, key: str
) -> None:
    bucket, credentials = google_signer
    ours = gcs_storage(KeySigner(rsa_key))

    ticket = await ours.presign_upload(key=key, content_type="image/png", size=1234, filename="x")
    theirs = bucket.blob(key).generate_signed_url(
        version="v4",
        expiration=timedelta(seconds=EXPIRY),
        method="PUT",
        content_type="image/png",
        headers={"x-goog-content-length-range": "1234,1234"},
        credentials=credentials,
    )
    assert ticket.url == theirs

    url, _ = await ours.presign_download(key=key, filename="résumé 1.pdf", content_type="application/pdf")
    theirs = bucket.blob(key).generate_signed_url(
        version="v4",
        expiration=timedelta(seconds=EXPIRY),
        method="GET",
        response_disposition=content_disposition("résumé 1.pdf"),
        response_type="application/pdf",
        credentials=credentials,
    )
    assert url == theirs


# The metadata server and signBlob, over HTTP ----------------------------------------------


@dataclass
class FakeGoogle:
    """Plays the metadata server and the IAM Credentials API on 127.0.0.1."""

    key: rsa.RSAPrivateKey
    base_url: str = ""
    token_requests: int = 0
    sign_requests: list[dict[str, Any]] = field(default_factory=list)
    fail_signing: bool = False


@pytest.fixture
def fake_google(rsa_key: rsa.RSAPrivateKey) -> Iterator[FakeGoogle]:
    state = FakeGoogle(rsa_key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self.reply(403, b'{"error": "missing Metadata-Flavor"}')
            elif self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
                state.token_requests += 1
                token = f"ya29.fake-{state.token_requests}"
                self.reply(200, json.dumps({"access_token": token, "expires_in": 3599}).encode())
            elif self.path == "/computeMetadata/v1/instance/service-accounts/default/email":
                self.reply(200, SA_EMAIL.encode(), "application/text")
            else:
                self.reply(404, b"{}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.sign_requests.append(
                {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
            )
            if self.path != f"/v1/projects/-/serviceAccounts/{SA_EMAIL}:signBlob" or state.fail_signing:
                self.reply(403, b'{"error": {"code": 403, "status": "PERMISSION_DENIED"}}')
                return
            signature = state.key.sign(base64.b64decode(body["payload"]), padding.PKCS1v15(), hashes.SHA256())
            answer = {"keyId": "k1", "signedBlob": base64.b64encode(signature).decode()}
            self.reply(200, json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_gcs_signs_through_metadata_token_and_sign_blob(fake_google: FakeGoogle) -> None:
    now = [1000.0]
    tokens = MetadataTokenSource(base_url=fake_google.base_url, clock=lambda: now[0])
    signer = IamSigner(tokens=tokens, base_url=fake_google.base_url)  # email from the metadata server
    storage = gcs_storage(signer)

    ticket = await storage.presign_upload(key=KEY, content_type="text/plain", size=3, filename="a.txt")
    to_sign, signature = gcs_string_to_sign("PUT", ticket.url, ticket.headers)
    verify(fake_google.key, to_sign, signature)
    [request] = fake_google.sign_requests
    assert request["authorization"] == "Bearer ya29.fake-1"
    assert base64.b64decode(request["body"]["payload"]) == to_sign.encode()

    await storage.presign_download(key=KEY, filename="a.txt", content_type="text/plain")
    assert fake_google.token_requests == 1  # cached
    now[0] += 3599 - 300  # within the refresh margin of the token's expiry
    await storage.presign_download(key=KEY, filename="a.txt", content_type="text/plain")
    assert fake_google.token_requests == 2
    assert fake_google.sign_requests[-1]["authorization"] == "Bearer ya29.fake-2"


async def test_gcs_signing_failures_are_storage_errors(fake_google: FakeGoogle) -> None:
    tokens = MetadataTokenSource(base_url=fake_google.base_url)
    fake_google.fail_signing = True
    storage = gcs_storage(IamSigner(tokens=tokens, service_account=SA_EMAIL, base_url=fake_google.base_url))
    with pytest.raises(StorageError, match="403"):
        await storage.presign_upload(key=KEY, content_type="text/plain", size=3, filename="a.txt")
    unreachable = MetadataTokenSource(base_url="http://127.0.0.1:9")
    storage = gcs_storage(IamSigner(tokens=unreachable, service_account=SA_EMAIL))
    with pytest.raises(StorageError):
        await storage.presign_download(key=KEY, filename="a.txt", content_type="text/plain")
