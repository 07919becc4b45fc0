"""Docker-free Lambda bundling for a Python service: locked wheels for the target, plus the source.

The core (:func:`build_bundle`, :func:`content_hash`) is plain Python and does not import
aws-cdk-lib, so it can build a bundle for any ``(python_version, architecture)`` pair, for
Lambda or for this machine, without starting jsii. :func:`lambda_code` is the CDK glue.

Dependencies are installed by uv rather than pip: ``uv pip install --python-platform
--python-version`` evaluates environment markers for the target interpreter and platform,
where ``pip install --platform`` evaluates them for the host. Only wheels are accepted
(``--only-binary :all:``): nothing is compiled on the host. When a dependency has no wheel for
the target, :class:`LocalPythonBundler` declines and CDK falls back to Docker bundling in the
runtime's own build image, which may compile from source.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_cdk import aws_lambda

log = logging.getLogger(__name__)

# Part of every content hash: bump it when what this module puts into a bundle changes
# (install flags, pruning, excludes semantics), so assets are rebuilt and redeployed.
BUNDLER_VERSION = "3"

ARCHITECTURES = ("arm64", "x86_64")
"""Lambda's names for the CPU architectures (``aws_lambda.Architecture.name``)."""

_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
_ELF_MACHINE = {"arm64": 183, "x86_64": 62}  # EM_AARCH64, EM_X86_64

# Left out of the copied source. A pattern without "/" is matched (fnmatch, case-sensitive)
# against every file and directory name; a pattern with "/" against the path relative to
# the source directory. A matching directory is left out with everything below it.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    # tests, caches, bytecode compiled for the host interpreter
    "tests",
    "conftest.py",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".coverage",
    ".coverage.*",
    "htmlcov",
    ".tox",
    ".nox",
    # environments, editors, version control, other tools' output
    ".venv",
    "venv",
    ".env",
    ".env.*",
    ".git",
    ".gitignore",
    ".idea",
    ".vscode",
    ".DS_Store",
    "*.swp",
    "node_modules",
    "cdk.out",
    # container build and dependency inputs: the dependencies arrive installed
    "Dockerfile",
    "*.Dockerfile",
    ".dockerignore",
    "requirements*.in",
    "requirements*.txt",
    "Makefile",
    # documentation
    "*.md",
    "*.rst",
)

# uv settings read from the environment that would change what lands in the bundle.
_UV_ENV_IGNORED = frozenset(
    {
        "UV_COMPILE_BYTECODE",  # bytecode for the host interpreter, useless on the target
        "UV_NO_VERIFY_HASHES",
        "UV_NO_BINARY",
        "UV_NO_BINARY_PACKAGE",
        "UV_PYTHON",
        "UV_LINK_MODE",
    }
)

# uv's resolver messages when a pinned package has no wheel for the target.
_NO_WHEEL_PATTERNS = (
    re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)==\S+ has no (?:usable )?wheels"),
    re.compile(r"Wheels are required for `([^`]+)`"),
    re.compile(r"Distribution `([A-Za-z0-9][A-Za-z0-9._-]*)==[^`]*` can't be installed"),
)


class BundlingError(RuntimeError):
    """The bundle could not be built; the message says why and what to do."""


class MissingWheelError(BundlingError):
    """A locked dependency has no wheel for the target platform and Python version."""

    def __init__(self, packages: Sequence[str], target: BundleTarget, detail: str) -> None:
        self.packages = tuple(packages)
        self.target = target
        names = ", ".join(self.packages)
        super().__init__(f"no wheel for {names} on {target.uv_platform} / {target.cpython_tag}:\n{detail}")


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


def source_files(source_dir: Path, exclude: Sequence[str] = DEFAULT_EXCLUDES) -> list[PurePosixPath]:
    """The files of ``source_dir`` that go into the bundle, as sorted relative paths."""
    if not source_dir.is_dir():
        raise ValueError(f"source_dir must be a directory, got {source_dir}")
    found: list[PurePosixPath] = []
    for dirpath, dirnames, filenames in os.walk(source_dir):
        base = PurePosixPath(Path(dirpath).relative_to(source_dir).as_posix())
        kept_dirs = []
        for name in sorted(dirnames):
            rel = base / name
            if _excluded(rel, exclude):
                continue
            if (Path(dirpath) / name).is_symlink():
                raise BundlingError(f"{source_dir / rel} is a symbolic link to a directory: not supported")
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        found.extend(base / name for name in filenames if not _excluded(base / name, exclude))
    return sorted(found)


