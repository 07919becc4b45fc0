"""The example apps on Google Cloud: each of tests/examples synthesized through GcpServiceStack
from the spec ``python app.py init`` writes for it (tests/example_specs.py), and checkov over
each stack's Terraform JSON.

All five stacks are synthesized once per session, in one cdktf App (the provider bindings'
import costs seconds). The generated-image examples resolve their dependencies for the image
(CPython 3.12, x86-64) into the spec's lock directory, beside the spec (a temporary one here).

The expectations are written out per example, not read back from the spec, so a detection that
drifts fails here too.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.example_specs import EXAMPLE_NAMES, EXAMPLES_DIR, detected_spec
from tests.infra.gcp_synth import SynthesizedGcp
from tests.infra.test_gcp_apps import env_of, owner_password, secret_value, socket
from tests.infra.test_gcp_compliance import (
    CHECKOV_CONFIG,
    MUST_PASS,
    checkov_readable,
    configured_skips,
    failed_checks,
    run_checkov,
)
from tests.infra.test_gcp_stack import JOB, PROJECT, REGION, SERVICE, container, provisioned

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ENTRY_MIGRATE = ["python", "-m", "serverless_fastapi_entry", "migrate"]


@dataclass(frozen=True)
class Expected:
    """What init detects in the example, and what its image bakes in (generated images)."""

    name: str  # the stack's spec.name: <project>-dev
    health_path: str
    # The FASTAPI_DEPLOY_* variables of a generated image; None: the app's own Dockerfile.
    entry_env: dict[str, str] | None
    module_file: str | None = None  # the entrypoint's module, in the staged context
    packages: frozenset[str] = frozenset()  # some of what the image's lock must pin
    database: bool = False
    alembic: bool = False
    secrets: frozenset[str] = frozenset()  # the Secret Manager secrets' ids


EXPECTED = {
    "hello": Expected(
        name="hello-dev",
        health_path="/health",
        entry_env={"FASTAPI_DEPLOY_ENTRYPOINT": "main:app", "FASTAPI_DEPLOY_FACTORY": "0"},
        module_file="app/main.py",
        packages=frozenset({"fastapi", "uvicorn"}),
    ),
    "factory_uv": Expected(
        name="shop-dev",
        health_path="/healthz",
        entry_env={
            "FASTAPI_DEPLOY_ENTRYPOINT": "shop.app:create_app",
            "FASTAPI_DEPLOY_FACTORY": "1",
            "FASTAPI_DEPLOY_SOURCE_ROOT": "src",
        },
        module_file="app/src/shop/app.py",
        packages=frozenset({"fastapi", "uvicorn", "sqlalchemy", "greenlet", "asyncpg", "alembic"}),
        database=True,
        alembic=True,
        secrets=frozenset({"shop-dev-database-url"}),
    ),
    "sync_sqlmodel": Expected(
        name="sync-sqlmodel-dev",
        health_path="/api/v1/utils/health-check/",
        entry_env={"FASTAPI_DEPLOY_ENTRYPOINT": "app.main:app", "FASTAPI_DEPLOY_FACTORY": "0"},
        module_file="app/app/main.py",
        packages=frozenset({"fastapi", "uvicorn", "sqlmodel", "psycopg", "psycopg-binary", "alembic"}),
        database=True,
        alembic=True,
        secrets=frozenset({"sync-sqlmodel-dev-database-url", "sync-sqlmodel-dev-secret-key"}),
    ),
    "own_docker": Expected(
        name="own-docker-dev",
        health_path="/ping",
        entry_env=None,
        database=True,
        secrets=frozenset({"own-docker-dev-database-url"}),
    ),
    "no_db": Expected(
        name="no-db-dev",
        health_path="/status",
        entry_env={"FASTAPI_DEPLOY_ENTRYPOINT": "app:application", "FASTAPI_DEPLOY_FACTORY": "0"},
        module_file="app/app.py",
        packages=frozenset({"fastapi", "uvicorn", "gunicorn"}),
    ),
}
GENERATED = [name for name in EXAMPLE_NAMES if EXPECTED[name].entry_env is not None]
WITHOUT_DATABASE = [name for name in EXAMPLE_NAMES if not EXPECTED[name].database]
ALEMBIC = [name for name in EXAMPLE_NAMES if EXPECTED[name].alembic]


def stack_id(synth: SynthesizedGcp) -> str:
    return f"{synth.spec.name}-gcp"


@pytest.fixture(scope="session")
def gcp_examples() -> dict[str, SynthesizedGcp]:
    """Each example's stack, all in one App, from the spec init wrote for it."""
    import cdktf

    from stacks.gcp_stack import GcpServiceStack

    app = cdktf.Testing.app()
    stacks = {}
    for name in EXAMPLE_NAMES:
        spec = detected_spec(name)
        stacks[name] = (spec, GcpServiceStack(app, f"{spec.name}-gcp", spec=spec))
    synthesized = {}
    for name, (spec, stack) in stacks.items():
        text = cdktf.Testing.synth(stack)
        synthesized[name] = SynthesizedGcp(spec=spec, stack=stack, synth=text, json=json.loads(text))
    return synthesized


