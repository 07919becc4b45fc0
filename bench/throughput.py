"""Throughput on the Cloud Run path: the service as its container runs it, against the floors.

The service runs as ``python -m webapi.serve`` (uvicorn, one process) with its pool
sized as the Cloud Run stack sizes it (DB_POOL_SIZE=10, DB_MAX_OVERFLOW=0). The baselines,
under the same uvicorn options, with the same pool maximum:

* ``same_stack`` (``bench/baselines/same_stack``): a minimal FastAPI + SQLAlchemy 2 async +
  asyncpg app making the same queries: the targets (>= 0.8x rps, p99 <= 1.5x, 0 errors);
* ``starlette`` (:mod:`bench.floor_app`): a bare Starlette + asyncpg app making the same
  queries: information only (no FastAPI, no ORM: a floor the mandated stack cannot reach).

All run at once against one PostgreSQL, and each cell (endpoint x concurrency) is measured
on each in turn (rotating which goes first), so that drift on a shared machine hits all alike;
an idle server costs nothing meanwhile. Before anything is timed, each baseline's answers to
the authenticated read and the insert are checked equal to ours (the same fields and values
for the same data). The load comes from :mod:`bench.loadgen` in a process of its own, over
loopback.

Reads use a user with 20 items; writes use a second user, whose items are deleted
(and the table vacuumed) before each write run, so neither app reads or writes a
table the other has grown.

Caveat, reported with the figures: on a small machine the load generator, the server
and PostgreSQL share the cores; each summary carries the CPU each used.

Run: ``python -m bench.throughput --duration 3`` (its own PostgreSQL, in a temporary
directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from bench.loadgen import LoadSpec, run_in_subprocess
from devtools.localdb import free_port
from devtools.processes import stop_process

if TYPE_CHECKING:
    from devtools.localdb import LocalPostgres

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = REPO_ROOT / "service"
SAME_STACK_DIR = REPO_ROOT / "bench" / "baselines" / "same_stack"

MIN_RPS_RATIO = 0.8
MAX_P99_RATIO = 1.5
TARGET = f">= {MIN_RPS_RATIO}x rps, p99 <= {MAX_P99_RATIO:g}x same stack, 0 errors"
# As the Cloud Run stack sets them (constructs_lib/gcp/cloud_run_service.py):
# min(concurrency, 10) connections, no overflow. The floor's pool has the same maximum.
DB_POOL_SIZE = 10
DB_MAX_OVERFLOW = 0
SEEDED_ITEMS = 20
STARTUP_TIMEOUT_S = 30.0
# Unrecorded load before each window after an app's first (the connections are open already).
ROUND_WARMUP_S = 0.5
SHUTDOWN_TIMEOUT_S = 15.0
API = "/api/v1"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    writes: bool = False


ENDPOINTS = (
    Endpoint("GET /health", "GET", "/health"),
    Endpoint("GET /api/v1/items", "GET", f"{API}/items?page=1&per_page=20"),
    Endpoint("POST /api/v1/items", "POST", f"{API}/items", writes=True),
)
# The authenticated read and the insert: what the same-stack targets are about.
DATA_ENDPOINTS = ENDPOINTS[1:]


@dataclass(frozen=True)
class Baseline:
    """A baseline app: how to start it, and how its rows read."""

    name: str
    module: str
    cwd: Path
    env: tuple[tuple[str, str], ...]
    label: str
    informational: bool


BASELINES = {
    "same_stack": Baseline(
        "same_stack",
        "same_stack_app",
        SAME_STACK_DIR,
        (),
        "same stack (FastAPI + SQLAlchemy async + asyncpg)",
        informational=False,
    ),
    "starlette": Baseline(
        "starlette",
        "bench.floor_app",
        REPO_ROOT,
        (("ALGORITHM", "HS256"),),
        "Starlette floor (Starlette + asyncpg)",
        informational=True,
    ),
}


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> int:
        """SIGTERM, as Cloud Run sends it; the exit code (killed, -9, if it hangs)."""
        code, _killed = stop_process(self.process, SHUTDOWN_TIMEOUT_S)
        return code


@contextmanager
def _serve(name: str, module: str, cwd: Path, env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """``python -m module`` on a free loopback port, until /health answers 200."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(name=name, process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy after {STARTUP_TIMEOUT_S} s\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class BenchUser:
    id: str
    token: str
    email: str
    password: str


