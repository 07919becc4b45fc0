"""The Docker fallback: one bash script that builds, in the Lambda runtime's build image, the
bundle the local build makes (the same lock installed by the same uv, pruned by the same code,
the same source and extra sources, stripped, bytecode, modes), with compilers at hand for the
dependencies that have no wheel for the target.

CDK mounts the asset's source directory at /asset-input (the working directory) and the output
at /asset-output; the lock and the extra sources, which may live elsewhere, are staged into
that directory by :func:`stage_docker_input`.
"""

from __future__ import annotations

import atexit
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from constructs_lib.aws.bundling import prune
from constructs_lib.aws.bundling.bytecode import compileall_arguments
from constructs_lib.aws.bundling.source import DEFAULT_EXCLUDES, extra_destination, source_files
from constructs_lib.aws.bundling.tools import UV_ENV_IGNORED

STAGED = ".bundling-inputs"
"""Where, in a staged asset input, the lock and the extra sources are (never copied as source)."""

_NO_MAPPING: Mapping[str, str] = {}


@dataclass(frozen=True)
class DockerInput:
    """The directory CDK mounts at /asset-input, and where the script finds the lock and the
    extra sources in it (relative to it: the script runs there)."""

    asset_dir: Path
    requirements: str | None
    extra_sources: Mapping[str, str]


