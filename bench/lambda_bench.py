"""Lambda figures of `make bench`: cold starts, warm invocation overhead, bundle sizes.

Every bundle here is built by the project's own bundler (:func:`constructs_lib.aws.bundling.build_bundle`),
once per content hash, into ``workdir/bundles`` and then made read-only. A bundle for this
machine (its CPU, glibc and Python: :meth:`BundleTarget.host`) is what runs; a bundle for
Lambda (arm64, Python 3.14) is only measured, since this machine cannot execute it.

How a cold start is measured (identical for ours and the baseline):

* a fresh interpreter ``python -I -S -B -c CHILD`` (isolated: no ``PYTHON*`` variables, no
  user or virtual-environment site-packages; no bytecode written), working directory the
  bundle, the bundle alone on ``sys.path[0]``, read-only, and the same small environment
  (``AWS_LAMBDA_FUNCTION_NAME``, ``ENVIRONMENT=test``, ``DATABASE_URL``, ``SECRET_KEY``, and
  the ``FASTAPI_DEPLOY_*`` variables the stack gives the runtime entry);
* the child imports the handler module (Lambda's init phase), calls ``handler(event,
  context)`` once with an HTTP API 2.0 event, writes the response to stdout, flushes, and
  leaves with ``os._exit(0)``: the interpreter's teardown (module finalisation, garbage
  collection; tens of milliseconds for a large import graph) is left out, because Lambda
  never tears an execution environment down before the response is returned;
* the figure is the wall time from just before ``subprocess.run`` to its return;
* 2 warm-up runs of each, then ``samples`` runs of each, ours and the baselines interleaved
  (ABBA order for two), so all share the machine's noise; reported as median, min and max.

Warm overhead runs in one such interpreter too: the same ASGI app, per request through
``serverless_fastapi_entry.lambda_api.handler(event, context)`` (the runtime entry the stack
deploys: Mangum, the stage prefix, the lifespan's state) and called directly with the scope an
ASGI server would give it, in alternating blocks after a warm-up; the figure per mode is the
per-request mean of each block, and the ratio is of the medians of those.

Bundle sizes: unzipped bytes of the files, and the size of a zip of them written with
``zipfile.ZIP_DEFLATED`` at compression level 6 (what ``zip`` and CDK's asset zips use).
MB here is 2**20 bytes, as in Lambda's 250 MB limit.

Run ``python -m bench.lambda_bench`` (a temporary PostgreSQL is started) for all of it;
``--importtime`` and ``--profile-warm`` print where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import pstats
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from constructs_lib.aws.bundling import BundleTarget, build_bundle, content_hash
from constructs_lib.runtime import ENTRY_DIR, ENTRY_PACKAGE, LAMBDA_REQUIREMENTS
from stacks.spec import load_spec

if TYPE_CHECKING:
    from devtools.localdb import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
BASELINES = Path(__file__).resolve().parent / "baselines"
EVENT_TEMPLATE = ROOT / "tests" / "events" / "http_api_v2_get.json"

LAMBDA_TARGET = BundleTarget.create("3.14", "arm64")
MB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT_MB = 250
ZIP_LEVEL = 6

HEALTH_TARGET = 1.25
DATA_TARGET = 1.25  # against the same-stack floor (FastAPI + Mangum + SQLAlchemy async + asyncpg)
WARM_TARGET = 1.15
ZIPPED_TARGET = 2.5

WARMUP_RUNS = 2
BENCH_EMAIL = "lambda-bench@example.com"
BENCH_ITEMS = 20
ITEMS_PATH = "/api/v1/items"
# /health never connects (engine creation does not), so an unreachable database will do.
UNREACHABLE_DATABASE_URL = "postgresql+asyncpg://bench@127.0.0.1:1/bench"
HEALTH_SECRET_KEY = "bench-health-only-signing-key-0123456789abcdefghijklmnop"

Row = dict[str, Any]


@dataclass(frozen=True)
class BundleSpec:
    """A Lambda function's code: its source directory, lock file and handler module; what the
    bundler adds beside the app (``extra_sources``: bundle path -> file or directory, and
    ``extra_requirements``), and the function's own environment variables."""

    name: str
    source_dir: Path
    requirements: Path
    module: str
    drop_packages: tuple[str, ...] = ()
    extra_requirements: tuple[str, ...] = ()
    extra_sources: tuple[tuple[str, Path], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **dict(self.environment)}


