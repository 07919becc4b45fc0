"""The runtime entry's migration handler against a real PostgreSQL: an app's own Alembic
setup (its env.py, its driver) upgraded at deploy; a database newer than the code left alone;
a migration command run; no migrations, nothing run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from constructs_lib.runtime import ALEMBIC_RUNNER_SOURCE, ENTRY_DIR
from tests.conftest import PostgresForTests

DRIVER = (
    "from serverless_fastapi_entry import lambda_migrate; print(lambda_migrate.handler({}, None)['status'])"
)

ENV_PY = """
import asyncio, os
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()

async def main():
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()

asyncio.run(main())
"""

REVISION = """
from alembic import op

revision = "0001"
down_revision = None

def upgrade():
    op.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
"""


def alembic_app(tmp_path: Path) -> Path:
    app = tmp_path / "alembic_app"
    (app / "migrations" / "versions").mkdir(parents=True)
    (app / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (app / "migrations" / "env.py").write_text(ENV_PY)
    (app / "migrations" / "versions" / "0001_notes.py").write_text(REVISION)
    return app


def migrate(app: Path, migrations: dict[str, object], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER],
        cwd=app,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ENTRY_DIR.parent), str(app)]),
            "LAMBDA_TASK_ROOT": str(app),
            "FASTAPI_DEPLOY_MIGRATIONS": json.dumps(migrations),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_upgrades_then_leaves_a_newer_database_alone(
    postgres: PostgresForTests, tmp_path: Path
) -> None:
    url = postgres.database("entry_alembic")
    app = alembic_app(tmp_path)
    first = migrate(app, {"kind": "alembic", "config": "alembic.ini"}, DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[-1] == "upgraded"
    again = migrate(app, {"kind": "alembic", "config": "alembic.ini"}, DATABASE_URL=url)
    assert again.stdout.split()[-1] == "upgraded", again.stderr  # at head: a no-op upgrade
    assert postgres.local is not None
    # A newer deployment's revision, unknown to this code: a rollback re-running old code.
    postgres.local.psql("UPDATE alembic_version SET version_num = '9999'", database="entry_alembic")
    older = migrate(app, {"kind": "alembic", "config": "alembic.ini"}, DATABASE_URL=url)
    assert older.returncode == 0, older.stderr
    assert older.stdout.split()[-1] == "newer"
    assert "does not know (9999)" in older.stderr
    assert (
        postgres.local.psql("SELECT version_num FROM alembic_version", database="entry_alembic")
        .strip()
        .endswith("9999")
    )


def test_a_migration_command_runs_with_the_runtimes_python(tmp_path: Path) -> None:
    app = tmp_path / "command_app"
    app.mkdir()
    (app / "mig.py").write_text(
        textwrap.dedent(
            """
            import pathlib, sys
            pathlib.Path("ran.txt").write_text(sys.executable)
            """
        )
    )
    result = migrate(app, {"kind": "command", "command": ["python", "mig.py"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "ran"
    assert (app / "ran.txt").read_text() == sys.executable


def test_a_migration_script_imports_from_the_bundle_as_python_m_would(tmp_path: Path) -> None:
    """``python scripts/seed.py``: the script's directory is not the bundle's root, yet the
    bundle's packages (here ``shop`` under the source root ``src``, and a root module) import."""
    app = tmp_path / "bundle"
    (app / "scripts").mkdir(parents=True)
    (app / "src" / "shop").mkdir(parents=True)
    (app / "src" / "shop" / "__init__.py").write_text("NAME = 'shop'\n")
    (app / "helper.py").write_text("VALUE = 42\n")
    (app / "scripts" / "seed.py").write_text(
        "import pathlib, helper, shop\npathlib.Path('seeded.txt').write_text(f'{shop.NAME} {helper.VALUE}')\n"
    )
    result = migrate(
        app,
        {"kind": "command", "command": ["python", "scripts/seed.py"]},
        FASTAPI_DEPLOY_SOURCE_ROOT="src",
        PYTHONPATH=str(ENTRY_DIR.parent),  # as Lambda's: the runtime's own path, not the bundle
    )
    assert result.returncode == 0, result.stderr
    assert (app / "seeded.txt").read_text() == "shop 42"


def test_a_failing_migration_command_fails_the_deploy(tmp_path: Path) -> None:
    app = tmp_path / "failing_app"
    app.mkdir()
    result = migrate(app, {"kind": "command", "command": ["python", "-c", "raise SystemExit(3)"]})
    assert result.returncode != 0
    assert "CalledProcessError" in result.stderr


def test_no_migrations_run_nothing(tmp_path: Path) -> None:
    result = migrate(tmp_path, {"kind": "none"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "none"


def test_an_own_image_runs_the_alembic_runner_from_its_working_directory(
    postgres: PostgresForTests, tmp_path: Path
) -> None:
    """What the Cloud Run job of an app's own image runs: ``python -c <alembic_runner source>
    backend/alembic.ini`` from the image's WORKDIR (a monorepo's ``backend/``), no entry."""
    url = postgres.database("entry_own_image")
    repo = tmp_path / "repo"
    repo.mkdir()
    backend = alembic_app(repo)  # repo/alembic_app plays backend/, the image's WORKDIR
    run = subprocess.run
    argv = [sys.executable, "-c", ALEMBIC_RUNNER_SOURCE, "alembic_app/alembic.ini"]
    env = {**os.environ, "DATABASE_URL": url}
    first = run(argv, cwd=backend, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert "migrations: upgraded" in first.stderr
    assert postgres.local is not None
    postgres.local.psql("UPDATE alembic_version SET version_num = '9999'", database="entry_own_image")
    older = run(argv, cwd=backend, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert older.returncode == 0, older.stderr
    assert "migrations: newer" in older.stderr
