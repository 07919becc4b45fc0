"""An HTTP/1.1 keep-alive load generator on raw asyncio streams, run in its own process.

``concurrency`` connections each send one request at a time, back to back: a short
warm-up that is not recorded, then ``repeats`` consecutive measurement windows of
``duration_s`` each. A request belongs to the window in which its response completed;
its latency runs from writing the request to reading the last byte of the body.
A non-2xx status and a socket error (the connection is then reopened) both count as
errors. After the last window, requests still in flight get ``grace_s`` to finish;
those that do not are counted as timeouts.

It runs in a process of its own so that it does not share the server's GIL::

    echo '{"url": "http://127.0.0.1:8080/health", "concurrency": 16}' | python -m bench.loadgen

prints one JSON object (see :func:`run`). :func:`run_in_subprocess` does that from Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
SEQ_PLACEHOLDER = "{seq}"
_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how hard and for how long.

    ``body`` may contain ``{seq}``, replaced in each request by a value unique within
    the run (e.g. a distinct title per created item). ``server_pid``, if given, is the
    process whose CPU use is reported for each window.
    """

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    concurrency: int = 1
    duration_s: float = 5.0
    warmup_s: float = 1.0
    repeats: int = 1
    grace_s: float = 10.0
    server_pid: int | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme != "http":
            raise ValueError(f"only http:// URLs are supported: {self.url}")
        if self.concurrency < 1 or self.repeats < 1 or self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("concurrency and repeats must be >= 1, duration_s > 0, warmup_s >= 0")


class _Window:
    __slots__ = ("error_kinds", "errors", "latencies_ns", "status_counts")

    def __init__(self) -> None:
        self.latencies_ns = array("q")
        self.status_counts: dict[int, int] = {}
        self.errors = 0
        self.error_kinds: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


class _ProtocolError(Exception):
    pass


