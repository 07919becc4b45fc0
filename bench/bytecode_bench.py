"""The cold start of the Lambda bundle that the default `make synth` builds on this machine, with
its bytecode and without.

`make synth` with the repository's spec (``compute.python: auto``) builds the bundle for the
newest Python Lambda runs that this machine has (:func:`stacks.aws_stack.lambda_python`), and
compiles its bytecode with that CPython. Here the same bundle (the example service through the
runtime entry ``serverless_fastapi_entry.lambda_api``, as the stack deploys it) is built for this
machine's CPU instead of Lambda's, so that it runs here, by the project's own bundler
(:func:`bench.lambda_bench.bundle`); the bundle without bytecode is a copy of it less every
``__pycache__``, which is what a machine without that CPython would ship.

Each cold start: a fresh ``<that CPython> -I -S -B -c CHILD`` in the read-only bundle (as Lambda
mounts /var/task: ``-B`` and the check afterwards make sure no bytecode is written, since root
ignores file modes), the entry imported (Lambda's init phase), then one ``GET /health`` (HTTP API
2.0 event) answered; the figure is the wall time of the process until it has written the
response. One warm-up run of each, then ``samples`` runs of each, alternating (ABBA).

Run it alone: ``PYTHONPATH=service:. .venv/bin/python -m bench.bytecode_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.lambda_bench import ColdRun, cold_run, stats, stats_with_p90
from constructs_lib.aws.bundling.target import (
    BundleTarget,
    host_architecture,
    host_manylinux,
    lambda_manylinux,
)
from constructs_lib.aws.bundling.tools import PythonChoice

Row = dict[str, Any]

SECTION = "bytecode"
COMMAND = 'make bench BENCH_ARGS="--only bytecode"'
STANDALONE = "PYTHONPATH=service:. .venv/bin/python -m bench.bytecode_bench"
WARMUP_RUNS = 1
# /health never connects to the database (creating the engine does not), so none is needed.
UNREACHABLE_DATABASE_URL = "postgresql+asyncpg://bench@127.0.0.1:1/bench"
SECRET_KEY = "bytecode-bench-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"


def default_python(requested: str | None = None) -> PythonChoice:
    """What the default `make synth` chooses on this machine (the repository's spec), or what
    ``requested`` (``compute.python``'s value) would."""
    from constructs_lib.aws.bundling.tools import choose_python  # noqa: PLC0415
    from stacks.aws_stack import lambda_python_versions  # noqa: PLC0415 - loads aws-cdk-lib
    from stacks.spec import load_spec  # noqa: PLC0415

    return choose_python(requested or load_spec().compute.python, lambda_python_versions())


def host_target(python_version: str) -> BundleTarget:
    """The Lambda target for ``python_version`` on this machine's CPU, with the older of the
    manylinux tags that Lambda's OS and this machine's glibc allow (so that it runs here)."""
    tags = (lambda_manylinux(python_version), host_manylinux())
    manylinux = min(tags, key=lambda tag: int(tag.rsplit("_", 1)[1]))
    return BundleTarget(python_version, host_architecture(), manylinux)


def _read_only(root: Path) -> None:
    """chmod -R a-w, as Lambda mounts /var/task."""
    for path in sorted(root.rglob("*"), reverse=True):
        path.chmod(stat.S_IMODE(path.lstat().st_mode) & ~0o222)
    root.chmod(stat.S_IMODE(root.stat().st_mode) & ~0o222)


def _writable(root: Path) -> None:
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(stat.S_IMODE(path.lstat().st_mode) | stat.S_IWUSR)


def without_bytecode(bundle_dir: Path) -> Path:
    """A read-only copy of ``bundle_dir`` less every ``__pycache__`` (made once per bundle)."""
    copy = bundle_dir.with_name(bundle_dir.name + "-nobytecode")
    if copy.is_dir():
        return copy
    building = Path(tempfile.mkdtemp(prefix=f".{copy.name}-", dir=bundle_dir.parent))
    try:
        shutil.rmtree(building)
        shutil.copytree(bundle_dir, building, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
        _writable(building)
        building.rename(copy)
    except BaseException:
        if building.exists():
            _writable(building)
            shutil.rmtree(building, ignore_errors=True)
        raise
    _read_only(copy)
    return copy


def _pyc_count(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.pyc"))


PHASES = ("interpreter", "import", "invoke")


def _phases(runs: Sequence[ColdRun]) -> dict[str, float]:
    return {name: round(stats([r.phases_ms[name] for r in runs], "ms")["median"], 1) for name in PHASES}


def run(workdir: Path, *, quick: bool, python: str | None = None) -> list[Row]:
    """The rows of `make bench`'s bytecode section (see the module's docstring); ``python``
    measures another ``compute.python`` than the spec's."""
    from bench.lambda_bench import OURS, bundle, http_api_event  # noqa: PLC0415 - heavy imports

    samples = 5 if quick else 15
    choice = default_python(python)
    if choice.interpreter is None:
        raise RuntimeError(
            f"this machine has no CPython {choice.version} (compute.python {choice.requested}): "
            f"the default bundle has no bytecode and cannot run here"
        )
    target = host_target(choice.version)
    with_bytecode = bundle(workdir, OURS, target)
    compiled = _pyc_count(with_bytecode)
    if compiled == 0:
        raise RuntimeError(f"the default bundle {with_bytecode} carries no bytecode")
    tag = "cpython-" + choice.version.replace(".", "")
    wrong = [p.name for p in with_bytecode.rglob("*.pyc") if f".{tag}." not in p.name]
    if wrong:
        raise RuntimeError(f"bytecode of another Python than {choice.version} in the bundle: {wrong[:3]}")
    bare = without_bytecode(with_bytecode)

    env = OURS.env(
        {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "ENVIRONMENT": "test",
            "DATABASE_URL": UNREACHABLE_DATABASE_URL,
            "SECRET_KEY": SECRET_KEY,
        }
    )
    targets = {"bytecode": with_bytecode, "none": bare}
    runs: dict[str, list[ColdRun]] = {name: [] for name in targets}
    event_file = workdir / f"bytecode-bench-event-{os.getpid()}.json"
    event_file.write_text(json.dumps(http_api_event("/health")))
    try:
        for _ in range(WARMUP_RUNS):
            for name, path in targets.items():
                warm = cold_run(
                    path, OURS.module, event_file, env, interpreter=choice.interpreter, timeout=120
                )
                if warm.status != 200 or json.loads(warm.body) != {"status": "ok"}:
                    raise RuntimeError(f"{name}: /health answered {warm.status}: {warm.body[:500]}")
        for n in range(samples):
            order = ("bytecode", "none") if n % 4 in (0, 3) else ("none", "bytecode")  # ABBA
            for name in order:
                result = cold_run(
                    targets[name], OURS.module, event_file, env, interpreter=choice.interpreter, timeout=120
                )
                if result.status != 200:
                    raise RuntimeError(f"{name}: /health answered {result.status}")
                runs[name].append(result)
    finally:
        event_file.unlink(missing_ok=True)
    if _pyc_count(bare) != 0 or _pyc_count(with_bytecode) != compiled:
        raise RuntimeError("bytecode was written into a read-only bundle during the runs")

    ours = stats_with_p90([r.wall_ms for r in runs["bytecode"]], "ms")
    baseline = stats_with_p90([r.wall_ms for r in runs["none"]], "ms")
    ratio = ours["median"] / baseline["median"]
    label = f"python{choice.version} (compute.python {choice.requested}), {target.architecture}"
    what = "the default make synth bundle" if python is None else "the make synth bundle"
    return [
        {
            "figure": f"Lambda cold start, GET /health, {what}, {label}",
            "ours": ours,
            "baseline": baseline,
            "ratio": ratio,
            "target": "the default bundle carries bytecode for its runtime (baseline: the same without)",
            "met": ratio < 1,
            "command": COMMAND,
            "standalone": STANDALONE,
            "python": choice.version,
            "requested": choice.requested,
            "interpreter": choice.interpreter,
            "bundle_target": f"{target.cpython_tag} {target.uv_platform}",
            "pyc_files": compiled,
            "p90_ratio": ours["p90"] / baseline["p90"],
            "phases_ms": {"ours": _phases(runs["bytecode"]), "baseline": _phases(runs["none"])},
        }
    ]


def _fmt(value: dict[str, Any]) -> str:
    return (
        f"median {value['median']:.1f} {value['unit']}, p90 {value['p90']:.1f} "
        f"[{value['min']:.1f}..{value['max']:.1f}] n={value['samples']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bytecode_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 samples of each instead of 15")
    parser.add_argument(
        "--workdir", type=Path, help="keep the bundles here between runs (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--python", help="as if compute.python were this (default: the spec's)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bytecode-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            rows = run(workdir, quick=args.quick, python=args.python)
        finally:
            if args.workdir is None:
                for built in (workdir / "bundles").glob("*"):
                    if built.is_dir():
                        _writable(built)
    for row in rows:
        sys.stdout.write(
            f"{row['figure']}\n  with bytecode:    {_fmt(row['ours'])}\n"
            f"  without bytecode: {_fmt(row['baseline'])}\n"
            f"  ratio (median) {row['ratio']:.2f}x, (p90) {row['p90_ratio']:.2f}x; "
            f"{row['pyc_files']} .pyc files; interpreter {row['interpreter']}\n"
            f"  median phases (ms): {json.dumps(row['phases_ms'])}\n"
        )
    sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
