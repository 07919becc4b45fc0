"""Apply the database migrations: ``python -m webapi.migrate`` (Cloud Run job, local)
or ``webapi.migrate.handler`` (a Lambda run by the deployment).

Concurrent runs are serialised by a PostgreSQL advisory lock in env.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from webapi.logs import configure_logging

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("webapi.migrate")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(revision: str = "head", *, database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(revision: str, *, database_url: str | None = None) -> None:
    command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapi.migrate", description=__doc__)
    parser.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    parser.add_argument("--downgrade", action="store_true", help="downgrade to the revision instead")
    args = parser.parse_args(argv)
    configure_logging()
    if args.downgrade:
        downgrade(args.revision)
    else:
        upgrade(args.revision)
    log.info("migrations applied", extra={"revision": args.revision})


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry for deploy-time migrations: any failure raises, failing the deploy."""
    configure_logging()
    upgrade("head")
    log.info("migrations applied", extra={"revision": "head"})
    return {"status": "migrated"}


if __name__ == "__main__":
    main()
