"""Alembic at deploy, with the rule that makes a rollback safe: when the database is at a
revision this code's scripts do not know, a newer deployment migrated it (an update rolling
back, or a rollout that lost to a newer one); nothing is touched and the run succeeds, so the
previous code keeps serving a schema that migrations only ever extend.

Self-contained on purpose (the standard library and the app's own Alembic, no import of this
package): an app's own image, which does not hold the runtime entry, runs this very file as
``python -c "<this source>" CONFIG``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger("serverless_fastapi_entry.migrate")


def find_config(config: str, cwd: Path) -> Path:
    """``config`` (relative to the app's directory) from ``cwd``; in an image whose working
    directory is a sub-directory of the app's (a monorepo's ``backend/``), its shorter suffixes:
    ``backend/alembic.ini`` is found as ``alembic.ini`` in ``/srv/backend``."""
    parts = PurePosixPath(config).parts
    for start in range(len(parts)):
        candidate = cwd.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic configuration {config} from {cwd} (nor a suffix of it)")


def upgrade(config_file: Path) -> str:
    """``upgraded`` or ``newer``; an Alembic failure raises (and fails the deploy)."""
    from alembic import command  # noqa: PLC0415 - the app's own dependency
    from alembic.config import Config  # noqa: PLC0415
    from alembic.runtime.environment import EnvironmentContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util.exc import CommandError  # noqa: PLC0415

    os.chdir(config_file.parent)  # script_location is read from the working directory
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    found = find_config(sys.argv[1] if len(sys.argv) > 1 else "alembic.ini", Path.cwd())
    log.info("migrations: %s (%s)", upgrade(found), found)