def _sign_up(client: httpx.Client, role: str) -> BenchUser:
    email = f"bench-{role}-{uuid.uuid4().hex[:12]}@example.com"
    password = secrets.token_urlsafe(16)
    created = client.post(
        f"{API}/users", json={"email": email, "name": f"Bench {role}", "password": password}
    )
    created.raise_for_status()
    token = client.post(f"{API}/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    return BenchUser(
        id=created.json()["id"], token=token.json()["access_token"], email=email, password=password
    )


def _set_up_users(base_url: str) -> tuple[BenchUser, BenchUser]:
    """A reader with SEEDED_ITEMS items and a writer, both through the service's API."""
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        reader = _sign_up(client, "reader")
        writer = _sign_up(client, "writer")
        auth = {"Authorization": f"Bearer {reader.token}"}
        for n in range(SEEDED_ITEMS):
            client.post(
                f"{API}/items", json={"title": f"seeded {n}", "description": "bench"}, headers=auth
            ).raise_for_status()
    return reader, writer


def _plain_dsn(database_url: str) -> str:
    return "postgresql://" + database_url.split("://", 1)[1]


def _reset_writes(database_url: str, writer_id: str) -> None:
    """Remove the writer's items and vacuum, so each write run starts from the same table."""

    async def reset() -> None:
        conn = await asyncpg.connect(_plain_dsn(database_url))
        try:
            await conn.execute("DELETE FROM items WHERE owner_id = $1", uuid.UUID(writer_id))
            await conn.execute("VACUUM ANALYZE items")
        finally:
            await conn.close()

    asyncio.run(reset())


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """One app's windows for one cell: median, min and max of rps, p50 and p99 over the
    windows; requests, errors and error kinds summed; CPU medians (fractions of a core)."""
    windows = result["windows"]
    error_kinds: dict[str, int] = {}
    for window in windows:
        for kind, count in window["error_kinds"].items():
            error_kinds[kind] = error_kinds.get(kind, 0) + count
    cpu_keys = sorted({key for window in windows for key in window["cpu"]})
    return {
        "rps": _spread([w["rps"] for w in windows]),
        "p50_ms": _spread([w["p50_ms"] for w in windows]),
        "p99_ms": _spread([w["p99_ms"] for w in windows]),
        "max_ms": max(w["max_ms"] for w in windows),
        "requests": sum(w["requests"] for w in windows),
        "errors": sum(w["errors"] for w in windows) + result["timeouts"],
        "error_kinds": error_kinds | ({"timeout": result["timeouts"]} if result["timeouts"] else {}),
        "windows": len(windows),
        "cpu": {
            key: statistics.median(w["cpu"][key] for w in windows if key in w["cpu"]) for key in cpu_keys
        },
    }


def _log_problems(server: Server, start: int, end: int, limit: int = 5) -> list[str]:
    """The most frequent WARNING/ERROR lines a server wrote between two log offsets."""
    with server.log_path.open("rb") as log:
        log.seek(start)
        chunk = log.read(end - start).decode(errors="replace")
    counts: dict[str, int] = {}
    for line in chunk.splitlines():
        if '"severity":"INFO"' in line or '"severity":"DEBUG"' in line or not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            key = line.strip()[:200]  # uvicorn and tracebacks outside the JSON logging
        else:
            exception = str(entry.get("exception", "")).strip().splitlines()
            key = " ".join(
                str(part)
                for part in (entry.get("severity"), entry.get("logger"), entry.get("message"))
                if part
            )
            if exception:
                key += f" [{exception[-1][:160]}]"
        counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return [f"{count}x {key}" for key, count in top]


