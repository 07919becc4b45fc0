"""Cloud Run figures of `make bench`: container start-up to the first ``/health`` 200, and the
installed size, ours (the sample service's own image) beside a hello-world FastAPI + uvicorn.

No Docker here, so each image is laid out on this machine as its Dockerfile lays it out:

* ours (``service/Dockerfile``): the locked ``requirements.txt`` installed for this machine into
  a ``site-packages`` directory (``uv pip install --target``: the same files pip puts into the
  image's site-packages), the app in its WORKDIR (``srv/``: ``requirements.txt`` and ``webapi/``,
  no caches, as its .dockerignore says), command ``python -m webapi.serve`` from ``srv/``;
* hello (``tests/examples/hello``, an app without a Dockerfile): the build context our
  generated Dockerfile gets (:func:`constructs_lib.gcp.dockerfile.stage_build_context`), its
  requirements plus the entry's server locked for this machine and installed the same way, the
  app in ``app/`` (the WORKDIR), the entry in ``opt/`` (``/opt/serverless-fastapi``), command
  ``python -m serverless_fastapi_entry serve`` (the generated CMD: the baseline, the same
  install and the same server as any app without a Dockerfile gets), and, for information,
  ``python -m uvicorn main:app`` from the same install;
* bytecode as the images compile it at build: pip's default (``compileall`` of every installed
  module, timestamp-checked ``.pyc``) over ``site-packages``, and ``python -m compileall -q``
  over the app (and the entry); the same installs without any ``.pyc`` show what that buys.
  (The stdlib is this machine's interpreter's, compiled, for both. ``python:3.12-slim``
  deletes the stdlib's ``.pyc``: the ``image stdlib`` rows run both on a copy of the stdlib
  without them, :func:`image_stdlib`, to show what that costs.)

How a start-up is measured (identical for every variant): ``python -S -B`` (no site: nothing
of the dev virtual environment; nothing written) with ``PYTHONPATH`` the install only, the
WORKDIR as working directory, and the environment Cloud Run gives (``PORT``, ``K_SERVICE``,
``K_REVISION``, ``K_CONFIGURATION``, the image's ``ENV``; for ours ``DATABASE_URL`` through a
socket directory named like Cloud Run's ``/cloudsql/PROJECT:REGION:INSTANCE``, a symlink to the
embedded PostgreSQL's socket, ``SECRET_KEY``, ``ENVIRONMENT=dev``). The figure is the wall time
from just before the process is spawned to the first ``200`` of ``GET /health`` (polled every
2 ms over a fresh connection); then the process gets SIGTERM. One warm-up run of each variant,
then ``samples`` runs of each, the variants in turn, the order reversed every round, so all share
the machine's noise; median, p90, min and max.

Run ``PYTHONPATH=service:. python -m bench.cloudrun_bench [--quick] [--importtime]`` (a
temporary PostgreSQL is started).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.lambda_bench import Row, parse_importtime, rank_imports, stats, stats_with_p90

if TYPE_CHECKING:
    from devtools.localdb import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
HELLO_DIR = ROOT / "tests" / "examples" / "hello"
FLOOR_DIR = ROOT / "bench" / "baselines" / "same_stack"

START_TARGET = 1.5
WARMUP_RUNS = 1
POLL_S = 0.002
START_TIMEOUT_S = 60
MB = 1024 * 1024
SECRET_KEY = "cloudrun-bench-signing-key-0123456789abcdef0123456789abcdef0123456789"
SOCKET_DIR_NAME = "my-project:europe-west1:bench-pg"

# --- the installs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    """One image's files laid out here: ``site-packages``, the WORKDIR, and what else is on
    ``PYTHONPATH`` before site-packages (the generated image's entry directory)."""

    root: Path
    workdir: Path
    extra_path: tuple[Path, ...] = ()

    @property
    def site_packages(self) -> Path:
        return self.root / "site-packages"

    @property
    def python_path(self) -> str:
        return os.pathsep.join(str(p) for p in (*self.extra_path, self.site_packages))


@dataclass(frozen=True)
class Variant:
    name: str
    install: Install
    command: tuple[str, ...]  # after "python -S -B"; "$PORT" is replaced
    env: dict[str, str] = field(default_factory=dict)
    home: Path | None = None  # PYTHONHOME: another copy of the stdlib (see image_stdlib)


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
        dirs_exist_ok=True,
    )


