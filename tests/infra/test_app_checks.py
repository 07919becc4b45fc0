"""The synth checks of the app a spec names (stacks/app_checks.py), read from its source: each
error names its spec field; what static reading cannot settle is not an error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stacks.app_checks import check_app
from stacks.detect import detect
from stacks.spec import App, SpecError, load_spec
from tests.conftest import ROOT

EXAMPLES = ROOT / "tests" / "examples"

HELLO = """
    from fastapi import FastAPI

    app = FastAPI()


    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}
"""
FACTORY = """
    from fastapi import FastAPI


    def create_app() -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        return app
"""


def write_app(root: Path, files: dict[str, str], spec: str) -> Path:
    for name, text in files.items():
        path = root / "app" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    spec_file = root / "deploy.yaml"
    spec_file.write_text("project: shop\napp:\n  path: app\n" + textwrap.indent(textwrap.dedent(spec), "  "))
    return spec_file


def load_error(spec_file: Path) -> str:
    with pytest.raises(SpecError) as error:
        load_spec(spec_file)
    return str(error.value)


def test_a_valid_app_loads(tmp_path: Path) -> None:
    spec = load_spec(
        write_app(tmp_path, {"main.py": HELLO}, "entrypoint: main:app\ndatabase: {enabled: false}\n")
    )
    assert spec.app.entrypoint == "main:app"


def test_the_entrypoint_attribute_must_exist(tmp_path: Path) -> None:
    message = load_error(write_app(tmp_path, {"main.py": HELLO}, "entrypoint: main:api\n"))
    assert "app.entrypoint: main defines no 'api' at module level" in message


def test_an_imported_entrypoint_counts(tmp_path: Path) -> None:
    files = {"main.py": HELLO, "asgi.py": "from main import app as application\n"}
    spec = load_spec(write_app(tmp_path, files, "entrypoint: asgi:application\nfactory: false\n"))
    assert spec.app.attribute == "application"


def test_the_module_must_exist(tmp_path: Path) -> None:
    message = load_error(write_app(tmp_path, {"main.py": HELLO}, "entrypoint: server:app\n"))
    assert "app.entrypoint: no module server" in message


def test_factory_false_for_a_function(tmp_path: Path) -> None:
    message = load_error(
        write_app(tmp_path, {"main.py": FACTORY}, "entrypoint: main:create_app\nfactory: false\n")
    )
    assert "app.factory: false, but main:create_app is a function (main.py:5: def create_app())" in message


def test_factory_true_for_an_app(tmp_path: Path) -> None:
    message = load_error(write_app(tmp_path, {"main.py": HELLO}, "entrypoint: main:app\nfactory: true\n"))
    assert "app.factory: true, but main:app is an app (main.py:4: app = FastAPI())" in message


def test_the_health_path_must_be_a_route(tmp_path: Path) -> None:
    message = load_error(
        write_app(tmp_path, {"main.py": HELLO}, "entrypoint: main:app\nhealth_path: /healthz\n")
    )
    assert "app.health_path: /healthz is not among the app's GET routes" in message
    assert "found: /docs, /health, /openapi.json, /redoc" in message
    message = load_error(
        write_app(tmp_path, {"main.py": FACTORY}, "entrypoint: main:create_app\nhealth_path: /health/\n")
    )
    assert "app.health_path: /health/ is not among" in message and "did you mean /health?" in message


def test_a_path_parameter_route_can_serve_the_health_path(tmp_path: Path) -> None:
    files = {
        "main.py": HELLO + '\n\n@app.get("/pages/{slug}")\ndef page(slug: str) -> str:\n    return slug\n'
    }
    spec = load_spec(write_app(tmp_path, files, "entrypoint: main:app\nhealth_path: /pages/health\n"))
    assert spec.app.health_path == "/pages/health"


def test_routes_that_do_not_resolve_are_not_an_error(tmp_path: Path) -> None:
    files = {
        "main.py": """
            from fastapi import FastAPI

            from routes import ROUTERS

            app = FastAPI()
            for router in ROUTERS:
                app.include_router(router)
        """,
        "routes.py": "ROUTERS = []\n",
    }
    spec = load_spec(write_app(tmp_path, files, "entrypoint: main:app\nhealth_path: /anything\n"))
    assert spec.app.health_path == "/anything"


def test_a_star_import_is_not_an_error(tmp_path: Path) -> None:
    files = {"main.py": HELLO, "asgi.py": "from main import *  # noqa: F403\n"}
    spec = load_spec(write_app(tmp_path, files, "entrypoint: asgi:app\n"))
    assert spec.app.module == "asgi"


def test_the_dockerfile_and_build_context_must_exist(tmp_path: Path) -> None:
    message = load_error(
        write_app(
            tmp_path,
            {"main.py": HELLO},
            "entrypoint: main:app\ndockerfile: Dockerfile\nbuild_context: ../nowhere\n",
        )
    )
    assert "app.dockerfile: no file" in message and "Dockerfile (relative to app.path)" in message
    assert "app.build_context:" in message and "nowhere is not a directory" in message


def test_the_alembic_config_must_exist(tmp_path: Path) -> None:
    message = load_error(
        write_app(tmp_path, {"main.py": HELLO}, "entrypoint: main:app\nmigrations: {kind: alembic}\n")
    )
    assert "app.migrations.config: no Alembic configuration at" in message


def test_migrations_need_a_database(tmp_path: Path) -> None:
    files = {"main.py": HELLO, "alembic.ini": "[alembic]\nscript_location = migrations\n"}
    message = load_error(
        write_app(
            tmp_path, files, "entrypoint: main:app\nmigrations: {kind: alembic}\ndatabase: {enabled: false}\n"
        )
    )
    assert "app.migrations.kind: alembic migrations need a database" in message


@pytest.mark.parametrize("name", ["hello", "factory_uv", "sync_sqlmodel", "own_docker", "no_db"])
def test_every_example_passes(name: str) -> None:
    detection = detect(EXAMPLES / name)
    values = {**detection.values, "path": ".", "base_dir": str(detection.directory)}
    app = App.model_validate(values)
    assert check_app(app) == []


def test_the_repository_spec_passes() -> None:
    assert check_app(load_spec().app) == []
