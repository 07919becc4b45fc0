"""The app's migrations, as the spec names them: Alembic, a command, or none.

Alembic keeps the rollback rule of our own service: when the database is at a revision this
code's scripts do not know, a newer deployment migrated it (an update rolling back, or a
rollout that lost to a newer one): nothing is touched and the run succeeds, so the previous
code keeps serving a schema that migrations only ever extend.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import MIGRATIONS_VARIABLE
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
        subprocess.run(command, cwd=cwd, check=True)  # noqa: S603 - the spec's own command
        return "ran"
    if kind == "alembic":
        return alembic_upgrade(cwd / config.get("config", "alembic.ini"))
    raise ValueError(f"{MIGRATIONS_VARIABLE}: unknown kind {kind!r}")


def alembic_upgrade(config_file: Path) -> str:
    add_source_root()
    from alembic import command  # noqa: PLC0415 - the app's own dependency, only when it uses Alembic
    from alembic.config import Config  # noqa: PLC0415
    from alembic.runtime.environment import EnvironmentContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util.exc import CommandError  # noqa: PLC0415

    if not config_file.is_file():
        raise FileNotFoundError(f"no Alembic configuration at {config_file}")
    os.chdir(config_file.parent)  # script_location is relative to the ini's directory
    config = Config(str(config_file))
    script = ScriptDirectory.from_config(config)
    current: list[str] = []

    def read_heads(revisions: Any, _context: Any) -> list[Any]:
        # What `alembic current` reads, without resolving it (an unknown revision would raise).
        current.extend(
            str(r) for r in (revisions if isinstance(revisions, tuple | list) else [revisions]) if r
        )
        return []

    # The database's revisions, read through the app's own env.py (its driver, its URL).
    with EnvironmentContext(config, script, fn=read_heads, dont_mutate=True):
        script.run_env()
    unknown = []
    for revision in current:
        try:
            if script.get_revision(revision) is None:
                unknown.append(revision)
        except CommandError:
            unknown.append(revision)
    if unknown:
        log.warning(
            "database is at a revision this code does not know (%s): a newer deployment migrated "
            "it; nothing to do",
            ", ".join(unknown),
        )
        return "newer"
    command.upgrade(config, "heads")
    return "upgraded"