def _compile(*paths: Path, cwd: Path) -> None:
    """``python -m compileall -q`` as a Dockerfile runs it (and as pip compiles what it installs:
    ``compileall``, timestamp-checked .pyc, this interpreter's optimisation level)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(p) for p in paths)],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _install_dependencies(site_packages: Path, lock: Path) -> None:
    from constructs_lib.aws.bundling import BundleTarget  # noqa: PLC0415
    from constructs_lib.aws.bundling.install import install_requirements  # noqa: PLC0415

    site_packages.mkdir(parents=True)
    # uv --target: the wheels' files as pip puts them into site-packages, no bytecode yet.
    install_requirements(site_packages, requirements=lock, target=BundleTarget.host())


def _strip_bytecode(root: Path) -> None:
    for cache in sorted(root.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for stray in root.rglob("*.py[co]"):
        stray.unlink()


def _pyc_count(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.pyc"))


def ours_install(workdir: Path) -> dict[str, Install]:
    """``service/Dockerfile``'s layout: ``{"source": no .pyc, "compiled": as built now
    (dependencies and app compiled), "app_only": as built with ``pip install --no-compile``
    (only ``webapi`` compiled)}``."""
    base = workdir / "cloudrun" / "ours-source"
    srv = base / "srv"
    if not base.is_dir():
        building = base.with_name(".ours-building")
        shutil.rmtree(building, ignore_errors=True)
        _install_dependencies(building / "site-packages", SERVICE_DIR / "requirements.txt")
        (building / "srv").mkdir()
        shutil.copyfile(SERVICE_DIR / "requirements.txt", building / "srv" / "requirements.txt")
        _copy_tree(SERVICE_DIR / "webapi", building / "srv" / "webapi")
        _strip_bytecode(building)
        building.rename(base)
    installs = {"source": Install(base, srv)}
    for name, compile_dependencies in (("compiled", True), ("app_only", False)):
        root = base.with_name(f"ours-{name}")
        if not root.is_dir():
            building = root.with_name(f".ours-{name}-building")
            shutil.rmtree(building, ignore_errors=True)
            shutil.copytree(base, building, symlinks=True)
            _compile(Path("webapi"), cwd=building / "srv")  # RUN python -m compileall -q webapi
            if compile_dependencies:
                _compile(building / "site-packages", cwd=building)
            building.rename(root)
        installs[name] = Install(root, root / "srv")
    return installs


def hello_entry_environment() -> dict[str, str]:
    """What ``init`` detects for the hello app: the entry's variables, baked into its image."""
    from stacks.detect import init  # noqa: PLC0415
    from stacks.spec import load_spec  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="cloudrun-bench-spec-") as tmp:
        spec_file = Path(tmp) / "deploy.yaml"
        report = io.StringIO()
        if init(HELLO_DIR, spec_file, out=report) != 0:
            raise RuntimeError(f"init of {HELLO_DIR} failed:\n{report.getvalue()}")
        return load_spec(spec_file, stage="dev").app.options().entry_environment()


def hello_install(workdir: Path, environment: dict[str, str]) -> dict[str, Install]:
    """The generated image's layout for the hello app: ``{"source", "compiled"}``."""
    return entry_image_install(workdir, "hello", HELLO_DIR, environment)


def floor_install(workdir: Path, environment: dict[str, str]) -> dict[str, Install]:
    """The same-stack floor app (``bench/baselines/same_stack``) as an app without a Dockerfile
    is deployed: the generated image's layout, its requirements plus the entry's server."""
    return entry_image_install(workdir, "floor", FLOOR_DIR, environment)


