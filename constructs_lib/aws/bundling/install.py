"""Install a hash-locked requirements file into a directory, for the target, with uv.

``uv pip install --python-platform --python-version`` evaluates environment markers for the
target interpreter and platform, where ``pip install --platform`` evaluates them for the host.
Wheels are taken first (``--only-binary :all:``). A locked package without a wheel for the
target is built from source here, and kept only when what was built is pure Python (a
``py3-none-any`` wheel, nothing compiled): a compiled one would be built for this machine, not
for Lambda, so :class:`MissingWheelError` names every such package instead.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from constructs_lib.aws.bundling.dependencies import normalize_name
from constructs_lib.aws.bundling.errors import BundlingError, MissingWheelError
from constructs_lib.aws.bundling.target import BundleTarget
from constructs_lib.aws.bundling.tools import find_uv, uv_env

log = logging.getLogger(__name__)

# uv's resolver messages when a pinned package has no wheel for the target.
_NO_WHEEL_PATTERNS = (
    re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)==\S+ has no (?:usable )?wheels"),
    re.compile(r"Wheels are required for `([^`]+)`"),
    re.compile(r"Distribution `([A-Za-z0-9][A-Za-z0-9._-]*)==[^`]*` can't be installed"),
)
# uv's messages about a package built from source here: built, not installable, not buildable.
_BUILT = re.compile(r"^\s*Built ([A-Za-z0-9][A-Za-z0-9._-]*)==", re.M)
_BUILT_INCOMPATIBLE = re.compile(r"The built wheel `([A-Za-z0-9][A-Za-z0-9._]*)-[^`]*` is not compatible")
_BUILD_FAILED = re.compile(r"Failed to (?:download and )?build `([A-Za-z0-9][A-Za-z0-9._-]*)==[^`]*`")
_EXTENSION = re.compile(r"\.(?:so(?:\.[\d.]+)?|pyd|dylib)$")


def uv_install_command(
    uv: str, output_dir: Path, *, requirements: Path, target: BundleTarget, only_binary: bool = True
) -> list[str]:
    """The ``uv pip install`` command line that installs ``requirements`` for ``target``."""
    return [
        uv,
        "pip",
        "install",
        "--no-config",  # no uv.toml or [tool.uv] from wherever synth happens to run
        "--python",
        sys.executable,  # only to satisfy uv; the target below decides markers and tags
        "--target",
        str(output_dir),
        "--python-platform",
        target.uv_platform,
        "--python-version",
        target.python_version,
        *(["--only-binary", ":all:"] if only_binary else ["--no-deps"]),
        "--require-hashes",
        "--link-mode",
        "copy",  # never hard links into uv's cache: the bundle is modified afterwards
        "--no-progress",
        "--color",
        "never",
        "-r",
        str(requirements),
    ]


def install_requirements(output_dir: Path, *, requirements: Path, target: BundleTarget) -> None:
    """Install the hash-locked ``requirements`` into ``output_dir`` for ``target``.

    Raises :class:`MissingWheelError` naming every package that needs compiling for the target,
    :class:`BundlingError` for any other failure.
    """
    uv = find_uv()
    command = uv_install_command(uv, output_dir, requirements=requirements, target=target)
    result = _run(command)
    if result.returncode == 0:
        log.debug("%s\n%s", shlex.join(command), result.stderr)
        return
    output = (result.stderr + result.stdout).strip()
    no_wheel = {normalize_name(m) for pattern in _NO_WHEEL_PATTERNS for m in pattern.findall(output)}
    if not no_wheel:
        raise BundlingError(
            f"installing {requirements} for {target.uv_platform} / {target.cpython_tag} failed "
            f"(exit {result.returncode}):\n$ {shlex.join(command)}\n{output}"
        )
    _clear(output_dir)
    _install_building_from_source(uv, output_dir, requirements=requirements, target=target, no_wheel=no_wheel)


def _install_building_from_source(
    uv: str, output_dir: Path, *, requirements: Path, target: BundleTarget, no_wheel: set[str]
) -> None:
    """The second attempt: source builds allowed. Each package whose build is compiled is left
    out of the next try, so that the error names them all, not only the first uv meets."""
    compiled: dict[str, str] = {}  # name -> why
    text = requirements.read_text(encoding="utf-8")
    log.info(
        "no wheel for %s on %s / %s: building from source",
        ", ".join(sorted(no_wheel)),
        target.uv_platform,
        target.cpython_tag,
    )
    with tempfile.TemporaryDirectory(prefix="bundle-requirements-") as scratch_dir:
        scratch = Path(scratch_dir)
        for _ in range(64):  # each pass names at least one more package, or ends
            subset = scratch / "requirements.txt"
            subset.write_text(without_packages(text, compiled), encoding="utf-8")
            command = uv_install_command(
                uv, output_dir, requirements=subset, target=target, only_binary=False
            )
            result = _run(command)
            output = (result.stderr + result.stdout).strip()
            if result.returncode == 0:
                built = {normalize_name(name) for name in _BUILT.findall(output)} | no_wheel
                for name, why in _compiled_distributions(output_dir, built, target).items():
                    compiled[name] = why
                if compiled:
                    break
                log.info("built from source, pure Python: %s", ", ".join(sorted(built)))
                return
            found = {normalize_name(m): "does not build here" for m in _BUILD_FAILED.findall(output)}
            found |= {
                normalize_name(m): "compiled (built for this machine, not the target)"
                for m in _BUILT_INCOMPATIBLE.findall(output)
            }
            new = {name: why for name, why in found.items() if name not in compiled}
            _clear(output_dir)
            if not new:
                # Any other failure (a download, a hash): these still lack a wheel.
                for name in no_wheel - compiled.keys():
                    compiled[name] = "building from source failed"
                detail = f"$ {shlex.join(command)}\n{output}"
                raise MissingWheelError(sorted(compiled), target, detail)
            compiled |= new
    _clear(output_dir)
    raise MissingWheelError(
        sorted(compiled), target, "\n".join(f"  {name}: {why}" for name, why in sorted(compiled.items()))
    )


def without_packages(text: str, names: Iterable[str]) -> str:
    """``text`` (a requirements file) without the requirements of ``names`` (normalized), each
    with its continuation lines (hashes) and indented annotations."""
    drop = set(names)
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line[:1] in ("#", "-"):
            skipping = False
        elif line[:1].strip():  # a requirement starts here
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            skipping = match is not None and normalize_name(match.group(0)) in drop
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _compiled_distributions(output_dir: Path, built: set[str], target: BundleTarget) -> dict[str, str]:
    """The installed distributions, among those built here (or tagged for no portable
    platform: ``linux_*`` wheels exist only where they were built), that are not pure Python."""
    compiled: dict[str, str] = {}
    for wheel in sorted(output_dir.glob("*.dist-info/WHEEL")):
        name = normalize_name(wheel.parent.name.split("-")[0])
        fields = [line.partition(":") for line in wheel.read_text(encoding="utf-8").splitlines()]
        tags = [value.strip() for key, _, value in fields if key.strip() == "Tag"]
        purelib = any(
            key.strip() == "Root-Is-Purelib" and value.strip().lower() == "true" for key, _, value in fields
        )
        local_tag = any(tag.rsplit("-", 1)[-1].startswith("linux_") for tag in tags)
        if name not in built and not local_tag:
            continue
        record = wheel.parent / "RECORD"
        entries = (
            [line.split(",", 1)[0] for line in record.read_text(encoding="utf-8").splitlines()]
            if record.is_file()
            else []
        )
        extensions = [entry for entry in entries if _EXTENSION.search(entry)]
        pure_tags = bool(tags) and all(tag.endswith("-none-any") for tag in tags)
        if not (purelib and pure_tags and not extensions):
            compiled[name] = (
                f"compiled for this machine ({', '.join(tags) or 'no tag'}"
                f"{', ' + extensions[0] if extensions else ''}), not for {target.uv_platform}"
            )
    return compiled


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=uv_env(), check=False)  # noqa: S603


def _clear(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
