"""The container image's tag: a content hash of the build context (plain Python, no cdktf)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# What never reaches the image build (service/.dockerignore says the same).
IGNORED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".env", ".venv"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


def source_hash(source_dir: Path) -> str:
    """SHA-256 over the relative paths and bytes of the build context's files: the same
    content gives the same tag on any machine, any change gives a new one."""
    if not (source_dir / "Dockerfile").is_file():
        raise ValueError(f"source_dir must hold a Dockerfile, got {source_dir}")
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(source_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        for name in sorted(filenames):
            if name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(source_dir).as_posix().encode()
            data = path.read_bytes()
            for part in (rel, data):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
    return digest.hexdigest()