def entry_image_install(
    workdir: Path, name: str, app_dir: Path, environment: dict[str, str]
) -> dict[str, Install]:
    """The generated image's layout for the app in ``app_dir``: ``{"source", "compiled"}``."""
    from constructs_lib.aws.bundling import BundleTarget, Dependencies, lock_requirements  # noqa: PLC0415
    from constructs_lib.gcp.dockerfile import ENTRY_PARENT, stage_build_context  # noqa: PLC0415
    from constructs_lib.runtime import CONTAINER_REQUIREMENTS, ENTRY_PACKAGE  # noqa: PLC0415

    entry_dir = ENTRY_PARENT.strip("/").replace("/", "-")
    base = workdir / "cloudrun" / f"{name}-source"
    if not base.is_dir():
        building = base.with_name(f".{name}-building")
        shutil.rmtree(building, ignore_errors=True)
        lock = lock_requirements(
            Dependencies.detect(app_dir),
            BundleTarget.host(),
            extra_requirements=CONTAINER_REQUIREMENTS,
            lock_dir=workdir / "cloudrun" / "locks" / name,
        )
        assert lock is not None
        context = stage_build_context(
            app_dir,
            environment=environment,
            requirements=lock,
            staging_dir=workdir / "cloudrun" / "contexts",
        )
        _install_dependencies(building / "site-packages", context.directory / "requirements.lock.txt")
        _copy_tree(context.directory / "app", building / "app")
        _copy_tree(context.directory / ENTRY_PACKAGE, building / entry_dir / ENTRY_PACKAGE)
        _strip_bytecode(building)
        building.rename(base)
    installs = {"source": Install(base, base / "app", (base / entry_dir,))}
    root = base.with_name(f"{name}-compiled")
    if not root.is_dir():
        building = root.with_name(f".{name}-compiled-building")
        shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(base, building, symlinks=True)
        # pip install (compiles what it installs), then RUN python -m compileall -q /app /opt/...
        _compile(building / "site-packages", cwd=building)
        _compile(building / "app", building / entry_dir, cwd=building / "app")
        building.rename(root)
    installs["compiled"] = Install(root, root / "app", (root / entry_dir,))
    return installs


# The interpreter itself, not the dev virtual environment's link to it.
PYTHON = getattr(sys, "_base_executable", None) or sys.executable
STDLIB_EXCLUDES = ("__pycache__", "*.pyc", "*.pyo", "test", "tests", "idle_test", "site-packages")


def image_stdlib(workdir: Path) -> Path:
    """A ``PYTHONHOME`` whose stdlib is this interpreter's as ``python:3.12-slim`` ships its
    own: without the test suites and without any ``.pyc`` (its Dockerfile deletes them), so each
    start compiles every stdlib module it imports that is not frozen into the interpreter."""
    home = workdir / "cloudrun" / "stdlib-source"
    if not home.is_dir():
        building = home.with_name(".stdlib-building")
        shutil.rmtree(building, ignore_errors=True)
        stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix}))
        target = building / "lib" / stdlib.name
        shutil.copytree(stdlib, target, ignore=shutil.ignore_patterns(*STDLIB_EXCLUDES))
        dynload = Path(sysconfig.get_config_var("DESTSHARED"))  # the extension modules
        if (target / "lib-dynload").exists():
            shutil.rmtree(target / "lib-dynload")
        (target / "lib-dynload").symlink_to(dynload)
        building.rename(home)
    return home


def installed_bytes(install: Install) -> dict[str, int]:
    """Bytes of the files: dependencies, app (WORKDIR and entry), and of them the .pyc."""
    sizes = {"dependencies": 0, "app": 0, "bytecode": 0, "files": 0}
    for part, directory in (
        ("dependencies", install.site_packages),
        ("app", install.workdir),
        *(("app", p) for p in install.extra_path),
    ):
        for path in directory.rglob("*"):
            if path.is_file() and not path.is_symlink():
                size = path.stat().st_size
                sizes[part] += size
                sizes["files"] += 1
                if path.suffix == ".pyc":
                    sizes["bytecode"] += size
    sizes["total"] = sizes["dependencies"] + sizes["app"]
    return sizes


# --- running a container command ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cloud_sql_socket_dir(database: LocalPostgres, workdir: Path) -> Path:
    """``/cloudsql/PROJECT:REGION:INSTANCE``: a directory whose ``.s.PGSQL.5432`` is the embedded
    server's socket."""
    directory = workdir / "cloudsql" / SOCKET_DIR_NAME
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / ".s.PGSQL.5432"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(database.data_dir / f".s.PGSQL.{database.port}")
    return directory


