"""The app's dependencies, from whatever it declares them in, hash-locked per target.

An app may have a ``requirements.txt`` (pinned with hashes, or not), or a ``pyproject.toml``
with a ``uv.lock``, or a ``pyproject.toml`` alone. :func:`lock_requirements` turns any of them,
plus what our runtime entry needs (``extra_requirements``), into a requirements file pinned
with hashes for one :class:`BundleTarget`, written once into a lock directory under a name
derived from its inputs and reused from then on (commit that directory: the next synth
installs exactly what the first one resolved, offline).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from constructs_lib.aws.bundling.errors import BundlingError
from constructs_lib.aws.bundling.target import BundleTarget
from constructs_lib.aws.bundling.tools import find_uv, uv_env, uv_version

log = logging.getLogger(__name__)

# Part of every lock's name: bump it when the way a lock is made changes.
LOCK_FORMAT = "1"

DependencyKind = Literal["requirements", "uv-lock", "pyproject"]

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PINNED = re.compile(rf"^({_NAME})\s*(?:\[[^\]]*\])?\s*===?\s*([^\s;\\]+)\s*(?:;[^\\]*)?$")
_EXTRA = re.compile(rf"^({_NAME})\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")
# Options a hash-locked file may carry besides its requirements (where to download from).
_HARMLESS_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "-i ", "-f ", "--no-index")


@dataclass(frozen=True)
class Dependencies:
    """Where an app declares its dependencies.

    ``kind`` ``"requirements"``: ``path`` is a requirements file; ``"uv-lock"``: ``path`` is a
    ``pyproject.toml`` and ``lock`` the ``uv.lock`` beside it; ``"pyproject"``: ``path`` is a
    ``pyproject.toml`` whose ``[project].dependencies`` are resolved.
    """

    kind: DependencyKind
    path: Path
    lock: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("requirements", "uv-lock", "pyproject"):
            raise ValueError(f"kind must be requirements, uv-lock or pyproject, got {self.kind!r}")
        if (self.kind == "uv-lock") != (self.lock is not None):
            raise ValueError("lock (the uv.lock) is given exactly when kind is 'uv-lock'")

    @classmethod
    def detect(cls, app_dir: Path) -> Dependencies | None:
        """What ``app_dir`` declares: ``requirements.txt`` first; else ``pyproject.toml`` with its
        ``uv.lock``; else ``pyproject.toml`` alone (a ``poetry.lock`` or ``pdm.lock`` is not
        honoured: a warning says so). None when there is none of them."""
        requirements = app_dir / "requirements.txt"
        if requirements.is_file():
            return cls.from_path(requirements)
        pyproject = app_dir / "pyproject.toml"
        if pyproject.is_file():
            return cls.from_path(pyproject)
        return None

    @classmethod
    def from_path(cls, path: Path) -> Dependencies:
        """An explicit file: ``requirements*.txt`` (any ``.txt``/``.in`` requirements file), or a
        ``pyproject.toml`` (with the ``uv.lock`` beside it when there is one)."""
        path = path.resolve()
        if not path.is_file():
            raise BundlingError(f"dependencies file not found: {path}")
        if path.name == "pyproject.toml":
            uv_lock = path.parent / "uv.lock"
            if uv_lock.is_file():
                return cls("uv-lock", path, uv_lock)
            for other in ("poetry.lock", "pdm.lock"):
                if (path.parent / other).is_file():
                    log.warning(
                        "%s is not honoured: the Lambda bundle's dependencies are resolved again from "
                        "[project].dependencies of %s (for the exact locked versions, export them to a "
                        "requirements.txt with hashes beside it, or use uv.lock)",
                        path.parent / other,
                        path,
                    )
            _pyproject_dependencies(path)  # unusable files fail here, at synth, naming the file
            return cls("pyproject", path)
        if path.suffix in (".txt", ".in"):
            return cls("requirements", path)
        raise BundlingError(
            f"{path}: dependencies come from a requirements file (requirements*.txt) or a pyproject.toml"
        )

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files whose bytes decide the lock."""
        return (self.path,) if self.lock is None else (self.path, self.lock)