class _Run:
    """One run's shared clock and windows."""

    def __init__(self, spec: LoadSpec) -> None:
        parts = urlsplit(spec.url)
        self.spec = spec
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        lines = [f"{spec.method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in spec.headers.items()]
        self.head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.templated = spec.body is not None and SEQ_PLACEHOLDER in spec.body
        self.fixed_request = self._request(spec.body.encode() if spec.body is not None else None)
        self.windows = [_Window() for _ in range(spec.repeats)]
        self.window_ns = int(spec.duration_s * 1e9)
        self.measure_start_ns = 0
        self.end_ns = 0
        self.timeouts = 0

    def _request(self, body: bytes | None) -> bytes:
        if body is None:
            return self.head + b"\r\n"
        return self.head + b"Content-Length: " + str(len(body)).encode() + _HEADER_END + body

    def request(self, conn_id: int, seq: int) -> bytes:
        if not self.templated:
            return self.fixed_request
        assert self.spec.body is not None
        return self._request(self.spec.body.replace(SEQ_PLACEHOLDER, f"{conn_id}-{seq}").encode())

    def window_at(self, now_ns: int) -> _Window | None:
        if now_ns < self.measure_start_ns:
            return None
        index = (now_ns - self.measure_start_ns) // self.window_ns
        return self.windows[index] if index < len(self.windows) else None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    head = await reader.readuntil(_HEADER_END)
    if not head.startswith(b"HTTP/1."):
        raise _ProtocolError("not an HTTP/1.x response")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lower.index(b"\r\n", start + 2)
        length = int(lower[start + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:  # no trailers expected from the servers measured here
                break
    elif status not in (204, 304) and status >= 200:
        raise _ProtocolError("response without Content-Length or chunked body")
    return status, keep_alive


async def _connection(run: _Run, conn_id: int) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    seq = 0
    clock = time.perf_counter_ns
    try:
        while clock() < run.end_ns:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(run.host, run.port)
                except OSError as exc:
                    window = run.window_at(clock())
                    if window is not None:
                        window.error(f"connect: {type(exc).__name__}")
                    await asyncio.sleep(0.01)  # do not spin on a refusing server
                    continue
            assert reader is not None
            seq += 1
            payload = run.request(conn_id, seq)
            started = clock()
            try:
                writer.write(payload)
                status, keep_alive = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                window = run.window_at(clock())
                if window is not None:
                    window.error(type(exc).__name__)
                writer.close()
                reader = writer = None
                continue
            finished = clock()
            window = run.window_at(finished)
            if window is not None:
                window.latencies_ns.append(finished - started)
                window.status_counts[status] = window.status_counts.get(status, 0) + 1
                if not 200 <= status < 300:
                    window.error(f"status {status}")
            if not keep_alive:
                writer.close()
                reader = writer = None
    except asyncio.CancelledError:
        run.timeouts += 1  # still waiting for a response after the grace period
        raise
    finally:
        if writer is not None:
            writer.close()


def _percentile(sorted_values: array[int], pct: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1] / 1e6


class _CpuMeter:
    """CPU used during a window: this process, the server process and the whole machine
    (Linux /proc; empty elsewhere). Fractions of one core, except machine_busy (of all)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _server_ticks(self) -> int | None:
        if self.server_pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return int(fields[11]) + int(fields[12])  # utime, stime

    @staticmethod
    def _machine() -> tuple[int, int] | None:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    def sample(self) -> tuple[float, float, int | None, tuple[int, int] | None]:
        times = os.times()
        return time.monotonic(), times.user + times.system, self._server_ticks(), self._machine()

    def between(self, before: tuple[Any, ...], after: tuple[Any, ...]) -> dict[str, float]:
        wall = after[0] - before[0]
        if wall <= 0:
            return {}
        result = {"loadgen": round((after[1] - before[1]) / wall, 3)}
        if before[2] is not None and after[2] is not None:
            result["server"] = round((after[2] - before[2]) / self.ticks / wall, 3)
        if before[3] is not None and after[3] is not None:
            total = after[3][1] - before[3][1]
            if total > 0:
                result["machine_busy"] = round((after[3][0] - before[3][0]) / total, 3)
        return result


async def _measure(spec: LoadSpec) -> dict[str, Any]:
    run = _Run(spec)
    meter = _CpuMeter(spec.server_pid)
    now = time.perf_counter_ns()
    run.measure_start_ns = now + int(spec.warmup_s * 1e9)
    run.end_ns = run.measure_start_ns + run.window_ns * spec.repeats
    tasks = [asyncio.create_task(_connection(run, i)) for i in range(spec.concurrency)]
    cpu: list[dict[str, float]] = []
    # CPU counters at each window boundary (a few ms of jitter is harmless).
    await asyncio.sleep(max(0.0, (run.measure_start_ns - time.perf_counter_ns()) / 1e9))
    previous = meter.sample()
    for index in range(1, spec.repeats + 1):
        boundary = run.measure_start_ns + index * run.window_ns
        await asyncio.sleep(max(0.0, (boundary - time.perf_counter_ns()) / 1e9))
        sample = meter.sample()
        cpu.append(meter.between(previous, sample))
        previous = sample
    _, pending = await asyncio.wait(tasks, timeout=spec.grace_s)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a bug in this module, not a load error
    windows = []
    for window, usage in zip(run.windows, cpu, strict=True):
        ordered = array("q", sorted(window.latencies_ns))
        windows.append(
            {
                "requests": len(ordered),
                "errors": window.errors,
                "duration_s": spec.duration_s,
                "rps": round(len(ordered) / spec.duration_s, 1),
                "p50_ms": round(_percentile(ordered, 50), 3),
                "p99_ms": round(_percentile(ordered, 99), 3),
                "min_ms": round(ordered[0] / 1e6, 3) if ordered else math.nan,
                "max_ms": round(ordered[-1] / 1e6, 3) if ordered else math.nan,
                "status_counts": {str(k): v for k, v in sorted(window.status_counts.items())},
                "error_kinds": window.error_kinds,
                "cpu": usage,
            }
        )
    return {
        "spec": {**asdict(spec), "headers": sorted(spec.headers)},
        "windows": windows,
        "timeouts": run.timeouts,
    }


def run(spec: LoadSpec) -> dict[str, Any]:
    """Run the load in this process (use :func:`run_in_subprocess` next to a server).

    Returns ``{"spec": ..., "windows": [...], "timeouts": n}``; each window has
    requests, errors, duration_s, rps, p50_ms, p99_ms, min_ms, max_ms,
    status_counts, error_kinds and cpu (fractions of a core: loadgen, server;
    machine_busy: fraction of all cores). Header values are not echoed back.
    """
    return asyncio.run(_measure(spec))


def run_in_subprocess(spec: LoadSpec) -> dict[str, Any]:
    """Run the load in a fresh ``python -m bench.loadgen`` process and return its result."""
    budget = spec.warmup_s + spec.duration_s * spec.repeats + spec.grace_s + 30
    completed = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(asdict(spec)),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=budget,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def main() -> None:
    """Read a :class:`LoadSpec` as JSON on stdin, write the result as JSON on stdout."""
    spec = LoadSpec(**json.load(sys.stdin))
    json.dump(run(spec), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
