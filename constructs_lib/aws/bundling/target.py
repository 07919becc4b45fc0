"""What a bundle is built for: CPython X.Y on Linux arm64/x86_64 with a manylinux glibc."""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from constructs_lib.aws.bundling.errors import BundlingError

if TYPE_CHECKING:
    from aws_cdk import aws_lambda

ARCHITECTURES = ("arm64", "x86_64")
"""Lambda's names for the CPU architectures (``aws_lambda.Architecture.name``)."""

_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
_ELF_MACHINE = {"arm64": 183, "x86_64": 62}  # EM_AARCH64, EM_X86_64


@dataclass(frozen=True)
class BundleTarget:
    """What the installed wheels must run on: CPython ``python_version`` on Linux ``architecture``
    with a glibc at least as new as ``manylinux`` requires."""

    python_version: str
    architecture: str
    manylinux: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d{1,2}", self.python_version):
            raise ValueError(f"python_version must look like '3.14', got {self.python_version!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not re.fullmatch(r"manylinux_2_\d{1,3}", self.manylinux):
            raise ValueError(f"manylinux must look like 'manylinux_2_34', got {self.manylinux!r}")

    @classmethod
    def create(cls, python_version: str, architecture: str, manylinux: str | None = None) -> BundleTarget:
        """The target; ``manylinux`` defaults to what Lambda's OS for ``python_version`` supports."""
        return cls(python_version, architecture, manylinux or lambda_manylinux(python_version))

    @classmethod
    def host(cls) -> BundleTarget:
        """This machine: its Python version, CPU architecture and glibc."""
        return cls(host_python_version(), host_architecture(), host_manylinux())

    @property
    def machine(self) -> str:
        """The CPU architecture as Linux and the wheel tags name it (``aarch64``, ``x86_64``)."""
        return _MACHINE[self.architecture]

    @property
    def elf_machine(self) -> int:
        """``e_machine`` in the ELF header of the target's shared objects."""
        return _ELF_MACHINE[self.architecture]

    @property
    def cpython_tag(self) -> str:
        """The wheel interpreter and ABI tag, such as ``cp314``."""
        return "cp" + self.python_version.replace(".", "")

    @property
    def uv_platform(self) -> str:
        """The value of ``uv pip install --python-platform``, such as ``aarch64-manylinux_2_34``."""
        return f"{self.machine}-{self.manylinux}"


def lambda_manylinux(python_version: str) -> str:
    """The newest manylinux tag that uv offers and the Lambda OS of ``python<python_version>`` meets.

    Lambda's Python 3.12 and later runtimes run on Amazon Linux 2023 (glibc 2.34); 3.11 and
    earlier on Amazon Linux 2 (glibc 2.26), for which manylinux_2_17 (manylinux2014) is the
    newest tag uv can target.
    """
    major, _, minor = python_version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"python_version must look like '3.14', got {python_version!r}")
    return "manylinux_2_34" if (int(major), int(minor)) >= (3, 12) else "manylinux_2_17"


def host_architecture() -> str:
    """This machine's CPU architecture under Lambda's name (``arm64`` or ``x86_64``)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise BundlingError(f"no Lambda architecture matches this machine ({machine!r})")


def host_manylinux() -> str:
    """The newest manylinux tag that uv offers and this machine's glibc meets (Linux only)."""
    libc, version = platform.libc_ver()
    match = re.fullmatch(r"2\.(\d+)(?:\..*)?", version) if libc == "glibc" else None
    if sys.platform != "linux" or match is None:
        raise BundlingError(
            f"bundles for this machine need Linux with glibc, found {sys.platform} {libc} {version}"
        )
    minor = int(match.group(1))
    # The manylinux_2_* values of `uv pip install --python-platform` (uv 0.13): 17, 28, 31..40.
    if minor >= 31:
        return f"manylinux_2_{min(minor, 40)}"
    if minor >= 28:
        return "manylinux_2_28"
    if minor >= 17:
        return "manylinux_2_17"
    raise BundlingError(f"glibc 2.{minor} is older than any manylinux tag uv supports")


def host_python_version() -> str:
    """The running interpreter's version as ``"3.11"``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def python_version_of(runtime: aws_lambda.Runtime) -> str:
    """``"3.14"`` for ``Runtime.PYTHON_3_14``; ValueError for a runtime that is not CPython."""
    match = re.fullmatch(r"python(3\.\d+)", runtime.name)
    if match is None:
        raise ValueError(f"runtime must be a Python runtime (python3.X), got {runtime.name}")
    return match.group(1)
