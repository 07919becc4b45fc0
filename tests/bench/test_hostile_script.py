"""The plumbing of `make hostile` (bench/hostile.py), without PostgreSQL or the service: its
HTTP client's keep-alive accounting, the paced flood, the log scan, and a crashing scenario
becoming a failed row while the next one still runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bench.hostile import FULL, Report, run_scenario, scan_log, table
from bench.hostile_client import Connection, FloodSpec, SourceAddresses, Tally, TransportFailure, flood

Handler = Callable[[int, bytes], bytes | None]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@pytest.fixture
async def stub() -> AsyncIterator[tuple[int, list[Handler]]]:
    """A server that answers the n-th request on a connection with ``handlers[0](n, request)``;
    None closes the connection without an answer."""
    handlers: list[Handler] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                request = await _read_request(reader)
                n += 1
                answer = handlers[0](n, request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, handlers
    finally:
        server.close()
        await server.wait_closed()


def _plain(status: int, body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_keep_alive_is_reused_and_a_dropped_request_is_reported(
    stub: tuple[int, list[Handler]],
) -> None:
    port, handlers = stub

    def answer(n: int, request: bytes) -> bytes | None:
        if n == 1:
            assert request.startswith(b"POST /one HTTP/1.1\r\n")
            assert request.endswith(b'{"a": 1}')
            return _plain(201, b'{"id": "x"}', "Retry-After: 7\r\nX-Request-ID: r1\r\n")
        if n == 2:
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        return None  # the third request is dropped

    handlers.append(answer)
    tally = Tally()
    conn = Connection("127.0.0.1", port, source="127.0.0.3", tally=tally, timeout=5)
    first = await conn.request("POST", "/one", json_body={"a": 1})
    assert (first.status, first.json(), first.retry_after(1), first.request_id()) == (
        201,
        {"id": "x"},
        7,
        "r1",
    )
    second = await conn.request("GET", "/two")
    assert second.body == b"abcde"
    with pytest.raises(TransportFailure) as failure:
        await conn.request("PATCH", "/three", form={"k": "v"})
    assert (failure.value.kind, failure.value.reused) == ("closed", True)
    assert conn.connections_opened == 1
    assert tally.statuses == {"201": 1, "200": 1, "no response: closed": 1}
    assert tally.unanswered[0]["request"] == "PATCH /three"
    # The next request opens a new connection (and this one is answered 500: recorded with its id).
    handlers[0] = lambda n, request: _plain(500, b"{}", "X-Request-ID: r9\r\n")
    assert (await conn.request("GET", "/four")).status == 500
    assert conn.connections_opened == 2
    assert tally.count_500 == 1 and tally.five_hundreds[0]["request_id"] == "r9"
    await conn.close()


async def test_the_flood_is_paced_and_counted_by_body(stub: tuple[int, list[Handler]]) -> None:
    port, handlers = stub
    handlers.append(lambda n, request: _plain(409 if b"dup" in request else 429, b"{}"))
    spec = FloodSpec(
        host="127.0.0.1",
        port=port,
        path="/users",
        bodies={"duplicate": json.dumps({"e": "dup"}), "fresh": json.dumps({"e": "f-{seq}"})},
        connections=4,
        rate=40.0,
        duration_s=0.5,
    )
    result = await flood(spec)
    assert set(result["statuses"]) == {"duplicate 409", "fresh 429"}
    assert 12 <= result["requests"] <= 24  # 40/s for half a second, not as fast as answered


def test_a_crashed_scenario_is_a_failed_row_and_the_next_one_runs(tmp_path: Path) -> None:
    report = Report(tmp_path / "results.json", quick=True, plan=FULL)

    def crash(details: dict[str, Any]) -> None:
        details["started"] = True
        raise RuntimeError("the database went away")

    def measure(details: dict[str, Any]) -> None:
        report.add("fine", "a figure", value=0, measured="0", goal="0", met=True)

    run_scenario(report, "broken", crash)
    run_scenario(report, "fine", measure)
    written = json.loads((tmp_path / "results.json").read_text())
    assert [row["met"] for row in written["rows"]] == [False, True]
    assert "RuntimeError: the database went away" in written["scenarios"]["broken"]["crash"]
    assert written["scenarios"]["broken"]["started"] is True
    assert report.missed == ["broken: the scenario ran to its end"]
    lines = table(report.rows).splitlines()
    assert lines[0].split(" | ")[0].strip() == "figure" and lines[0].rstrip().endswith("met?")
    assert lines[2].rstrip().endswith("NO") and lines[3].rstrip().endswith("yes")


def test_the_log_scan_finds_tracebacks_and_500s(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    entries = [
        {"severity": "INFO", "logger": "webapi.access", "message": "request", "status": 500},
        {
            "severity": "ERROR",
            "logger": "webapi.error",
            "message": "unhandled exception",
            "path": "/api/v1/items",
            "request_id": "r1",
            "exception": "Traceback (most recent call last):\nRuntimeError: Caught handled exception, "
            "but response already started.\n(Background on this error at: x)",
        },
    ]
    log.write_text("\n".join(json.dumps(e) for e in entries) + "\nTraceback (most recent call last):\n")
    found = scan_log(log)
    assert (found["tracebacks"], found["access_log_500s"], found["response_already_started"]) == (2, 1, 1)
    assert "response already started" in found["problems"][0]["problem"]
    assert found["problems"][0]["request_id"] == "r1"


def test_source_addresses_are_distinct_loopback_addresses() -> None:
    addresses = SourceAddresses()
    taken = [addresses() for _ in range(600)]
    assert len(set(taken)) == 600
    assert all(a.startswith("127.") and not a.endswith((".0", ".255")) for a in taken)
