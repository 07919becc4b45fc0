"""What the runtime entry costs, and how near the sample comes to the same-stack floor.

**The entry against bare Mangum** (``--only entry``): the same hello-world app
(``tests/examples/hello``), bundled twice by the project's bundler for this machine, from one
lock (``bench/baselines/bare_mangum/requirements.txt``: FastAPI and Mangum at the service's
versions), read-only as Lambda mounts /var/task:

* ours: the app plus ``serverless_fastapi_entry`` (as ``FastApiLambdaService`` ships it), the
  handler ``serverless_fastapi_entry.lambda_api.handler`` with ``FASTAPI_DEPLOY_ENTRYPOINT=main:app``;
* the baseline: the app plus the one-line module ``bare_mangum.py``
  (``handler = Mangum(app, lifespan="off")``).

Cold: a fresh interpreter per sample (:data:`bench.lambda_bench.CHILD`: ``python -I -S -B``,
the bundle alone on ``sys.path``), ours and the baseline in ABBA order after 2 warm-ups of
each; the figure is from the child's first line to the first response of one HTTP API 2.0
event (``GET /``): importing the handler module and the first invocation. The interpreter's own
start-up, the same for both, is left out (it is in ``wall_ms``). Median, p90, min and max.

Warm: one interpreter importing both handlers (the entry's bundle first on ``sys.path``, so both
serve the very same ``main.app`` object with the very same library code); after a warm-up, blocks
of 50 invocations through each handler, alternating which goes first; the figure is the
per-request mean of each block.

The ratios are paired (:func:`paired_ratio`): the median of ours / the baseline over samples (or
blocks) taken next to each other, robust to the drift of a shared machine's load;
``ratio_of_medians`` is kept beside it.

**The same-stack floor** (``--only floor``): ``bench/baselines/same_stack`` (FastAPI + Mangum +
SQLAlchemy 2 async + asyncpg + PyJWT, the service's authenticated read and insert with the
same SQL), against the sample through the entry: the Lambda cold start to the first
authenticated read (:func:`bench.lambda_bench.cold_start_data`) and uvicorn throughput at
c=1/16/64 (:func:`bench.throughput.run_throughput`), the answers checked equal to ours first.

Run: ``python -m bench.entry_bench [--quick] [--only entry floor] [--profile]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import lambda_bench, throughput
from bench.lambda_bench import (
    BASELINES,
    ENTRY_MODULE,
    ENTRY_SOURCES,
    LAMBDA_CONTEXT,
    BundleSpec,
    ColdRun,
    ColdTarget,
    Row,
    bundle,
    command,
    compare_cold_many,
    http_api_event,
    stats,
)
from constructs_lib.aws.bundling import BundleTarget
from constructs_lib.runtime import LAMBDA_REQUIREMENTS

if TYPE_CHECKING:
    from devtools.localdb import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
HELLO_DIR = ROOT / "tests" / "examples" / "hello"
BARE_DIR = BASELINES / "bare_mangum"
HELLO_LOCK = BARE_DIR / "requirements.txt"

COLD_TARGET = 1.05
WARM_TARGET = 1.05
WARM_BLOCK = 50
HELLO_PATH = "/"
HELLO_BODY = {"Hello": "World"}
# Signs the floor's tokens (HS256, the service's default algorithm: 32 characters at least).
FLOOR_SECRET_KEY = "bench-floor-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"

# As `python app.py init tests/examples/hello` configures the entry (stacks/detect.py).
HELLO_ENTRY = BundleSpec(
    "hello_entry",
    HELLO_DIR,
    HELLO_LOCK,
    ENTRY_MODULE,
    extra_requirements=LAMBDA_REQUIREMENTS,
    extra_sources=ENTRY_SOURCES,
    environment=(("FASTAPI_DEPLOY_ENTRYPOINT", "main:app"), ("FASTAPI_DEPLOY_FACTORY", "0")),
)
HELLO_BARE = BundleSpec(
    "hello_bare",
    HELLO_DIR,
    HELLO_LOCK,
    "bare_mangum",
    extra_requirements=LAMBDA_REQUIREMENTS,
    extra_sources=(("bare_mangum.py", BARE_DIR / "bare_mangum.py"),),
)


def _env() -> dict[str, str]:
    return {"PATH": os.defpath, "LANG": "C.UTF-8", "AWS_LAMBDA_FUNCTION_NAME": "bench"}


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _with_p90(values: Sequence[float], unit: str) -> dict[str, Any]:
    return {**stats(values, unit), "p90": _p90(values)}


def paired_ratio(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """The median of the ratios of pairs measured next to each other (sample n of each, block n
    of each): on a machine whose load drifts, each pair shares its moment's load, where the
    ratio of the two medians mixes moments."""
    return float(stats([a / b for a, b in zip(ours, baseline, strict=True)], "x")["median"])


# --- the entry against bare Mangum: cold -------------------------------------------------------


def entry_cold(workdir: Path, *, samples: int = 15) -> Row:
    """Import of the handler module to the first response of ``GET /``, ours against bare
    Mangum (see the module's docstring)."""
    host = BundleTarget.host()
    specs = {"entry": HELLO_ENTRY, "bare": HELLO_BARE}
    targets = {
        name: ColdTarget(bundle(workdir, spec, host), spec.module, spec.env(_env()))
        for name, spec in specs.items()
    }

    def check(first: dict[str, ColdRun]) -> None:
        for name, run in first.items():
            if run.status != 200 or json.loads(run.body) != HELLO_BODY:
                raise RuntimeError(f"{name} GET {HELLO_PATH} answered {run.status}: {run.body[:500]}")

    runs = compare_cold_many(workdir, targets, event=http_api_event(HELLO_PATH), samples=samples, check=check)

    def import_to_response(name: str) -> list[float]:
        return [r.phases_ms["import"] + r.phases_ms["invoke"] for r in runs[name]]

    ours, bare = _with_p90(import_to_response("entry"), "ms"), _with_p90(import_to_response("bare"), "ms")
    ratio = paired_ratio(import_to_response("entry"), import_to_response("bare"))
    return {
        "figure": f"Lambda cold start, hello world GET {HELLO_PATH}: runtime entry vs bare Mangum(app) "
        "(import to first response, host bundle)",
        "ours": ours,
        "baseline": bare,
        "ratio": ratio,
        "ratio_of_medians": ours["median"] / bare["median"],
        "ratio_p90": ours["p90"] / bare["p90"],
        "target": f"<= {COLD_TARGET}x bare Mangum(app)",
        "met": ratio <= COLD_TARGET,
        "command": command("entry"),
        "wall_ms": {name: _with_p90([r.wall_ms for r in runs[name]], "ms") for name in runs},
        "phases_ms": {name: lambda_bench._phases(runs[name]) for name in runs},
    }


# --- the entry against bare Mangum: warm -------------------------------------------------------

# One execution environment holding both handlers; alternating blocks of invocations.
WARM_CHILD = """\
import importlib, json, sys, time
entry_bundle, bare_bundle, config_path, out_path = sys.argv[1:5]
sys.path[:0] = [entry_bundle, bare_bundle]
with open(config_path) as f:
    config = json.load(f)
entry = importlib.import_module(config["entry_module"])
bare = importlib.import_module(config["bare_module"])
if entry.app is not bare.app:
    raise SystemExit("the two handlers serve different apps")

@@CONTEXT@@

context = Context()
event = config["event"]
handlers = {"entry": entry.handler, "bare": bare.handler}
expected = config["body"]

def run(name, n):
    handler = handlers[name]
    bad = 0
    for _ in range(n):
        bad += handler(event, context)["statusCode"] != 200
    return bad

for name in handlers:
    response = handlers[name](event, context)
    if response["statusCode"] != 200 or json.loads(response["body"]) != expected:
        raise SystemExit(f"{name} answered {response}")
bad = sum(run(name, config["warmup"]) for name in handlers)
times = {name: [] for name in handlers}
for block in range(config["blocks"]):
    order = ("entry", "bare") if block % 2 == 0 else ("bare", "entry")
    for name in order:
        started = time.perf_counter()
        bad += run(name, config["block"])
        times[name].append((time.perf_counter() - started) * 1000 / config["block"])
if bad:
    raise SystemExit(f"{bad} responses were not 200")
if config["profile"]:
    import cProfile
    for name in handlers:
        profiler = cProfile.Profile()
        profiler.runcall(run, name, config["profile"])
        profiler.dump_stats(f"{out_path}.{name}.prof")
with open(out_path, "w") as f:
    json.dump(times, f)
""".replace("@@CONTEXT@@", LAMBDA_CONTEXT)


def _warm_run(
    workdir: Path, *, requests: int, warmup: int, profile: int = 0
) -> tuple[dict[str, list[float]], Path]:
    host = BundleTarget.host()
    entry_dir, bare_dir = bundle(workdir, HELLO_ENTRY, host), bundle(workdir, HELLO_BARE, host)
    blocks = max(10, requests // WARM_BLOCK)
    config = {
        "entry_module": HELLO_ENTRY.module,
        "bare_module": HELLO_BARE.module,
        "event": http_api_event(HELLO_PATH),
        "body": HELLO_BODY,
        "warmup": warmup,
        "blocks": blocks,
        "block": max(1, requests // blocks),
        "profile": profile,
    }
    run_dir = Path(tempfile.mkdtemp(prefix="entry-warm-", dir=workdir))
    config_file, out_file = run_dir / "config.json", run_dir / "result.json"
    config_file.write_text(json.dumps(config))
    argv = [str(entry_dir), str(bare_dir), str(config_file), str(out_file)]
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", WARM_CHILD, *argv],
        cwd=entry_dir,
        env=HELLO_ENTRY.env(_env()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"entry warm run failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    lambda_bench._assert_untouched(entry_dir)
    lambda_bench._assert_untouched(bare_dir)
    times: dict[str, list[float]] = json.loads(out_file.read_text())
    return times, run_dir


def entry_warm(workdir: Path, *, requests: int = 20000, warmup: int = 1000) -> Row:
    """Per-request time of ``GET /`` through the entry's handler against bare Mangum's, in one
    process, ``requests`` each in alternating blocks of 50 after ``warmup`` of each."""
    times, run_dir = _warm_run(workdir, requests=requests, warmup=warmup)
    shutil.rmtree(run_dir, ignore_errors=True)
    ours, bare = stats(times["entry"], "ms"), stats(times["bare"], "ms")
    ratio = paired_ratio(times["entry"], times["bare"])
    return {
        "figure": f"Lambda warm invocation, hello world GET {HELLO_PATH}: runtime entry vs bare "
        "Mangum(app) (per request)",
        "ours": ours,
        "baseline": bare,
        "ratio": ratio,
        "ratio_of_medians": ours["median"] / bare["median"],
        "target": f"<= {WARM_TARGET}x bare Mangum(app)",
        "met": ratio <= WARM_TARGET,
        "command": command("entry"),
        "requests_per_handler": len(times["entry"]) * max(1, requests // len(times["entry"])),
    }


def profile_warm(workdir: Path, *, requests: int = 5000, top: int = 25) -> str:
    """cProfile of ``requests`` warm invocations through each handler (top by cumulative time)."""
    _, run_dir = _warm_run(workdir, requests=1000, warmup=500, profile=requests)
    out = io.StringIO()
    try:
        for name in ("entry", "bare"):
            out.write(
                f"\n=== {name}: {requests} invocations of GET {HELLO_PATH}, top {top} by cumulative ===\n"
            )
            stats_ = pstats.Stats(str(run_dir / f"result.json.{name}.prof"), stream=out)
            stats_.sort_stats("cumulative").print_stats(top)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out.getvalue()


def import_report(workdir: Path) -> str:
    """``-X importtime`` of both handler modules: the modules by cumulative time."""
    out = io.StringIO()
    for spec in (HELLO_ENTRY, HELLO_BARE):
        out.write(f"\n{spec.name}: import {spec.module}, own time per package (ms)\n")
        for package, own in lambda_bench.import_profile_by_package(workdir, spec, runs=5):
            out.write(f"  {own:8.1f}  {package}\n")
        out.write(f"{spec.name}: modules by cumulative time (ms): cumulative, own\n")
        for name, cumulative, own in lambda_bench.import_profile(workdir, spec, runs=5, top=15):
            out.write(f"  {cumulative:8.1f} {own:8.1f}  {name}\n")
    return out.getvalue()


def run_entry(workdir: Path, *, quick: bool, database: LocalPostgres | None = None) -> list[Row]:
    """``--only entry``: the runtime entry against bare ``Mangum(app)``, cold and warm (no
    database: ``database`` is accepted and ignored)."""
    return [
        entry_cold(workdir, samples=10 if quick else 20),
        entry_warm(workdir, requests=5000 if quick else 20000, warmup=500 if quick else 1000),
    ]


# --- the same-stack floor ----------------------------------------------------------------------


def run_floor(workdir: Path, *, quick: bool, database: LocalPostgres) -> list[Row]:
    """``--only floor``: the sample through the entry against the same-stack floor: the Lambda
    cold start to the first authenticated read, then uvicorn throughput of the authenticated
    read and the insert at c=1/16/64 (the answers checked equal to ours before each)."""
    url = lambda_bench.prepare_database(database, "bench_floor")
    rows = lambda_bench.cold_start_data(
        workdir,
        database_url=url,
        secret_key=FLOOR_SECRET_KEY,
        samples=10 if quick else 15,
        baselines=("same_stack",),
        section="floor",
    )
    throughput_url = throughput.prepare_database(database, "bench_floor_throughput")
    rows += throughput.run_throughput(
        database_url=throughput_url,
        secret_key=FLOOR_SECRET_KEY,
        duration_s=2 if quick else 5,
        baselines=("same_stack",),
        endpoints=throughput.DATA_ENDPOINTS,
        section="floor",
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.entry_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter loads")
    parser.add_argument("--only", nargs="*", default=(), help="entry, floor (default: both)")
    parser.add_argument("--workdir", type=Path, help="keep bundles here between runs (default: a temp dir)")
    parser.add_argument("--profile", action="store_true", help="also print -X importtime and cProfile")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    sections = set(args.only) or {"entry", "floor"}

    from devtools.localdb import LocalPostgres  # noqa: PLC0415 - the embedded server only for the CLI

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="entry-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        database = LocalPostgres(Path(tmp) / "pg")
        if "floor" in sections:
            database.start()
        try:
            if "entry" in sections:
                rows += run_entry(workdir, quick=args.quick)
            if "floor" in sections:
                rows += run_floor(workdir, quick=args.quick, database=database)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2) + "\n")
            from bench.run import table  # noqa: PLC0415 - the driver's table, for every kind of row

            sys.stdout.write(table(rows) + "\n")
            for row in rows:
                if "phases_ms" in row:
                    sys.stdout.write(f"{row['figure']}: median phases (ms) {json.dumps(row['phases_ms'])}\n")
                if "wall_ms" in row:
                    walls = {name: round(value["median"], 1) for name, value in row["wall_ms"].items()}
                    sys.stdout.write(f"{row['figure']}: median wall (ms) {walls}\n")
            if args.profile and "entry" in sections:
                sys.stdout.write(import_report(workdir))
                sys.stdout.write(profile_warm(workdir))
        finally:
            if "floor" in sections:
                database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
