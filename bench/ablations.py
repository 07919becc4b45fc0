"""Where the service's throughput goes against the same-stack floor: the service under load with
parts of it switched off (:mod:`bench.ablation_server`), beside the floor, in one run.

Not part of ``make bench`` (a diagnostic, minutes per cell): every server (one per variant, and
the floor) runs at once against one PostgreSQL, as in :mod:`bench.throughput`, and each round
measures them in turn, the order reversed every round, so drift hits all alike. The variants
answer the same requests with the same data; only what they do around the answer differs.

Run: ``PYTHONPATH=service:. .venv/bin/python -m bench.ablations`` (``--help`` for the cell, the
variants and the rounds).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench.ablation_server import ABLATIONS
from bench.loadgen import LoadSpec, run_in_subprocess
from bench.throughput import (
    API,
    BASELINES,
    DB_MAX_OVERFLOW,
    DB_POOL_SIZE,
    ENDPOINTS,
    REPO_ROOT,
    SERVICE_DIR,
    Server,
    _reset_writes,
    _serve,
    _set_up_users,
    prepare_database,
    summarize,
)

DEFAULT_VARIANTS = (
    "",
    "access-log",
    "request-context",
    "request-context,guards",
    "nested-routers",
    "gc",
    "request-context,guards,nested-routers,gc",
)


def measure(
    server: Server, path: str, token: str, *, writes: bool, concurrency: int, duration_s: float
) -> tuple[float, float]:
    """req/s and p99 (ms), medians of 3 windows."""
    body = '{"title": "ablation {seq}", "description": "written under load"}' if writes else None
    headers = {"Authorization": f"Bearer {token}"}
    if writes:
        headers["Content-Type"] = "application/json"
    spec = LoadSpec(
        url=server.base_url + path,
        method="POST" if writes else "GET",
        headers=headers,
        body=body,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=1.0,
        repeats=3,
        server_pid=server.process.pid,
    )
    summary = summarize(run_in_subprocess(spec))
    if summary["errors"]:
        raise RuntimeError(f"{server.name}: {summary['error_kinds']}")
    return float(summary["rps"]["median"]), float(summary["p99_ms"]["median"])


def main(argv: Sequence[str] | None = None) -> int:
    from devtools.localdb import LocalPostgres  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench.ablations", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--endpoint", choices=("read", "insert"), default="read")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per window (3 windows per cell)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--variants",
        default="|".join(DEFAULT_VARIANTS),
        help=f"'|'-separated; each a comma-separated set of {', '.join(ABLATIONS)} ('' = the service)",
    )
    args = parser.parse_args(argv)
    variants = args.variants.split("|")
    endpoint = ENDPOINTS[1] if args.endpoint == "read" else ENDPOINTS[2]
    secret_key = secrets.token_urlsafe(48)
    floor = BASELINES["same_stack"]
    rps: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ablations-") as tmp, ExitStack() as stack:
        postgres = LocalPostgres(Path(tmp) / "pg")
        postgres.start()
        stack.callback(postgres.stop)
        database_url = prepare_database(postgres, "ablations")
        common = {"DATABASE_URL": database_url, "SECRET_KEY": secret_key, "DB_POOL_SIZE": str(DB_POOL_SIZE)}
        servers: list[tuple[str, Server]] = []
        for n, variant in enumerate(variants):
            env = {
                **common,
                "ABLATE": variant,
                "ENVIRONMENT": "test",
                "DB_MAX_OVERFLOW": str(DB_MAX_OVERFLOW),
                "ACCESS_TOKEN_EXPIRE_MINUTES": "1440",
                "PYTHONPATH": f"{SERVICE_DIR}:{REPO_ROOT}",
            }
            log = Path(tmp) / f"ours-{n}.log"
            servers.append(
                (
                    variant or "the service",
                    stack.enter_context(_serve(f"ours-{n}", "bench.ablation_server", SERVICE_DIR, env, log)),
                )
            )
        floor_server = stack.enter_context(
            _serve(floor.name, floor.module, floor.cwd, common, Path(tmp) / "floor.log")
        )
        servers.append(("same-stack floor", floor_server))
        reader, writer = _set_up_users(servers[0][1].base_url)
        user = writer if endpoint.writes else reader
        for round_ in range(args.rounds):
            order = servers if round_ % 2 == 0 else list(reversed(servers))
            for name, server in order:
                if endpoint.writes:
                    _reset_writes(database_url, writer.id)
                value, tail = measure(
                    server,
                    endpoint.path,
                    user.token,
                    writes=endpoint.writes,
                    concurrency=args.concurrency,
                    duration_s=args.duration,
                )
                rps.setdefault(name, []).append(value)
                p99.setdefault(name, []).append(tail)
                sys.stderr.write(f"round {round_ + 1}: {name}: {value:.0f} req/s, p99 {tail:.0f} ms\n")
    floor_rps = statistics.median(rps["same-stack floor"])
    base_rps = statistics.median(rps["the service"]) if "the service" in rps else None
    out = sys.stdout
    out.write(
        f"{endpoint.name} at c={args.concurrency}, {args.rounds} rounds of 3 x {args.duration:g} s "
        f"(the service's {API} routes against the same-stack floor's)\n\n"
    )
    out.write(
        "| switched off | req/s per round | median | x floor | x the service | p99 per round (ms) |\n"
        "|---|---|---|---|---|---|\n"
    )
    for name, values in rps.items():
        median = statistics.median(values)
        vs_base = f"{median / base_rps:.2f}x" if base_rps else "-"
        rounds = ", ".join(f"{v:.0f}" for v in values)
        tails = ", ".join(f"{v:.0f}" for v in p99[name])
        out.write(f"| {name} | {rounds} | {median:.0f} | {median / floor_rps:.2f}x | {vs_base} | {tails} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
