"""The Docker fallback builds the bundle the local build makes, checked without Docker: its bash
script runs here, with this interpreter as ``python`` (the host target's CPython, as the build
image's is the Lambda target's) and uv on PATH, on the input CDK would mount at /asset-input.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker

from constructs_lib.aws.bundling import (
    BundleTarget,
    BundlingError,
    Dependencies,
    build_bundle,
    docker_bundling_script,
    elf_strip_tool,
    find_uv,
    lock_requirements,
    stage_docker_input,
    target_interpreter,
    uv_version,
)
from stacks.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "service"
DROPS = load_spec().lambda_drop_packages


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _modes(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): path.stat().st_mode & 0o777 for path in root.rglob("*")}


def _differing_by_patch_version(lock: Path, target: BundleTarget) -> set[str]:
    """Import names (as installed: ``async_timeout``) of the locked distributions whose marker
    says one thing for CPython X.Y.0 and another for this interpreter."""
    names = set()
    for name, marker in re.findall(r"^([A-Za-z0-9_.-]+)==[^ \n]+ ; ([^\\\n]+)", lock.read_text(), re.M):
        environments = [
            {"python_version": target.python_version, "python_full_version": full}
            for full in (f"{target.python_version}.0", platform.python_version())
        ]
        first, second = (Marker(marker.strip()).evaluate(env) for env in environments)
        if first != second:
            names.add(re.sub(r"[-.]+", "_", name).lower())
    return names


@pytest.mark.slow
def test_docker_script_builds_what_the_local_build_builds(tmp_path: Path) -> None:
    try:
        target = BundleTarget.host()
    except BundlingError as error:
        pytest.skip(f"no bundle for this machine: {error}")
    # An extra source (our runtime entry, say) and a lock outside the app: both must be staged
    # into the input, which is all the container sees.
    entry = tmp_path / "entry" / "serverless_entry"
    entry.mkdir(parents=True)
    (entry / "__init__.py").write_text("HANDLER = 'lambda_handler.handler'\n")
    (entry / "run.sh").write_text("#!/bin/sh\nexec python -m serverless_entry\n")
    (entry / "run.sh").chmod(0o755)
    (entry / "__pycache__").mkdir()
    (entry / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"\0")
    extra_sources = {
        "serverless_entry": entry,
        "entry.json": ROOT / "tests" / "events" / "http_api_v2_get.json",
    }
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    lock = lock_dir / "requirements-locked.txt"
    lock.write_bytes((SERVICE_DIR / "requirements.txt").read_bytes())
    assert lock_requirements(Dependencies.from_path(lock), target, lock_dir=lock_dir) == lock

    local = tmp_path / "local"
    build_bundle(
        local,
        source_dir=SERVICE_DIR,
        dependencies=Dependencies.from_path(lock),
        python_version=target.python_version,
        architecture=target.architecture,
        manylinux=target.manylinux,
        drop_packages=DROPS,
        extra_sources=extra_sources,
    )

    staged = stage_docker_input(SERVICE_DIR, lock, extra_sources)
    assert staged.asset_dir != SERVICE_DIR  # the lock lies outside: a staged copy
    assert staged.requirements is not None and (staged.asset_dir / staged.requirements).is_file()
    script = docker_bundling_script(
        requirements=staged.requirements,
        drop_packages=DROPS,
        extra_sources=staged.extra_sources,
        uv_version=uv_version(find_uv()),
        strip=elf_strip_tool() is not None,
        bytecode=target_interpreter(target.python_version) is not None,
    )
    docker = tmp_path / "asset-output"
    docker.mkdir()
    python_dir = Path(sys.executable).parent  # `python` and `uv` of this virtual environment
    env = {**os.environ, "PATH": f"{python_dir}:{Path(find_uv()).parent}:{os.environ['PATH']}"}
    subprocess.run(
        ["bash", "-c", script, "bundle", str(docker)],
        cwd=staged.asset_dir,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )

    ours, theirs = _tree(local), _tree(docker)
    # Justified: uv installs the local bundle for CPython X.Y (X.Y.0 to markers), the script for
    # the interpreter it runs, whose patch version is known: a `python_full_version` marker can
    # differ (async-timeout's `< '3.11.3'` on 3.11). Only those distributions may differ.
    justified = _differing_by_patch_version(lock, target)
    only_local = {rel.split("/")[0].split("-")[0] for rel in set(ours) - set(theirs)}
    only_docker = {rel.split("/")[0].split("-")[0] for rel in set(theirs) - set(ours)}
    assert only_local | only_docker <= justified, (only_local, only_docker, justified)
    ours = {rel: data for rel, data in ours.items() if rel.split("/")[0].split("-")[0] not in justified}
    theirs = {rel: data for rel, data in theirs.items() if rel.split("/")[0].split("-")[0] not in justified}
    assert sorted(ours) == sorted(theirs)
    differing = sorted(rel for rel in ours if ours[rel] != theirs[rel])
    assert differing == []
    assert {k: v for k, v in _modes(local).items() if k.split("/")[0].split("-")[0] not in justified} == {
        k: v for k, v in _modes(docker).items() if k.split("/")[0].split("-")[0] not in justified
    }
    # The steps the script used to skip did happen, and the inputs' staging did not leak in.
    assert any(rel.endswith(".pyc") for rel in ours) == (
        target_interpreter(target.python_version) is not None
    )
    assert not any(rel.startswith((".bundling-inputs", "bin/", "uvicorn")) for rel in theirs)
    assert "serverless_entry/__init__.py" in theirs and "entry.json" in theirs
    assert not any("stale" in rel for rel in theirs)


def test_libraries_auditwheel_patched_are_not_stripped(tmp_path: Path) -> None:
    """llvm-strip breaks what patchelf rewrote (psycopg2-binary's libpq and _psycopg would no
    longer load): those keep their bytes, the others are stripped."""
    from constructs_lib.aws.bundling.bytecode import patched_by_auditwheel

    vendored = tmp_path / "psycopg2_binary.libs" / "libpq-a17e3caa.so.5.17"
    vendored.parent.mkdir()
    vendored.write_bytes(b"\x7fELF plain")
    extension = tmp_path / "psycopg2" / "_psycopg.cpython-311-x86_64-linux-gnu.so"
    extension.parent.mkdir()
    extension.write_bytes(b"\x7fELF ... $ORIGIN/../psycopg2_binary.libs ...")
    plain = tmp_path / "asyncpg" / "protocol.cpython-311-x86_64-linux-gnu.so"
    plain.parent.mkdir()
    plain.write_bytes(b"\x7fELF no rpath")
    assert patched_by_auditwheel(vendored) and patched_by_auditwheel(extension)
    assert not patched_by_auditwheel(plain)