@pytest.fixture(params=EXAMPLE_NAMES)
def example(request: pytest.FixtureRequest, gcp_examples: dict[str, SynthesizedGcp]) -> SynthesizedGcp:
    return gcp_examples[request.param]


@pytest.fixture(params=GENERATED)
def generated(request: pytest.FixtureRequest, gcp_examples: dict[str, SynthesizedGcp]) -> SynthesizedGcp:
    return gcp_examples[request.param]


def expected(synth: SynthesizedGcp) -> Expected:
    (found,) = [e for e in EXPECTED.values() if e.name == synth.spec.name]
    return found


def service_address(synth: SynthesizedGcp) -> str:
    name, _ = synth.single(SERVICE)
    return f"{SERVICE}.{name}"


def build_argv(synth: SynthesizedGcp) -> list[str]:
    _, _, argv = provisioned(synth, "gcloud builds submit")
    return argv


def substitutions(argv: list[str]) -> dict[str, str]:
    value = next(a for a in argv if a.startswith("--substitutions=")).removeprefix("--substitutions=")
    return dict(item.split("=", 1) for item in value.split(","))


def image_env(dockerfile: str) -> dict[str, str]:
    """The variables of the generated Dockerfile's last ENV (the one baked for the entry)."""
    blocks = re.findall(r"^ENV (.*?)(?<!\\)\n", dockerfile, re.MULTILINE | re.DOTALL)
    assignments = re.split(r"\s*\\\n\s*", blocks[-1])
    return {key: json.loads(value) for key, value in (a.split("=", 1) for a in assignments)}


def pinned(lock: str) -> dict[str, str]:
    """name -> version of every requirement in a lock; each must carry a sha256 hash."""
    found = {}
    for raw in lock.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(
            r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==(\S+)(?:\s*;[^-]*)?((?:\s+--hash=sha256:[0-9a-f]{64})+)", line
        )
        assert match, f"not pinned with a hash: {line}"
        found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


# --- what init detected ----------------------------------------------------------------------


def test_each_example_is_the_app_init_found(example: SynthesizedGcp) -> None:
    assert example.spec.app.health_path == expected(example).health_path
    assert example.spec.app.database.enabled == expected(example).database
    assert (example.spec.app.migrations.kind.value == "alembic") == expected(example).alembic


# --- the image ---------------------------------------------------------------------------------


def test_own_docker_builds_its_dockerfile_from_the_examples_root(
    gcp_examples: dict[str, SynthesizedGcp],
) -> None:
    from constructs_lib.gcp.image import source_hash

    synth = gcp_examples["own_docker"]
    context = synth.stack.service.container_image.context
    root = EXAMPLES_DIR / "own_docker"
    assert context.directory == root and context.dockerfile == "backend/Dockerfile"
    assert not context.runs_entry
    argv = build_argv(synth)
    # Named from where Terraform runs the provisioner: cdktf.out/stacks/<stack>/.
    stack_dir = ROOT / "cdktf.out" / "stacks" / stack_id(synth)
    assert Path(os.path.normpath(argv[3].replace("${path.module}", str(stack_dir)))) == root
    # docker build --file backend/Dockerfile . (cloudbuild.yaml's _DOCKERFILE)
    image = (
        f"{REGION}-docker.pkg.dev/{PROJECT}/own-docker-dev/api:{source_hash(root, 'backend/Dockerfile')[:16]}"
    )
    assert substitutions(argv) == {"_IMAGE": image, "_DOCKERFILE": "backend/Dockerfile"}
    assert container(synth, SERVICE)["image"] == image
    # Its CMD (fastapi run ... --port 8080) as it is: no command, no entry variables.
    assert "command" not in container(synth, SERVICE) and "args" not in container(synth, SERVICE)
    assert not [k for k in env_of(synth, SERVICE) if k.startswith("FASTAPI_DEPLOY_")]


