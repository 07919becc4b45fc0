"""``python app.py init PATH``: what detection finds in each example app (tests/examples/), the
spec it writes (which loads), and how it treats an existing spec. Pure Python, no jsii."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.detect import Source, detect, find_routes, init
from stacks.spec import load_spec
from tests.conftest import ROOT

EXAMPLES = ROOT / "tests" / "examples"

# Every value of the app section each example gets (besides path).
EXPECTED: dict[str, dict[str, Any]] = {
    "hello": {
        "entrypoint": "main:app",
        "factory": False,
        "dependencies": "requirements.txt",
        "health_path": "/health",
        "lambda_drop": ["uvicorn"],
        "migrations": {"kind": "none"},
        "database": {"enabled": False},
        "secret_key_variable": None,
    },
    "factory_uv": {
        "entrypoint": "shop.app:create_app",
        "factory": True,
        "source_root": "src",
        "dependencies": "pyproject.toml",
        "health_path": "/healthz",
        "lambda_drop": ["uvicorn"],
        "migrations": {"kind": "alembic", "config": "alembic.ini"},
        "database": {"enabled": True, "driver": "asyncpg", "settings": "url", "url_variable": "DATABASE_URL"},
        "secret_key_variable": None,
    },
    "sync_sqlmodel": {
        "entrypoint": "app.main:app",
        "factory": False,
        "dependencies": "requirements.txt",
        "health_path": "/api/v1/utils/health-check/",
        "lambda_drop": ["uvicorn"],
        "migrations": {"kind": "alembic", "config": "alembic.ini"},
        "database": {
            "enabled": True,
            "driver": "psycopg",
            "settings": "url",
            "url_variable": "DATABASE_URL",
            "host_required": True,
        },
        "secret_key_variable": "SECRET_KEY",
    },
    # The image builds from the repository's root (it copies shared/ too): the app's path is
    # that root, its modules import from backend/.
    "own_docker": {
        "entrypoint": "app.main:app",
        "factory": False,
        "source_root": "backend",
        "dependencies": "backend/requirements.txt",
        "dockerfile": "backend/Dockerfile",
        "health_path": "/ping",
        "lambda_drop": ["fastapi-cli", "uvicorn"],
        "migrations": {"kind": "none"},
        "database": {
            "enabled": True,
            "driver": "psycopg2",
            "settings": "url",
            "url_variable": "DATABASE_URL",
            "url_scheme": "postgresql",
        },
        "secret_key_variable": None,
    },
    "no_db": {
        "entrypoint": "app:application",
        "factory": False,
        "dependencies": "requirements.txt",
        "health_path": "/status",
        "lambda_drop": ["gunicorn", "uvicorn-worker"],
        "migrations": {"kind": "none"},
        "database": {"enabled": False},
        "secret_key_variable": None,
    },
}
APP_PATHS = {"own_docker": "own_docker"}  # the app's directory, when not the example's own


def run_init(path: Path, spec: Path, *, force: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    status = init(path, spec, force=force, out=out)
    return status, out.getvalue()


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_init_detects_each_example(name: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "deploy.yaml"
    status, output = run_init(EXAMPLES / name, spec_file)
    assert status == 0, output
    written = yaml.safe_load(spec_file.read_text())
    app_dir = EXAMPLES / APP_PATHS.get(name, name)
    assert written["app"] == {"path": os.path.relpath(app_dir, tmp_path), **EXPECTED[name]}
    # What the written spec loads to (and the synth checks pass: load_spec runs them).
    spec = load_spec(spec_file)
    assert spec.app.directory == app_dir.resolve()
    assert spec.app.entrypoint == EXPECTED[name]["entrypoint"]
    assert spec.app.database.enabled is EXPECTED[name]["database"]["enabled"]
    assert "Found:" in output and "Still to decide:" in output and "gcp.project" in output


def test_what_init_reports_with_its_evidence(tmp_path: Path) -> None:
    _, output = run_init(EXAMPLES / "sync_sqlmodel", tmp_path / "deploy.yaml")
    assert "entrypoint: app.main:app by convention (app/main.py:12: app = FastAPI(...))" in output
    assert "a route named health-check (app/api/routes/utils.py:6)" in output
    assert "DATABASE_URL is a PostgresDsn (app/core/config.py:14)" in output
    assert "SECRET_KEY (app/core/config.py:13)" in output
    # Settings the deployment does not provide are named for the user to decide.
    assert "SENTRY_DSN (app/core/config.py:15)" in output
    _, output = run_init(EXAMPLES / "own_docker", tmp_path / "other.yaml")
    assert 'CMD ["fastapi", "run", "app/main.py", "--port", "8080"]' in output
    assert "copies shared from there too" in output
    _, output = run_init(EXAMPLES / "factory_uv", tmp_path / "third.yaml")
    assert "[tool.fastapi] entrypoint = 'shop.app:create_app'" in output
    assert "locked by uv.lock" in output


def test_routes_resolve_through_routers_prefixes_and_settings() -> None:
    root = EXAMPLES / "sync_sqlmodel"
    scan = find_routes(Source(root), "app.main", "app")
    assert scan.complete, scan.notes
    assert scan.paths() == [
        "/api/v1/items/",
        "/api/v1/openapi.json",  # FastAPI(openapi_url=f"{settings.API_V1_STR}/openapi.json")
        "/api/v1/utils/health-check/",
        "/api/v1/utils/startups",
        "/docs",
        "/redoc",
    ]
    assert scan.paths("POST") == ["/api/v1/items/"]
    factory = find_routes(Source(EXAMPLES / "factory_uv" / "src"), "shop.app", "create_app")
    assert factory.complete and "/healthz" in factory.paths() and factory.paths("POST") == ["/notes"]


def test_the_sample_service_routes_are_found_as_far_as_they_resolve() -> None:
    scan = find_routes(Source(ROOT / "service"), "webapi.main", "create_app")
    assert "/health" in scan.paths()
    # Its API routers are included in a loop: not followed, so not complete.
    assert not scan.complete and "include_router(router)" in scan.notes[0]


def test_init_fails_clearly_without_a_fastapi_app(tmp_path: Path) -> None:
    app = tmp_path / "script"
    app.mkdir()
    (app / "main.py").write_text("print('hello')\n")
    (app / "requirements.txt").write_text("requests\n")
    status, output = run_init(app, tmp_path / "deploy.yaml")
    assert status == 2
    assert "no FastAPI app found" in output and "[tool.fastapi]" in output
    assert not (tmp_path / "deploy.yaml").exists()


def test_an_existing_app_section_is_replaced_only_with_force(tmp_path: Path) -> None:
    spec_file = tmp_path / "deploy.yaml"
    assert run_init(EXAMPLES / "hello", spec_file)[0] == 0
    with spec_file.open("a") as out:
        out.write("# my own comment\ncompute:\n  memory_mib: 2048\n")
    before = spec_file.read_text()
    status, output = run_init(EXAMPLES / "no_db", spec_file)
    assert status == 1
    assert spec_file.read_text() == before
    assert "already has an app section" in output and "--force" in output
    assert "-  entrypoint: main:app" in output and "+  entrypoint: app:application" in output
    status, output = run_init(EXAMPLES / "no_db", spec_file, force=True)
    assert status == 0 and "Replaced the app section" in output
    after = spec_file.read_text()
    assert "entrypoint: app:application" in after and "main:app" not in after
    assert "# my own comment\ncompute:\n  memory_mib: 2048\n" in after  # the rest is kept
    assert load_spec(spec_file).compute.memory_mib == 2048
    # The same section again: nothing to write.
    status, output = run_init(EXAMPLES / "no_db", spec_file)
    assert status == 0 and "nothing written" in output


def test_a_spec_without_app_section_gets_one_and_keeps_the_rest(tmp_path: Path) -> None:
    spec_file = tmp_path / "deploy.yaml"
    spec_file.write_text("# our spec\nproject: shop\n# sizes\ncompute:\n  memory_mib: 2048\n")
    status, output = run_init(EXAMPLES / "hello", spec_file)
    assert status == 0 and "Added the app section" in output
    text = spec_file.read_text()
    assert text.startswith("# our spec\nproject: shop\napp:\n")
    assert text.endswith("# sizes\ncompute:\n  memory_mib: 2048\n")
    spec = load_spec(spec_file)
    assert spec.project == "shop" and spec.app.entrypoint == "main:app"


def test_the_cli(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec" / "deploy.yaml"
    result = subprocess.run(
        [sys.executable, "app.py", "init", str(EXAMPLES / "factory_uv"), "--spec", str(spec_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Wrote" in result.stdout and spec_file.is_file()
    assert load_spec(spec_file).app.entrypoint == "shop.app:create_app"
    again = subprocess.run(
        [sys.executable, "app.py", "init", str(EXAMPLES / "hello"), "--spec", str(spec_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and "--force" in again.stdout


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_factory_in_a_src_layout_without_tool_fastapi(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "svc",
        {
            "requirements.txt": "fastapi\n",
            "src/svc/__init__.py": "",
            "src/svc/main.py": """
                from fastapi import FastAPI

                def build() -> FastAPI:
                    api = FastAPI()

                    @api.get("/livez")
                    def live() -> str:
                        return "ok"

                    return api
            """,
        },
    )
    detection = detect(app)
    assert detection.values["entrypoint"] == "svc.main:build"
    assert detection.values["factory"] is True and detection.values["source_root"] == "src"
    assert detection.values["health_path"] == "/livez"


def test_database_parts_and_required_settings(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "parts",
        {
            "requirements.txt": "fastapi\npsycopg2-binary\nsqlalchemy\npydantic-settings\n",
            "main.py": """
                from fastapi import FastAPI
                from pydantic_settings import BaseSettings

                class Settings(BaseSettings):
                    POSTGRES_SERVER: str
                    POSTGRES_PORT: int = 5432
                    POSTGRES_USER: str
                    POSTGRES_PASSWORD: str
                    POSTGRES_DB: str = "app"
                    STRIPE_KEY: str
                    LOG_LEVEL: str = "info"

                settings = Settings()
                app = FastAPI()

                @app.get("/")
                def root() -> dict[str, str]:
                    return {}
            """,
        },
    )
    detection = detect(app)
    assert detection.values["database"] == {
        "enabled": True,
        "driver": "psycopg2",
        "settings": "parts",
        "parts": {
            "host": "POSTGRES_SERVER",
            "port": "POSTGRES_PORT",
            "user": "POSTGRES_USER",
            "password": "POSTGRES_PASSWORD",
            "database": "POSTGRES_DB",
        },
    }
    assert detection.values["health_path"] == "/"  # no health route: the root one
    assert detection.values["migrations"] == {"kind": "none"}
    decide = "\n".join(detection.to_decide)
    assert "STRIPE_KEY: the app requires it (main.py:11, no default)" in decide
    assert "LOG_LEVEL (main.py:12)" in decide


def test_a_dockerfile_listening_elsewhere_than_port(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "web",
        {
            "requirements.txt": "fastapi\ngunicorn\n",
            "app.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
            "Dockerfile": "FROM python:3.12-slim\nCOPY . /app\nCMD gunicorn app:app -b 0.0.0.0:80\n",
        },
    )
    detection = detect(app)
    assert detection.values["dockerfile"] == "Dockerfile" and "build_context" not in detection.values
    # Cloud Run sends requests to the port the image listens on (and sets $PORT to it).
    assert detection.values["port"] == 80
    # No route of its own: FastAPI's schema serves as the health path, and the user is told.
    assert detection.values["health_path"] == "/openapi.json"
    assert any(item.startswith("app.health_path") for item in detection.to_decide)


@pytest.mark.parametrize(
    ("cmd", "port"),
    [
        ('["fastapi", "run", "app/main.py"]', 8000),  # fastapi run's default
        ('["uvicorn", "app.main:app", "--host", "0.0.0.0"]', 8000),  # uvicorn's
        ('["sh", "-c", "uvicorn app.main:app --port $PORT"]', None),  # reads $PORT: 8080, unset
        ('["uvicorn", "app.main:app", "--port", "9000"]', 9000),
    ],
)
def test_the_port_the_image_listens_on(tmp_path: Path, cmd: str, port: int | None) -> None:
    app = write_app(
        tmp_path / "web",
        {
            "requirements.txt": "fastapi\nuvicorn\n",
            "app/__init__.py": "",
            "app/main.py": (
                "from fastapi import FastAPI\n\napp = FastAPI()\n\n"
                '@app.get("/health")\ndef h():\n    return {}\n'
            ),
            "Dockerfile": f"FROM python:3.12-slim\nCOPY . /code\nWORKDIR /code\nCMD {cmd}\n",
        },
    )
    detection = detect(app)
    assert detection.values.get("port") == port
    spec_file = tmp_path / "deploy.yaml"
    assert run_init(app, spec_file)[0] == 0
    assert load_spec(spec_file).app.port == (port or 8080)
