"""The programs bundling runs on this machine: uv, the target's CPython, an ELF strip tool."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
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
    interpreter, ``python<version>`` on PATH, or one uv finds (``uv python install 3.14``)."""
    if host_python_version() == python_version:
        return sys.executable
    on_path = shutil.which(f"python{python_version}")
    if on_path and is_cpython(on_path, python_version):  # not, say, a pyenv shim of another version
        return on_path
    return uv_python(python_version)


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
