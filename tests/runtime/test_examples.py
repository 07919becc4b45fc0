"""The example apps (tests/examples/), each deployed as a team's own app would be, with no
change to its code:

* the Lambda bundle, built for this machine by the same bundler as the AWS stack (the app's
  dependencies resolved and locked, Mangum and the runtime entry added), serves real API
  Gateway events from a fresh interpreter that sees only the bundle (``python -S``), with its
  secrets delivered as Secrets Manager ARNs and its migrations run by the migration handler
  first; its lifespan starts once across the invocations;
* the container command (the generated image's, or the app's own CMD) serves it on ``$PORT``
  against the same embedded PostgreSQL, through a Unix socket named like Cloud Run's
  ``/cloudsql/PROJECT:REGION:INSTANCE``, with the URL in the form the deployment gives.

Secrets Manager is the one thing stood in for: a ``boto3`` module on the bundle's path that
serves the secrets from a file (the Lambda runtime provides boto3; the bundle never ships it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.app import AppOptions
from constructs_lib.aws.bundling import BundleTarget, Dependencies, build_bundle
from constructs_lib.runtime import CONTAINER_REQUIREMENTS, ENTRY_DIR, ENTRY_PACKAGE, LAMBDA_REQUIREMENTS
from constructs_lib.runtime.serverless_fastapi_entry.dburl import database_url
from stacks.spec import Spec
from tests.conftest import PostgresForTests
from tests.example_specs import detected_spec
from tests.runtime.test_entry import http_event

pytestmark = pytest.mark.slow

SECRET_KEY = "example-signing-key-" + "x" * 44
DB_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:key"

FAKE_BOTO3 = '''
"""Secrets Manager, served from the file FAKE_SECRETS names (a test double of the AWS API)."""
import json, os


class _SecretsManager:
    def get_secret_value(self, SecretId):
        with open(os.environ["FAKE_SECRETS"]) as f:
            return {"SecretString": json.load(f)[SecretId]}


def client(service):
    assert service == "secretsmanager", service
    return _SecretsManager()
'''

LAMBDA_DRIVER = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "migrate":
        from serverless_fastapi_entry import lambda_migrate
        print(json.dumps(lambda_migrate.handler({}, None)))
    else:
        events = json.loads(sys.stdin.read())
        from serverless_fastapi_entry import lambda_api
        print(json.dumps([lambda_api.handler(event, None) for event in events]))
    """
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    status: int = 200


@dataclass(frozen=True)
class Example:
    """An example app and what it must answer; how it deploys is what `init` detects."""

    name: str
    health: str  # what init must have detected
    requests: tuple[Request, ...] = ()
    startups: str | None = None  # a route answering {"...": <lifespan starts>}
    own_cmd: tuple[str, ...] | None = None  # the Dockerfile's CMD, run from its WORKDIR

    @property
    def spec(self) -> Spec:
        return detected_spec(self.name)

    @property
    def app(self) -> AppOptions:
        return self.spec.app.options()

    @property
    def directory(self) -> Path:
        return self.spec.service_path


