"""Apply the database migrations: ``python -m webapi.migrate`` (Cloud Run job, local)
or ``webapi.migrate.handler`` (a Lambda run by the deployment).

Runs as the schema's owner. Concurrent runs are serialised by a PostgreSQL advisory lock in
env.py. Two rules make it safe to run from any version of the code at any time:

* **A database newer than this code is left alone.** When the database's revision is one
  this code's scripts do not know, a newer deployment has migrated it: this is an update
  that rolls back (CloudFormation re-runs the old trigger), or a rollout that lost to a
  newer one. Nothing is touched and the run succeeds, so the rollback completes and the
  previous code keeps serving a schema that migrations only ever extend.
* **The application role is made to match.** With APP_DB_USER + APP_DB_PASSWORD (or
  APP_DB_SECRET_ARN), the service's own role is created or updated and granted exactly the
  data privileges it needs on the tables (no DDL, no migration state), after every upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from webapi.config import get_settings
from webapi.db import tls_connect_args
from webapi.logs import configure_logging

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# Any fixed 64-bit key: concurrent migrators (env.py) and role updates wait for each other
# instead of racing (two GRANTs at once fail with "tuple concurrently updated").
MIGRATION_LOCK_KEY = 7_240_915_031
log = logging.getLogger("webapi.migrate")


def alembic_config(database_url: str | None = None, *, script_location: Path = MIGRATIONS_DIR) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def migration_url(config: Config) -> str:
    """The owner's URL: the one given, else the service's settings."""
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().sqlalchemy_url()


def migration_engine(config: Config) -> AsyncEngine:
    """One unpooled connection as the owner, with the settings' TLS verification unless a URL
    was given."""
    connect_args = {} if config.attributes.get("database_url") else tls_connect_args(get_settings())
    return create_async_engine(migration_url(config), poolclass=NullPool, connect_args=connect_args)


def unknown_revisions(config: Config) -> list[str]:
    """The database's current revisions that this code's scripts do not know (newer ones)."""
    script = ScriptDirectory.from_config(config)

    def current(connection: Connection) -> tuple[str, ...]:
        return MigrationContext.configure(connection).get_current_heads()

    async def read() -> tuple[str, ...]:
        engine = migration_engine(config)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(current)
        finally:
            await engine.dispose()

    unknown = []
    for revision in asyncio.run(read()):
        try:
            script.get_revision(revision)
        except CommandError:  # alembic's wrapping of ResolutionError: no such revision
            unknown.append(revision)
    return unknown


def upgrade(revision: str = "head", *, database_url: str | None = None, config: Config | None = None) -> bool:
    """Upgrade to ``revision``; False (and nothing done) when the database is newer than this code."""
    config = config or alembic_config(database_url)
    newer = unknown_revisions(config)
    if newer:
        log.warning(
            "database is at a revision this code does not know (a newer deployment's): left as it is",
            extra={"database_revisions": newer},
        )
        return False
    command.upgrade(config, revision)
    return True


def downgrade(revision: str, *, database_url: str | None = None) -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True)
class AppRole:
    name: str
    password: str


def app_role_from_settings() -> AppRole | None:
    settings = get_settings()
    if settings.app_db_user and settings.app_db_password is not None:
        return AppRole(settings.app_db_user, settings.app_db_password.get_secret_value())
    return None


def _literal(value: str) -> str:
    """A SQL string literal (role passwords cannot be bound parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def role_statements(role: AppRole) -> list[str]:
    """Create or update ``role`` and grant it the data on every table of the schema, nothing more:
    no DDL (PostgreSQL 15+ gives PUBLIC no CREATE on public), no migration state."""
    name = _identifier(role.name)
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role.name)}) "
        f"THEN CREATE ROLE {name} LOGIN; END IF; END $$",
        f"ALTER ROLE {name} WITH LOGIN PASSWORD {_literal(role.password)}",
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), "
        f"{_literal(role.name)}); END $$",
        f"GRANT USAGE ON SCHEMA public TO {name}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}",
        f"REVOKE ALL ON TABLE {VERSION_TABLE} FROM {name}",
    ]


def ensure_app_role(role: AppRole, *, config: Config) -> None:
    async def apply() -> None:
        engine = migration_engine(config)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                for statement in role_statements(role):
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(apply())
    log.info("application role granted", extra={"role": role.name})


def migrate(revision: str = "head", *, database_url: str | None = None) -> str:
    """Upgrade, then grant the application role: ``"migrated"``, or ``"newer"`` when the database
    is ahead of this code (nothing touched)."""
    config = alembic_config(database_url)
    if not upgrade(revision, config=config):
        return "newer"
    role = app_role_from_settings()
    if role is not None:
        ensure_app_role(role, config=config)
    log.info("migrations applied", extra={"revision": revision})
    return "migrated"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapi.migrate", description=__doc__)
    parser.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    parser.add_argument("--downgrade", action="store_true", help="downgrade to the revision instead")
    args = parser.parse_args(argv)
    configure_logging()
    if args.downgrade:
        downgrade(args.revision)
        log.info("downgraded", extra={"revision": args.revision})
    else:
        migrate(args.revision)


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry for deploy-time migrations: any failure raises, failing the deploy."""
    configure_logging()
    return {"status": migrate("head")}


if __name__ == "__main__":
    main()
