"""The Google Cloud stack for apps other than our sample: their own Dockerfile and build context,
a generated image, the database settings each driver needs, no database, no migrations.

Each variant is synthesized once (module fixtures): a spec file in a temporary directory whose
``app:`` section names a small app written here, in the shapes of tests/examples.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket as socket_module
import subprocess
import sys
from pathlib import Path
from typing import Any

import cdktf
import pytest
import yaml

from tests.conftest import ROOT, SERVICE_DIR
from tests.infra.gcp_synth import SynthesizedGcp
from tests.infra.test_gcp_stack import JOB, SERVICE, container, provisioned, ref, sample_arguments, version_of

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

HELLO = """from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}
"""


def synth_spec(spec_dir: Path, document: dict[str, Any], stack_id: str = "apps-gcp") -> SynthesizedGcp:
    from stacks.gcp_stack import GcpServiceStack
    from stacks.spec import load_spec

    spec_file = spec_dir / "deploy.yaml"
    spec_file.write_text(yaml.safe_dump({"project": "apps", **document}))
    spec = load_spec(spec_file, stage="dev")
    app = cdktf.Testing.app()
    stack = GcpServiceStack(app, stack_id, spec=spec)
    synthesized = cdktf.Testing.synth(stack)
    return SynthesizedGcp(spec=spec, stack=stack, synth=synthesized, json=json.loads(synthesized))


def containers(synth: SynthesizedGcp, kind: str) -> list[dict[str, Any]]:
    _, resource = synth.single(kind)
    template = resource["template"] if kind == SERVICE else resource["template"]["template"]
    found: list[dict[str, Any]] = template["containers"]
    return found


def app_container(synth: SynthesizedGcp, kind: str) -> dict[str, Any]:
    """The app's container; the only other one there may be is the Cloud SQL Auth Proxy."""
    from constructs_lib.gcp.sql_proxy import SQL_PROXY_CONTAINER

    apps = [c for c in containers(synth, kind) if c.get("name") != SQL_PROXY_CONTAINER]
    assert len(apps) == 1
    return apps[0]


def proxy_container(synth: SynthesizedGcp, kind: str) -> dict[str, Any]:
    from constructs_lib.gcp.sql_proxy import SQL_PROXY_CONTAINER

    proxies = [c for c in containers(synth, kind) if c.get("name") == SQL_PROXY_CONTAINER]
    assert len(proxies) == 1
    return proxies[0]


def env_of(synth: SynthesizedGcp, kind: str) -> dict[str, Any]:
    return {
        entry["name"]: entry.get("value", entry.get("value_source"))
        for entry in app_container(synth, kind)["env"]
    }


def secret_value(synth: SynthesizedGcp, kind: str, variable: str) -> str:
    """The value written into the secret that ``variable`` of ``kind`` reads."""
    secret_id = env_of(synth, kind)[variable]["secret_key_ref"]["secret"]
    address = secret_id.removeprefix("${").removesuffix(".secret_id}")
    _, version = version_of(synth, address)
    value: str = version["secret_data_wo"]
    return value


def owner_password(synth: SynthesizedGcp) -> str:
    _, user = synth.single("google_sql_user")
    password: str = user["password_wo"]
    return password


def connection_name(synth: SynthesizedGcp) -> str:
    name, _ = synth.single("google_sql_database_instance")
    return ref(f"google_sql_database_instance.{name}", "connection_name")


def socket(synth: SynthesizedGcp) -> str:
    return f"/cloudsql/{connection_name(synth)}"


# --- own Dockerfile, built from the repository's root --------------------------------------


def write_monorepo(root: Path) -> Path:
    """A repository whose backend's Dockerfile builds from the root (it needs shared/ too), in
    the shape of tests/examples/own_docker."""
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text("")
    app = root / "backend" / "app"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "main.py").write_text(HELLO.replace("/healthz", "/ping"))
    (root / "backend" / "requirements.txt").write_text("fastapi\nuvicorn\npsycopg2-binary\n")
    (root / "backend" / "Dockerfile").write_text(
        "FROM python:3.12-slim\nWORKDIR /srv\nCOPY . .\nWORKDIR /srv/backend\n"
        'CMD ["fastapi", "run", "app/main.py", "--port", "8080"]\n'
    )
    (root / ".dockerignore").write_text("**/__pycache__\n**/.venv\n")
    return root