def test_generated_dockerfile_bakes_the_entry(generated: SynthesizedGcp) -> None:
    context = generated.stack.service.container_image.context
    assert context.runs_entry and context.dockerfile == "Dockerfile"
    assert not context.directory.is_relative_to(generated.spec.app.directory)
    dockerfile = (context.directory / "Dockerfile").read_text()
    assert dockerfile.startswith("# Generated by serverless-fastapi")
    assert "pip install --require-hashes" in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["python", "-m", "serverless_fastapi_entry", "serve"]')
    assert image_env(dockerfile) == {
        "PYTHONPATH": "/opt/serverless-fastapi",
        **(expected(generated).entry_env or {}),
    }
    # The service runs the image's CMD; the entry variables are in the image, not the service.
    assert "command" not in container(generated, SERVICE)
    assert not [k for k in env_of(generated, SERVICE) if k.startswith("FASTAPI_DEPLOY_")]


def test_generated_context_holds_the_app_the_entry_and_a_hashed_lock(generated: SynthesizedGcp) -> None:
    from constructs_lib.gcp.image import source_hash

    context = generated.stack.service.container_image.context.directory
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    module_file = expected(generated).module_file
    assert module_file is not None
    assert {
        "Dockerfile",
        "requirements.lock.txt",
        module_file,
        "serverless_fastapi_entry/__main__.py",
    } <= files
    if expected(generated).alembic:
        assert "app/alembic.ini" in files
    assert not [f for f in files if re.search(r"(^|/)(\.venv|tests|__pycache__|\.git|\.env)(/|$)", f)]
    lock = (context / "requirements.lock.txt").read_text()
    assert expected(generated).packages <= set(pinned(lock))
    # Resolved for the image's target (CPython 3.12, x86-64) into the spec's lock directory.
    locks = [p.read_text() for p in generated.spec.lock_dir.glob("requirements-cp312-x86_64-*.txt")]
    assert lock in locks
    # Cloud Build builds the staged copy (an asset of the stack), its Dockerfile at the root.
    argv = build_argv(generated)
    assert argv[3].startswith("${path.module}/assets/")
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/{generated.spec.name}/api:{source_hash(context)[:16]}"
    assert substitutions(argv) == {"_IMAGE": image, "_DOCKERFILE": "Dockerfile"}
    assert container(generated, SERVICE)["image"] == image


def test_probes_use_the_detected_health_path(example: SynthesizedGcp) -> None:
    probes = container(example, SERVICE)
    for probe in ("startup_probe", "liveness_probe"):
        assert probes[probe]["http_get"] == {"path": expected(example).health_path, "port": 8080}, probe


# --- database, secrets, migrations -------------------------------------------------------------


@pytest.mark.parametrize("name", WITHOUT_DATABASE)
def test_no_database_no_cloud_sql(name: str, gcp_examples: dict[str, SynthesizedGcp]) -> None:
    synth = gcp_examples[name]
    assert not [kind for kind in synth.json["resource"] if kind.startswith("google_sql_")]
    apis = {p["service"] for p in synth.resources("google_project_service").values()}
    assert "sqladmin.googleapis.com" not in apis
    roles = {p["role"] for p in synth.resources("google_project_iam_member").values()}
    assert "roles/cloudsql.client" not in roles
    _, service = synth.single(SERVICE)
    assert "volumes" not in service["template"] and "volume_mounts" not in container(synth, SERVICE)
    assert "/cloudsql" not in synth.synth
    assert not synth.resources("google_secret_manager_secret") and not synth.resources("random_password")
    assert env_of(synth, SERVICE) == {"GOOGLE_CLOUD_PROJECT": PROJECT}
    assert not synth.resources(JOB)
    assert "jobs execute" not in synth.synth
    # The service waits for its image only.
    build, _, _ = provisioned(synth, "gcloud builds submit")
    assert service["depends_on"] == [build]


def test_secrets_are_exactly_the_apps(example: SynthesizedGcp) -> None:
    secret_ids = {p["secret_id"] for p in example.resources("google_secret_manager_secret").values()}
    assert secret_ids == expected(example).secrets


@pytest.mark.parametrize("name", ALEMBIC)
def test_alembic_migrates_through_the_entry_before_the_service(
    name: str, gcp_examples: dict[str, SynthesizedGcp]
) -> None:
    synth = gcp_examples[name]
    job_name, job = synth.single(JOB)
    assert job["name"] == f"{synth.spec.name}-migrate"
    assert container(synth, JOB)["command"] == ENTRY_MIGRATE
    assert container(synth, JOB)["image"] == container(synth, SERVICE)["image"]
    assert json.loads(env_of(synth, JOB)["FASTAPI_DEPLOY_MIGRATIONS"]) == {
        "kind": "alembic",
        "config": "alembic.ini",
    }
    run, props, _ = provisioned(synth, f"gcloud run jobs execute {synth.spec.name}-migrate ")
    assert props["depends_on"] == [f"{JOB}.{job_name}"]
    assert props["triggers_replace"]["image"] == container(synth, SERVICE)["image"]
    build, _, _ = provisioned(synth, "gcloud builds submit")
    assert build in job["depends_on"]
    # The service's revision waits for the migrations' run (which waits for the job and the image).
    _, service = synth.single(SERVICE)
    assert run in service["depends_on"]
    assert {run, f"{JOB}.{job_name}", build} <= synth.dependencies(service_address(synth))