def _measure(
    server: Server,
    endpoint: Endpoint,
    token: str,
    concurrency: int,
    *,
    duration_s: float,
    warmup_s: float,
    repeats: int,
) -> tuple[dict[str, Any], list[str]]:
    """The load generator's raw result (its windows) and the server's log problems meanwhile."""
    headers = {"Authorization": f"Bearer {token}"} if endpoint.path.startswith(API) else {}
    body = None
    if endpoint.writes:
        headers["Content-Type"] = "application/json"
        body = json.dumps({"title": "bench {seq}", "description": "written under load"})
    spec = LoadSpec(
        url=server.base_url + endpoint.path,
        method=endpoint.method,
        headers=headers,
        body=body,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=warmup_s,
        repeats=repeats,
        server_pid=server.process.pid,
    )
    log_start = server.log_size()
    result = run_in_subprocess(spec)
    if server.process.poll() is not None:
        raise RuntimeError(
            f"{server.name} died under load ({server.process.returncode})\n{server.log_tail()}"
        )
    return result, _log_problems(server, log_start, server.log_size())


def _row(
    endpoint: Endpoint,
    concurrency: int,
    ours: dict[str, Any],
    baseline_summary: dict[str, Any],
    *,
    baseline: Baseline,
    section: str,
) -> dict[str, Any]:
    def ratio(key: str) -> float:
        denominator = baseline_summary[key]["median"]
        return round(ours[key]["median"] / denominator, 3) if denominator else float("nan")

    ratio_rps, ratio_p99 = ratio("rps"), ratio("p99_ms")
    met = (
        ratio_rps >= MIN_RPS_RATIO
        and ratio_p99 <= MAX_P99_RATIO
        and ours["errors"] == 0
        and baseline_summary["errors"] == 0  # a baseline with errors is no baseline
    )
    return {
        "figure": f"throughput {endpoint.name} c={concurrency} vs {baseline.label}",
        "endpoint": endpoint.name,
        "concurrency": concurrency,
        "baseline_name": baseline.name,
        "ours": ours,
        "baseline": baseline_summary,
        "ratio": ratio_rps,
        "ratio_rps": ratio_rps,
        "ratio_p99": ratio_p99,
        "target": f"info: {TARGET.replace('same stack', 'Starlette')}" if baseline.informational else TARGET,
        "met": None if baseline.informational else met,
        "command": f'make bench BENCH_ARGS="--only {section}"',
    }