def cloud_run_env(port: int, service: str) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",  # the image's user has none
        # the images' ENV
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # what Cloud Run sets
        "PORT": str(port),
        "K_SERVICE": service,
        "K_REVISION": f"{service}-00001-abc",
        "K_CONFIGURATION": service,
    }


def _health_status(port: int, path: str) -> int | None:
    """The status of ``GET path`` on a fresh connection; None when nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n" not in head:
                chunk = conn.recv(256)
                if not chunk:
                    return None
                head += chunk
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@dataclass(frozen=True)
class Start:
    ms: float
    output: str


def start_once(variant: Variant, *, health: str = "/health", extra_flags: Sequence[str] = ()) -> Start:
    """Spawn the variant's command, wait for the first 200 of ``health``, stop it (SIGTERM)."""
    port = free_port()
    env = {
        **cloud_run_env(port, variant.name.split()[0]),
        **variant.env,
        "PYTHONPATH": variant.install.python_path,
    }
    if variant.home is not None:
        env["PYTHONHOME"] = str(variant.home)
    command = [
        PYTHON,
        "-S",
        "-B",
        *extra_flags,
        *(str(port) if arg == "$PORT" else arg for arg in variant.command),
    ]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=variant.install.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            while True:
                status = _health_status(port, health)
                if status == 200:
                    elapsed = time.perf_counter() - started
                    break
                if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                    log.seek(0)
                    raise RuntimeError(
                        f"{variant.name}: no 200 from {health} (exit {process.returncode}, last "
                        f"status {status}):\n{log.read().decode(errors='replace')[-3000:]}"
                    )
                time.sleep(POLL_S)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        log.seek(0)
        return Start(elapsed * 1000, log.read().decode(errors="replace"))


def measure_starts(variants: Sequence[Variant], *, samples: int) -> dict[str, list[float]]:
    """``samples`` start-ups of each variant after a warm-up, in turn, the order reversed every
    round; the .pyc counts of every install are checked unchanged afterwards."""
    roots = {v.install.root for v in variants} | {v.home for v in variants if v.home is not None}
    pyc_before = {root: _pyc_count(root) for root in roots}
    for variant in variants:
        for _ in range(WARMUP_RUNS):
            start_once(variant)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for round_ in range(samples):
        order = variants if round_ % 2 == 0 else list(reversed(variants))
        for variant in order:
            times[variant.name].append(start_once(variant).ms)
    for root, count in pyc_before.items():
        if _pyc_count(root) != count:
            raise RuntimeError(f"{root} was written to: its .pyc count changed")
    return times


# --- the rows ----------------------------------------------------------------------------------


def variants_for(
    ours: dict[str, Install],
    hello: dict[str, Install],
    *,
    ours_env: dict[str, str],
    hello_env: dict[str, str],
    stdlib_home: Path,
    floor: dict[str, Install] | None = None,
    floor_env: dict[str, str] | None = None,
) -> list[Variant]:
    from constructs_lib.runtime import ENTRY_PACKAGE  # noqa: PLC0415

    entry = ("-m", ENTRY_PACKAGE, "serve")
    uvicorn = ("-m", "uvicorn", "main:app", "--host", "0.0.0.0", "--port", "$PORT")  # noqa: S104
    return [
        Variant("ours", ours["compiled"], ("-m", "webapi.serve"), ours_env),
        Variant("hello-entry", hello["compiled"], entry, hello_env),
        Variant("hello-uvicorn", hello["compiled"], uvicorn),
        Variant("ours-app-only", ours["app_only"], ("-m", "webapi.serve"), ours_env),
        Variant("ours-source", ours["source"], ("-m", "webapi.serve"), ours_env),
        Variant("hello-entry-source", hello["source"], entry, hello_env),
        Variant("ours-image-stdlib", ours["compiled"], ("-m", "webapi.serve"), ours_env, stdlib_home),
        Variant("hello-entry-image-stdlib", hello["compiled"], entry, hello_env, stdlib_home),
        *([Variant("floor-entry", floor["compiled"], entry, floor_env or {})] if floor else []),
    ]