def _excluded(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    text = rel.as_posix()
    return any(
        fnmatchcase(text, pattern.strip("/")) if "/" in pattern else fnmatchcase(rel.name, pattern)
        for pattern in patterns
    )


def content_hash(
    *,
    source_dir: Path,
    requirements: Path | None,
    python_version: str,
    architecture: str,
    manylinux: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
) -> str:
    """SHA-256 of everything that decides the bundle's content, as hex.

    Covers the relative paths and bytes of the source files that go in, the requirements file's
    bytes, the target (Python version, architecture, manylinux tag) and :data:`BUNDLER_VERSION`.
    Independent of modification times, file modes and absolute paths.
    """
    target = BundleTarget.create(python_version, architecture, manylinux)
    digest = hashlib.sha256()

    def field(name: str, data: bytes) -> None:
        for part in (name.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)

    field("bundler", BUNDLER_VERSION.encode())
    field("python", target.python_version.encode())
    field("platform", target.uv_platform.encode())
    field("requirements", b"-" if requirements is None else b"+" + requirements.read_bytes())
    field("drop", ",".join(sorted(drop_packages)).encode())
    # What this machine can do to the output is part of it: bytecode needs the target's
    # interpreter, stripping needs an ELF strip tool.
    # (whether, not where: the hash must not depend on paths)
    field("bytecode", b"1" if target_interpreter(target.python_version) else b"0")
    field("strip", b"1" if elf_strip_tool() else b"0")
    for rel in source_files(source_dir, exclude):
        field("file:" + rel.as_posix(), (source_dir / rel).read_bytes())
    return digest.hexdigest()


def build_bundle(
    output_dir: Path,
    *,
    source_dir: Path,
    requirements: Path | None,
    python_version: str,
    architecture: str,
    manylinux: str | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
) -> None:
    """Build the unzipped Lambda bundle in ``output_dir`` (missing or empty).

    Installs the hash-locked ``requirements`` as wheels for the target (CPython
    ``python_version``, Linux ``architecture``, ``manylinux``: by default what Lambda's OS for
    that Python version supports), drops from them what never runs (console scripts, C headers,
    bytecode, test suites nothing imports), then copies the ``source_dir`` files not matched by
    ``exclude``. Then, when this machine has the target's CPython (``python3.X`` on PATH, or
    this interpreter), it precompiles bytecode (``unchecked-hash`` .pyc: valid whatever the
    files' times, which a zip keeps only to 2 s), so a cold start does not compile every
    module; and when it has an ELF strip tool, it strips debug info from the extension
    modules (about 40% of the zipped size). Both change only how fast and how big, never
    what runs, and both are part of :func:`content_hash`.

    Raises :class:`MissingWheelError` when a dependency has no wheel for the target and
    :class:`BundlingError` for any other failure.
    """
    target = BundleTarget.create(python_version, architecture, manylinux)
    files = source_files(source_dir, exclude)
    if requirements is not None and not requirements.is_file():
        raise ValueError(f"requirements must be a file, got {requirements}")
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise BundlingError(f"output_dir must be empty: {output_dir}")

    started = time.perf_counter()
    if requirements is not None:
        _install_requirements(output_dir, requirements=requirements, target=target)
        _prune_dependencies(output_dir)
        _drop_packages(output_dir, drop_packages)
    for rel in files:
        destination = output_dir / rel
        if destination.exists():
            raise BundlingError(
                f"{rel} from {source_dir} would overwrite a file installed from {requirements}"
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_dir / rel, destination)
        if os.stat(source_dir / rel).st_mode & stat.S_IXUSR:
            destination.chmod(0o755)
    _strip_debug_info(output_dir)
    _compile_bytecode(output_dir, target.python_version)
    _normalize_modes(output_dir)
    log.info(
        "bundled %s for %s/%s in %.1f s",
        source_dir,
        target.uv_platform,
        target.cpython_tag,
        time.perf_counter() - started,
    )


def uv_install_command(uv: str, output_dir: Path, *, requirements: Path, target: BundleTarget) -> list[str]:
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
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--link-mode",
        "copy",  # never hard links into uv's cache: the bundle is modified afterwards
        "--no-progress",
        "--color",
        "never",
        "-r",
        str(requirements),
    ]