@pytest.fixture(scope="module")
def own_docker(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedGcp:
    spec_dir = tmp_path_factory.mktemp("own-docker")
    write_monorepo(spec_dir / "repo")
    return synth_spec(
        spec_dir,
        {
            "app": {
                "path": "repo/backend",
                "entrypoint": "app.main:app",
                "dockerfile": "Dockerfile",
                "build_context": "..",
                "health_path": "/ping",
                "migrations": {"kind": "command", "command": ["python", "-m", "app.migrate"]},
                "database": {"driver": "psycopg2", "settings": "url", "url_scheme": "postgresql"},
            }
        },
    )


def test_own_dockerfile_is_built_from_its_context_with_f(own_docker: SynthesizedGcp) -> None:
    _, _, argv = provisioned(own_docker, "gcloud builds submit")
    stack_dir = ROOT / "cdktf.out" / "stacks" / "apps-gcp"
    context = argv[3].replace("${path.module}", str(stack_dir))
    assert Path(os.path.normpath(context)) == own_docker.spec.app.directory.parent
    substitutions = next(a for a in argv if a.startswith("--substitutions="))
    assert substitutions.endswith(",_DOCKERFILE=backend/Dockerfile")
    # The image's own CMD (fastapi run): no command on the service.
    assert "command" not in container(own_docker, SERVICE)


def test_own_image_runs_the_migration_command_as_it_is(own_docker: SynthesizedGcp) -> None:
    assert container(own_docker, JOB)["command"] == ["python", "-m", "app.migrate"]
    assert "FASTAPI_DEPLOY_MIGRATIONS" not in env_of(own_docker, JOB)


def test_psycopg2_url_has_the_localhost_form_for_service_and_job(own_docker: SynthesizedGcp) -> None:
    expected = f"postgresql://app:{owner_password(own_docker)}@localhost/app?host={socket(own_docker)}"
    assert secret_value(own_docker, SERVICE, "DATABASE_URL") == expected
    assert secret_value(own_docker, JOB, "DATABASE_URL") == expected
    # The sample's role and settings are ours alone.
    assert not {"APP_DB_USER", "APP_DB_PASSWORD", "DB_POOL_SIZE", "APP_NAME"} & set(env_of(own_docker, JOB))
    secret_ids = {p["secret_id"] for p in own_docker.resources("google_secret_manager_secret").values()}
    assert secret_ids == {"apps-dev-database-url", "apps-dev-secret-key"}


def test_the_tag_follows_the_dockerignore_of_the_context(tmp_path: Path) -> None:
    from constructs_lib.gcp.image import source_hash

    context = write_monorepo(tmp_path / "repo")
    before = source_hash(context, "backend/Dockerfile")
    (context / "backend" / "app" / "__pycache__").mkdir(exist_ok=True)
    (context / "backend" / "app" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (context / ".venv").mkdir()
    (context / ".venv" / "lib.py").write_text("x")
    assert source_hash(context, "backend/Dockerfile") == before
    (context / "shared" / "extra.py").write_text("")  # shared/ is in the context: a new tag
    assert source_hash(context, "backend/Dockerfile") != before


def test_dockerignore_rules() -> None:
    from pathlib import PurePosixPath as P

    from constructs_lib.gcp.image import DockerIgnore

    ignore = DockerIgnore.parse(
        ["# comment", "**/*.log", "build", "docs/*.md", "!docs/keep.md", "/secret?.txt"]
    )
    assert ignore.excludes(P("a/b/c.log")) and ignore.excludes(P("c.log"))
    assert ignore.excludes(P("build/x/y.py"))  # a directory's rule covers what is below it
    assert ignore.excludes(P("docs/a.md")) and not ignore.excludes(P("docs/keep.md"))
    assert not ignore.excludes(P("docs/sub/a.md"))  # * stays within one segment
    assert ignore.excludes(P("secret1.txt")) and not ignore.excludes(P("src/secret1.txt"))


def test_a_dockerfile_outside_its_context_is_refused(tmp_path: Path) -> None:
    from constructs_lib.gcp.image import own_build_context

    (tmp_path / "app").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ValueError, match="outside its build context"):
        own_build_context(
            tmp_path / "app", dockerfile="../Dockerfile", context=".", deploy_base=tmp_path, deploy_prefix="x"
        )


# --- a generated image (an app without a Dockerfile) ---------------------------------------


def write_app(directory: Path, *, alembic: bool = False) -> Path:
    """A small app: main.py, a hash-locked requirements.txt (our sample's, which has uvicorn:
    no resolution needed), junk that must not reach the image."""
    directory.mkdir(parents=True)
    (directory / "main.py").write_text(HELLO)
    shutil.copy(SERVICE_DIR / "requirements.txt", directory / "requirements.txt")
    if alembic:
        (directory / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
        (directory / "migrations").mkdir()
        (directory / "migrations" / "env.py").write_text("")
    for junk in (".venv/lib.py", "tests/test_main.py", "__pycache__/main.cpython-312.pyc", ".git/HEAD"):
        (directory / junk).parent.mkdir(parents=True, exist_ok=True)
        (directory / junk).write_text("junk")
    (directory / ".env").write_text("SECRET_KEY=local")
    return directory


def tree(directory: Path) -> dict[str, float]:
    return {str(p.relative_to(directory)): p.stat().st_mtime for p in directory.rglob("*")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthesizedGcp, Path, dict[str, float]]:
    spec_dir = tmp_path_factory.mktemp("generated")
    app_dir = write_app(spec_dir / "api", alembic=True)
    before = tree(app_dir)
    synth = synth_spec(
        spec_dir,
        {
            "app": {
                "path": "api",
                "entrypoint": "main:app",
                "health_path": "/healthz",
                "port": 9000,
                "dependencies": "requirements.txt",
                "migrations": {"kind": "alembic"},
                "database": {"driver": "psycopg", "settings": "parts"},
                "secret_key_variable": "APP_SECRET",
            }
        },
    )
    return synth, app_dir, before


def test_generated_dockerfile_serves_the_app_through_the_entry(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, _, _ = generated
    context = synth.stack.service.container_image.context.directory
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("# Generated by serverless-fastapi")
    assert "FROM python:3.12-slim-bookworm" in dockerfile
    assert "pip install --require-hashes" in dockerfile
    assert "python -m compileall -q /app /opt/serverless-fastapi" in dockerfile
    # The base image's standard library gets its bytecode too (docker-library/python removes it).
    assert 'sysconfig.get_path("stdlib")' in dockerfile
    assert 'FASTAPI_DEPLOY_ENTRYPOINT="main:app"' in dockerfile
    assert "USER 10001" in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["python", "-m", "serverless_fastapi_entry", "serve"]')
    lock = (context / "requirements.lock.txt").read_text()
    assert "--hash=sha256:" in lock and re.search(r"^uvicorn==", lock, re.MULTILINE)
    # Built from the staged context (an asset), with its Dockerfile at the root.
    _, _, argv = provisioned(synth, "gcloud builds submit")
    assert argv[3].startswith("${path.module}/assets/")
    assert next(a for a in argv if a.startswith("--substitutions=")).endswith(",_DOCKERFILE=Dockerfile")
    assert "command" not in app_container(synth, SERVICE)
    probe = app_container(synth, SERVICE)["startup_probe"]["http_get"]
    assert probe["path"] == "/healthz"
    # app.port: where Cloud Run sends requests and probes, and what it sets $PORT to.
    assert app_container(synth, SERVICE)["ports"]["container_port"] == 9000
    assert probe["port"] == 9000
    assert app_container(synth, SERVICE)["liveness_probe"]["http_get"]["port"] == 9000


def test_staged_context_holds_the_app_and_the_entry_not_the_junk(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, app_dir, before = generated
    context = synth.stack.service.container_image.context.directory
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert {
        "Dockerfile",
        "requirements.lock.txt",
        "app/main.py",
        "app/alembic.ini",
        "app/migrations/env.py",
    } <= files
    assert "serverless_fastapi_entry/__main__.py" in files
    assert not [f for f in files if re.search(r"(^|/)(\.venv|tests|__pycache__|\.git|\.env)(/|$)", f)]
    assert not context.is_relative_to(app_dir)
    assert tree(app_dir) == before  # the user's directory is never written to


def test_generated_image_migrates_through_the_entry(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, _, _ = generated
    from constructs_lib.gcp.sql_proxy import quit_after

    # Run by the wrapper that stops the Cloud SQL Auth Proxy once the migrations have exited.
    assert app_container(synth, JOB)["command"] == quit_after(
        ["python", "-m", "serverless_fastapi_entry", "migrate"]
    )
    migrations = json.loads(env_of(synth, JOB)["FASTAPI_DEPLOY_MIGRATIONS"])
    assert migrations == {"kind": "alembic", "config": "alembic.ini"}


def test_database_parts_and_the_named_secret_key(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, _, _ = generated
    for kind in (SERVICE, JOB):
        env = env_of(synth, kind)
        # A TCP host a URL validator takes: the Cloud SQL Auth Proxy sidecar (pydantic refuses
        # the /cloudsql/<connection> socket path as a host).
        assert env["POSTGRES_SERVER"] == "127.0.0.1"
        assert (env["POSTGRES_PORT"], env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("5432", "app", "app")
        assert secret_value(synth, kind, "POSTGRES_PASSWORD") == owner_password(synth)
        assert re.fullmatch(r"\$\{random_password\.[\w-]+\.result\}", secret_value(synth, kind, "APP_SECRET"))
        assert "SECRET_KEY" not in env and "DATABASE_URL" not in env


# --- apps reading the database in parts: the Cloud SQL Auth Proxy sidecar ----------------------

PROXY_IMAGE = re.compile(r"gcr\.io/cloud-sql-connectors/cloud-sql-proxy:2\.\d+\.\d+")


def assert_proxy_beside(synth: SynthesizedGcp, kind: str, app_name: str) -> dict[str, Any]:
    """The proxy on 127.0.0.1:5432 for this instance, its /startup probe gating the app's
    container (which alone keeps ports, and has no /cloudsql volume); returns the proxy."""
    assert [c.get("name") for c in containers(synth, kind)] == [app_name, "cloud-sql-proxy"]
    app, proxy = app_container(synth, kind), proxy_container(synth, kind)
    assert app["depends_on"] == ["cloud-sql-proxy"]
    assert PROXY_IMAGE.fullmatch(proxy["image"]), proxy["image"]
    args = proxy["args"]
    assert args[0] == connection_name(synth)
    assert {"--address=127.0.0.1", "--port=5432", "--health-check", "--http-address=0.0.0.0"} <= set(args)
    assert "--http-port=9801" in args
    probe = proxy["startup_probe"]
    assert probe["http_get"] == {"path": "/startup", "port": 9801}
    assert probe["timeout_seconds"] < probe["period_seconds"]
    assert "ports" not in proxy and "env" not in proxy
    assert proxy["resources"]["limits"]["memory"] == "512Mi"
    _, resource = synth.single(kind)
    template = resource["template"] if kind == SERVICE else resource["template"]["template"]
    assert "volumes" not in template and "volume_mounts" not in app
    return proxy


def test_parts_service_reaches_the_database_through_the_proxy_sidecar(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, _, _ = generated
    proxy = assert_proxy_beside(synth, SERVICE, "app")
    app = app_container(synth, SERVICE)
    assert app["ports"] == {"container_port": 9000}  # app.port
    # The app keeps the spec's CPU and memory; the proxy adds half a CPU, throttled as the app's.
    assert app["resources"]["limits"] == {"cpu": "1", "memory": "1024Mi"}
    assert proxy["resources"] == {
        "limits": {"cpu": "500m", "memory": "512Mi"},
        "cpu_idle": True,
        "startup_cpu_boost": True,
    }
    assert "--lazy-refresh" in proxy["args"]  # the CPU is throttled outside requests
    assert "--quitquitquit" not in proxy["args"]
    # The password still comes from its secret, read by the app's container alone.
    assert secret_value(synth, SERVICE, "POSTGRES_PASSWORD") == owner_password(synth)


def test_parts_migration_job_uses_the_sidecar_and_stops_it(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]],
) -> None:
    synth, _, _ = generated
    proxy = assert_proxy_beside(synth, JOB, "migrate")
    # A job needs at least 1 CPU; the proxy quits when asked, and exits 0 on SIGTERM.
    assert proxy["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}}
    assert {"--quitquitquit", "--admin-port=9091", "--exit-zero-on-sigterm"} <= set(proxy["args"])
    command = app_container(synth, JOB)["command"]
    assert command[:2] == ["python", "-c"] and "quitquitquit" in command[2]
    assert secret_value(synth, JOB, "POSTGRES_PASSWORD") == owner_password(synth)


def test_url_app_keeps_the_cloudsql_volume_and_one_container(own_docker: SynthesizedGcp) -> None:
    for kind in (SERVICE, JOB):
        assert len(containers(own_docker, kind)) == 1
        assert "name" not in app_container(own_docker, kind)
        assert "depends_on" not in app_container(own_docker, kind)
        assert app_container(own_docker, kind)["volume_mounts"] == [
            {"name": "cloudsql", "mount_path": "/cloudsql"}
        ]
    assert container(own_docker, JOB)["command"] == ["python", "-m", "app.migrate"]
    _, service = own_docker.single(SERVICE)
    assert service["template"]["volumes"] == [
        {"name": "cloudsql", "cloud_sql_instance": {"instances": [connection_name(own_docker)]}}
    ]


@pytest.mark.slow
def test_checkov_passes_the_parts_stack(
    generated: tuple[SynthesizedGcp, Path, dict[str, float]], tmp_path: Path
) -> None:
    """The sample's checkov config over the stack with the sidecar in the service and the job."""
    from tests.infra.test_gcp_compliance import CHECKOV_CONFIG, checkov_readable, failed_checks, run_checkov

    synth, _, _ = generated
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "cdk.tf.json").write_text(json.dumps(checkov_readable(json.loads(synth.synth))))
    report, result = run_checkov(tmp_path, "--config-file", str(CHECKOV_CONFIG))
    failed = failed_checks(report)
    assert failed == [], "\n".join(failed)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    passed = {check["check_id"] for section in report for check in section["results"]["passed_checks"]}
    assert {"CKV_GCP_6", "CKV_GCP_111"} <= passed  # the SQL instance was parsed


def test_the_spec_leaves_room_for_the_proxy(tmp_path: Path) -> None:
    """Refused before any resource, naming the spec's fields."""
    write_app(tmp_path / "api")
    app = {
        "path": "api",
        "entrypoint": "main:app",
        "health_path": "/healthz",
        "migrations": {"kind": "none"},
        "database": {"driver": "psycopg", "settings": "parts"},
    }
    with pytest.raises(ValueError, match=r"compute\.cpu 8 leaves no room for the Cloud SQL Auth Proxy"):
        synth_spec(tmp_path, {"app": app, "compute": {"cpu": 8, "memory_mib": 4096}}, stack_id="room-8")
    with pytest.raises(ValueError, match=r"compute\.memory_mib 4096 plus 512 MiB .* compute\.cpu 1"):
        synth_spec(tmp_path, {"app": app, "compute": {"cpu": 1, "memory_mib": 4096}}, stack_id="room-1")
    # The same sizes with a URL: no sidecar, no refusal.
    url_app = {**app, "database": {"driver": "psycopg", "settings": "url"}}
    synth = synth_spec(
        tmp_path, {"app": url_app, "compute": {"cpu": 1, "memory_mib": 4096}}, stack_id="room-url"
    )
    assert len(containers(synth, SERVICE)) == 1


def quit_after_with(url: str) -> list[str]:
    from constructs_lib.gcp.sql_proxy import QUIT_AFTER_SOURCE, QUIT_URL, quit_after

    command = quit_after([sys.executable, "-c", "import sys; print('migrated'); sys.exit(3)"])
    command[0] = sys.executable
    command[2] = QUIT_AFTER_SOURCE.replace(QUIT_URL, url)
    assert command[2] != QUIT_AFTER_SOURCE
    return command


@pytest.mark.slow
def test_the_wrapper_stops_the_proxy_and_keeps_the_command_exit_code() -> None:
    """Run for real: the command's output and exit code pass through, then one POST reaches
    /quitquitquit (a stand-in for the proxy's admin server); with no proxy listening, the
    wrapper says so and still exits with the command's code."""
    import http.server
    import threading

    requests: list[tuple[str, str]] = []

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            requests.append((self.command, self.path))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Admin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/quitquitquit"
        result = subprocess.run(quit_after_with(url), capture_output=True, text=True, timeout=60, check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode, result.stdout) == (3, "migrated\n"), result.stderr
    assert requests == [("POST", "/quitquitquit")]

    with socket_module.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    result = subprocess.run(
        quit_after_with(f"http://127.0.0.1:{free}/quitquitquit"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "could not stop the Cloud SQL Auth Proxy" in result.stderr


# --- no database, no migrations (a generated image) ----------------------------------------


@pytest.fixture(scope="module")
def no_database(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedGcp:
    spec_dir = tmp_path_factory.mktemp("no-db")
    app_dir = write_app(spec_dir / "api")
    return synth_spec(
        spec_dir,
        {
            "app": {
                "path": app_dir.name,
                "entrypoint": "main:app",
                "health_path": "/healthz",
                "migrations": {"kind": "none"},
                "database": {"enabled": False},
                "secret_key_variable": None,
            },
            "environment": {"GREETING": "hello"},
        },
    )


def test_no_database_no_sql_anything(no_database: SynthesizedGcp) -> None:
    kinds = set(no_database.json["resource"])
    assert not {k for k in kinds if k.startswith("google_sql_")}
    apis = {p["service"] for p in no_database.resources("google_project_service").values()}
    assert "sqladmin.googleapis.com" not in apis
    roles = {p["role"] for p in no_database.resources("google_project_iam_member").values()}
    assert "roles/cloudsql.client" not in roles
    _, service = no_database.single(SERVICE)
    assert "volumes" not in service["template"]
    assert "volume_mounts" not in container(no_database, SERVICE)
    assert not no_database.resources("google_secret_manager_secret")
    assert not no_database.resources("random_password")


def test_no_migrations_no_job_and_no_run(no_database: SynthesizedGcp) -> None:
    assert not no_database.resources(JOB)
    assert not [
        p
        for p in no_database.resources("terraform_data").values()
        if "jobs execute" in p["provisioner"][0]["local-exec"]["command"]
    ]
    accounts = {p["account_id"] for p in no_database.resources("google_service_account").values()}
    assert accounts == {"apps-dev-run", "apps-dev-build"}
    # The service waits for its image instead.
    _, service = no_database.single(SERVICE)
    build, _, _ = provisioned(no_database, "gcloud builds submit")
    assert build in service["depends_on"]
    env = env_of(no_database, SERVICE)
    assert env == {"GOOGLE_CLOUD_PROJECT": "my-gcp-project", "GREETING": "hello"}


# --- each driver's URL form (the construct alone, one small stack per driver) --------------


@pytest.mark.parametrize(
    ("driver", "scheme", "host_required", "expected"),
    [
        ("asyncpg", None, False, "postgresql+asyncpg://app:{password}@/app?host={socket}"),
        ("asyncpg", None, True, "postgresql+asyncpg://app:{password}@localhost/app?host={socket}"),
        ("psycopg", None, False, "postgresql+psycopg://app:{password}@localhost/app?host={socket}"),
        ("psycopg2", "postgresql", False, "postgresql://app:{password}@localhost/app?host={socket}"),
    ],
)
def test_each_driver_gets_its_url_form(
    driver: str, scheme: str | None, host_required: bool, expected: str
) -> None:
    from constructs_lib.app import AppOptions, DatabaseSettings
    from constructs_lib.gcp.cloud_run_service import CloudRunService
    from constructs_lib.runtime import ALEMBIC_RUNNER_SOURCE

    stack = cdktf.TerraformStack(cdktf.Testing.app(), f"url-{driver}")
    arguments = sample_arguments()
    service = CloudRunService(
        stack,
        "service",
        project="my-gcp-project",
        region="europe-west1",
        name="svc-test",
        build=arguments["build"],
        app=AppOptions(
            entrypoint="main:app",
            migrations="alembic",
            database=DatabaseSettings(driver=driver, url_scheme=scheme, host_required=host_required),  # type: ignore[arg-type]
        ),
    )
    # The app's own image (our sample's here) has no runtime entry: the Alembic runner's
    # source, given to the image's python, with the "database newer than this code" rule.
    assert service.migrations is not None
    job = next(iter(json.loads(cdktf.Testing.synth(stack))["resource"][JOB].values()))
    assert job["template"]["template"]["containers"][0]["command"] == [
        "python",
        "-c",
        ALEMBIC_RUNNER_SOURCE,
        "alembic.ini",
    ]
    synthesized = json.loads(cdktf.Testing.synth(stack))
    versions = list(synthesized["resource"]["google_secret_manager_secret_version"].values())
    urls = [v["secret_data_wo"] for v in versions if "://" in v["secret_data_wo"]]
    assert service.database is not None
    user = next(iter(synthesized["resource"]["google_sql_user"].values()))
    instance = next(iter(synthesized["resource"]["google_sql_database_instance"]))
    socket_dir = "/cloudsql/${google_sql_database_instance." + instance + ".connection_name}"
    assert urls == [expected.format(password=user["password_wo"], socket=socket_dir)]


def test_gcloud_uploads_what_docker_would_see(tmp_path: Path) -> None:
    """gcloud builds submit reads .gitignore by default (a git-ignored file the Dockerfile copies
    would not be uploaded; a context without one uploads .venv): the own context's upload rules
    are its .dockerignore, anchored at the root as Docker anchors them, and never the
    Dockerfile nor .dockerignore."""
    from constructs_lib.gcp.image import gcloud_ignore_text

    (tmp_path / ".dockerignore").write_text(
        "# comment\n.venv\n**/*.pyc\n!keep.pyc\n./build\nbackend/Dockerfile\n"
    )
    rules = gcloud_ignore_text(tmp_path, "backend/Dockerfile").splitlines()
    assert rules[1:] == [
        "/.git",
        "/.gcloudignore",
        "/.venv",
        "**/*.pyc",
        "!/keep.pyc",
        "/build",
        "/backend/Dockerfile",
        "!/backend/Dockerfile",
        "!/.dockerignore",
    ]


def test_an_own_context_is_uploaded_with_its_rules(gcp_dev: SynthesizedGcp) -> None:
    _, _, argv = provisioned(gcp_dev, "gcloud builds submit")
    (flag,) = [a for a in argv if a.startswith("--ignore-file=")]
    assert flag.startswith("--ignore-file=${abspath(path.module)}/assets/")
    rules = gcp_dev.stack.service.container_image.upload_rules
    assert flag.endswith("/" + rules.name)
    assert "/.pytest_cache" in rules.read_text().splitlines()  # service/.dockerignore's
