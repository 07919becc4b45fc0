"""The HTTP side of :mod:`bench.hostile`: an HTTP/1.1 client on raw asyncio streams whose
keep-alive behaviour is explicit, a paced sign-up flood to run in a process of its own, and
the PostgreSQL process control for the outages.

One :class:`Connection` is one TCP connection at a time, from a chosen loopback source
address (127.0.0.0/8 is all loopback on Linux, so each simulated client can have an address
of its own, which is what the service throttles by). Requests go one at a time; after a
response the next request reuses the socket unless the server said ``Connection: close``
or the socket sat idle longer than the server keeps it (uvicorn: 5 s), as HTTP clients do.
A request that gets no response raises :class:`TransportFailure`, which says whether the
socket was a reused keep-alive one: the figure "requests left without an answer" counts
those, and no retry hides them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

_HEADER_END = b"\r\n\r\n"
# uvicorn closes a keep-alive connection idle for 5 s: reconnect before that rather than race it.
IDLE_REUSE_LIMIT_S = 4.0
DEFAULT_TIMEOUT_S = 30.0
MAX_RECORDED = 25  # requests answered 500 (or not at all) kept per scenario, for the report


class TransportFailure(Exception):
    """No response to a request. ``kind``: connect, closed (the server closed the socket before
    any byte of a response), reset, timeout (ours: ``timeout`` seconds without a response), or
    protocol (a malformed response). ``reused``: the request went on a kept-alive socket."""

    def __init__(self, kind: str, *, reused: bool, detail: str = "") -> None:
        where = " on a reused keep-alive connection" if reused else ""
        super().__init__(f"{kind}{where}{': ' + detail if detail else ''}")
        self.kind = kind
        self.reused = reused


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.body)

    def retry_after(self, default: float) -> float:
        try:
            return float(self.headers.get("retry-after", ""))
        except ValueError:
            return default

    def request_id(self) -> str:
        return self.headers.get("x-request-id", "")


@dataclass
class Tally:
    """Every answer a scenario got: counts by status (and ``no response: <kind>``), and the
    first requests answered 500 or not at all, with the request id the server logged."""

    statuses: Counter[str] = field(default_factory=Counter)
    five_hundreds: list[dict[str, str]] = field(default_factory=list)
    unanswered: list[dict[str, str]] = field(default_factory=list)

    def answered(self, method: str, path: str, response: Response) -> None:
        self.statuses[str(response.status)] += 1
        if response.status == 500 and len(self.five_hundreds) < MAX_RECORDED:
            self.five_hundreds.append(
                {
                    "request": f"{method} {path}",
                    "request_id": response.request_id(),
                    "body": response.body[:200].decode(errors="replace"),
                }
            )

    def unanswered_request(self, method: str, path: str, failure: TransportFailure) -> None:
        self.statuses[f"no response: {failure.kind}"] += 1
        if len(self.unanswered) < MAX_RECORDED:
            self.unanswered.append({"request": f"{method} {path}", "failure": str(failure)})

    @property
    def count_500(self) -> int:
        return self.statuses.get("500", 0)

    def merge(self, other: Tally) -> None:
        self.statuses.update(other.statuses)
        self.five_hundreds.extend(other.five_hundreds[: MAX_RECORDED - len(self.five_hundreds)])
        self.unanswered.extend(other.unanswered[: MAX_RECORDED - len(self.unanswered)])

    def summary(self) -> dict[str, Any]:
        return {
            "statuses": dict(sorted(self.statuses.items())),
            "requests_answered_500": self.five_hundreds,
            "requests_unanswered": self.unanswered,
        }


class _Eof(Exception):
    def __init__(self, partial: int) -> None:
        super().__init__(partial)
        self.partial = partial


class Connection:
    """One keep-alive HTTP/1.1 connection to ``host:port`` from ``source`` (None: any)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        source: str | None = None,
        tally: Tally | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.source = source
        self.tally = tally
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._served = 0  # responses read on the current socket
        self._idle_since = 0.0
        self.connections_opened = 0

    async def connect(self) -> None:
        """Open the socket now (the first request would otherwise): a burst of requests then
        starts together instead of behind its connection handshakes."""
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, local_addr=(self.source, 0) if self.source else None
                ),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise TransportFailure("connect", reused=False, detail=type(exc).__name__) from None
        self.connections_opened += 1
        self._served = 0
        self._idle_since = time.monotonic()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    def _stale(self) -> bool:
        assert self._reader is not None
        return self._reader.at_eof() or time.monotonic() - self._idle_since > IDLE_REUSE_LIMIT_S

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Response:
        """Send one request and read its response; :class:`TransportFailure` if none came."""
        try:
            response = await self._exchange(method, path, json_body=json_body, form=form, token=token)
        except TransportFailure as failure:
            if self.tally is not None:
                self.tally.unanswered_request(method, path, failure)
            raise
        if self.tally is not None:
            self.tally.answered(method, path, response)
        return response

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        form: dict[str, str] | None,
        token: str | None,
    ) -> Response:
        if self._writer is not None and self._stale():
            await self.close()
        await self.connect()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        reused = self._served > 0
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        body = b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            lines.append("Content-Type: application/json")
        elif form is not None:
            body = urlencode(form).encode()
            lines.append("Content-Type: application/x-www-form-urlencoded")
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        started = time.perf_counter()
        timeout = self.timeout
        try:
            async with asyncio.timeout(timeout):
                writer.write(payload)
                await writer.drain()
                status, headers, content, keep_alive = await _read_response(reader, method)
        except _Eof as eof:
            await self.close()
            kind = "closed" if eof.partial == 0 else "protocol"
            raise TransportFailure(kind, reused=reused, detail=f"EOF after {eof.partial} bytes") from None
        except TimeoutError:
            await self.close()
            raise TransportFailure("timeout", reused=reused, detail=f"no response in {timeout:g} s") from None
        except OSError as exc:
            await self.close()
            raise TransportFailure("reset", reused=reused, detail=type(exc).__name__) from None
        except (ValueError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise TransportFailure("protocol", reused=reused, detail=str(exc)[:200]) from None
        elapsed = time.perf_counter() - started
        self._served += 1
        self._idle_since = time.monotonic()
        if not keep_alive:
            await self.close()
        return Response(status=status, headers=headers, body=content, elapsed_s=elapsed)


async def _read_response(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, dict[str, str], bytes, bool]:
    """One response: status, headers (lower-case names), body, whether the socket stays open."""
    try:
        head = await reader.readuntil(_HEADER_END)
    except asyncio.IncompleteReadError as exc:
        raise _Eof(len(exc.partial)) from None
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close"
    try:
        if method == "HEAD" or status in (204, 304) or status < 200:
            body = b""
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                chunks.append(data[:size])
                if size == 0:
                    break
            body = b"".join(chunks)
        else:
            body = await reader.read()
            keep_alive = False
    except asyncio.IncompleteReadError as exc:
        raise ValueError(f"response cut short after {len(exc.partial)} body bytes") from None
    return status, headers, body, keep_alive


class SourceAddresses:
    """Distinct loopback source addresses, one per simulated client: 127.20.0.1, 127.20.0.2, ..."""

    def __init__(self, second_octet: int = 20) -> None:
        self._next = 0
        self._second = second_octet

    def __call__(self) -> str:
        n = self._next
        self._next += 1
        return f"127.{self._second + n // 62500}.{(n // 250) % 250}.{n % 250 + 1}"


# --- the sign-up flood, in a process of its own ----------------------------------------------


@dataclass(frozen=True)
class FloodSpec:
    """``connections`` connections from ``source``, alternately sending ``bodies`` (name -> JSON
    text, ``{seq}`` replaced by a number unique in the run) as POST ``path``; ``rate`` requests
    per second in all, evenly paced (a connection still waits for each response: one request in
    flight at a time), or as fast as the answers come when ``rate`` is 0."""

    host: str
    port: int
    path: str
    bodies: dict[str, str]
    source: str | None = None
    connections: int = 16
    rate: float = 200.0
    duration_s: float = 10.0


async def flood(spec: FloodSpec, started: asyncio.Event | None = None) -> dict[str, Any]:
    """Run the flood; returns statuses by body name ("duplicate 409"), requests and seconds."""
    statuses: Counter[str] = Counter()
    names = sorted(spec.bodies)
    interval = spec.connections / spec.rate if spec.rate > 0 else 0.0
    begin = time.monotonic()
    end = begin + spec.duration_s
    if started is not None:
        started.set()

    async def lane(index: int) -> None:
        name = names[index % len(names)]
        conn = Connection(spec.host, spec.port, source=spec.source)
        due = begin + interval * index / spec.connections
        seq = 0
        while due < end and time.monotonic() < end:  # behind schedule: no catching up past the end
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            seq += 1
            body = json.loads(spec.bodies[name].replace("{seq}", f"{index}-{seq}"))
            try:
                response = await conn.request("POST", spec.path, json_body=body)
                statuses[f"{name} {response.status}"] += 1
            except TransportFailure as failure:
                statuses[f"{name} no response: {failure.kind}"] += 1
            due = due + interval if interval else time.monotonic()
        await conn.close()

    await asyncio.gather(*(lane(i) for i in range(spec.connections)))
    elapsed = time.monotonic() - begin
    total = sum(statuses.values())
    return {
        "statuses": dict(sorted(statuses.items())),
        "requests": total,
        "seconds": round(elapsed, 2),
        "rps": round(total / elapsed, 1) if elapsed else 0.0,
    }


def flood_main() -> None:
    """``python -m bench.hostile_client``: a :class:`FloodSpec` as JSON on stdin; writes
    ``started`` on a line when the flood begins, then its result as JSON on one line."""
    spec = FloodSpec(**json.load(sys.stdin))

    async def run() -> dict[str, Any]:
        started = asyncio.Event()
        task = asyncio.create_task(flood(spec, started))
        await started.wait()
        sys.stdout.write("started\n")
        sys.stdout.flush()
        return await task

    sys.stdout.write(json.dumps(asyncio.run(run())) + "\n")


# --- PostgreSQL process control ---------------------------------------------------------


def postgres_processes(pgdata: Path) -> list[int]:
    """The postmaster of the server in ``pgdata`` (its postmaster.pid) and its children: the
    processes to pause, and none other."""
    postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    if _comm(postmaster) != "postgres":
        raise RuntimeError(f"pid {postmaster} from {pgdata}/postmaster.pid is not a postgres process")
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            if parent == postmaster and _comm(int(entry.name)) == "postgres":
                children.append(int(entry.name))
    return [postmaster, *sorted(children)]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def pause_postgres(pgdata: Path) -> list[int]:
    """SIGSTOP the postmaster first (no new backend forks meanwhile), then every child it has.
    Returns the pids stopped, for :func:`resume_postgres`."""
    postmaster = postgres_processes(pgdata)[0]
    os.kill(postmaster, signal.SIGSTOP)
    stopped = [postmaster]
    try:
        for pid in postgres_processes(pgdata)[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
    except BaseException:
        resume_postgres(stopped)
        raise
    return stopped


def resume_postgres(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


if __name__ == "__main__":
    flood_main()
