"""`make bench`: every figure of the performance issue, ours beside its baseline, in one run.

Prints a table (figure, ours, baseline, ratio, target) and writes the same, with the
machine's description, to bench/results.json. Run: ``python -m bench.run [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import lambda_bench, throughput
from bench.lambda_bench import Row, stats
from devtools.localdb import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SECRET_KEY = "bench-signing-key-long-enough-for-hs512-0123456789abcdef0123456789"
PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "asyncpg",
    "mangum",
    "uvicorn",
    "aws-cdk-lib",
    "cdktf",
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
    }


def measure_command(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 1800
) -> dict[str, float]:
    """Wall time and the peak RSS of the largest process of ``command`` (its own, or any
    descendant it waited for), measured from a fresh intermediate process."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}\n"
        "code = subprocess.run(sys.argv[1:], **quiet).returncode\n"
        "wall = time.perf_counter() - start\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stdout.write(json.dumps({'code': code, 'wall_s': wall, 'peak_rss_mib': rss / 1024}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    measured: dict[str, float] = json.loads(result.stdout)
    if measured["code"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {measured['code']}")
    return measured


def login_row(database_url: str) -> Row:
    """Login latency under the real hash parameters: an info row (no baseline)."""
    from webapi.security import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST  # noqa: PLC0415

    times = throughput.login_times(database_url=database_url, secret_key=SECRET_KEY)
    return {
        "figure": "login, POST /api/v1/auth/token, one at a time (uvicorn, PostgreSQL)",
        "ours": stats(times, "ms"),
        "baseline": None,
        "ratio": None,
        "target": (
            f"info: Argon2id m={ARGON2_MEMORY_KIB // 1024} MiB, t={ARGON2_TIME_COST}, "
            f"p={ARGON2_PARALLELISM}, OWASP's minimum"
        ),
        "met": None,
    }


def synth_and_tests(*, repeats: int, with_tests: bool) -> list[Row]:
    """Figure 6: synthesizing each cloud (the app process the CLIs run), and `make test`."""
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CHECKPOINT_DISABLE": "1"}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as out:
        for cloud, extra in (
            ("aws", {"CDK_OUTDIR": f"{out}/cdk.out"}),
            ("gcp", {"CDKTF_OUTDIR": f"{out}/cdktf.out"}),
        ):
            runs = [
                measure_command([sys.executable, "app.py", cloud], env={**env, **extra})
                for _ in range(repeats)
            ]
            rows.append(_run_row(f"synth {cloud} (python app.py {cloud})", runs))
    if with_tests:
        runs = [measure_command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], env=env)]
        rows.append(_run_row("make test (pytest, whole suite)", runs))
    return rows


def _run_row(figure: str, runs: Sequence[dict[str, float]]) -> Row:
    return {
        "figure": figure,
        "ours": stats([r["wall_s"] for r in runs], "s"),
        "peak_rss": stats([r["peak_rss_mib"] for r in runs], "MiB"),
        "baseline": None,
        "ratio": None,
        "target": "measured (no baseline)",
        "met": None,
    }


def _fmt(value: dict[str, Any] | None) -> str:
    if not value:
        return "-"
    if "rps" in value:  # a throughput measurement
        return (
            f"{value['rps']['median']:.0f} req/s, p50 {value['p50_ms']['median']:.1f} ms, "
            f"p99 {value['p99_ms']['median']:.1f} ms, {value['errors']} errors"
        )
    unit = value["unit"]
    digits = 2 if unit in ("ms", "s") and value["median"] < 100 else 1
    return f"{value['median']:.{digits}f} {unit} [{value['min']:.{digits}f}..{value['max']:.{digits}f}]"


def _cells(row: Row) -> tuple[str, str, str, str]:
    """ours, baseline, ratio, met: the same columns for every kind of row."""
    baseline = row.get("baseline") or row.get("floor")
    if "ratio_rps" in row:
        ratio = f"rps {row['ratio_rps']:.2f}x, p99 {row['ratio_p99']:.2f}x"
    else:
        ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
    ours = _fmt(row.get("ours"))
    if row.get("peak_rss"):
        ours += f", peak RSS {row['peak_rss']['median']:.0f} MiB"
    return ours, _fmt(baseline), ratio, {True: "yes", False: "NO", None: "-"}[row.get("met")]


def table(rows: Sequence[Row]) -> str:
    header = ("figure", "ours (median [min..max])", "baseline", "ratio", "target", "met")
    lines = [header]
    for row in rows:
        ours, baseline, ratio, met = _cells(row)
        lines.append((row["figure"], ours, baseline, ratio, row.get("target", ""), met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)


def markdown(rows: Sequence[Row]) -> str:
    """The table as Markdown, for docs/performance.md."""
    lines = [
        "| figure | ours: median [min..max] | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, baseline, ratio, met = _cells(row)
        lines.append(f"| {row['figure']} | {ours} | {baseline} | {ratio} | {row.get('target', '')} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter loads (a smoke run)")
    parser.add_argument("--skip-tests", action="store_true", help="do not time the whole test suite")
    parser.add_argument("--only", nargs="*", default=(), help="lambda, size, throughput, synth")
    args = parser.parse_args(argv)
    sections = set(args.only) or {"lambda", "size", "throughput", "synth"}

    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        database = LocalPostgres(workdir / "pg")
        database.start()
        try:
            steps: list[tuple[str, Callable[[], Row | list[Row]]]] = []
            if "lambda" in sections:
                url = lambda_bench.prepare_database(database)
                samples = 10 if args.quick else 15
                steps += [
                    ("cold start health", lambda: lambda_bench.cold_start_health(workdir, samples=samples)),
                    (
                        "cold start data",
                        lambda: lambda_bench.cold_start_data(
                            workdir, database_url=url, secret_key=SECRET_KEY, samples=samples
                        ),
                    ),
                    (
                        "warm overhead",
                        lambda: lambda_bench.warm_overhead(
                            workdir,
                            database_url=url,
                            secret_key=SECRET_KEY,
                            requests=1000 if args.quick else 3000,
                        ),
                    ),
                ]
            if "size" in sections:
                steps.append(("bundle size", lambda: lambda_bench.bundle_sizes(workdir)))
            if "throughput" in sections:
                url = database.create_database("bench_throughput")
                subprocess.run(
                    [sys.executable, "-m", "webapi.migrate"],
                    cwd=ROOT / "service",
                    env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT / "service")},
                    check=True,
                    capture_output=True,
                )
                steps.append(
                    (
                        "throughput",
                        lambda: throughput.run_throughput(
                            database_url=url, secret_key=SECRET_KEY, duration_s=2 if args.quick else 5
                        ),
                    )
                )
                steps.append(("login", lambda: login_row(url)))
            if "synth" in sections:
                steps.append(
                    (
                        "synth and tests",
                        lambda: synth_and_tests(
                            repeats=1 if args.quick else 3, with_tests=not (args.skip_tests or args.quick)
                        ),
                    )
                )
            for name, step in steps:
                sys.stderr.write(f"bench: {name}...\n")
                result = step()
                rows.extend(result if isinstance(result, list) else [result])
        finally:
            database.stop()

    document = {"machine": machine(), "elapsed_s": round(time.perf_counter() - started, 1), "rows": rows}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(rows) + "\n")
    sys.stdout.write(table(rows) + "\n")
    sys.stdout.write(f"\nwritten to {RESULTS.relative_to(ROOT)} ({document['elapsed_s']} s)\n")
    missed = [row["figure"] for row in rows if row.get("met") is False]
    if missed:
        sys.stdout.write(f"targets missed: {', '.join(missed)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
