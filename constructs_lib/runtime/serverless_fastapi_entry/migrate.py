"""The app's migrations, as the spec names them: Alembic (with the rollback rule of
``alembic_runner``), a command, or none."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import MIGRATIONS_VARIABLE, SOURCE_ROOT_VARIABLE, alembic_runner
from .asgi import add_source_root

log = logging.getLogger("serverless_fastapi_entry.migrate")


def configured() -> dict[str, Any]:
    raw = os.environ.get(MIGRATIONS_VARIABLE, "").strip()
    return json.loads(raw) if raw else {"kind": "none"}


def run(config: dict[str, Any] | None = None, *, cwd: Path | None = None) -> str:
    """Apply the migrations; returns ``upgraded``, ``newer``, ``ran`` or ``none``."""
    config = config if config is not None else configured()
    kind = config.get("kind", "none")
    cwd = cwd or Path(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd())
    if kind == "none":
        return "none"
    if kind == "command":
        command = [str(part) for part in config["command"]]
        # The function's or the image's own interpreter, whatever "python" is on PATH.
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable
        log.info("running %s", command)
        subprocess.run(command, cwd=cwd, check=True, env=child_environment(cwd))  # noqa: S603 - the spec's command
        return "ran"
    if kind == "alembic":
        return alembic_upgrade(cwd / config.get("config", "alembic.ini"))
    raise ValueError(f"{MIGRATIONS_VARIABLE}: unknown kind {kind!r}")


def child_environment(root: Path) -> dict[str, str]:
    """The command's environment: ours, with the app's import root and the bundle's root first
    on PYTHONPATH, so that ``python scripts/migrate.py`` imports what ``python -m`` would
    (Lambda's own PYTHONPATH names only its runtime). The bundle holds no console scripts: a
    tool runs as ``python -m alembic ...``."""
    source_root = os.environ.get(SOURCE_ROOT_VARIABLE, "")
    paths = [str(root / source_root)] if source_root not in ("", ".") else []
    paths += [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def alembic_upgrade(config_file: Path) -> str:
    add_source_root()
    if not config_file.is_file():
        raise FileNotFoundError(f"no Alembic configuration at {config_file}")
    return alembic_runner.upgrade(config_file)