def test_own_docker_reads_psycopg2s_socket_url_and_has_no_job(
    gcp_examples: dict[str, SynthesizedGcp],
) -> None:
    synth = gcp_examples["own_docker"]
    expected_url = f"postgresql://app:{owner_password(synth)}@localhost/app?host={socket(synth)}"
    assert secret_value(synth, SERVICE, "DATABASE_URL") == expected_url
    assert not synth.resources(JOB) and "jobs execute" not in synth.synth
    accounts = {p["account_id"] for p in synth.resources("google_service_account").values()}
    assert accounts == {"own-docker-dev-run", "own-docker-dev-build"}
    assert set(env_of(synth, SERVICE)) == {"GOOGLE_CLOUD_PROJECT", "DATABASE_URL"}
    _, service = synth.single(SERVICE)
    assert container(synth, SERVICE)["volume_mounts"] == [{"mount_path": "/cloudsql", "name": "cloudsql"}]
    assert service["template"]["volumes"][0]["name"] == "cloudsql"


def test_sync_sqlmodel_reads_psycopgs_url_with_a_host_and_a_secret_key(
    gcp_examples: dict[str, SynthesizedGcp],
) -> None:
    synth = gcp_examples["sync_sqlmodel"]
    expected_url = f"postgresql+psycopg://app:{owner_password(synth)}@localhost/app?host={socket(synth)}"
    for kind in (SERVICE, JOB):
        assert secret_value(synth, kind, "DATABASE_URL") == expected_url
        # Its settings refuse to start without SECRET_KEY: the migrations read it too.
        key = re.fullmatch(
            r"\$\{random_password\.([\w-]+)\.result\}", secret_value(synth, kind, "SECRET_KEY")
        )
        assert key, kind
        assert synth.resources("random_password")[key.group(1)]["length"] == 64
        assert set(env_of(synth, kind)) >= {"DATABASE_URL", "SECRET_KEY"}


def test_factory_uv_reads_asyncpgs_host_less_url(gcp_examples: dict[str, SynthesizedGcp]) -> None:
    synth = gcp_examples["factory_uv"]
    expected_url = f"postgresql+asyncpg://app:{owner_password(synth)}@/app?host={socket(synth)}"
    for kind in (SERVICE, JOB):
        assert secret_value(synth, kind, "DATABASE_URL") == expected_url
        assert "SECRET_KEY" not in env_of(synth, kind)


# --- checkov -------------------------------------------------------------------------------------

# What checkov must have parsed and passed on a stack without Cloud SQL: the service accounts
# (42), the registry (101), the build staging bucket (29, 114).
MUST_PASS_WITHOUT_DATABASE = {"CKV_GCP_42", "CKV_GCP_101", "CKV_GCP_29", "CKV_GCP_114"}


@pytest.fixture(scope="module")
def checkov_report(
    tmp_path_factory: pytest.TempPathFactory, gcp_examples: dict[str, SynthesizedGcp]
) -> list[dict[str, Any]]:
    """One checkov run (the sample's config) over every example's Terraform JSON."""
    root = tmp_path_factory.mktemp("gcp-examples")
    for name, synth in gcp_examples.items():
        (root / name).mkdir()
        (root / name / "cdk.tf.json").write_text(json.dumps(checkov_readable(json.loads(synth.synth))))
    report, result = run_checkov(root, "--config-file", str(CHECKOV_CONFIG))
    failed = failed_checks(report)
    assert failed == [], "\n".join(failed)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return report


@pytest.mark.slow
def test_checkov_passes_every_example(checkov_report: list[dict[str, Any]]) -> None:
    assert [section["check_type"] for section in checkov_report] == ["terraform_json"]
    results, summary = checkov_report[0]["results"], checkov_report[0]["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    passed = Counter(c["file_path"] for c in results["passed_checks"])
    for name in EXAMPLE_NAMES:
        file = f"/{name}/cdk.tf.json"
        ids = {c["check_id"] for c in results["passed_checks"] if c["file_path"] == file}
        if EXPECTED[name].database:
            assert passed[file] >= 25, f"{name}: only {passed[file]} checks passed"
            assert ids >= MUST_PASS | MUST_PASS_WITHOUT_DATABASE, name
        else:
            assert ids >= MUST_PASS_WITHOUT_DATABASE, name
    skipped = {check["check_id"] for check in results.get("skipped_checks", [])}
    assert skipped <= set(configured_skips())
