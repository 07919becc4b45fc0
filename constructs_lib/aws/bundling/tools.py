"""The programs bundling runs on this machine: uv, the target's CPython, an ELF strip tool."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from constructs_lib.aws.bundling.errors import BundlingError
from constructs_lib.aws.bundling.target import host_python_version

# uv settings read from the environment that would change what lands in the bundle or the lock.
UV_ENV_IGNORED = frozenset(
    {
        "UV_COMPILE_BYTECODE",  # bytecode for the host interpreter, useless on the target
        "UV_NO_VERIFY_HASHES",
        "UV_NO_BINARY",
        "UV_NO_BINARY_PACKAGE",
        "UV_NO_BUILD",
        "UV_NO_BUILD_PACKAGE",
        "UV_PYTHON",
        "UV_LINK_MODE",
        "UV_CONSTRAINT",
        "UV_OVERRIDE",
        "UV_EXCLUDE_NEWER",
        "UV_RESOLUTION",
        "UV_PRERELEASE",
    }
)


def find_uv() -> str:
    """The uv executable: the one installed next to this interpreter, else the first on PATH."""
    name = "uv.exe" if os.name == "nt" else "uv"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    raise BundlingError(
        f"uv is needed to bundle Lambda code without Docker but was found neither next to "
        f"{sys.executable} nor on PATH; install it with `{sys.executable} -m pip install uv`"
    )


def uv_env() -> dict[str, str]:
    """This process's environment without the uv settings that would change the result."""
    return {key: value for key, value in os.environ.items() if key not in UV_ENV_IGNORED}