def _pyproject_dependencies(pyproject: Path) -> list[str]:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BundlingError(f"{pyproject} is not valid TOML: {error}") from error
    project = data.get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        dynamic = isinstance(project, dict) and "dependencies" in project.get("dynamic", ())
        why = "declares them dynamic" if dynamic else "has no [project].dependencies"
        raise BundlingError(
            f"{pyproject} {why}: the Lambda bundle's dependencies are read from a static "
            f"[project].dependencies list (or give a requirements.txt beside it)"
        )
    dependencies = project["dependencies"]
    if not isinstance(dependencies, list) or not all(isinstance(item, str) for item in dependencies):
        raise BundlingError(f"{pyproject}: [project].dependencies must be a list of requirement strings")
    return dependencies


def hash_locked_pins(text: str) -> dict[str, str] | None:
    """``{normalized name: version}`` when every requirement of ``text`` is pinned with ``==`` and
    carries ``--hash``; None otherwise (unpinned, includes, editables, URLs...)."""
    pins: dict[str, str] = {}
    logical = re.sub(r"\\\r?\n", " ", text)
    for raw in logical.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            if line.startswith(_HARMLESS_OPTIONS):
                continue
            return None
        requirement, _, hashes = line.partition(" --hash")
        match = _PINNED.match(requirement.strip())
        if match is None or not hashes:
            return None
        pins[normalize_name(match.group(1))] = match.group(2)
    return pins


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _satisfied(pins: dict[str, str], extra: str) -> bool:
    """Whether the pinned versions surely satisfy ``extra`` (when unsure: no, and it is resolved)."""
    match = _EXTRA.match(extra.strip())
    if match is None or match.group(3):  # markers: let the resolver decide
        return False
    version = pins.get(normalize_name(match.group(1)))
    if version is None:
        return False
    return all(
        _clause_holds(version, clause.strip()) for clause in match.group(2).split(",") if clause.strip()
    )


def _release(version: str) -> tuple[int, ...] | None:
    return tuple(int(part) for part in version.split(".")) if re.fullmatch(r"\d+(\.\d+)*", version) else None


def _clause_holds(version: str, clause: str) -> bool:
    match = re.fullmatch(r"(~=|==|!=|<=|>=|<|>)\s*(\S+)", clause)
    have = _release(version)
    if match is None or have is None:
        return False
    op, wanted = match.groups()
    if op in ("==", "!=") and wanted.endswith(".*"):
        prefix = _release(wanted[:-2])
        if prefix is None:
            return False
        equal = have[: len(prefix)] == prefix
        return equal if op == "==" else not equal
    want = _release(wanted)
    if want is None:
        return False
    width = max(len(have), len(want))
    a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
    if op == "~=":
        return len(want) >= 2 and a >= b and have[: len(want) - 1] == want[:-1]
    return {"==": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[op]


def lock_name(dependencies: Dependencies | None, target: BundleTarget, extras: Sequence[str], uv: str) -> str:
    """The lock's file name: the target, and a hash of every input that decides the lock."""
    digest = hashlib.sha256()
    fields: list[bytes] = [
        LOCK_FORMAT.encode(),
        target.python_version.encode(),
        target.uv_platform.encode(),
        uv.encode(),
        (dependencies.kind if dependencies else "none").encode(),
        *(path.read_bytes() for path in (dependencies.inputs if dependencies else ())),
        "\n".join(sorted(extras)).encode(),
    ]
    for field in fields:
        digest.update(len(field).to_bytes(8, "big"))
        digest.update(field)
    return f"requirements-{target.cpython_tag}-{target.architecture}-{digest.hexdigest()[:20]}.txt"


def lock_requirements(
    dependencies: Dependencies | None,
    target: BundleTarget,
    *,
    extra_requirements: Sequence[str] = (),
    lock_dir: Path | None,
) -> Path | None:
    """A requirements file pinned with hashes for ``target``: ``dependencies`` plus
    ``extra_requirements``. None when there is nothing to install.

    A requirements file already pinned with hashes that already satisfies every extra is
    returned as it is (no resolution, no network). Otherwise the lock is
    ``lock_dir/requirements-<cpXY>-<arch>-<hash of the inputs>.txt``: reused when it exists,
    else resolved now (``uv pip compile --python-platform --python-version --generate-hashes``;
    for a uv.lock, ``uv export --frozen`` first) and written there.
    """
    extras = tuple(extra_requirements)
    if dependencies is None and not extras:
        return None
    if dependencies is not None and dependencies.kind == "requirements":
        pins = hash_locked_pins(dependencies.path.read_text(encoding="utf-8"))
        if pins is not None and all(_satisfied(pins, extra) for extra in extras):
            return dependencies.path
    if lock_dir is None:
        what = dependencies.path if dependencies else "the extra requirements"
        raise BundlingError(
            f"{what} is not hash-locked (every requirement pinned with == and a --hash, which "
            f"`uv pip install --require-hashes` needs) or lacks {', '.join(extras) or 'nothing'}: "
            f"pass lock_dir= to have it resolved for {target.uv_platform} / {target.cpython_tag} "
            f"and locked there"
        )
    uv = find_uv()
    lock = lock_dir / lock_name(dependencies, target, extras, uv_version(uv))
    if lock.is_file():
        log.debug("reusing the lock %s", lock)
        return lock
    lock_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lock-", dir=lock_dir) as scratch:
        work = Path(scratch)
        text = _resolve(uv, dependencies, target, extras, work)
        staged = work / lock.name
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, lock)
    log.info(
        "locked %s for %s / %s into %s",
        dependencies.path if dependencies else extras,
        target.uv_platform,
        target.cpython_tag,
        lock,
    )
    return lock