def stage_docker_input(
    source_dir: Path,
    lock: Path | None,
    extra_sources: Mapping[str, Path],
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
) -> DockerInput:
    """The Docker fallback's input. CDK mounts only the asset's directory into the container, and
    hashes the bundling options (so they must not name host paths). When the lock lies in
    ``source_dir`` and there are no extra sources, that is ``source_dir`` itself. Otherwise a
    temporary copy of the source files, with the lock and the extra sources under
    ``.bundling-inputs/`` (removed when the process ends: CDK bundles during synth)."""
    source_dir = source_dir.resolve()
    if not extra_sources and (lock is None or lock.resolve().is_relative_to(source_dir)):
        relative = None if lock is None else lock.resolve().relative_to(source_dir).as_posix()
        return DockerInput(source_dir, relative, {})
    staging = Path(tempfile.mkdtemp(prefix="lambda-asset-input-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    for rel in source_files(source_dir, exclude):
        _copy(source_dir / rel, staging / rel)
    requirements = None
    if lock is not None:
        requirements = f"{STAGED}/requirements.txt"
        _copy(lock, staging / requirements)
    extras: dict[str, str] = {}
    for index, (destination, source) in enumerate(sorted(extra_sources.items())):
        inside = f"{STAGED}/extra/{index}"
        if source.is_dir():
            for rel in source_files(source, exclude):
                _copy(source / rel, staging / inside / rel)
            (staging / inside).mkdir(parents=True, exist_ok=True)
        else:
            _copy(source, staging / inside)
        extras[destination] = inside
    return DockerInput(staging, requirements, extras)


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)


def docker_bundling_script(
    *,
    requirements: str | None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_sources: Mapping[str, str] = _NO_MAPPING,
    uv_version: str | None = None,
    strip: bool = False,
    bytecode: bool = False,
) -> str:
    """The Docker fallback as a bash script: run in the source directory with the output directory as $1.

    ``requirements`` is the lock's path as the script sees it; ``extra_sources`` maps a bundle
    destination to a file or directory as the script sees it. uv (``uv_version``: the one
    ``uv`` on PATH when it is that version, else installed with pip) installs the lock for
    the image's own interpreter and platform, building from source what has no wheel. The
    prune step is :mod:`prune`'s own source run by the image's Python. ``strip`` and
    ``bytecode`` say whether the local build strips extension modules and compiles bytecode
    (its content hash records both): the script then does too, with llvm-strip or a GNU strip
    when the image has one and with the image's Python. Sources are copied with the same
    excludes (GNU tar patterns: unanchored for names, anchored for paths).
    """
    tar_excludes = ["--anchored", f"--exclude=./{STAGED}", "--no-anchored"]
    for pattern in exclude:
        if "/" in pattern:
            tar_excludes += ["--anchored", f"--exclude=./{pattern.strip('/')}", "--no-anchored"]
        else:
            tar_excludes.append(f"--exclude={pattern}")
    excludes = shlex.join(tar_excludes)
    lines = [
        "set -euo pipefail",
        'out="$1"',
        f"unset {' '.join(sorted(UV_ENV_IGNORED))}",
        "copy_tree() {",
        f'  mkdir -p "$2" && (cd "$1" && tar -cf - {excludes} .) | tar -C "$2" -xf - --no-same-owner',
        "}",
    ]
    if requirements is not None:
        want = shlex.quote(uv_version) if uv_version else ""
        version_ok = f'[ "$(uv --version | cut -d" " -f2)" = {want} ]' if want else "true"
        spec = shlex.quote(f"uv=={uv_version}" if uv_version else "uv")
        lines += [
            f"if command -v uv >/dev/null 2>&1 && {version_ok}; then uv=uv; else",
            "  python -m pip install --quiet --disable-pip-version-check --no-cache-dir "
            f"--target /tmp/bundling-uv {spec}",
            "  uv=/tmp/bundling-uv/bin/uv",
            "fi",
            # CDK runs the container as the host's user, whose HOME there may be unwritable.
            'if [ -z "${UV_CACHE_DIR:-}" ] && ! [ -w "${HOME:-/nonexistent}" ]; then '
            "export UV_CACHE_DIR=/tmp/uv-cache; fi",
            '"$uv" pip install --no-config --python "$(command -v python)" --target "$out" '
            "--require-hashes --link-mode copy --no-progress --color never "
            f"-r {shlex.quote(requirements)}",
            f'python -E -c {shlex.quote(Path(prune.__file__).read_text(encoding="utf-8"))} "$out"'
            + "".join(f" {shlex.quote(name)}" for name in drop_packages),
        ]
    lines.append('copy_tree . "$out"')
    for destination, source in sorted(extra_sources.items()):
        dest = '"$out"/' + shlex.quote(extra_destination(destination).as_posix())
        src = shlex.quote(source)
        lines.append(
            f"if [ -d {src} ]; then copy_tree {src} {dest}; "
            f'else mkdir -p "$(dirname {dest})" && cp {src} {dest}; fi'
        )
    if strip:
        lines += [
            "strip_tool=",
            "if command -v llvm-strip >/dev/null 2>&1; then strip_tool=llvm-strip; "
            "elif command -v strip >/dev/null 2>&1 && strip --help | grep -q elf64-little; then "
            "strip_tool=strip; fi",
            'if [ -n "$strip_tool" ]; then find "$out" -type f -name "*.so*" '
            '-exec "$strip_tool" --strip-debug {} +; fi',
        ]
    if bytecode:
        arguments = shlex.join(compileall_arguments("__OUT__")).replace("__OUT__", '"$out"')
        lines.append(f"python -E {arguments} >/dev/null")
    lines += [
        'find "$out" -type d -exec chmod 755 {} +',
        'find "$out" -type f -perm -u=x -exec chmod 755 {} +',
        'find "$out" -type f ! -perm -u=x -exec chmod 644 {} +',
    ]
    return "\n".join(lines)


def docker_bundling_command(
    *,
    requirements: str | None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    extra_sources: Mapping[str, str] = _NO_MAPPING,
    uv_version: str | None = None,
    strip: bool = False,
    bytecode: bool = False,
) -> list[str]:
    """The Docker bundling ``command`` (input in /asset-input, the working directory)."""
    script = docker_bundling_script(
        requirements=requirements,
        exclude=exclude,
        drop_packages=drop_packages,
        extra_sources=extra_sources,
        uv_version=uv_version,
        strip=strip,
        bytecode=bytecode,
    )
    return ["bash", "-c", script, "bundle", "/asset-output"]
