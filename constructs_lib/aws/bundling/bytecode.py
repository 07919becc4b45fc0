"""The finishing steps after everything is in place: strip extension modules, precompile
bytecode, make every file readable by Lambda's user."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path

from constructs_lib.aws.bundling.tools import elf_strip_tool, target_interpreter

log = logging.getLogger(__name__)

# Where Lambda puts the code: the file names recorded in the .pyc files (as if compiled there),
# so that the bytecode does not depend on where the bundle was built (here or in Docker).
LAMBDA_TASK_ROOT = "/var/task"


def strip_debug_info(target_dir: Path) -> None:
    """``--strip-debug`` on every shared object, when this machine has an ELF strip tool."""
    tool = elf_strip_tool()
    if tool is None:
        log.warning("no ELF strip tool (llvm-strip or GNU strip): extension modules keep their debug info")
        return
    libraries = sorted(
        str(p)
        for p in target_dir.rglob("*.so*")
        if p.is_file() and not p.is_symlink() and not patched_by_auditwheel(p)
    )
    for start in range(0, len(libraries), 100):
        subprocess.run(  # noqa: S603 - our own bundle's files
            [tool, "--strip-debug", *libraries[start : start + 100]], check=True, capture_output=True
        )


def patched_by_auditwheel(library: Path) -> bool:
    """A shared object that auditwheel rewrote with patchelf: a library it vendored (in a
    ``<dist>.libs`` directory) or an extension module whose RPATH points there (``$ORIGIN``).
    llvm-strip rewrites such files into ones the loader refuses ("ELF load command
    address/offset not page-aligned", measured with psycopg2-binary 2.9.13), so they keep
    their debug info."""
    if any(parent.name.endswith(".libs") for parent in library.parents):
        return True
    return b"$ORIGIN" in library.read_bytes()


def compileall_arguments(target_dir: str) -> list[str]:
    """The ``python -m compileall`` arguments both bundlers use (unchecked-hash .pyc: valid
    whatever the files' times, which a zip keeps only to 2 s; recorded under /var/task)."""
    return [
        "-m",
        "compileall",
        "-q",
        "-j0",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        target_dir,
        "-p",
        LAMBDA_TASK_ROOT,
        target_dir,
    ]


def compile_bytecode(target_dir: Path, python_version: str) -> None:
    """Precompile the bundle with the target's CPython when this machine has one; warn when not."""
    interpreter = target_interpreter(python_version)
    if interpreter is None:
        log.warning(
            "no CPython %s on this machine (python%s on PATH, one uv finds, pyenv's, asdf's or "
            "mise's): the Lambda bundle "
            "ships without precompiled bytecode, so every cold start compiles the imports again. "
            "`uv python install %s` (uv is in the project's .venv) fixes that.",
            python_version,
            python_version,
            python_version,
        )
        return
    subprocess.run(  # noqa: S603 - the target CPython found above, compiling our own bundle
        [interpreter, *compileall_arguments(str(target_dir))],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )


def normalize_modes(root: Path) -> None:
    """World-readable files and directories: Lambda runs the code as another user than its owner."""
    for dirpath, _, filenames in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            path = Path(dirpath) / name
            path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)