# What FastApiLambdaService adds to every app's bundle: the runtime entry, and Mangum.
ENTRY_SOURCES = ((ENTRY_PACKAGE, ENTRY_DIR),)
ENTRY_MODULE = f"{ENTRY_PACKAGE}.lambda_api"
# The bundle the AWS stack ships for the repository's spec (deploy.yaml): the same drops, the
# runtime entry as the handler, configured as the stack configures it for the sample.
OURS = BundleSpec(
    "service",
    SERVICE_DIR,
    SERVICE_DIR / "requirements.txt",
    ENTRY_MODULE,
    load_spec().lambda_drop_packages,
    extra_requirements=LAMBDA_REQUIREMENTS,
    extra_sources=ENTRY_SOURCES,
    environment=(("FASTAPI_DEPLOY_ENTRYPOINT", "webapi.main:create_app"), ("FASTAPI_DEPLOY_FACTORY", "1")),
)
MINIMAL_FASTAPI = BundleSpec(
    "minimal_fastapi",
    BASELINES / "minimal_fastapi",
    BASELINES / "minimal_fastapi" / "requirements.txt",
    "app",
)
FLOOR = BundleSpec(
    "floor_lambda", BASELINES / "floor_lambda", BASELINES / "floor_lambda" / "requirements.txt", "handler"
)
SAME_STACK = BundleSpec(
    "same_stack",
    BASELINES / "same_stack",
    BASELINES / "same_stack" / "requirements.txt",
    "same_stack_app",
)


# --- statistics and rows -----------------------------------------------------------------------