EXAMPLE_LIST = [
    Example("hello", "/health", (Request("GET", "/"),)),
    Example(
        "factory_uv",
        "/healthz",
        (Request("POST", "/notes", {"text": "milk"}, 201), Request("GET", "/notes")),
        startups="/startups",
    ),
    Example(
        "sync_sqlmodel",
        "/api/v1/utils/health-check/",
        (Request("POST", "/api/v1/items/", {"title": "milk"}, 201), Request("GET", "/api/v1/items/")),
        startups="/api/v1/utils/startups",
    ),
    Example(
        "own_docker",
        "/ping",
        (Request("POST", "/visits", None, 201), Request("GET", "/visits")),
        own_cmd=("fastapi", "run", "app/main.py", "--port", "8080"),
    ),
    Example("no_db", "/status", (Request("GET", "/echo/hi"),)),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("locks")


def install(
    example: Example, output: Path, lock_dir: Path, *, extra: tuple[str, ...], drop: tuple[str, ...] = ()
) -> Path:
    """The example's code and its locked dependencies for this machine, as the bundler lays them."""
    target = BundleTarget.host()
    dependencies = example.app.dependencies
    assert example.spec.app.health_path == example.health, "init detected another health route"
    build_bundle(
        output,
        source_dir=example.directory,
        dependencies=Dependencies.from_path(dependencies)
        if dependencies
        else Dependencies.detect(example.directory),
        drop_packages=drop,
        python_version=target.python_version,
        architecture=target.architecture,
        manylinux=target.manylinux,
        extra_requirements=extra,
        extra_sources={ENTRY_PACKAGE: ENTRY_DIR},
        lock_dir=lock_dir,
    )
    return output


@pytest.fixture(scope="session", params=EXAMPLE_LIST, ids=lambda e: e.name)
def example(request: pytest.FixtureRequest) -> Example:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def database(postgres: PostgresForTests, example: Example) -> str | None:
    """A fresh database for the example (None: it has none); returns its name."""
    if example.app.database is None:
        return None
    if postgres.local is None:
        pytest.skip("needs the embedded PostgreSQL (its Unix socket)")
    name = f"example_{example.name}"
    postgres.database(name)
    return name


# --- Lambda ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_aws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the stand-in ``boto3``."""
    directory = tmp_path_factory.mktemp("fake-aws")
    (directory / "boto3").mkdir()
    (directory / "boto3" / "__init__.py").write_text(FAKE_BOTO3)
    return directory


@pytest.fixture(scope="session")
def lambda_bundle(example: Example, lock_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp(f"bundle-{example.name}") / "task"
    return install(
        example, output, lock_dir, extra=LAMBDA_REQUIREMENTS, drop=example.spec.lambda_drop_packages
    )


def lambda_environment(
    example: Example, bundle: Path, *, fake_aws: Path, database: str | None, secrets_file: Path
) -> dict[str, str]:
    """What FastApiLambdaService gives the functions: the entry's variables, secrets as ARNs."""
    app = example.app
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(bundle), str(fake_aws)]),
        "LAMBDA_TASK_ROOT": str(bundle),
        "AWS_LAMBDA_FUNCTION_NAME": f"{example.name}-api",
        "AWS_REGION": "us-east-1",
        "FAKE_SECRETS": str(secrets_file),
        "PGSSLMODE": "disable",  # the embedded server has no TLS; deployed, the entry sets verify-full
        **app.entry_environment(),
        "FASTAPI_DEPLOY_MIGRATIONS": app.migrations_config(),
    }
    if app.secret_key_variable is not None:
        env["FASTAPI_DEPLOY_SECRETS"] = json.dumps({app.secret_key_variable: KEY_ARN})
    if app.database is not None and database is not None:
        env["FASTAPI_DEPLOY_DATABASE"] = json.dumps(
            app.database.entry_config(secret_arn=DB_ARN, database=database)
        )
    return env


def run_lambda(bundle: Path, env: dict[str, str], mode: str, events: list[dict[str, Any]]) -> Any:
    """One execution environment: ``python -S`` sees the bundle (and boto3's stand-in) only."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", LAMBDA_DRIVER, mode],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        cwd=bundle,
        env=env,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def event_for(request: Request) -> dict[str, Any]:
    event = http_event(request.path, method=request.method)
    if request.body is not None:
        event["body"] = json.dumps(request.body)
        event["headers"]["content-type"] = "application/json"
    return event


def all_requests(example: Example) -> list[Request]:
    requests = [Request("GET", example.health), *example.requests]
    return requests + ([Request("GET", example.startups)] if example.startups else [])


def test_the_lambda_bundle_serves_the_app(
    example: Example,
    *,
    lambda_bundle: Path,
    fake_aws: Path,
    postgres: PostgresForTests,
    database: str | None,
    tmp_path: Path,
) -> None:
    port = postgres.local.port if postgres.local is not None else 5432
    owner = {"username": "app_owner", "password": "unused", "host": "127.0.0.1", "port": port}
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({KEY_ARN: SECRET_KEY, DB_ARN: json.dumps(owner)}))
    env = lambda_environment(
        example, lambda_bundle, fake_aws=fake_aws, database=database, secrets_file=secrets_file
    )
    assert not (lambda_bundle / "boto3").exists(), "boto3 is the Lambda runtime's, never bundled"
    assert (lambda_bundle / "mangum").is_dir(), "the entry's own dependency, added by us"
    if example.app.migrations != "none":
        assert run_lambda(lambda_bundle, env, "migrate", []) == {"status": "upgraded"}
    requests = all_requests(example) * 3  # three rounds in one execution environment
    responses = run_lambda(lambda_bundle, env, "serve", [event_for(r) for r in requests])
    for request, response in zip(requests, responses, strict=True):
        assert response["statusCode"] == request.status, (request, response)
    if example.startups:
        starts = [
            json.loads(r["body"])
            for q, r in zip(requests, responses, strict=True)
            if q.path == example.startups
        ]
        assert [next(iter(s.values())) for s in starts] == [1, 1, 1], "the lifespan started once"


# --- the container ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def image_install(example: Example, lock_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's layout: the locked dependencies (with the server the entry runs) and the app."""
    output = tmp_path_factory.mktemp(f"image-{example.name}") / "srv"
    return install(example, output, lock_dir, extra=CONTAINER_REQUIREMENTS)


