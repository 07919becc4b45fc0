"""A bundle, and the hash of what decides it: dependencies installed for the target, the app's
source, the extra sources, then stripping, bytecode and file modes."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from constructs_lib.aws.bundling.bytecode import compile_bytecode, normalize_modes, strip_debug_info
from constructs_lib.aws.bundling.dependencies import Dependencies, lock_requirements
from constructs_lib.aws.bundling.errors import BundlingError
from constructs_lib.aws.bundling.install import install_requirements
from constructs_lib.aws.bundling.prune import drop_packages as drop_installed
from constructs_lib.aws.bundling.prune import prune_dependencies
from constructs_lib.aws.bundling.source import DEFAULT_EXCLUDES, extra_source_files, source_files
from constructs_lib.aws.bundling.target import BundleTarget
from constructs_lib.aws.bundling.tools import elf_strip_tool, target_interpreter

log = logging.getLogger(__name__)

# Part of every content hash: bump it when what this package puts into a bundle changes
# (install flags, pruning, excludes semantics), so assets are rebuilt and redeployed.
# 4: bytecode records /var/task paths; the Docker fallback prunes, strips and compiles too.
BUNDLER_VERSION = "4"

_EMPTY: Mapping[str, Path] = {}


def resolve_dependencies(
    *,
    dependencies: Dependencies | None,
    requirements: Path | None,
    target: BundleTarget,
    extra_requirements: Sequence[str],
    lock_dir: Path | None,
) -> Path | None:
    """The hash-locked requirements file to install (None: nothing to install).

    ``requirements`` is the older spelling of ``Dependencies.from_path(requirements)``; with
    neither, nothing is installed but the ``extra_requirements``. (:func:`lambda_code` detects
    the app's file; these functions take what they are given.)
    """
    if dependencies is not None and requirements is not None:
        raise ValueError("give dependencies or requirements, not both")
    if requirements is not None:
        if not requirements.is_file():
            raise ValueError(f"requirements must be a file, got {requirements}")
        dependencies = Dependencies.from_path(requirements)
    return lock_requirements(dependencies, target, extra_requirements=extra_requirements, lock_dir=lock_dir)


def content_hash(
    *,
    source_dir: Path,
    dependencies: Dependencies | None = None,
    python_version: str,
    architecture: str,
    manylinux: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_requirements: Sequence[str] = (),
    extra_sources: Mapping[str, Path] = _EMPTY,
    lock_dir: Path | None = None,
    requirements: Path | None = None,
) -> str:
    """SHA-256 of everything that decides the bundle's content, as hex.

    Covers the relative paths and bytes of the source files that go in, the bytes of the
    resolved lock (not of the unresolved input), the extra requirements, the extra sources'
    destinations and bytes, the target (Python version, architecture, manylinux tag) and
    :data:`BUNDLER_VERSION`. Independent of modification times, file modes and absolute paths.
    Resolves (and writes into ``lock_dir``) the lock when it does not exist yet.
    """
    target = BundleTarget.create(python_version, architecture, manylinux)
    lock = resolve_dependencies(
        dependencies=dependencies,
        requirements=requirements,
        target=target,
        extra_requirements=extra_requirements,
        lock_dir=lock_dir,
    )
    return locked_content_hash(
        source_dir=source_dir,
        lock=lock,
        target=target,
        exclude=exclude,
        drop_packages=drop_packages,
        extra_requirements=extra_requirements,
        extra_sources=extra_sources,
    )


def locked_content_hash(
    *,
    source_dir: Path,
    lock: Path | None,
    target: BundleTarget,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_requirements: Sequence[str] = (),
    extra_sources: Mapping[str, Path] = _EMPTY,
) -> str:
    """:func:`content_hash` once the lock is known."""
    digest = hashlib.sha256()

    def field(name: str, data: bytes) -> None:
        for part in (name.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)

    field("bundler", BUNDLER_VERSION.encode())
    field("python", target.python_version.encode())
    field("platform", target.uv_platform.encode())
    field("requirements", b"-" if lock is None else b"+" + lock.read_bytes())
    field("extra-requirements", "\n".join(sorted(extra_requirements)).encode())
    field("drop", ",".join(sorted(drop_packages)).encode())
    # What this machine can do to the output is part of it: bytecode needs the target's
    # interpreter, stripping needs an ELF strip tool.
    # (whether, not where: the hash must not depend on paths)
    field("bytecode", b"1" if target_interpreter(target.python_version) else b"0")
    field("strip", b"1" if elf_strip_tool() else b"0")
    for rel in source_files(source_dir, exclude):
        field("file:" + rel.as_posix(), (source_dir / rel).read_bytes())
    for dest, path in extra_source_files(extra_sources, exclude):
        field("extra:" + dest.as_posix(), path.read_bytes())
    return digest.hexdigest()


def build_bundle(
    output_dir: Path,
    *,
    source_dir: Path,
    dependencies: Dependencies | None = None,
    python_version: str,
    architecture: str,
    manylinux: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_requirements: Sequence[str] = (),
    extra_sources: Mapping[str, Path] = _EMPTY,
    lock_dir: Path | None = None,
    requirements: Path | None = None,
) -> None:
    """Build the unzipped Lambda bundle in ``output_dir`` (missing or empty).

    Locks ``dependencies`` plus ``extra_requirements`` for the target (CPython
    ``python_version``, Linux ``architecture``, ``manylinux``: by default what Lambda's OS for
    that Python version supports; see :func:`lock_requirements`), installs the lock's wheels
    for the target, drops from them what never runs (console scripts, C headers, bytecode,
    test suites nothing imports, ``drop_packages``), then copies the ``source_dir`` files not
    matched by ``exclude``, then ``extra_sources`` (bundle-relative destination → file or
    directory). Then, when this machine has the target's CPython (``python3.X`` on PATH, or
    this interpreter), it precompiles bytecode (``unchecked-hash`` .pyc), so a cold start does
    not compile every module; and when it has an ELF strip tool, it strips debug info from the
    extension modules (about 40% of the zipped size). Both change only how fast and how big,
    never what runs, and both are part of :func:`content_hash`.

    Raises :class:`MissingWheelError` when dependencies have no wheel for the target and do not
    build into pure-Python wheels here, :class:`BundlingError` for any other failure.
    """
    target = BundleTarget.create(python_version, architecture, manylinux)
    lock = resolve_dependencies(
        dependencies=dependencies,
        requirements=requirements,
        target=target,
        extra_requirements=extra_requirements,
        lock_dir=lock_dir,
    )
    build_locked_bundle(
        output_dir,
        source_dir=source_dir,
        lock=lock,
        target=target,
        exclude=exclude,
        drop_packages=drop_packages,
        extra_sources=extra_sources,
    )


def build_locked_bundle(
    output_dir: Path,
    *,
    source_dir: Path,
    lock: Path | None,
    target: BundleTarget,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_sources: Mapping[str, Path] = _EMPTY,
) -> None:
    """:func:`build_bundle` once the lock is known."""
    files = source_files(source_dir, exclude)
    extras = extra_source_files(extra_sources, exclude)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise BundlingError(f"output_dir must be empty: {output_dir}")

    started = time.perf_counter()
    if lock is not None:
        install_requirements(output_dir, requirements=lock, target=target)
        prune_dependencies(output_dir)
        drop_installed(output_dir, drop_packages)
    for rel in files:
        _copy(
            source_dir / rel,
            output_dir / rel,
            f"{rel} from {source_dir} would overwrite a file installed from {lock}",
        )
    app_files = set(files)
    for dest, path in extras:
        where = "an app file" if dest in app_files else f"a file installed from {lock}"
        _copy(path, output_dir / dest, f"extra source {path} would overwrite {where}: {dest}")
    strip_debug_info(output_dir)
    compile_bytecode(output_dir, target.python_version)
    normalize_modes(output_dir)
    log.info(
        "bundled %s for %s/%s in %.1f s",
        source_dir,
        target.uv_platform,
        target.cpython_tag,
        time.perf_counter() - started,
    )


def _copy(source: Path, destination: Path, clash: str) -> None:
    if destination.exists():
        raise BundlingError(clash)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    if os.stat(source).st_mode & stat.S_IXUSR:
        destination.chmod(0o755)