def _resolve(
    uv: str, dependencies: Dependencies | None, target: BundleTarget, extras: tuple[str, ...], work: Path
) -> str:
    inputs: list[Path] = []
    cwd = work
    if dependencies is None:
        pass
    elif dependencies.kind == "requirements":
        inputs.append(dependencies.path)
        cwd = dependencies.path.parent  # relative paths in it are relative to it
    elif dependencies.kind == "pyproject":
        listed = work / "pyproject-dependencies.in"
        listed.write_text("".join(f"{item}\n" for item in _pyproject_dependencies(dependencies.path)))
        inputs.append(listed)
        cwd = dependencies.path.parent
    else:
        exported = work / "uv-export.txt"
        _run(
            [
                uv,
                "export",
                "--frozen",
                "--no-dev",
                "--no-emit-project",
                "--format",
                "requirements-txt",
                "--no-header",
                "--quiet",
                "--output-file",
                str(exported),
            ],
            cwd=dependencies.path.parent,
            what=f"exporting {dependencies.lock}",
        )
        text = exported.read_text(encoding="utf-8")
        pins = hash_locked_pins(text)
        if pins is not None and all(_satisfied(pins, extra) for extra in extras):
            return text  # the user's lock, exactly (uv installs it for the target's markers)
        inputs.append(exported)
    if extras:
        listed = work / "extra-requirements.in"
        listed.write_text("".join(f"{item}\n" for item in extras))
        inputs.append(listed)
    output = work / "compiled.txt"
    _run(
        [
            uv,
            "pip",
            "compile",
            "--no-config",
            "--python",
            sys.executable,  # only to satisfy uv; the target below decides
            "--no-python-downloads",
            "--python-platform",
            target.uv_platform,
            "--python-version",
            target.python_version,
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--emit-find-links",
            "--quiet",
            "--color",
            "never",
            "--output-file",
            str(output),
            *(str(path) for path in inputs),
        ],
        cwd=cwd,
        what=f"resolving {', '.join(str(p) for p in dependencies.inputs) if dependencies else 'extras'}"
        f" for {target.uv_platform} / {target.cpython_tag}",
    )
    return output.read_text(encoding="utf-8")


def _run(command: list[str], *, cwd: Path, what: str) -> None:
    result = subprocess.run(  # noqa: S603 - uv from find_uv, arguments built here
        command, cwd=cwd, capture_output=True, text=True, env=uv_env(), check=False
    )
    if result.returncode != 0:
        raise BundlingError(
            f"{what} failed (exit {result.returncode}):\n$ {shlex.join(command)}\n"
            f"{(result.stderr + result.stdout).strip()}"
        )