def _ratio_row(
    figure: str,
    times: dict[str, list[float]],
    ours: str,
    baseline: str,
    *,
    target: str,
    limit: float | None,
) -> Row:
    mine, base = stats_with_p90(times[ours], "ms"), stats_with_p90(times[baseline], "ms")
    ratio = mine["median"] / base["median"]
    return {
        "figure": figure,
        "ours": mine,
        "baseline": base,
        "ratio": ratio,
        "ratio_p90": mine["p90"] / base["p90"],
        "target": f"{target}; p90 {mine['p90']:.0f} vs {base['p90']:.0f} ms",
        "met": None if limit is None else ratio <= limit,
        "variants": {"ours": ours, "baseline": baseline},
    }


def start_rows(times: dict[str, list[float]]) -> list[Row]:
    figure = "Cloud Run start-up, command to first /health 200 (image layout)"
    return [
        _ratio_row(
            f"{figure}: ours vs hello (generated CMD)",
            times,
            "ours",
            "hello-entry",
            target=f"<= {START_TARGET}x hello-world FastAPI + uvicorn",
            limit=START_TARGET,
        ),
        _ratio_row(
            f"{figure}: ours vs hello via python -m uvicorn",
            times,
            "ours",
            "hello-uvicorn",
            target="info: the bare uvicorn CLI",
            limit=None,
        ),
        _ratio_row(
            f"{figure}, no bytecode at all: ours vs hello",
            times,
            "ours-source",
            "hello-entry-source",
            target="info",
            limit=None,
        ),
        _ratio_row(
            f"{figure}: ours, no bytecode vs compiled at build",
            times,
            "ours-source",
            "ours",
            target="info: what compiling at build buys",
            limit=None,
        ),
        _ratio_row(
            f"{figure}: ours, dependencies pip --no-compile vs all compiled",
            times,
            "ours-app-only",
            "ours",
            target="info: service/Dockerfile before it compiled site-packages",
            limit=None,
        ),
        _ratio_row(
            f"{figure}, stdlib without .pyc (as python:3.12-slim): ours vs hello",
            times,
            "ours-image-stdlib",
            "hello-entry-image-stdlib",
            target="info: both images' base",
            limit=None,
        ),
        _ratio_row(
            f"{figure}: ours, stdlib without .pyc vs with",
            times,
            "ours-image-stdlib",
            "ours",
            target="info: what compiling the base image's stdlib at build would buy",
            limit=None,
        ),
        *(
            [
                _ratio_row(
                    f"{figure}: ours vs the same-stack floor (generated CMD)",
                    times,
                    "ours",
                    "floor-entry",
                    target="info: FastAPI + SQLAlchemy async + asyncpg + PyJWT, 3 routes",
                    limit=None,
                ),
                _ratio_row(
                    f"{figure}: the same-stack floor vs hello (both generated CMD)",
                    times,
                    "floor-entry",
                    "hello-entry",
                    target="info: what the mandated stack costs before any app code",
                    limit=None,
                ),
            ]
            if "floor-entry" in times
            else []
        ),
    ]


def size_rows(ours: dict[str, Install], hello: dict[str, Install]) -> list[Row]:
    rows: list[Row] = []
    for label, key in (("bytecode compiled at build", "compiled"), ("without bytecode", "source")):
        mine, base = installed_bytes(ours[key]), installed_bytes(hello[key])
        rows.append(
            {
                "figure": f"Cloud Run image, installed app + dependencies ({label}; base image not counted)",
                "ours": stats([mine["total"] / MB], "MB"),
                "baseline": stats([base["total"] / MB], "MB"),
                "ratio": mine["total"] / base["total"],
                "target": (
                    f"info: dependencies {mine['dependencies'] / MB:.1f} vs "
                    f"{base['dependencies'] / MB:.1f} MB, "
                    f"of it .pyc {mine['bytecode'] / MB:.1f} vs {base['bytecode'] / MB:.1f} MB"
                ),
                "met": None,
                "bytes": {"ours": mine, "baseline": base},
            }
        )
    return rows


@dataclass
class Setup:
    ours: dict[str, Install]
    hello: dict[str, Install]
    variants: list[Variant]


