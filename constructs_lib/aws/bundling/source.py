"""Which files of the app's directory (and of the extra sources) go into the bundle."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from constructs_lib.aws.bundling.errors import BundlingError

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
    # the deployment's own files, when the spec lives in the app's directory: a spec change must
    # not change the code, and the locks are the installed dependencies' inputs
    "deploy.yaml",
    ".deploy-locks",
    # documentation
    "*.md",
    "*.rst",
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


def extra_source_files(
    extra_sources: Mapping[str, Path], exclude: Sequence[str] = DEFAULT_EXCLUDES
) -> list[tuple[PurePosixPath, Path]]:
    """``(destination in the bundle, file)`` for every file of ``extra_sources`` (bundle-relative
    destination → a file, or a directory whose files are taken as :func:`source_files` takes
    the app's), sorted by destination."""
    found: list[tuple[PurePosixPath, Path]] = []
    for destination, source in extra_sources.items():
        dest = extra_destination(destination)
        if source.is_dir():
            found.extend((dest / rel, source / rel) for rel in source_files(source, exclude))
        elif source.is_file():
            found.append((dest, source))
        else:
            raise BundlingError(
                f"extra source for {destination!r} is neither a file nor a directory: {source}"
            )
    found.sort(key=lambda pair: pair[0].as_posix())
    for (first, _), (second, _) in itertools.pairwise(found):
        if first == second:
            raise BundlingError(f"two extra sources put a file at {first}")
    return found


def extra_destination(destination: str) -> PurePosixPath:
    """``destination`` as a path inside the bundle; BundlingError when it would leave it."""
    dest = PurePosixPath(destination.strip("/"))
    if not dest.parts or dest.is_absolute() or any(part in ("..", ".") for part in dest.parts):
        raise BundlingError(f"extra source destination must be a path inside the bundle, got {destination!r}")
    return dest