def stats(values: Sequence[float], unit: str) -> dict[str, Any]:
    """Median, min and max of ``values`` (at least one)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "min": ordered[0], "max": ordered[-1], "unit": unit, "samples": len(ordered)}


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, -(-9 * len(ordered) // 10) - 1)]


def stats_with_p90(values: Sequence[float], unit: str) -> dict[str, Any]:
    """:func:`stats` and the p90."""
    return {**stats(values, unit), "p90": p90(values)}


def _single(value: float, unit: str) -> dict[str, Any]:
    return stats([value], unit)


def command(section: str) -> str:
    """How to re-run a section of `make bench`."""
    return f'make bench BENCH_ARGS="--only {section}"'


def _row(
    figure: str,
    ours: dict[str, Any],
    baseline: dict[str, Any],
    *,
    limit: float | None,
    target: str,
    section: str = "lambda",
    **extra: Any,
) -> Row:
    """A row; ``limit`` None makes it informational (``met`` None)."""
    ratio = ours["median"] / baseline["median"]
    return {
        "figure": figure,
        "ours": ours,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": None if limit is None else ratio <= limit,
        "command": command(section),
        **extra,
    }


# --- bundles -----------------------------------------------------------------------------------


def _make_read_only(root: Path) -> None:
    """As Lambda mounts /var/task. (As root the modes are not enforced; ``-B`` and the check in
    :func:`_assert_untouched` make sure nothing is written anyway.)"""
    for path in sorted(root.rglob("*"), reverse=True):
        path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o555)
    root.chmod(0o555)
    _manifest_file(root).write_text(json.dumps(_manifest(root)))


def _make_writable(root: Path) -> None:
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)


def bundle(workdir: Path, spec: BundleSpec, target: BundleTarget) -> Path:
    """The read-only bundle of ``spec`` for ``target``, built once per content hash."""
    options: dict[str, Any] = {
        "source_dir": spec.source_dir,
        "requirements": spec.requirements,
        "python_version": target.python_version,
        "architecture": target.architecture,
        "manylinux": target.manylinux,
        "drop_packages": spec.drop_packages,
        "extra_requirements": spec.extra_requirements,
        "extra_sources": dict(spec.extra_sources),
        "lock_dir": workdir / "locks",
    }
    digest = content_hash(**options)
    root = workdir / "bundles"
    prefix = f"{spec.name}-{target.cpython_tag}-{target.architecture}-"
    final = root / f"{prefix}{digest[:16]}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{prefix}*"):
        if stale.is_dir():
            _make_writable(stale)
            shutil.rmtree(stale)
        else:
            stale.unlink()
    building = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=root))
    try:
        build_bundle(building, **options)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    building.rename(final)
    _make_read_only(final)
    return final


def _manifest_file(root: Path) -> Path:
    return root.parent / f"{root.name}.manifest.json"


def _manifest(root: Path) -> dict[str, list[int]]:
    """Every path of the bundle with its size and modification time."""
    return {
        path.relative_to(root).as_posix(): [path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(root.rglob("*"))
    }


def _assert_untouched(path: Path) -> None:
    """The bundle is exactly as built: nothing written (no bytecode cached, no file changed)."""
    recorded = _manifest_file(path)
    if not recorded.exists():  # a bundle cached by an older run: record it now
        recorded.write_text(json.dumps(_manifest(path)))
        return
    before, after = json.loads(recorded.read_text()), _manifest(path)
    if before != after:
        changed = sorted(set(before) ^ set(after))
        changed += [name for name in before if name in after and before[name] != after[name]]
        raise RuntimeError(f"the read-only bundle {path} was written to: {changed[:5]}")


# --- events, the database, tokens --------------------------------------------------------------


def http_api_event(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The HTTP API 2.0 (``$default`` stage) GET event template, for ``path``."""
    event: dict[str, Any] = json.loads(EVENT_TEMPLATE.read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "GET"
    event["headers"].update({name.lower(): value for name, value in (headers or {}).items()})
    return event


def mint_token(secret_key: str, user_id: uuid.UUID | str, *, lifetime: timedelta = timedelta(hours=2)) -> str:
    """An access token as ``webapi.security.create_access_token`` makes it (HS256)."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + lifetime, "type": "access"}
    return jwt.encode(claims, secret_key, algorithm="HS256")


def _dsn(database_url: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", database_url)


def seed(database_url: str, *, items: int = BENCH_ITEMS) -> uuid.UUID:
    """The bench user (created with ``items`` items the first time); returns its id. Idempotent."""
    import asyncpg  # noqa: PLC0415 - only the data figures need it

    async def run() -> uuid.UUID:
        connection = await asyncpg.connect(_dsn(database_url))
        try:
            async with connection.transaction():
                found = await connection.fetchval("SELECT id FROM users WHERE email = $1", BENCH_EMAIL)
                if found is not None:
                    return uuid.UUID(str(found))
                user_id = uuid.uuid4()
                await connection.execute(
                    "INSERT INTO users (id, email, name, hashed_password) VALUES ($1, $2, $3, $4)",
                    user_id,
                    BENCH_EMAIL,
                    "Lambda Bench",
                    "!not-a-password-hash",  # nobody logs in: the bench mints tokens
                )
                base = datetime.now(UTC)
                await connection.executemany(
                    "INSERT INTO items (id, owner_id, title, description, created_at, updated_at) "
                    "VALUES ($1, $2, $3, $4, $5, $5)",
                    [
                        (
                            uuid.uuid4(),
                            user_id,
                            f"item {n}",
                            f"description of item {n}",
                            base + timedelta(seconds=n),
                        )
                        for n in range(items)
                    ],
                )
                return user_id
        finally:
            await connection.close()

    return asyncio.run(run())


def prepare_database(database: LocalPostgres, name: str = "bench_lambda") -> str:
    """Create ``name`` on ``database``, migrate it with the service's migrations, seed it;
    return its ``postgresql+asyncpg://`` URL."""
    url = database.create_database(name)
    env = {**os.environ, "DATABASE_URL": url, "ENVIRONMENT": "test", "PYTHONPATH": str(SERVICE_DIR)}
    subprocess.run(
        [sys.executable, "-m", "webapi.migrate"],
        cwd=SERVICE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    seed(url)
    return url


def _lambda_env(database_url: str, secret_key: str) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret_key,
    }


# --- the children's Lambda context -------------------------------------------------------------

# What Lambda passes as ``context``, for both children below (cold and warm).
LAMBDA_CONTEXT = """\
class Context:
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000"""


# --- cold starts -------------------------------------------------------------------------------

# The child of a cold start. time.time() marks let the parent split the wall time into
# interpreter start, handler import, first invocation and exit; the figure is the parent's clock.
CHILD = """\
import time
started = time.time()
import os, sys
bundle, module, event_path = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, bundle)
import importlib, json

@@CONTEXT@@

with open(event_path) as f:
    event = json.load(f)
handler = importlib.import_module(module).handler
imported = time.time()
response = handler(event, Context())
answered = time.time()
marks = {"started": started, "imported": imported, "answered": answered}
sys.stdout.flush()
os.write(1, ("\\nRESULT " + json.dumps({"response": response, "marks": marks}) + "\\n").encode())
os._exit(0)
""".replace("@@CONTEXT@@", LAMBDA_CONTEXT)


@dataclass(frozen=True)
class ColdRun:
    wall_ms: float
    status: int
    body: str
    phases_ms: dict[str, float]


def cold_run(
    bundle_dir: Path,
    module: str,
    event_file: Path,
    env: dict[str, str],
    *,
    interpreter: str = sys.executable,
    timeout: float | None = None,
) -> ColdRun:
    """One cold start of ``module``'s handler in ``bundle_dir`` by :data:`CHILD` under
    ``interpreter``: wall time, the answer, and the phases (interpreter, import, invoke, exit)."""
    command = [interpreter, "-I", "-S", "-B", "-c", CHILD, str(bundle_dir), module, str(event_file)]
    spawned = time.time()
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=bundle_dir, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    wall = time.perf_counter() - started
    returned = time.time()
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"cold start of {bundle_dir.name}:{module} with {interpreter} failed "
            f"(exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    outcome = json.loads(lines[-1].removeprefix("RESULT "))
    marks = outcome["marks"]
    phases = {
        "interpreter": (marks["started"] - spawned) * 1000,
        "import": (marks["imported"] - marks["started"]) * 1000,
        "invoke": (marks["answered"] - marks["imported"]) * 1000,
        "exit": (returned - marks["answered"]) * 1000,
    }
    response = outcome["response"]
    return ColdRun(wall * 1000, int(response["statusCode"]), response.get("body") or "", phases)


@dataclass(frozen=True)
class ColdTarget:
    """What one side of a cold-start comparison runs: a bundle, its handler module, its
    environment."""

    bundle_dir: Path
    module: str
    env: dict[str, str]


def _order(names: Sequence[str], n: int) -> list[str]:
    """Sample ``n``'s order: ABBA for two; for more, rotated by one each sample and reversed
    every other round, so each runs first, last and in between equally often."""
    if len(names) == 2:
        return list(names) if n % 4 in (0, 3) else list(reversed(names))
    k = len(names)
    rotated = [names[(i + n) % k] for i in range(k)]
    return rotated if (n // k) % 2 == 0 else list(reversed(rotated))


def compare_cold_many(
    workdir: Path,
    targets: dict[str, ColdTarget],
    *,
    event: dict[str, Any],
    samples: int,
    check: Callable[[dict[str, ColdRun]], None],
) -> dict[str, list[ColdRun]]:
    """``samples`` cold starts of each target, interleaved (:func:`_order`), after
    :data:`WARMUP_RUNS` of each; ``check`` sees the first warm-up run of every target."""
    event_file = workdir / f"event-{uuid.uuid4().hex}.json"
    event_file.write_text(json.dumps(event))
    names = list(targets)

    def run(name: str) -> ColdRun:
        target = targets[name]
        return cold_run(target.bundle_dir, target.module, event_file, target.env)

    try:
        runs: dict[str, list[ColdRun]] = {name: [] for name in names}
        for n in range(WARMUP_RUNS):
            warm = {name: run(name) for name in names}
            if n == 0:
                check(warm)
        for n in range(samples):
            for name in _order(names, n):
                result = run(name)
                if result.status != 200:
                    raise RuntimeError(f"{name} answered {result.status}: {result.body[:500]}")
                runs[name].append(result)
    finally:
        event_file.unlink(missing_ok=True)
    for target in targets.values():
        _assert_untouched(target.bundle_dir)
    return runs


def _phases(runs: Sequence[ColdRun]) -> dict[str, float]:
    """The median of each phase, in ms (interpreter start, import, first invocation, exit)."""
    return {
        name: round(stats([r.phases_ms[name] for r in runs], "ms")["median"], 2) for name in runs[0].phases_ms
    }


def cold_start_health(workdir: Path, samples: int = 15) -> Row:
    """Figure 1: process start to the response of ``GET /health``, ours versus a minimal
    FastAPI + Mangum app, both bundled for this machine by the project's bundler."""
    host = BundleTarget.host()
    ours_dir = bundle(workdir, OURS, host)
    base_dir = bundle(workdir, MINIMAL_FASTAPI, host)
    env = _lambda_env(UNREACHABLE_DATABASE_URL, HEALTH_SECRET_KEY)

    def check(first: dict[str, ColdRun]) -> None:
        for name, run in first.items():
            if run.status != 200 or json.loads(run.body) != {"status": "ok"}:
                raise RuntimeError(f"{name} /health answered {run.status}: {run.body[:500]}")

    runs = compare_cold_many(
        workdir,
        {
            "ours": ColdTarget(ours_dir, OURS.module, OURS.env(env)),
            "baseline": ColdTarget(base_dir, MINIMAL_FASTAPI.module, MINIMAL_FASTAPI.env(env)),
        },
        event=http_api_event("/health"),
        samples=samples,
        check=check,
    )
    ours, baseline = runs["ours"], runs["baseline"]
    return _row(
        "Lambda cold start, GET /health (host bundle, python -I -S -B)",
        stats([r.wall_ms for r in ours], "ms"),
        stats([r.wall_ms for r in baseline], "ms"),
        limit=HEALTH_TARGET,
        target=f"<= {HEALTH_TARGET}x minimal FastAPI + Mangum",
        phases_ms={"ours": _phases(ours), "baseline": _phases(baseline)},
    )


# The data cold start's baselines: the same-stack floor (the target) and the Starlette one (info).
DATA_BASELINES: dict[str, tuple[BundleSpec, float | None, str]] = {
    "same_stack": (
        SAME_STACK,
        DATA_TARGET,
        f"<= {DATA_TARGET}x same stack (FastAPI + Mangum + SQLAlchemy async + asyncpg)",
    ),
    "starlette": (FLOOR, None, "info: Starlette floor (Starlette + Mangum + asyncpg + PyJWT, no ORM)"),
}


def cold_start_data(
    workdir: Path,
    *,
    database_url: str,
    secret_key: str,
    user_id: uuid.UUID | str | None = None,
    samples: int = 15,
    baselines: Sequence[str] = ("starlette",),
    section: str = "lambda",
) -> list[Row]:
    """Figure 2: process start to the response of the first authenticated read
    (``GET /api/v1/items`` with a valid token, a seeded database), ours against each of
    ``baselines`` (:data:`DATA_BASELINES`): the same-stack floor (FastAPI + Mangum + SQLAlchemy
    async + asyncpg + PyJWT, the same queries; its row has the target) and the Starlette floor
    (information). All run interleaved, and their answers are checked equal to ours before
    anything is timed. ``user_id`` defaults to the bench user (:func:`seed`, created if missing)."""
    host = BundleTarget.host()
    specs = {"ours": OURS, **{name: DATA_BASELINES[name][0] for name in baselines}}
    dirs = {name: bundle(workdir, spec, host) for name, spec in specs.items()}
    if user_id is None:
        user_id = seed(database_url)
    token = mint_token(secret_key, user_id)
    env = _lambda_env(database_url, secret_key)

    def check(first: dict[str, ColdRun]) -> None:
        for name, run in first.items():
            if run.status != 200:
                raise RuntimeError(f"{name} {ITEMS_PATH} answered {run.status}: {run.body[:500]}")
        ours_page = json.loads(first["ours"].body)
        for name, run in first.items():
            if json.loads(run.body) != ours_page:
                raise RuntimeError(
                    f"the {name} floor's answer differs from ours:\n"
                    f"{first['ours'].body[:800]}\n{run.body[:800]}"
                )
        if not ours_page["items"]:
            raise RuntimeError(f"no items for user {user_id}: seed the database first")

    runs = compare_cold_many(
        workdir,
        {name: ColdTarget(dirs[name], spec.module, spec.env(env)) for name, spec in specs.items()},
        event=http_api_event(ITEMS_PATH, {"authorization": f"Bearer {token}"}),
        samples=samples,
        check=check,
    )
    ours = stats([r.wall_ms for r in runs["ours"]], "ms")
    figure = f"Lambda cold start, GET {ITEMS_PATH} authenticated, PostgreSQL (host bundle)"
    rows = []
    for name in baselines:
        _, limit, target = DATA_BASELINES[name]
        rows.append(
            _row(
                f"{figure} vs {'same stack' if name == 'same_stack' else 'Starlette floor'}",
                ours,
                stats([r.wall_ms for r in runs[name]], "ms"),
                limit=limit,
                target=target,
                section=section,
                phases_ms={"ours": _phases(runs["ours"]), "baseline": _phases(runs[name])},
            )
        )
    return rows


# --- warm invocations --------------------------------------------------------------------------

# One execution environment: per request through the handler (Mangum) and straight into the
# ASGI app, in alternating blocks. The service logs one JSON line per request to stdout, which
# the parent sends to /dev/null; both modes log alike.
WARM_CHILD = """\
import asyncio, importlib, json, os, sys, time
bundle, config_path, out_path, module = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, bundle)
with open(config_path) as f:
    config = json.load(f)
entry = importlib.import_module(module)
from mangum.handlers import HTTPGateway

@@CONTEXT@@

handler = entry.handler
app = entry.app
loop = asyncio.get_event_loop()
context = Context()

def asgi_scope(event):
    # What Mangum hands the app, less its aws.* keys: the scope an ASGI server would give.
    scope = HTTPGateway(event, context, entry.asgi_handler.config).scope
    return {key: value for key, value in scope.items() if not key.startswith("aws.")}

async def call_app(template):
    scope = dict(template)
    scope["headers"] = list(template["headers"])
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    response = {}

    async def receive():
        if messages:
            return messages.pop()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            response["status"] = message["status"]

    await app(scope, receive, send)
    return response["status"]

def via_handler(event, n):
    bad = 0
    for _ in range(n):
        bad += handler(event, context)["statusCode"] != 200
    return bad

def direct(template, n):
    bad = 0
    for _ in range(n):
        bad += loop.run_until_complete(call_app(template)) != 200
    return bad

def run_mode(mode, case, n):
    return via_handler(case["event"], n) if mode == "handler" else direct(case["scope"], n)

cases = config["cases"]
for case in cases:
    case["scope"] = asgi_scope(case["event"])
results = {}
for case in cases:
    bad = 0
    for mode in ("handler", "direct"):
        bad += run_mode(mode, case, config["warmup"])
    times = {"handler": [], "direct": []}
    for block in range(config["blocks"]):
        order = ("handler", "direct") if block % 2 == 0 else ("direct", "handler")
        for mode in order:
            started = time.perf_counter()
            bad += run_mode(mode, case, config["block"])
            times[mode].append((time.perf_counter() - started) * 1000 / config["block"])
    if bad:
        raise SystemExit(f"{case['name']}: {bad} responses were not 200")
    results[case["name"]] = times
if config.get("profile"):
    import cProfile
    for case in cases:
        for mode in ("handler", "direct"):
            profiler = cProfile.Profile()
            profiler.runcall(run_mode, mode, case, config["profile"])
            profiler.dump_stats(f"{out_path}.{case['name']}.{mode}.prof")
with open(out_path, "w") as f:
    json.dump(results, f)
""".replace("@@CONTEXT@@", LAMBDA_CONTEXT)

WARM_BLOCK = 100


def _warm_run(
    workdir: Path,
    *,
    database_url: str,
    secret_key: str,
    user_id: uuid.UUID | str | None,
    requests: int,
    warmup: int,
    profile: int = 0,
) -> tuple[dict[str, dict[str, list[float]]], Path]:
    ours_dir = bundle(workdir, OURS, BundleTarget.host())
    if user_id is None:
        user_id = seed(database_url)
    token = mint_token(secret_key, user_id)
    blocks = max(10, requests // WARM_BLOCK)
    config = {
        "cases": [
            {"name": "health", "event": http_api_event("/health")},
            {"name": "items", "event": http_api_event(ITEMS_PATH, {"authorization": f"Bearer {token}"})},
        ],
        "warmup": warmup,
        "blocks": blocks,
        "block": max(1, requests // blocks),
        "profile": profile,
    }
    run_dir = Path(tempfile.mkdtemp(prefix="warm-", dir=workdir))
    config_file, out_file = run_dir / "config.json", run_dir / "result.json"
    config_file.write_text(json.dumps(config))
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            WARM_CHILD,
            str(ours_dir),
            str(config_file),
            str(out_file),
            OURS.module,
        ],
        cwd=ours_dir,
        env=OURS.env(_lambda_env(database_url, secret_key)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"warm run failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    _assert_untouched(ours_dir)
    times: dict[str, dict[str, list[float]]] = json.loads(out_file.read_text())
    return times, run_dir


def warm_overhead(
    workdir: Path,
    *,
    database_url: str,
    secret_key: str,
    user_id: uuid.UUID | str | None = None,
    requests: int = 3000,
) -> list[Row]:
    """Figure 3: per-request time through the runtime entry's ``handler`` versus calling its
    ``app`` directly, in one process (the host bundle, as for cold starts),
    for ``GET /health`` and the authenticated read; ``requests`` per mode and route, in
    alternating blocks of 100 after 300 warm-up requests of each."""
    times, run_dir = _warm_run(
        workdir,
        database_url=database_url,
        secret_key=secret_key,
        user_id=user_id,
        requests=requests,
        warmup=300,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    blocks = len(times["health"]["handler"])
    per_mode = blocks * max(1, requests // blocks)
    rows = []
    for name, label in (("health", "GET /health"), ("items", f"GET {ITEMS_PATH} authenticated")):
        rows.append(
            _row(
                f"Lambda warm invocation, {label}: handler vs direct ASGI (per request)",
                stats(times[name]["handler"], "ms"),
                stats(times[name]["direct"], "ms"),
                limit=WARM_TARGET,
                target=f"<= {WARM_TARGET}x direct ASGI call",
                requests_per_mode=per_mode,
            )
        )
    return rows


def profile_warm(
    workdir: Path,
    *,
    database_url: str,
    secret_key: str,
    user_id: uuid.UUID | str | None = None,
    requests: int = 2000,
    top: int = 25,
) -> str:
    """cProfile of ``requests`` warm requests per route and mode, as text (top by cumulative
    and by own time)."""
    _, run_dir = _warm_run(
        workdir,
        database_url=database_url,
        secret_key=secret_key,
        user_id=user_id,
        requests=1000,
        warmup=300,
        profile=requests,
    )
    out = io.StringIO()
    try:
        for prof in sorted(run_dir.glob("result.json.*.prof")):
            _, _, case, mode, _ = prof.name.split(".")
            for key in ("cumulative", "tottime"):
                out.write(f"\n=== {case} via {mode}: {requests} requests, top {top} by {key} ===\n")
                pstats.Stats(str(prof), stream=out).sort_stats(key).print_stats(top)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out.getvalue()


# --- import profile ----------------------------------------------------------------------------

_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S.*)$")


def _importtime_runs(workdir: Path, spec: BundleSpec, runs: int) -> list[dict[str, tuple[float, float]]]:
    """Per run, every module the handler import loads: name -> (cumulative ms, own ms)."""
    bundle_dir = bundle(workdir, spec, BundleTarget.host())
    code = f"import sys; sys.path.insert(0, {str(bundle_dir)!r}); import {spec.module}"
    env = spec.env(_lambda_env(UNREACHABLE_DATABASE_URL, HEALTH_SECRET_KEY))
    measured = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-X", "importtime", "-c", code],
            cwd=bundle_dir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        measured.append(parse_importtime(result.stderr))
    return measured


def parse_importtime(output: str) -> dict[str, tuple[float, float]]:
    """``python -X importtime``'s lines in ``output``: module name -> (cumulative ms, own ms)."""
    modules = {}
    for line in output.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            modules[match.group(4).strip()] = (int(match.group(2)) / 1000, int(match.group(1)) / 1000)
    return modules


def rank_imports(runs: Sequence[dict[str, tuple[float, float]]], top: int) -> list[tuple[str, float, float]]:
    """The ``top`` modules over several runs of :func:`parse_importtime`, as (name, median
    cumulative ms, median own ms), by cumulative time."""
    samples: dict[str, list[tuple[float, float]]] = {}
    for modules in runs:
        for name, times in modules.items():
            samples.setdefault(name, []).append(times)
    ranked = [
        (
            name,
            stats([cumulative for cumulative, _ in values], "ms")["median"],
            stats([own for _, own in values], "ms")["median"],
        )
        for name, values in samples.items()
    ]
    ranked.sort(key=lambda entry: entry[1], reverse=True)
    return ranked[:top]


def import_profile(
    workdir: Path, spec: BundleSpec = OURS, *, top: int = 30, runs: int = 3
) -> list[tuple[str, float, float]]:
    """``python -X importtime`` of the handler import inside the read-only host bundle (the
    cold-start child's way): the ``top`` modules as (name, cumulative ms, own ms), the
    median of ``runs`` runs, sorted by cumulative time. (-X importtime itself adds ~15 %.)"""
    return rank_imports(_importtime_runs(workdir, spec, runs), top)


def import_profile_by_package(
    workdir: Path, spec: BundleSpec = OURS, *, top: int = 20, runs: int = 3
) -> list[tuple[str, float]]:
    """The handler import's own time summed per top-level package (``sqlalchemy``,
    ``pydantic``...), in ms, the median of ``runs`` runs; ``TOTAL`` first."""
    totals: dict[str, list[float]] = {}
    for modules in _importtime_runs(workdir, spec, runs):
        per_package: dict[str, float] = {"TOTAL": 0.0}
        for name, (_, own) in modules.items():
            package = name.split(".", 1)[0]
            per_package[package] = per_package.get(package, 0.0) + own
            per_package["TOTAL"] += own
        for package, total in per_package.items():
            totals.setdefault(package, []).append(total)
    ranked = [(package, stats(values, "ms")["median"]) for package, values in totals.items()]
    ranked.sort(key=lambda entry: entry[1], reverse=True)
    return ranked[:top]


# --- bundle sizes ------------------------------------------------------------------------------


def _sizes(bundle_dir: Path) -> dict[str, Any]:
    """Unzipped and zipped (deflate, level 6) bytes, in total and per top-level entry; cached."""
    cache = bundle_dir.with_name(bundle_dir.name + ".sizes.json")
    if cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text())
        return cached
    per_entry: dict[str, dict[str, int]] = {}
    files = sorted(path for path in bundle_dir.rglob("*") if path.is_file())
    archive = bundle_dir.with_name(bundle_dir.name + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zipped:
        for path in files:
            rel = path.relative_to(bundle_dir).as_posix()
            zipped.write(path, rel)
            info = zipped.getinfo(rel)
            entry = per_entry.setdefault(rel.split("/", 1)[0], {"unzipped": 0, "zipped": 0, "files": 0})
            entry["unzipped"] += info.file_size
            # the data plus its local header and central directory record
            entry["zipped"] += info.compress_size + 30 + 46 + 2 * len(info.filename.encode())
            entry["files"] += 1
    sizes = {
        "unzipped": sum(entry["unzipped"] for entry in per_entry.values()),
        "zipped": archive.stat().st_size,
        "files": len(files),
        "entries": per_entry,
    }
    archive.unlink()
    cache.write_text(json.dumps(sizes))
    return sizes


def _entry_groups(entries: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Top-level entries, with each ``*.dist-info`` folded into its distribution's package
    when one of that name is there (``SQLAlchemy-2.1.dist-info`` into ``sqlalchemy``)."""
    names = {name.lower(): name for name in entries if not name.endswith(".dist-info")}
    groups: dict[str, dict[str, int]] = {}
    for name, entry in entries.items():
        key = name
        if name.endswith(".dist-info"):
            project = name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("-", "_")
            key = names.get(project, name)
        group = groups.setdefault(key, {"unzipped": 0, "zipped": 0, "files": 0})
        for field in group:
            group[field] += entry[field]
    return groups


def bundle_sizes(workdir: Path, top: int = 10) -> list[Row]:
    """Figure 4: zipped and unzipped size of our bundle and of the minimal FastAPI baseline,
    built for Lambda (arm64, Python 3.14) and for this machine; then the ``top`` largest
    top-level entries of our Lambda bundle (a package with its ``.dist-info``)."""
    rows: list[Row] = []
    host = BundleTarget.host()
    ours_lambda: dict[str, Any] = {}
    base_lambda: dict[str, Any] = {}
    targets = (
        (f"Lambda {LAMBDA_TARGET.architecture} py{LAMBDA_TARGET.python_version}", LAMBDA_TARGET),
        (f"host {host.architecture} py{host.python_version}", host),
    )
    for label, target in targets:
        ours = _sizes(bundle(workdir, OURS, target))
        base = _sizes(bundle(workdir, MINIMAL_FASTAPI, target))
        if target == LAMBDA_TARGET:
            ours_lambda, base_lambda = ours, base
        rows.append(
            _row(
                f"Bundle zipped (deflate level 6), {label}",
                _single(ours["zipped"] / MB, "MB"),
                _single(base["zipped"] / MB, "MB"),
                limit=ZIPPED_TARGET,
                target=f"<= {ZIPPED_TARGET}x minimal FastAPI + Mangum",
                section="size",
                files={"ours": ours["files"], "baseline": base["files"]},
            )
        )
        unzipped = _row(
            f"Bundle unzipped, {label}",
            _single(ours["unzipped"] / MB, "MB"),
            _single(base["unzipped"] / MB, "MB"),
            limit=float("inf"),
            target=f"far under Lambda's {LAMBDA_UNZIPPED_LIMIT_MB} MB limit",
            section="size",
        )
        unzipped["met"] = ours["unzipped"] / MB < LAMBDA_UNZIPPED_LIMIT_MB
        unzipped["limit_fraction"] = ours["unzipped"] / MB / LAMBDA_UNZIPPED_LIMIT_MB
        rows.append(unzipped)
        if target != LAMBDA_TARGET:
            # This machine's bundles (with bytecode) are what the cold starts run; the
            # targets are about the bundle Lambda gets.
            for row in rows[-2:]:
                row["target"] = "info: the bundle the cold starts above run"
                row["met"] = None
    groups = _entry_groups(ours_lambda["entries"])
    base_groups = _entry_groups(base_lambda["entries"])
    ranked = sorted(groups.items(), key=lambda item: item[1]["unzipped"], reverse=True)[:top]
    for rank, (name, entry) in enumerate(ranked, start=1):
        in_base = base_groups.get(name)
        rows.append(
            {
                "figure": f"  Lambda bundle, #{rank} by size: {name}",
                "ours": _single(entry["unzipped"] / MB, "MB"),
                "baseline": None if in_base is None else _single(in_base["unzipped"] / MB, "MB"),
                "ratio": None,
                "target": (
                    f"info: {entry['unzipped'] / ours_lambda['unzipped']:.0%} of unzipped, "
                    f"{entry['zipped'] / MB:.2f} MB zipped"
                ),
                "met": None,
                "command": command("size"),
                "zipped_mb": entry["zipped"] / MB,
                "files": entry["files"],
            }
        )
    return rows


# --- the table and the command line ------------------------------------------------------------


def _fmt(value: dict[str, Any] | None) -> str:
    if not value:
        return "-"
    digits = 2 if value["median"] < 100 else 1
    if value["samples"] == 1:
        return f"{value['median']:.{digits}f} {value['unit']}"
    return (
        f"{value['median']:.{digits}f} {value['unit']} [{value['min']:.{digits}f}..{value['max']:.{digits}f}]"
    )


def table(rows: Sequence[Row]) -> str:
    header = ("figure", "ours: median [min..max]", "baseline", "ratio", "target", "met")
    lines = [header]
    for row in rows:
        ratio = row.get("ratio")
        lines.append(
            (
                row["figure"],
                _fmt(row.get("ours")),
                _fmt(row.get("baseline")),
                "-" if ratio is None else f"{ratio:.2f}x",
                row.get("target", ""),
                {True: "yes", False: "NO", None: "-"}[row.get("met")],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rendered) + "\n"


def import_report(workdir: Path) -> str:
    """What the handler imports cost, ours and both baselines: own time per package, then
    modules by cumulative time."""
    out = io.StringIO()
    for spec in (OURS, MINIMAL_FASTAPI, SAME_STACK, FLOOR):
        out.write(f"\n{spec.name}: import {spec.module}, own time per package (ms)\n")
        for package, own in import_profile_by_package(workdir, spec):
            out.write(f"  {own:8.1f}  {package}\n")
        out.write(f"{spec.name}: import {spec.module}, modules by cumulative time (ms): cumulative, own\n")
        for name, cumulative, own in import_profile(workdir, spec):
            out.write(f"  {cumulative:8.1f} {own:8.1f}  {name}\n")
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=15, help="cold starts of each (after 2 warm-ups)")
    parser.add_argument("--requests", type=int, default=3000, help="warm requests per mode and route")
    parser.add_argument("--workdir", type=Path, help="keep bundles here between runs (default: a temp dir)")
    parser.add_argument("--importtime", action="store_true", help="also print the handler imports' costs")
    parser.add_argument("--profile-warm", action="store_true", help="also print a cProfile of warm requests")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    from devtools.localdb import LocalPostgres  # noqa: PLC0415 - the embedded server only for the CLI

    secret_key = "lambda-bench-signing-key-" + hashlib.sha256(os.urandom(16)).hexdigest()
    with tempfile.TemporaryDirectory(prefix="lambda-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        database = LocalPostgres(Path(tmp) / "pg")
        database.start()
        try:
            url = prepare_database(database)
            steps: list[tuple[str, Callable[[], Row | list[Row]]]] = [
                ("bundle sizes", lambda: bundle_sizes(workdir)),
                ("cold start /health", lambda: cold_start_health(workdir, samples=args.samples)),
                (
                    "cold start data",
                    lambda: cold_start_data(
                        workdir, database_url=url, secret_key=secret_key, samples=args.samples
                    ),
                ),
                (
                    "warm overhead",
                    lambda: warm_overhead(
                        workdir, database_url=url, secret_key=secret_key, requests=args.requests
                    ),
                ),
            ]
            rows: list[Row] = []
            for name, step in steps:
                sys.stderr.write(f"lambda bench: {name}...\n")
                result = step()
                rows.extend(result if isinstance(result, list) else [result])
            sys.stdout.write(table(rows))
            for row in rows:
                if "phases_ms" in row:
                    sys.stdout.write(f"{row['figure']}: median phases (ms) {json.dumps(row['phases_ms'])}\n")
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2) + "\n")
            if args.importtime:
                sys.stdout.write(import_report(workdir))
            if args.profile_warm:
                sys.stdout.write(profile_warm(workdir, database_url=url, secret_key=secret_key))
        finally:
            database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