def _install_requirements(output_dir: Path, *, requirements: Path, target: BundleTarget) -> None:
    command = uv_install_command(find_uv(), output_dir, requirements=requirements, target=target)
    env = {key: value for key, value in os.environ.items() if key not in _UV_ENV_IGNORED}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if result.returncode == 0:
        log.debug("%s\n%s", shlex.join(command), result.stderr)
        return
    output = (result.stderr + result.stdout).strip()
    missing = sorted({match for pattern in _NO_WHEEL_PATTERNS for match in pattern.findall(output)})
    if missing:
        raise MissingWheelError(missing, target, output)
    raise BundlingError(
        f"installing {requirements} for {target.uv_platform} / {target.cpython_tag} failed "
        f"(exit {result.returncode}):\n$ {shlex.join(command)}\n{output}"
    )


def target_interpreter(python_version: str) -> str | None:
    """A CPython of ``python_version`` on this machine, to compile the bundle's bytecode: this
    interpreter, ``python<version>`` on PATH, or one uv finds (``uv python install 3.14``)."""
    if host_python_version() == python_version:
        return sys.executable
    return shutil.which(f"python{python_version}") or uv_python(python_version)


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
    probe = subprocess.run(  # noqa: S603 - the interpreter uv found, fixed arguments
        [path, "-I", "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    major, _, minor = python_version.partition(".")
    return path if probe.returncode == 0 and probe.stdout.split() == ["cpython", major, minor] else None


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


def _strip_debug_info(target_dir: Path) -> None:
    tool = elf_strip_tool()
    if tool is None:
        log.warning("no ELF strip tool (llvm-strip or GNU strip): extension modules keep their debug info")
        return
    libraries = sorted(str(p) for p in target_dir.rglob("*.so*") if p.is_file() and not p.is_symlink())
    for start in range(0, len(libraries), 100):
        subprocess.run(  # noqa: S603 - our own bundle's files
            [tool, "--strip-debug", *libraries[start : start + 100]], check=True, capture_output=True
        )


def _compile_bytecode(target_dir: Path, python_version: str) -> None:
    interpreter = target_interpreter(python_version)
    if interpreter is None:
        log.warning(
            "no CPython %s on this machine (python%s on PATH, or one uv finds): the Lambda bundle "
            "ships without precompiled bytecode, so every cold start compiles the imports again. "
            "`uv python install %s` (uv is in the project's .venv) fixes that.",
            python_version,
            python_version,
            python_version,
        )
        return
    subprocess.run(  # noqa: S603 - the target CPython found above, compiling our own bundle
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target_dir),
        ],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )


def _drop_packages(target_dir: Path, names: Sequence[str]) -> None:
    """Remove installed distributions the function never imports (e.g. the container's ASGI
    server), with their metadata: their import package or module and ``<name>-*.dist-info``."""
    for name in names:
        normalized = re.sub(r"[-_.]+", "_", name).lower()
        found = False
        for entry in list(target_dir.iterdir()):
            stem = (
                entry.name.split("-")[0]
                if entry.name.endswith(".dist-info")
                else entry.name.removesuffix(".py")
            )
            if re.sub(r"[-_.]+", "_", stem).lower() == normalized:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                found = True
        if not found:
            log.info("drop_packages: %s is not installed, nothing to drop", name)


def _prune_dependencies(target_dir: Path) -> None:
    """Remove what an installed dependency set never needs on Lambda.

    Conservative on purpose: ``*.dist-info`` stays (packages read their own metadata), and a
    package's ``tests``/``test`` directory goes only when no other file in the bundle names it.
    """
    (target_dir / ".lock").unlink(missing_ok=True)  # uv's lock file for --target
    scripts = target_dir / "bin"
    if scripts.is_dir() and not (scripts / "__init__.py").exists():
        shutil.rmtree(scripts)
    headers = target_dir / "include"
    if headers.is_dir() and all(
        path.is_dir() or path.suffix in {".h", ".hh", ".hpp"} for path in headers.rglob("*")
    ):
        shutil.rmtree(headers)
    for dirpath, dirnames, filenames in os.walk(target_dir):
        if "__pycache__" in dirnames:
            dirnames.remove("__pycache__")
            shutil.rmtree(Path(dirpath) / "__pycache__")
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                (Path(dirpath) / name).unlink()
    for tests_dir in _unreferenced_test_dirs(target_dir):
        shutil.rmtree(tests_dir)


