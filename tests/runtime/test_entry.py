"""The runtime entry shipped into every Lambda bundle and generated image
(``constructs_lib/runtime/serverless_fastapi_entry``), driven as Lambda drives it: one fresh
interpreter per execution environment imports ``serverless_fastapi_entry.lambda_api`` and
serves real API Gateway events in sequence."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.runtime import ENTRY_DIR
from constructs_lib.runtime.serverless_fastapi_entry import environment
from constructs_lib.runtime.serverless_fastapi_entry.dburl import database_url
from tests.conftest import ROOT

EVENTS = ROOT / "tests" / "events"
RUNTIME_ROOT = ENTRY_DIR.parent

DRIVER = textwrap.dedent(
    """
    import json, sys
    events = json.loads(sys.stdin.read())
    from serverless_fastapi_entry import lambda_api
    out = [lambda_api.handler(event, None) for event in events]
    print(json.dumps(out))
    """
)


def http_event(path: str, *, stage: str = "$default", method: str = "GET") -> dict[str, Any]:
    template = "http_api_v2_get.json" if stage == "$default" else "http_api_v2_named_stage.json"
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / template).read_text()))
    raw = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = raw
    event["rawQueryString"] = ""
    event["requestContext"]["http"]["path"] = raw
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["stage"] = stage
    event["routeKey"] = "$default"
    return event


def run_environment(app_dir: Path, events: list[dict[str, Any]], **env: str) -> list[dict[str, Any]]:
    """One execution environment: a fresh interpreter, the entry imported once, each event in turn."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FASTAPI_DEPLOY_")},
        "PYTHONPATH": os.pathsep.join([str(RUNTIME_ROOT), str(app_dir)]),
        "LAMBDA_TASK_ROOT": str(app_dir),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env=full_env,
        cwd=app_dir,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    responses: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return responses


LIFESPAN_APP = """
from contextlib import asynccontextmanager
from fastapi import FastAPI, Request

STARTS = []

@asynccontextmanager
async def lifespan(app):
    STARTS.append(1)
    yield {"greeting": "hello"}
    STARTS.append(-1)

def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/starts")
    def starts(request: Request):
        return {"starts": len([s for s in STARTS if s == 1]), "stops": len([s for s in STARTS if s == -1]),
                "greeting": request.state.greeting, "root_path": request.scope.get("root_path", "")}

    return app
"""

ON_EVENT_APP = """
from fastapi import FastAPI

app = FastAPI()
STARTS = []

@app.on_event("startup")
async def started():
    STARTS.append(1)

@app.get("/starts")
def starts():
    return {"starts": len(STARTS)}
"""

PLAIN_ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain"})
"""


def write_app(tmp_path: Path, name: str, source: str) -> Path:
    app_dir = tmp_path / name
    app_dir.mkdir()
    (app_dir / "main.py").write_text(source)
    return app_dir


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def test_a_factory_with_lifespan_starts_once_across_invocations(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, "factory", LIFESPAN_APP)
    responses = run_environment(
        app_dir, [http_event("/starts") for _ in range(6)], FASTAPI_DEPLOY_ENTRYPOINT="main:create_app"
    )
    assert [r["statusCode"] for r in responses] == [200] * 6
    # Detected as a factory (no FASTAPI_DEPLOY_FACTORY), started once, never stopped per request,
    # and each request sees the state the lifespan yielded.
    assert {json.dumps(body(r), sort_keys=True) for r in responses} == {
        json.dumps({"starts": 1, "stops": 0, "greeting": "hello", "root_path": ""}, sort_keys=True)
    }


def test_on_event_startup_handlers_run_once(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, "on_event", ON_EVENT_APP)
    responses = run_environment(app_dir, [http_event("/starts")] * 4, FASTAPI_DEPLOY_ENTRYPOINT="main:app")
    assert [body(r) for r in responses] == [{"starts": 1}] * 4


GC_APP = """
import gc
from contextlib import asynccontextmanager
from fastapi import FastAPI

SEEN = {"at_import": gc.isenabled()}

@asynccontextmanager
async def lifespan(app):
    SEEN["at_startup"] = gc.isenabled()
    yield

app = FastAPI(lifespan=lifespan)

@app.get("/gc")
def collector():
    return {**SEEN, "in_request": gc.isenabled(), "app_frozen": not any(o is app for o in gc.get_objects()),
            "frozen": gc.get_freeze_count()}