@functools.cache
def uv_version(uv: str) -> str:
    """``"0.13.9"`` for the uv at ``uv`` (once per process)."""
    result = subprocess.run(  # noqa: S603 - uv from find_uv, fixed arguments
        [uv, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    parts = result.stdout.split()
    if result.returncode != 0 or len(parts) < 2 or parts[0] != "uv":
        raise BundlingError(f"`{uv} --version` failed: {(result.stderr or result.stdout).strip()}")
    return parts[1]


def target_interpreter(python_version: str) -> str | None:
    """A CPython of ``python_version`` on this machine, to compile the bundle's bytecode: this
    interpreter, ``python<version>`` on PATH, one uv finds (``uv python install 3.14``), or one
    a version manager installed but did not put on PATH (pyenv, asdf, mise)."""
    if host_python_version() == python_version:
        return sys.executable
    on_path = shutil.which(f"python{python_version}")
    if on_path and is_cpython(on_path, python_version):  # not, say, a pyenv shim of another version
        return on_path
    return uv_python(python_version) or managed_python(python_version)


def version_manager_dirs() -> list[Path]:
    """Where pyenv, asdf and mise keep the CPythons they installed, one directory per version
    (``3.13.0/bin/python3.13``), whether or not one of them is active."""
    home = Path.home()
    return [
        Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions",
        Path(os.environ.get("ASDF_DATA_DIR") or home / ".asdf") / "installs" / "python",
        Path(os.environ.get("MISE_DATA_DIR") or home / ".local" / "share" / "mise") / "installs" / "python",
    ]


def managed_python(python_version: str) -> str | None:
    """The newest final release ``python_version.N`` that a version manager installed (its
    ``bin/python<version>``), when it runs and is that CPython; None when there is none.

    A pyenv version that is installed but not selected (``pyenv global``) is invisible on PATH:
    its shim exits with "command not found", and uv does not look in pyenv's directory."""
    pattern = re.compile(rf"{re.escape(python_version)}\.(\d+)")  # 3.13.0: not 3.13.0t, 3.13.0rc1
    found: list[tuple[int, str]] = []
    for root in version_manager_dirs():
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            match = pattern.fullmatch(entry.name)
            executable = entry / "bin" / f"python{python_version}"
            if match and executable.is_file() and os.access(executable, os.X_OK):
                found.append((int(match.group(1)), str(executable)))
    for _, path in sorted(found, reverse=True):
        if is_cpython(path, python_version):
            return path
    return None


@dataclass(frozen=True)
class PythonChoice:
    """The Lambda Python a function gets: ``version`` (``"3.13"``), the CPython of that version on
    this machine that compiles the bundle's bytecode (``interpreter``; None: no bytecode), and what
    was asked for (``requested``: ``"auto"`` or a version)."""

    version: str
    interpreter: str | None
    requested: str

    @property
    def bytecode(self) -> bool:
        return self.interpreter is not None


def choose_python(requested: str, supported: Sequence[str]) -> PythonChoice:
    """The Python to run on Lambda and build the bundle for.

    ``requested`` ``"auto"``: the newest of ``supported`` (the versions Lambda runs) that this
    machine has as a working CPython (:func:`target_interpreter`, the same probe the bundler
    compiles with), so the bundle carries bytecode for the runtime the function runs; when it has
    none of them, the newest of ``supported``, without bytecode. Any other ``requested`` is that
    version, with bytecode when this machine has it.
    """
    if requested != "auto":
        return PythonChoice(requested, target_interpreter(requested), requested)
    if not supported:
        raise ValueError("no supported Python version to choose from")
    newest_first = sorted(supported, key=_version_key, reverse=True)
    for version in newest_first:
        interpreter = target_interpreter(version)
        if interpreter is not None:
            return PythonChoice(version, interpreter, requested)
    return PythonChoice(newest_first[0], None, requested)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def missing_python_message(choice: PythonChoice, *, field: str, supported: Sequence[str]) -> str:
    """Why a bundle for ``choice`` has no bytecode, and the fixes, naming the spec ``field``."""
    version = choice.version
    if choice.requested == "auto":
        asked = (
            f"{field} is auto, and this machine has none of the CPythons it chooses among "
            f"({', '.join(sorted(supported, key=_version_key))}) where bundling looks "
            f"(python3.X on PATH, uv's, pyenv's, asdf's, mise's), so the newest, {version}, is used"
        )
    else:
        asked = f"{field} is {version}, but this machine has no CPython {version} that bundling finds"
    others = " (or another of those)" if choice.requested == "auto" else ""
    return (
        f"{asked}: its Lambda bundle would ship without precompiled bytecode, so every cold "
        f"start compiles every import again. Fix one of: "
        f"`.venv/bin/uv python install {version}` (downloads it, where the network allows); "
        f"install CPython {version}{others} any other way (python{version} on PATH, pyenv); or set "
        f"{field} to a version this machine has"
    )


@functools.cache
def uv_python(python_version: str) -> str | None:
    """A CPython ``python_version`` that uv finds (its managed installs, pyenv's, PATH), or
    None. Never downloads one: synth stays offline; installing is the user's choice."""
    try:
        uv = find_uv()
    except BundlingError:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("UV_PYTHON", "VIRTUAL_ENV")}
    found = subprocess.run(  # noqa: S603 - uv from find_uv, fixed arguments
        [uv, "python", "find", "--no-project", "--no-python-downloads", f"cpython@{python_version}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    path = found.stdout.strip()
    if found.returncode != 0 or not path:
        return None
    # Trust what the interpreter says about itself, not the name uv found it under.
    return path if is_cpython(path, python_version) else None


@functools.cache
def is_cpython(path: str, python_version: str) -> bool:
    """Whether ``path`` runs and is CPython ``python_version``."""
    probe = subprocess.run(  # noqa: S603 - an interpreter found on PATH or by uv, fixed arguments
        [path, "-I", "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    major, _, minor = python_version.partition(".")
    return probe.returncode == 0 and probe.stdout.split() == ["cpython", major, minor]


@functools.cache
def elf_strip_tool() -> str | None:
    """llvm-strip, or a GNU strip that handles any 64-bit ELF (its generic targets)."""
    llvm = shutil.which("llvm-strip")
    if llvm:
        return llvm
    gnu = shutil.which("strip")
    if gnu:
        help_text = subprocess.run(  # noqa: S603 - a tool found on PATH, fixed arguments
            [gnu, "--help"], capture_output=True, text=True, check=False
        ).stdout
        if "elf64-little" in help_text:
            return gnu
    return None