def prepare_database(database: LocalPostgres, name: str) -> str:
    """Create ``name`` on ``database`` and migrate it with the service's migrations; its URL."""
    url = database.create_database(name)
    subprocess.run(
        [sys.executable, "-m", "webapi.migrate"],
        cwd=SERVICE_DIR,
        env={**os.environ, "DATABASE_URL": url, "ENVIRONMENT": "test", "PYTHONPATH": str(SERVICE_DIR)},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return url


_GENERATED = ("id", "created_at", "updated_at")


def check_same_answers(ours: Server, others: Sequence[Server], reader: BenchUser, writer: BenchUser) -> None:
    """Each baseline answers the authenticated read exactly as ours does, and the insert with
    the same fields and values (less the generated id and timestamps). The inserted items are
    left: the write runs start by deleting the writer's items."""
    body = {"title": "  same answer  ", "description": "checked before timing"}
    answers: dict[str, tuple[Any, Any]] = {}
    for server in (ours, *others):
        with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as client:
            read = client.get(ENDPOINTS[1].path, headers={"Authorization": f"Bearer {reader.token}"})
            wrote = client.post(
                f"{API}/items", json=body, headers={"Authorization": f"Bearer {writer.token}"}
            )
        if read.status_code != 200 or wrote.status_code != 201:
            raise RuntimeError(
                f"{server.name}: GET answered {read.status_code} {read.text[:300]}, "
                f"POST {wrote.status_code} {wrote.text[:300]}"
            )
        created = wrote.json()
        if not all(created.get(key) for key in _GENERATED):
            raise RuntimeError(f"{server.name}: the insert's answer lacks {_GENERATED}: {created}")
        answers[server.name] = (read.json(), {k: v for k, v in created.items() if k not in _GENERATED})
    expected_page, expected_item = answers[ours.name]
    if not expected_page["items"]:
        raise RuntimeError("the reader has no items")
    for server in others:
        page, item = answers[server.name]
        if page != expected_page:
            raise RuntimeError(f"{server.name}'s GET differs from ours:\n{expected_page}\n{page}")
        if item != expected_item:
            raise RuntimeError(f"{server.name}'s POST differs from ours:\n{expected_item}\n{item}")


def run_throughput(
    *,
    database_url: str,
    secret_key: str,
    duration_s: float = 5,
    concurrencies: Sequence[int] = (1, 16, 64),
    warmup_s: float = 1.0,
    repeats: int = 3,
    log_dir: Path | None = None,
    baselines: Sequence[str] = ("starlette",),
    endpoints: Sequence[Endpoint] = ENDPOINTS,
    section: str = "throughput",
) -> list[dict[str, Any]]:
    """Measure every endpoint x concurrency on the service and on each of ``baselines``
    (:data:`BASELINES`: ``same_stack``, the targets; ``starlette``, information).

    ``database_url`` (postgresql+asyncpg://) must be migrated to head; the run adds two
    users and their items and leaves them. Each cell is ``repeats`` windows of
    ``duration_s`` after ``warmup_s`` of unrecorded load, per app. Server logs go to
    ``log_dir`` (kept) or a temporary directory (removed).

    Returns one row per cell and baseline: figure, endpoint, concurrency, ours, baseline
    (see :func:`summarize`, plus ``log_problems``), ratio_rps and ratio_p99 (ours/baseline
    medians; ``ratio`` is ratio_rps), target, met (None for an informational baseline), command.
    """
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-throughput-")))
        log_dir.mkdir(parents=True, exist_ok=True)
        common = {"DATABASE_URL": database_url, "SECRET_KEY": secret_key, "DB_POOL_SIZE": str(DB_POOL_SIZE)}
        ours = stack.enter_context(
            _serve(
                "ours",
                "webapi.serve",
                SERVICE_DIR,
                {
                    **common,
                    "ENVIRONMENT": "test",
                    "DB_MAX_OVERFLOW": str(DB_MAX_OVERFLOW),
                    "ACCESS_TOKEN_EXPIRE_MINUTES": "1440",  # outlasts any run
                    "PYTHONPATH": str(SERVICE_DIR),
                },
                log_dir / "ours.log",
            )
        )
        others = [
            stack.enter_context(
                _serve(
                    name,
                    BASELINES[name].module,
                    BASELINES[name].cwd,
                    {**common, **dict(BASELINES[name].env)},
                    log_dir / f"{name}.log",
                )
            )
            for name in baselines
        ]
        servers = [ours, *others]
        reader, writer = _set_up_users(ours.base_url)
        check_same_answers(ours, others, reader, writer)
        cell = 0
        for endpoint in endpoints:
            user = writer if endpoint.writes else reader
            for concurrency in concurrencies:
                # The windows of the apps interleaved (one window of each in turn, the order
                # rotated per cell and reversed per round), so the load of a shared machine
                # drifts over all alike; the first window of each follows its warm-up.
                raw: dict[str, dict[str, Any]] = {
                    server.name: {"windows": [], "timeouts": 0, "problems": []} for server in servers
                }
                shift = cell % len(servers)
                order = servers[shift:] + servers[:shift]
                for round_ in range(repeats):
                    for server in order if round_ % 2 == 0 else list(reversed(order)):
                        if endpoint.writes:
                            _reset_writes(database_url, writer.id)
                        result, problems = _measure(
                            server,
                            endpoint,
                            user.token,
                            concurrency,
                            duration_s=duration_s,
                            warmup_s=warmup_s if round_ == 0 else min(warmup_s, ROUND_WARMUP_S),
                            repeats=1,
                        )
                        raw[server.name]["windows"] += result["windows"]
                        raw[server.name]["timeouts"] += result["timeouts"]
                        raw[server.name]["problems"] += problems
                summaries = {
                    name: {**summarize(result), "log_problems": result["problems"][:5]}
                    for name, result in raw.items()
                }
                for name in baselines:
                    rows.append(
                        _row(
                            endpoint,
                            concurrency,
                            summaries["ours"],
                            summaries[name],
                            baseline=BASELINES[name],
                            section=section,
                        )
                    )
                cell += 1
        for server in servers:
            code = server.stop()
            # uvicorn re-raises the SIGTERM it handled, so a clean stop ends by that signal.
            if code not in (0, -signal.SIGTERM):
                raise RuntimeError(f"{server.name} exited with {code} on SIGTERM\n{server.log_tail()}")
    return rows


def login_times(*, database_url: str, secret_key: str, samples: int = 20, warmup: int = 3) -> list[float]:
    """Login as users feel it: ``POST /api/v1/auth/token`` with the right password, one at a time,
    against the service under uvicorn (its Argon2id verify runs off the event loop); the
    ``samples`` times in ms after ``warmup``. A successful login takes itself back from the
    throttle's counts, so any number can run."""
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp:
        env = {
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret_key,
            "ENVIRONMENT": "test",
            "PYTHONPATH": str(SERVICE_DIR),
        }
        with (
            _serve("ours", "webapi.serve", SERVICE_DIR, env, Path(tmp) / "ours.log") as server,
            httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as client,
        ):
            user = _sign_up(client, "login")
            form = {"username": user.email, "password": user.password}
            times: list[float] = []
            for n in range(warmup + samples):
                started = time.perf_counter()
                response = client.post(f"{API}/auth/token", data=form)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"login answered {response.status_code}: {response.text[:300]}")
                if n >= warmup:
                    times.append(elapsed_ms)
    return times


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A compact text table: medians, with [min-max] for requests/s; cpu is the
    server's share of one core / the whole machine's busy share (all cores)."""
    nan = float("nan")

    def side(s: dict[str, Any]) -> str:
        rps, cpu = s["rps"], s["cpu"]
        return (
            f"{rps['median']:>7.0f} [{rps['min']:>5.0f}-{rps['max']:>5.0f}]"
            f" {s['p50_ms']['median']:>7.2f} {s['p99_ms']['median']:>7.2f} {s['errors']:>4}"
            f" {cpu.get('server', nan):>4.2f}/{cpu.get('machine_busy', nan):<4.2f}"
        )

    head = f"{'rps [min-max]':>21} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} {'cpu srv/all':>9}"
    width = len(head)
    lines = [
        f"{'':<19}{'c':>3} | {'ours':<{width}} | {'baseline':<{width}} |",
        f"{'endpoint':<19}{'':>3} | {head} | {head} | {'rps x':>5} {'p99 x':>5} met",
    ]
    for row in rows:
        lines.append(
            f"{row['endpoint']:<19}{row['concurrency']:>3} | {side(row['ours'])} | {side(row['baseline'])} |"
            f" {row['ratio_rps']:>5.2f} {row['ratio_p99']:>5.2f} "
            f"{ {True: 'yes', False: 'NO', None: 'info'}[row['met']] } {row['baseline_name']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Start a PostgreSQL in a temporary directory, migrate, measure, print, clean up."""
    from devtools.localdb import LocalPostgres  # noqa: PLC0415 - only the standalone run needs it

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds before the windows")
    parser.add_argument("--repeats", type=int, default=3, help="measured windows per cell")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--log-dir", type=Path, help="keep the server logs here")
    parser.add_argument(
        "--baselines", default="same_stack,starlette", help=f"comma-separated: {', '.join(BASELINES)}"
    )
    args = parser.parse_args(argv)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        postgres = LocalPostgres(Path(tmp))
        postgres.start()
        try:
            database_url = prepare_database(postgres, "bench")
            baselines = tuple(args.baselines.split(","))
            rows = run_throughput(
                database_url=database_url,
                secret_key=secrets.token_urlsafe(48),
                duration_s=args.duration,
                concurrencies=concurrencies,
                warmup_s=args.warmup,
                repeats=args.repeats,
                log_dir=args.log_dir,
                baselines=baselines,
            )
        finally:
            postgres.stop()
    out = sys.stdout
    out.write(format_table(rows))
    for row in rows:
        for name in ("ours", "baseline"):
            side = row[name]
            if side["errors"] or side["log_problems"]:
                out.write(
                    f"{row['figure']} {name}: errors {side['error_kinds']}; log {side['log_problems']}\n"
                )
    out.write(
        f"{sum(bool(r['met']) for r in rows)}/{sum(r['met'] is not None for r in rows)} cells meet "
        f"the target ({TARGET}); {len(rows) // len(baselines)} cells x {len(baselines) + 1} apps x "
        f"({args.warmup:g} s + {args.repeats} x {args.duration:g} s) "
        f"in {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs "
        "(load generator, server and PostgreSQL share them)\n"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