"""


def test_the_app_loads_without_the_collector_and_stays_frozen(tmp_path: Path) -> None:
    # asgi.collector_paused: import and startup without the cyclic collector, then what they
    # built frozen (out of later collections' way), and the collector on for requests.
    app_dir = write_app(tmp_path, "gc", GC_APP)
    (response,) = run_environment(app_dir, [http_event("/gc")], FASTAPI_DEPLOY_ENTRYPOINT="main:app")
    seen = body(response)
    assert seen["at_import"] is False and seen["at_startup"] is False
    assert seen["in_request"] is True and seen["app_frozen"] is True and seen["frozen"] > 10_000


def test_an_app_without_lifespan_support_is_served(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, "plain", PLAIN_ASGI_APP)
    responses = run_environment(app_dir, [http_event("/x")] * 2, FASTAPI_DEPLOY_ENTRYPOINT="main:app")
    assert [(r["statusCode"], r["body"]) for r in responses] == [(200, "plain")] * 2


def test_a_named_stage_becomes_the_root_path(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, "staged", LIFESPAN_APP)
    (response,) = run_environment(
        app_dir,
        [http_event("/starts", stage="v1")],
        FASTAPI_DEPLOY_ENTRYPOINT="main:create_app",
        FASTAPI_DEPLOY_FACTORY="1",
    )
    assert response["statusCode"] == 200
    assert body(response)["root_path"] == "/v1"


def test_a_source_root_is_importable(tmp_path: Path) -> None:
    app_dir = tmp_path / "srclayout"
    (app_dir / "src" / "shop").mkdir(parents=True)
    (app_dir / "src" / "shop" / "__init__.py").write_text("")
    (app_dir / "src" / "shop" / "web.py").write_text(ON_EVENT_APP)
    responses = run_environment(
        app_dir,
        [http_event("/starts")],
        FASTAPI_DEPLOY_ENTRYPOINT="shop.web:app",
        FASTAPI_DEPLOY_SOURCE_ROOT="src",
    )
    assert body(responses[0]) == {"starts": 1}


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [("main:missing", "has no attribute 'missing'"), ("main:NOT_AN_APP", "is not an ASGI app")],
)
def test_a_wrong_entrypoint_fails_the_init_clearly(tmp_path: Path, entrypoint: str, message: str) -> None:
    app_dir = write_app(tmp_path, "wrong", ON_EVENT_APP + "\nNOT_AN_APP = 42\n")
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input="[]",
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": f"{RUNTIME_ROOT}{os.pathsep}{app_dir}",
            "FASTAPI_DEPLOY_ENTRYPOINT": entrypoint,
        },
        cwd=app_dir,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


# --- secrets into the environment, before the app loads ------------------------------------

DB_SECRET = json.dumps({"username": "owner", "password": "p@ss/word", "host": "db.example", "port": 5432})


def fake_reader(values: dict[str, str]) -> Any:
    return lambda arn: values[arn]


@pytest.mark.parametrize(
    ("driver", "scheme", "expected"),
    [
        ("asyncpg", None, "postgresql+asyncpg://owner:p%40ss%2Fword@proxy.example:5432/app"),
        ("psycopg", None, "postgresql+psycopg://owner:p%40ss%2Fword@proxy.example:5432/app"),
        ("psycopg2", "postgresql", "postgresql://owner:p%40ss%2Fword@proxy.example:5432/app"),
    ],
)
def test_the_database_url_takes_the_drivers_form(driver: str, scheme: str | None, expected: str) -> None:
    env = {
        "FASTAPI_DEPLOY_DATABASE": json.dumps(
            {
                "secret_arn": "arn:db",
                "host": "proxy.example",
                "database": "app",
                "driver": driver,
                "settings": "url",
                "url_variable": "DATABASE_URL",
                "scheme": scheme,
                "tls": True,
            }
        ),
        "FASTAPI_DEPLOY_SECRETS": json.dumps({"SECRET_KEY": "arn:key"}),
    }
    environment.resolve(env, read=fake_reader({"arn:db": DB_SECRET, "arn:key": "k" * 64}))
    assert env["DATABASE_URL"] == expected
    assert env["SECRET_KEY"] == "k" * 64
    assert env["PGSSLMODE"] == "verify-full"
    assert Path(env["PGSSLROOTCERT"]).is_file()


def test_parts_and_values_already_set_win() -> None:
    parts = {"host": "POSTGRES_SERVER", "port": "POSTGRES_PORT", "user": "POSTGRES_USER",
             "password": "POSTGRES_PASSWORD", "database": "POSTGRES_DB"}  # fmt: skip
    env = {
        "FASTAPI_DEPLOY_DATABASE": json.dumps(
            {"secret_arn": "arn:db", "database": "app", "settings": "parts", "parts": parts, "tls": False}
        ),
        "POSTGRES_DB": "given",
    }
    environment.resolve(env, read=fake_reader({"arn:db": DB_SECRET}))
    assert {name: env[name] for name in parts.values()} == {
        "POSTGRES_SERVER": "db.example",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "owner",
        "POSTGRES_PASSWORD": "p@ss/word",
        "POSTGRES_DB": "given",
    }
    assert "PGSSLMODE" not in env


def test_nothing_to_resolve_reads_no_secret() -> None:
    env: dict[str, str] = {}
    environment.resolve(env, read=lambda arn: pytest.fail(f"read {arn}"))
    assert env == {}


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg", "psycopg2"])
def test_a_socket_url_keeps_the_socket_directory(driver: str) -> None:
    url = database_url(driver=driver, user="u", password="pw", database="db", socket_dir="/cloudsql/p:r:i")
    assert url.endswith("/db?host=/cloudsql/p:r:i")
    assert ("@localhost/" in url) == (driver != "asyncpg")