def _unreferenced_test_dirs(target_dir: Path) -> list[Path]:
    """A package's test suite (``tests``/``test`` with ``test_*.py``) or test helpers
    (``testing``), when no file outside such directories imports it (to a fixed point: a
    suite that is kept keeps what it imports)."""
    candidates: dict[Path, re.Pattern[str]] = {}
    for package in sorted(target_dir.iterdir()):
        if not (package / "__init__.py").is_file():
            continue
        for name in ("tests", "test", "testing"):
            tests_dir = package / name
            if not tests_dir.is_dir():
                continue
            if name == "testing":
                is_test_code = (tests_dir / "__init__.py").is_file()
            else:
                is_test_code = any(path.name.startswith("test_") for path in tests_dir.rglob("*.py"))
            if is_test_code:
                module = re.escape(f"{package.name}.{name}")
                relative = rf"from\s+\.\s*(?:{name}\b|import\b[^\n]*\b{name}\b)"
                candidates[tests_dir] = re.compile(rf"\b{module}\b|{relative}")
    removable = set(candidates)
    texts = [(path, path.read_text(encoding="utf-8", errors="replace")) for path in _text_files(target_dir)]
    while removable:
        kept = {
            tests_dir
            for tests_dir in removable
            for path, text in texts
            if not any(path.is_relative_to(other) for other in removable)
            and candidates[tests_dir].search(text)
            and not path.is_relative_to(tests_dir)
        }
        if not kept:
            break
        removable -= kept
    return sorted(removable)


def _text_files(target_dir: Path) -> Iterator[Path]:
    """Where an import of a test package could be spelled: code, entry points, .pth files."""
    for dirpath, _, filenames in os.walk(target_dir):
        for name in filenames:
            if name.endswith((".py", ".pth")) or name == "entry_points.txt":
                yield Path(dirpath) / name


def _normalize_modes(root: Path) -> None:
    """World-readable files and directories: Lambda runs the code as another user than its owner."""
    for dirpath, _, filenames in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            path = Path(dirpath) / name
            path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


def docker_bundling_script(
    *, requirements: str | None, exclude: Sequence[str] = DEFAULT_EXCLUDES, drop_packages: Sequence[str] = ()
) -> str:
    """The Docker fallback as a bash script: run in the source directory with the output directory as $1.

    Inside the runtime's build image pip runs on the target interpreter, so markers and tags
    are the target's and a dependency without a wheel can be compiled. The source is copied with
    the same excludes (GNU tar patterns: unanchored for names, anchored for paths).
    """
    tar_excludes = []
    for pattern in exclude:
        if "/" in pattern:
            tar_excludes += ["--anchored", f"--exclude=./{pattern.strip('/')}", "--no-anchored"]
        else:
            tar_excludes.append(f"--exclude={pattern}")
    lines = ["set -euo pipefail", 'out="$1"']
    if requirements is not None:
        lines.append(
            "python -m pip install --no-cache-dir --no-compile --disable-pip-version-check "
            f'--require-hashes -r {shlex.quote(requirements)} --target "$out"'
        )
        lines += [
            'rm -rf "$out/bin" "$out/include"',
            "find \"$out\" -type f -name '*.py[co]' -delete",
            'find "$out" -depth -type d -name __pycache__ -exec rm -rf {} +',
        ]
        for name in drop_packages:
            quoted = shlex.quote(name)
            lines.append(f'rm -rf "$out"/{quoted} "$out"/{quoted}.py "$out"/{quoted}-*.dist-info')
    lines += [
        f'tar -cf - {shlex.join(tar_excludes)} . | tar -C "$out" -xf - --no-same-owner',
        'chmod -R u+w,a+rX "$out"',
    ]
    return "\n".join(lines)


def docker_bundling_command(
    *, requirements: str | None, exclude: Sequence[str] = DEFAULT_EXCLUDES, drop_packages: Sequence[str] = ()
) -> list[str]:
    """The Docker bundling ``command`` (input in /asset-input, the working directory)."""
    return [
        "bash",
        "-c",
        docker_bundling_script(requirements=requirements, exclude=exclude, drop_packages=drop_packages),
        "bundle",
        "/asset-output",
    ]


@functools.cache
def _declare_jsii_interface() -> None:
    """``@jsii.implements(aws_cdk.ILocalBundling)`` for :class:`LocalPythonBundler`, applied once.

    The decorator only records the interface on the class, for jsii to read when an instance
    first crosses into JavaScript; applying it here instead of at the class statement keeps
    aws-cdk-lib (and its jsii kernel) out of imports that only build bundles.
    """
    import aws_cdk  # noqa: PLC0415 - deferred on purpose, see above
    import jsii  # noqa: PLC0415

    jsii.implements(aws_cdk.ILocalBundling)(LocalPythonBundler)


