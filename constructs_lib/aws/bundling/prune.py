"""What an installed dependency set never needs on Lambda, removed.

Standard library only, with no import of the rest of the package: the Docker fallback runs this
very file with the build image's Python (``python -c <this source> <dir> <drop>...``), so that
both ways of bundling prune alike.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def prune_dependencies(target_dir: Path) -> None:
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
    for tests_dir in unreferenced_test_dirs(target_dir):
        shutil.rmtree(tests_dir)


def drop_packages(target_dir: Path, names: Sequence[str]) -> None:
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


def unreferenced_test_dirs(target_dir: Path) -> list[Path]:
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


def main(argv: Sequence[str]) -> None:
    """``<installed dir> [<package to drop>...]``: prune, then drop (the Docker fallback's step)."""
    target_dir, *drop = argv
    prune_dependencies(Path(target_dir))
    drop_packages(Path(target_dir), drop)


if __name__ == "__main__":
    main(sys.argv[1:])