def setup(workdir: Path, database: LocalPostgres) -> Setup:
    from bench.lambda_bench import prepare_database  # noqa: PLC0415
    from constructs_lib.runtime.serverless_fastapi_entry import ENTRYPOINT_VARIABLE, FACTORY_VARIABLE  # noqa: PLC0415
    from constructs_lib.runtime.serverless_fastapi_entry.dburl import database_url  # noqa: PLC0415
    from devtools.localdb import SUPERUSER  # noqa: PLC0415
    from stacks.spec import load_spec  # noqa: PLC0415

    name = "bench_cloudrun"
    prepare_database(database, name)  # migrated (and seeded) as a deployed one would be
    settings = load_spec().app.options().database
    assert settings is not None
    url = database_url(
        driver=settings.driver,
        user=SUPERUSER,
        password="unused",  # noqa: S106 - the embedded server trusts local connections
        database=name,
        socket_dir=str(cloud_sql_socket_dir(database, workdir)),
        scheme=settings.url_scheme,
        host_required=settings.host_required,
    )
    ours_env = {settings.url_variable: url, "SECRET_KEY": SECRET_KEY, "ENVIRONMENT": "dev"}
    hello_env = hello_entry_environment()
    # The floor reads the same database as ours, through the same socket, as any app would.
    floor_env = {
        ENTRYPOINT_VARIABLE: "same_stack_app:app",
        FACTORY_VARIABLE: "false",
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
    }
    ours, hello = ours_install(workdir), hello_install(workdir, hello_env)
    floor = floor_install(workdir, {k: v for k, v in floor_env.items() if k.startswith("FASTAPI_DEPLOY_")})
    variants = variants_for(
        ours,
        hello,
        ours_env=ours_env,
        hello_env=hello_env,
        stdlib_home=image_stdlib(workdir),
        floor=floor,
        floor_env=floor_env,
    )
    return Setup(ours, hello, variants)


def run(workdir: Path, *, quick: bool, database: LocalPostgres) -> list[Row]:
    """Figure 5: start-up (ours vs hello, with and without bytecode), then installed sizes."""
    prepared = setup(workdir, database)
    times = measure_starts(prepared.variants, samples=5 if quick else 15)
    return [*start_rows(times), *size_rows(prepared.ours, prepared.hello)]


# --- where the time goes -----------------------------------------------------------------------


def import_profile(variant: Variant, *, runs: int = 3, top: int = 25) -> list[tuple[str, float, float]]:
    """``python -X importtime`` of the variant's start (to the first 200): the ``top`` modules as
    (name, cumulative ms, own ms), medians of ``runs``, by cumulative time."""
    starts = [start_once(variant, extra_flags=("-X", "importtime")).output for _ in range(runs)]
    return rank_imports([parse_importtime(output) for output in starts], top)


def import_report(variants: Sequence[Variant], names: Sequence[str] = ("ours", "hello-entry")) -> str:
    out = io.StringIO()
    for variant in variants:
        if variant.name not in names:
            continue
        out.write(
            f"\n{variant.name}: python -X importtime, modules by cumulative time (ms): cumulative, own\n"
        )
        for name, cumulative, own in import_profile(variant):
            out.write(f"  {cumulative:8.1f} {own:8.1f}  {name}\n")
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cloudrun_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 start-ups of each, not 15")
    parser.add_argument(
        "--workdir", type=Path, help="keep the installs here between runs (default: a temp dir)"
    )
    parser.add_argument(
        "--importtime", action="store_true", help="also print where ours and hello's starts go"
    )
    args = parser.parse_args(argv)

    from bench.run import table  # noqa: PLC0415 - the driver imports this module
    from devtools.localdb import LocalPostgres  # noqa: PLC0415 - the embedded server only for the CLI

    with tempfile.TemporaryDirectory(prefix="cloudrun-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        database = LocalPostgres(Path(tmp) / "pg")
        database.start()
        try:
            steps: list[tuple[str, Callable[[], list[Row]]]] = [
                ("start-up and size", lambda: run(workdir, quick=args.quick, database=database)),
            ]
            rows: list[Row] = []
            for name, step in steps:
                sys.stderr.write(f"cloudrun bench: {name}...\n")
                rows.extend(step())
            sys.stdout.write(table(rows) + "\n")
            if args.importtime:
                sys.stdout.write(import_report(setup(workdir, database).variants))
        finally:
            database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
