"""The 413 for an over-size body reaches clients that write the whole body before reading the
answer (urllib, requests, http.client), against the real server (uvicorn, as the container runs
it): the refused body is read and thrown away up to a bound, then answered and the connection
closed. A body past the bound is cut off: the server does no unbounded work for it.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.service.conftest import API
from tests.service.live_server import LiveServer, live_server

LIMIT = 1_048_576  # MAX_REQUEST_BODY_BYTES, the default
MiB = 1024 * 1024
BOUND = 5 * MiB  # read and thrown away up to: the limit + min(4 x the limit, 8 MiB)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("body-limit") / "server.log"
    with live_server(database_url, log, MAX_REQUEST_BODY_BYTES=str(LIMIT)) as running:
        yield running


def _connection(server: LiveServer) -> http.client.HTTPConnection:
    address = urlsplit(server.base_url)
    return http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)


def _assert_json_413(status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
    assert status == 413, body[:500]
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    answer = json.loads(body)
    assert answer["detail"] == f"Request body exceeds {LIMIT} bytes"
    assert answer["request_id"] == headers["X-Request-ID"]


def _json_body(size: int) -> bytes:
    return json.dumps({"email": "big@example.com", "name": "x" * size, "password": "p" * 12}).encode()


def _slowly(body: bytes, piece: int = 65_536, pause: float = 0.005) -> Iterator[bytes]:
    """The body in pieces a little apart, as over a network slower than loopback: the server
    answers while the client is still writing. (On loopback a few MiB sent at once fit in the
    socket buffers, which would hide a server that answered and closed without reading.)"""
    for start in range(0, len(body), piece):
        time.sleep(pause)
        yield body[start : start + piece]


def test_a_client_writing_the_whole_body_first_reads_the_413(server: LiveServer) -> None:
    body = _json_body(3 * MiB)  # over the limit, within the bound
    assert LIMIT < len(body) <= BOUND
    connection = _connection(server)
    try:
        # http.client writes headers and the whole body, and only then reads.
        connection.request(
            "POST",
            f"{API}/users",
            body=_slowly(body),
            headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
        )
        response = connection.getresponse()
        _assert_json_413(response.status, response.headers, response.read())
    finally:
        connection.close()


def test_urllib_reads_the_413(server: LiveServer) -> None:
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        f"{server.base_url}{API}/users",
        data=_json_body(2 * MiB),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - our own loopback server
    with refused.value as error:
        _assert_json_413(error.code, error.headers, error.read())


def test_a_chunked_body_without_a_length_reads_the_413(server: LiveServer) -> None:
    connection = _connection(server)
    try:
        connection.request(
            "POST",
            f"{API}/users",
            body=_slowly(_json_body(3 * MiB)),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        _assert_json_413(response.status, response.headers, response.read())
    finally:
        connection.close()


def _send_until_cut_off(server: LiveServer, head: bytes, chunk: bytes, give_up_after: int) -> int:
    """Write ``head`` then ``chunk`` after ``chunk`` until the server closes the connection;
    the bytes of body written by then."""
    address = urlsplit(server.base_url)
    sent = 0
    with socket.create_connection((address.hostname or "", address.port or 80), timeout=10) as sock:
        sock.sendall(head)
        try:
            while sent < give_up_after:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # reset or broken pipe: the server has closed it
            return sent
        # Still open after give_up_after bytes: the server kept reading.
        return sent


# Loopback socket buffers on both sides hold a few MiB the server never reads.
SLACK = 16 * MiB


def test_a_chunked_body_past_the_bound_is_cut_off(server: LiveServer) -> None:
    head = (
        f"POST {API}/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * 65_536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    started = time.monotonic()
    sent = _send_until_cut_off(server, head, chunk, give_up_after=BOUND + 4 * SLACK)
    assert sent < BOUND + SLACK, f"the server read {sent} bytes of a refused body"
    assert time.monotonic() - started < 15


def test_a_declared_length_past_the_bound_is_answered_at_once_and_closed(server: LiveServer) -> None:
    declared = 1024 * MiB
    head = (
        f"POST {API}/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sent = _send_until_cut_off(server, head, b"x" * 65_536, give_up_after=BOUND + 4 * SLACK)
    assert sent < SLACK, f"the server read {sent} bytes of a body it could refuse from its length"