@contextmanager
def serving(command: list[str], *, cwd: Path, env: dict[str, str], port: int, health: str) -> Iterator[str]:
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the container command exited {process.returncode}:\n{output[-3000:]}")
            try:
                with urllib.request.urlopen(base + health, timeout=2) as response:  # noqa: S310 - our http://127.0.0.1
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("no 200 from the health route within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def call(base: str, request: Request) -> tuple[int, Any]:
    data = json.dumps(request.body).encode() if request.body is not None else None
    req = urllib.request.Request(base + request.path, data=data, method=request.method)  # noqa: S310
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - our http://127.0.0.1
        return response.status, json.loads(response.read() or b"null")


def test_the_container_command_serves_it_on_port_through_the_cloud_sql_socket(
    example: Example,
    *,
    image_install: Path,
    postgres: PostgresForTests,
    database: str | None,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "K_SERVICE": example.name,
        "SECRET_KEY": SECRET_KEY,
        **example.app.entry_environment(),
        "FASTAPI_DEPLOY_MIGRATIONS": example.app.migrations_config(),
    }
    if example.app.database is not None and database is not None:
        socket_dir = _socket_dir(postgres, tmp_path)
        settings = example.app.database
        # The secret's value, exactly as the Google Cloud stack writes it (dburl.database_url).
        env[settings.url_variable] = database_url(
            driver=settings.driver,
            user="app_owner",
            password="unused",
            database=database,
            socket_dir=str(socket_dir),
            scheme=settings.url_scheme,
            host_required=settings.host_required,
        )
    if example.own_cmd is None:
        env["PYTHONPATH"] = str(image_install)
        command = [sys.executable, "-S", "-m", ENTRY_PACKAGE, "serve"]
        cwd = image_install
        if example.app.migrations != "none":
            migrated = subprocess.run(
                [sys.executable, "-S", "-m", ENTRY_PACKAGE, "migrate"],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert migrated.returncode == 0, migrated.stderr[-3000:]
            assert "migrations: upgraded" in migrated.stderr
    else:
        # The app's own image: its Dockerfile's layout (WORKDIR /srv/backend, PYTHONPATH=/srv)
        # and its own CMD, on the port Cloud Run gives it.
        env["PYTHONPATH"] = str(image_install)
        cwd = image_install / "backend"
        program, *args = example.own_cmd
        args = [str(port) if arg == "8080" else arg for arg in args]
        command = [sys.executable, "-S", "-m", program, *args]
    with serving(command, cwd=cwd, env=env, port=port, health=example.health) as base:
        for request in example.requests:
            status, _ = call(base, request)
            assert status == request.status, request
        if example.startups:
            for _ in range(3):
                assert next(iter(call(base, Request("GET", example.startups))[1].values())) == 1


def _socket_dir(postgres: PostgresForTests, tmp_path: Path) -> Path:
    """A Unix socket's path has at most 107 bytes (sun_path): the directory goes under a short
    temporary root, not the test's (pytest's can be long enough to overflow it)."""
    assert postgres.local is not None
    root = Path(tempfile.mkdtemp(prefix="cs", dir="/tmp"))
    directory = root / "cloudsql" / "my-project:europe-west1:shop-dev-pg"
    directory.mkdir(parents=True)
    (directory / ".s.PGSQL.5432").symlink_to(postgres.local.data_dir / f".s.PGSQL.{postgres.local.port}")
    return directory