class LocalPythonBundler:
    """CDK local bundling (``aws_cdk.ILocalBundling``) with :func:`build_bundle`.

    ``try_bundle`` returns False, so that CDK bundles in Docker instead, only when a dependency
    has no wheel for the target; every other failure raises.
    """

    def __init__(
        self,
        *,
        source_dir: Path,
        requirements: Path | None,
        python_version: str,
        architecture: str,
        manylinux: str | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDES,
        drop_packages: Sequence[str] = (),
    ) -> None:
        _declare_jsii_interface()
        self.source_dir = source_dir
        self.requirements = requirements
        self.target = BundleTarget.create(python_version, architecture, manylinux)
        self.exclude = tuple(exclude)
        self.drop_packages = tuple(drop_packages)

    def try_bundle(self, output_dir: str, *_options: Any, **_kwargs: Any) -> bool:
        """Called by CDK (through jsii) with an empty ``output_dir`` and the BundlingOptions."""
        output = Path(output_dir)
        try:
            build_bundle(
                output,
                source_dir=self.source_dir,
                requirements=self.requirements,
                python_version=self.target.python_version,
                architecture=self.target.architecture,
                manylinux=self.target.manylinux,
                exclude=self.exclude,
                drop_packages=self.drop_packages,
            )
        except MissingWheelError as error:
            log.warning(
                "no wheel for %s on %s / %s: falling back to Docker bundling (needs a running Docker daemon)",
                ", ".join(error.packages),
                self.target.uv_platform,
                self.target.cpython_tag,
            )
            for child in output.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            return False
        return True


def python_version_of(runtime: aws_lambda.Runtime) -> str:
    """``"3.14"`` for ``Runtime.PYTHON_3_14``; ValueError for a runtime that is not CPython."""
    match = re.fullmatch(r"python(3\.\d+)", runtime.name)
    if match is None:
        raise ValueError(f"runtime must be a Python runtime (python3.X), got {runtime.name}")
    return match.group(1)


def lambda_code(
    *,
    source_dir: Path,
    runtime: aws_lambda.Runtime,
    architecture: aws_lambda.Architecture,
    requirements: Path | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
) -> aws_lambda.Code:
    """The Lambda code asset for ``source_dir``, bundled locally with uv, in Docker as a fallback.

    ``requirements`` (default: ``source_dir/requirements.txt`` when it exists) must be
    hash-locked and lie inside ``source_dir``, where the Docker fallback can read it. The asset
    hash is :func:`content_hash` of the inputs, so it does not depend on when or where the
    bundle is built; with bundling skipped (``aws:cdk:bundling-stacks``) nothing is built.
    ``drop_packages`` names installed distributions left out of the bundle (the function never
    imports them: e.g. the ASGI server only a container runs).
    """
    import aws_cdk  # noqa: PLC0415 - the CDK-free core must not load aws-cdk-lib on import
    from aws_cdk import aws_lambda  # noqa: PLC0415

    source_dir = source_dir.resolve()
    if requirements is None:
        default = source_dir / "requirements.txt"
        requirements = default if default.is_file() else None
    else:
        requirements = requirements.resolve()
        if not requirements.is_relative_to(source_dir):
            raise ValueError(
                f"requirements must be inside source_dir ({source_dir}) so the Docker fallback "
                f"can read it, got {requirements}"
            )
    python_version = python_version_of(runtime)
    arch = architecture.name
    asset_hash = content_hash(
        source_dir=source_dir,
        requirements=requirements,
        python_version=python_version,
        architecture=arch,
        exclude=exclude,
        drop_packages=drop_packages,
    )
    requirements_in_container = (
        None if requirements is None else requirements.relative_to(source_dir).as_posix()
    )
    return aws_lambda.Code.from_asset(
        str(source_dir),
        asset_hash_type=aws_cdk.AssetHashType.CUSTOM,
        asset_hash=asset_hash,
        bundling=aws_cdk.BundlingOptions(
            image=runtime.bundling_image,
            platform=architecture.docker_platform,
            command=docker_bundling_command(
                requirements=requirements_in_container, exclude=exclude, drop_packages=drop_packages
            ),
            local=LocalPythonBundler(
                source_dir=source_dir,
                requirements=requirements,
                python_version=python_version,
                architecture=arch,
                exclude=exclude,
                drop_packages=drop_packages,
            ),
        ),
    )
