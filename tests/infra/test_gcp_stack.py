"""Fine-grained assertions on the synthesized Google Cloud stack: each bullet of the design.

Resources are found by type and properties, and followed through their references;
never by a generated logical name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cdktf
import pytest

from constructs_lib.gcp.image import source_hash
from tests.conftest import ROOT, SERVICE_DIR
from tests.infra.gcp_synth import SynthesizedGcp

PROJECT = "my-gcp-project"
REGION = "europe-west1"
APIS = {
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
}
SERVICE = "google_cloud_run_v2_service"
JOB = "google_cloud_run_v2_job"
SQL = "google_sql_database_instance"
SECRET = "google_secret_manager_secret"
VERSION = "google_secret_manager_secret_version"
SECRET_GRANT = "google_secret_manager_secret_iam_member"
PROJECT_GRANT = "google_project_iam_member"
ACCESSOR = "roles/secretmanager.secretAccessor"


def sample_arguments() -> dict[str, Any]:
    """What a CloudRunService of our sample takes besides its name and place."""
    from constructs_lib.app import AppOptions, DatabaseSettings
    from constructs_lib.gcp.image import BuildContext

    return {
        "app": AppOptions(
            entrypoint="webapi.main:create_app",
            migrations="command",
            migrate_command=("python", "-m", "webapi.migrate"),
            database=DatabaseSettings(settings="secret-arns"),
        ),
        "build": BuildContext(directory=SERVICE_DIR, deploy_path="service"),
    }


def has(synth: SynthesizedGcp, kind: str, properties: dict[str, Any]) -> None:
    """cdktf.Testing.to_have_resource_with_properties: objects match as subsets, lists element-wise."""
    assert cdktf.Testing.to_have_resource_with_properties(synth.synth, kind, properties), (
        f"no {kind} with {json.dumps(properties)}"
    )


def ref(address: str, attribute: str) -> str:
    return "${" + f"{address}.{attribute}" + "}"


def address_of(synth: SynthesizedGcp, kind: str) -> str:
    name, _ = synth.single(kind)
    return f"{kind}.{name}"


def service_account(synth: SynthesizedGcp, suffix: str) -> str:
    """Address of the service account ``<name>-<suffix>``."""
    names = [
        name
        for name, props in synth.resources("google_service_account").items()
        if props["account_id"] == f"{synth.spec.name}-{suffix}"
    ]
    assert len(names) == 1, names
    return f"google_service_account.{names[0]}"


def member(synth: SynthesizedGcp, suffix: str) -> str:
    return f"serviceAccount:{ref(service_account(synth, suffix), 'email')}"


def secret_address(synth: SynthesizedGcp, env_name: str, *, slug: str | None = None) -> str:
    """The secret ``<name>-<slug>``; the slug defaults to the env var's name in kebab case."""
    secret_id = f"{synth.spec.name}-{slug or env_name.lower().replace('_', '-')}"
    names = [n for n, p in synth.resources(SECRET).items() if p["secret_id"] == secret_id]
    assert len(names) == 1, f"{secret_id}: {names}"
    return f"{SECRET}.{names[0]}"


# What each container reads from Secret Manager: env var -> secret slug (the job's
# DATABASE_URL is the owner's URL, a secret of its own).
SERVICE_SECRETS = {"DATABASE_URL": "database-url", "SECRET_KEY": "secret-key"}
JOB_SECRETS = {
    "DATABASE_URL": "migrate-database-url",
    "APP_DB_PASSWORD": "app-db-password",
    "SECRET_KEY": "secret-key",
}
VARIANT_EXTRA = {"STRIPE_API_KEY": "stripe-api-key"}


def secrets_read(synth: SynthesizedGcp, kind: str) -> dict[str, str]:
    """Env var -> slug of every secret the service (``SERVICE``) or the job (``JOB``) reads."""
    service = {**SERVICE_SECRETS, **(VARIANT_EXTRA if synth.spec.secrets else {})}
    if synth.spec.cache.enabled:
        service["REDIS_URL"] = "redis-url"
    job = {**JOB_SECRETS, **(VARIANT_EXTRA if synth.spec.secrets else {})}
    return service if kind == SERVICE else job


def version_of(synth: SynthesizedGcp, secret: str) -> tuple[str, dict[str, Any]]:
    found = [(n, p) for n, p in synth.resources(VERSION).items() if p["secret"] == ref(secret, "id")]
    assert len(found) == 1, found
    name, props = found[0]
    return f"{VERSION}.{name}", props


def provisioned(synth: SynthesizedGcp, command_prefix: str) -> tuple[str, dict[str, Any], list[str]]:
    """The terraform_data whose local-exec command starts with ``command_prefix``."""
    found = [
        (name, props, props["provisioner"][0]["local-exec"]["command"].split())
        for name, props in synth.resources("terraform_data").items()
        if props["provisioner"][0]["local-exec"]["command"].startswith(command_prefix)
    ]
    assert len(found) == 1, found
    name, props, argv = found[0]
    return f"terraform_data.{name}", props, argv


def container(synth: SynthesizedGcp, kind: str) -> dict[str, Any]:
    _, resource = synth.single(kind)
    template = resource["template"] if kind == SERVICE else resource["template"]["template"]
    assert len(template["containers"]) == 1
    found: dict[str, Any] = template["containers"][0]
    return found


def image_of(synth: SynthesizedGcp) -> str:
    tag = source_hash(SERVICE_DIR)[:16]
    return f"{REGION}-docker.pkg.dev/{PROJECT}/{synth.spec.name}/api:{tag}"


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- APIs ---------------------------------------------------------------------------


def test_required_apis_are_enabled_and_left_on_at_destroy(gcp_dev: SynthesizedGcp) -> None:
    enabled = {props["service"] for props in gcp_dev.resources("google_project_service").values()}
    assert enabled == APIS
    for api in APIS:
        has(
            gcp_dev,
            "google_project_service",
            {"service": api, "project": PROJECT, "disable_on_destroy": False},
        )


def test_every_cloud_resource_waits_for_every_api(gcp_dev: SynthesizedGcp) -> None:
    apis = [f"google_project_service.{name}" for name in gcp_dev.resources("google_project_service")]
    # The first resources of each API wait for all of them explicitly ...
    for kind in (
        "google_artifact_registry_repository",
        "google_service_account",
        SQL,
        SECRET,
    ):
        has(gcp_dev, kind, {"depends_on": apis})
        assert all(set(apis) <= set(p.get("depends_on", [])) for p in gcp_dev.resources(kind).values()), kind
    # ... and everything else waits for those, through a reference or depends_on.
    checked = 0
    for address, _ in gcp_dev.all_resources():
        if address.startswith(("google_project_service.", "random_password.")):
            continue  # random_password is local: no API
        missing = set(apis) - gcp_dev.dependencies(address)
        assert not missing, f"{address} may start before {sorted(missing)}"
        checked += 1
    assert checked > 20


# --- Artifact Registry and the image ------------------------------------------------


def test_artifact_registry_docker_repository(gcp_dev: SynthesizedGcp) -> None:
    has(
        gcp_dev,
        "google_artifact_registry_repository",
        {"project": PROJECT, "location": REGION, "repository_id": "fastapi-svc-dev", "format": "DOCKER"},
    )


def test_cloud_run_runs_the_content_hash_tag_never_latest(gcp_dev: SynthesizedGcp) -> None:
    image = image_of(gcp_dev)
    assert gcp_dev.stack.service.image == image
    assert container(gcp_dev, SERVICE)["image"] == image
    assert container(gcp_dev, JOB)["image"] == image
    assert gcp_dev.json["output"]["image"]["value"] == image
    assert not re.search(r"docker\.pkg\.dev/[^\"\s]*:latest", gcp_dev.synth)


def test_image_is_built_by_cloud_build_from_service_when_its_hash_changes(gcp_dev: SynthesizedGcp) -> None:
    image = image_of(gcp_dev)
    build, props, argv = provisioned(gcp_dev, "gcloud builds submit")
    # A new tag (or a new build config) replaces it: a new build.
    assert props["triggers_replace"]["image"] == image
    assert set(props["triggers_replace"]) == {"image", "config"}
    # service/Dockerfile, at the root of its build context (service/).
    assert f"--substitutions=_IMAGE={image},_DOCKERFILE=Dockerfile" in argv
    config = next(a for a in argv if a.startswith("--config="))
    assert config.endswith("/cloudbuild.yaml") and config.startswith("--config=${path.module}/assets/")
    bucket = ref(address_of(gcp_dev, "google_storage_bucket"), "name")
    assert f"--gcs-source-staging-dir=gs://{bucket}/source" in argv
    assert {f"--project={PROJECT}", f"--region={REGION}", "--quiet"} <= set(argv)
    builder = ref(service_account(gcp_dev, "build"), "email")
    assert f"--service-account=projects/{PROJECT}/serviceAccounts/{builder}" in argv
    # The build context, seen from where cdktf writes the stack, is the service directory.
    stack_dir = ROOT / "cdktf.out" / "stacks" / f"{gcp_dev.spec.name}-gcp"
    context = argv[3].replace("${path.module}", str(stack_dir))
    assert Path(os.path.normpath(context)) == SERVICE_DIR
    assert "docker " not in gcp_dev.synth  # no local Docker daemon involved
    # It waits for the repository and the push grant; the job and the service wait for it.
    waits_for = gcp_dev.dependencies(build)
    assert address_of(gcp_dev, "google_artifact_registry_repository") in waits_for
    assert address_of(gcp_dev, "google_artifact_registry_repository_iam_member") in waits_for
    for kind in (JOB, SERVICE):
        assert build in gcp_dev.dependencies(address_of(gcp_dev, kind))


# source_hash is plain Python: tested on copies of service/, without cdktf.


@pytest.fixture
def service_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "elsewhere" / "service"
    shutil.copytree(SERVICE_DIR, copy)
    return copy


def test_source_hash_is_the_same_for_the_same_content_anywhere(service_copy: Path) -> None:
    assert source_hash(service_copy) == source_hash(SERVICE_DIR)
    assert re.fullmatch(r"[0-9a-f]{64}", source_hash(service_copy))


def test_source_hash_changes_when_a_file_changes(service_copy: Path) -> None:
    before = source_hash(service_copy)
    source = sorted((service_copy / "webapi").rglob("*.py"))[0]
    source.write_text(source.read_text() + "\n# one more line\n")
    after = source_hash(service_copy)
    assert after[:16] != before[:16]
    source.write_text(source.read_text().removesuffix("\n# one more line\n"))
    assert source_hash(service_copy) == before  # same content, same tag: nothing rolls


def test_source_hash_changes_when_a_file_is_added_or_renamed(service_copy: Path) -> None:
    before = source_hash(service_copy)
    (service_copy / "webapi" / "extra.py").write_text("")
    added = source_hash(service_copy)
    (service_copy / "webapi" / "extra.py").rename(service_copy / "webapi" / "other.py")
    assert len({before, added, source_hash(service_copy)}) == 3


def test_source_hash_ignores_caches_bytecode_and_env_files(service_copy: Path) -> None:
    before = source_hash(service_copy)
    (service_copy / "__pycache__").mkdir(exist_ok=True)
    (service_copy / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    (service_copy / "webapi" / "stray.pyc").write_bytes(b"\0")
    (service_copy / ".pytest_cache").mkdir()
    (service_copy / ".pytest_cache" / "README.md").write_text("cache")
    (service_copy / ".env").write_text("SECRET_KEY=local")
    assert source_hash(service_copy) == before


def test_source_hash_needs_a_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Dockerfile"):
        source_hash(tmp_path)


# --- Identities and grants ----------------------------------------------------------


def test_service_and_job_run_as_identities_of_their_own(gcp_dev: SynthesizedGcp) -> None:
    runtime, migrator = service_account(gcp_dev, "run"), service_account(gcp_dev, "migrate")
    assert len({runtime, migrator, service_account(gcp_dev, "build")}) == 3
    has(gcp_dev, SERVICE, {"template": {"service_account": ref(runtime, "email")}})
    has(gcp_dev, JOB, {"template": {"template": {"service_account": ref(migrator, "email")}}})


def test_each_identity_reads_exactly_its_secrets(
    gcp_dev: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    for synth in (gcp_dev, gcp_variant):
        for kind, suffix in ((SERVICE, "run"), (JOB, "migrate")):
            read = {
                props["secret_id"]
                for props in synth.resources(SECRET_GRANT).values()
                if props["member"] == member(synth, suffix)
            }
            expected = {
                ref(secret_address(synth, e, slug=s), "secret_id")
                for e, s in secrets_read(synth, kind).items()
            }
            assert read == expected, kind
            assert all(p["role"] == ACCESSOR for p in synth.resources(SECRET_GRANT).values())
        slugs = {*secrets_read(synth, SERVICE).values(), *secrets_read(synth, JOB).values()}
        assert len(synth.resources(SECRET)) == len(slugs)


def test_the_service_cannot_read_the_owner_url_or_the_role_password(gcp_variant: SynthesizedGcp) -> None:
    runtime = member(gcp_variant, "run")
    for slug in ("migrate-database-url", "app-db-password"):
        secret = ref(secret_address(gcp_variant, "", slug=slug), "secret_id")
        readers = {
            p["member"] for p in gcp_variant.resources(SECRET_GRANT).values() if p["secret_id"] == secret
        }
        assert readers == {member(gcp_variant, "migrate")}, slug
        assert runtime not in readers


def test_both_identities_are_cloud_sql_clients_of_their_instance_only(gcp_dev: SynthesizedGcp) -> None:
    has(gcp_dev, SQL, {"name": "fastapi-svc-dev-pg"})
    for suffix in ("run", "migrate"):
        has(
            gcp_dev,
            PROJECT_GRANT,
            {
                "project": PROJECT,
                "role": "roles/cloudsql.client",
                "member": member(gcp_dev, suffix),
                "condition": {
                    "expression": f'resource.name == "projects/{PROJECT}/instances/fastapi-svc-dev-pg"'
                },
            },
        )


def test_runtime_has_no_other_grant(gcp_dev: SynthesizedGcp, gcp_variant: SynthesizedGcp) -> None:
    # With uploads on (the variant): its objects (on the bucket) and signing as itself
    # (on itself); test_gcp_cache_storage.py checks where those grants sit.
    uploads = [
        ("google_service_account_iam_member", "roles/iam.serviceAccountTokenCreator"),
        ("google_storage_bucket_iam_member", "roles/storage.objectUser"),
    ]
    for synth, extra in ((gcp_dev, []), (gcp_variant, uploads)):
        for kind, suffix, own in ((SERVICE, "run", extra), (JOB, "migrate", [])):
            identity = member(synth, suffix)
            grants = sorted(
                (address.split(".")[0], props["role"])
                for address, props in synth.all_resources()
                if "_iam_" in address and identity in (props.get("member"), *props.get("members", []))
            )
            secrets = len(secrets_read(synth, kind))
            assert grants == sorted(
                [(PROJECT_GRANT, "roles/cloudsql.client"), *[(SECRET_GRANT, ACCESSOR)] * secrets, *own]
            ), kind


def test_grants_are_additive_and_never_basic_roles(gcp_dev: SynthesizedGcp) -> None:
    kinds = set(gcp_dev.json["resource"])
    assert not {k for k in kinds if k.endswith(("_iam_binding", "_iam_policy"))}  # never authoritative
    roles = {props["role"] for address, props in gcp_dev.all_resources() if "_iam_" in address}
    assert not roles & {"roles/owner", "roles/editor", "roles/viewer"}
    project_grants = {(props["member"], props["role"]) for props in gcp_dev.resources(PROJECT_GRANT).values()}
    builder = member(gcp_dev, "build")
    assert project_grants == {
        (member(gcp_dev, "run"), "roles/cloudsql.client"),
        (member(gcp_dev, "migrate"), "roles/cloudsql.client"),
        (builder, "roles/logging.logWriter"),
    }
    # The uploaded source: readable by the builder on its own staging bucket only.
    has(
        gcp_dev,
        "google_storage_bucket_iam_member",
        {
            "bucket": ref(address_of(gcp_dev, "google_storage_bucket"), "name"),
            "role": "roles/storage.objectViewer",
            "member": builder,
        },
    )
    has(
        gcp_dev,
        "google_storage_bucket",
        {"uniform_bucket_level_access": True, "public_access_prevention": "enforced"},
    )
    has(
        gcp_dev,
        "google_artifact_registry_repository_iam_member",
        {
            "repository": ref(address_of(gcp_dev, "google_artifact_registry_repository"), "name"),
            "role": "roles/artifactregistry.writer",
            "member": builder,
        },
    )


# --- Cloud Run service --------------------------------------------------------------


def test_scaling_and_concurrency_come_from_the_spec(
    gcp_dev: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    for synth, (low, high, concurrency) in ((gcp_dev, (0, 5, 80)), (gcp_variant, (1, 5, 40))):
        scaling = synth.spec.scaling
        assert (scaling.min_instances, scaling.max_instances, scaling.concurrency) == (low, high, concurrency)
        has(
            synth,
            SERVICE,
            {
                "template": {
                    "scaling": {"min_instance_count": low, "max_instance_count": high},
                    "max_instance_request_concurrency": concurrency,
                }
            },
        )


def test_container_cpu_memory_port_and_the_image_own_command(
    gcp_dev: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    for synth, cpu, memory in ((gcp_dev, "1", "1024Mi"), (gcp_variant, "2", "2048Mi")):
        # No command: the image's CMD runs (service/Dockerfile's `python -m webapi.serve`).
        assert synth.spec.app.command is None
        assert "command" not in container(synth, SERVICE)
        has(
            synth,
            SERVICE,
            {
                "template": {
                    "containers": [
                        {
                            "ports": {"container_port": 8080},
                            "resources": {
                                "limits": {"cpu": cpu, "memory": memory},
                                "cpu_idle": True,  # CPU only while serving requests
                                "startup_cpu_boost": True,
                            },
                        }
                    ]
                }
            },
        )


def test_startup_and_liveness_probes_hit_the_health_path(gcp_dev: SynthesizedGcp) -> None:
    health = {"http_get": {"path": "/health", "port": 8080}}
    has(
        gcp_dev,
        SERVICE,
        {"template": {"containers": [{"startup_probe": health, "liveness_probe": health}]}},
    )
    spec = container(gcp_dev, SERVICE)
    for probe in (spec["startup_probe"], spec["liveness_probe"]):
        assert 1 <= probe["timeout_seconds"] <= probe["period_seconds"]  # Cloud Run's rule
    startup = spec["startup_probe"]
    assert startup["period_seconds"] * startup["failure_threshold"] >= 30  # room for a cold start


def test_environment_plain_values_and_secrets_by_reference(
    gcp_dev: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    for synth, pool in ((gcp_dev, "2"), (gcp_variant, "10")):
        for kind in (SERVICE, JOB):
            env = {item["name"]: item for item in container(synth, kind)["env"]}
            assert env["ENVIRONMENT"] == {"name": "ENVIRONMENT", "value": synth.spec.stage.value}
            assert env["APP_NAME"]["value"] == "FastAPI Service"
            assert env["GOOGLE_CLOUD_PROJECT"]["value"] == PROJECT
            assert env["DB_POOL_SIZE"]["value"] == pool  # test_gcp_limits.py derives it
            assert env["DB_MAX_OVERFLOW"]["value"] == "0"
            assert env["DB_SSL_MODE"]["value"] == "disable"  # the /cloudsql socket is encrypted
            secrets = secrets_read(synth, kind)
            for name, slug in secrets.items():
                assert env[name] == {
                    "name": name,
                    "value_source": {
                        "secret_key_ref": {
                            "secret": ref(secret_address(synth, name, slug=slug), "secret_id"),
                            "version": "latest",
                        }
                    },
                }
            plain = {name for name, item in env.items() if "value" in item}
            assert not plain & {*secrets, "PASSWORD", "DB_PASSWORD"}
            # The role's name reaches the job only, as a plain value.
            assert ("APP_DB_USER" in plain) is (kind == JOB)
            if kind == JOB:
                assert env["APP_DB_USER"]["value"] == "app_service"


def test_deletion_protection_is_explicit_per_stage(gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp) -> None:
    """Off for the service and the job in both stages: they hold no data, and Terraform's
    protection would block replacing a first revision that failed (tainted), so a failed
    first deploy could not be retried. Cloud SQL keeps its protection in prod (below)."""
    for synth, protected in ((gcp_dev, False), (gcp_prod, False)):
        for kind in (SERVICE, JOB):
            _, resource = synth.single(kind)
            assert resource["deletion_protection"] is protected, kind


def test_public_invocation_by_default(gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp) -> None:
    for synth in (gcp_dev, gcp_prod):
        has(
            synth,
            "google_cloud_run_v2_service_iam_member",
            {
                "project": PROJECT,
                "location": REGION,
                "name": ref(address_of(synth, SERVICE), "name"),
                "role": "roles/run.invoker",
                "member": "allUsers",
            },
        )


def test_no_public_invocation_when_the_spec_says_so(gcp_variant: SynthesizedGcp) -> None:
    assert gcp_variant.spec.public is False
    assert not gcp_variant.resources("google_cloud_run_v2_service_iam_member")
    assert "allUsers" not in gcp_variant.synth and "allAuthenticatedUsers" not in gcp_variant.synth


# --- Cloud SQL for PostgreSQL -------------------------------------------------------


def test_cloud_sql_postgres_17_with_backups_per_stage(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp
) -> None:
    # Days in the spec, a count of daily backups on Cloud SQL, and the days of transaction logs
    # always explicit (Enterprise's default, 7, would exceed dev's backups). dev: 2 days of
    # backups, 1 of logs; prod: 14 days of backups, 7 of logs.
    for synth, tier, days, logs in ((gcp_dev, "db-f1-micro", 2, 1), (gcp_prod, "db-custom-2-8192", 14, 7)):
        assert synth.spec.database.backup_retention_days == days
        _, instance = synth.single(SQL)
        assert instance["database_version"] == "POSTGRES_17" and instance["region"] == REGION
        settings = instance["settings"]
        assert (settings["tier"], settings["edition"]) == (tier, "ENTERPRISE")
        backups = settings["backup_configuration"]
        assert backups["enabled"] is True
        assert backups["backup_retention_settings"] == {"retained_backups": days, "retention_unit": "COUNT"}
        assert backups["point_in_time_recovery_enabled"] is (logs is not None)
        assert backups.get("transaction_log_retention_days") == logs
        if logs is not None:
            assert backups["backup_retention_settings"]["retained_backups"] > logs  # Cloud SQL's rule


def test_cloud_sql_deletion_protection_in_prod_only(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp
) -> None:
    for synth, protected in ((gcp_dev, False), (gcp_prod, True)):
        has(
            synth,
            SQL,
            {"deletion_protection": protected, "settings": {"deletion_protection_enabled": protected}},
        )


def test_cloud_sql_is_reached_only_through_the_connector(gcp_dev: SynthesizedGcp) -> None:
    _, instance = gcp_dev.single(SQL)
    # Public IP, no authorized network, mutual TLS: what the Cloud SQL connector does.
    assert instance["settings"]["ip_configuration"] == {
        "ipv4_enabled": True,
        "ssl_mode": "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
    }


def test_cloudsql_volume_is_mounted_in_service_and_job(gcp_dev: SynthesizedGcp) -> None:
    connection = ref(address_of(gcp_dev, SQL), "connection_name")
    volume = {"name": "cloudsql", "cloud_sql_instance": {"instances": [connection]}}
    mount = {"name": "cloudsql", "mount_path": "/cloudsql"}
    has(gcp_dev, SERVICE, {"template": {"volumes": [volume], "containers": [{"volume_mounts": [mount]}]}})
    has(
        gcp_dev,
        JOB,
        {"template": {"template": {"volumes": [volume], "containers": [{"volume_mounts": [mount]}]}}},
    )


def test_database_and_user_with_a_write_only_password(gcp_dev: SynthesizedGcp) -> None:
    instance = address_of(gcp_dev, SQL)
    has(gcp_dev, "google_sql_database", {"instance": ref(instance, "name"), "name": "app"})
    _, user = gcp_dev.single("google_sql_user")
    assert user["instance"] == ref(instance, "name") and user["name"] == "app"
    assert re.fullmatch(r"\$\{random_password\.[\w-]+\.result\}", user["password_wo"])
    assert user["password_wo_version"] == 1
    assert "password" not in user


def test_generated_passwords(gcp_dev: SynthesizedGcp) -> None:
    passwords = {
        f"random_password.{name}": props for name, props in gcp_dev.resources("random_password").items()
    }
    # The owner's, the app role's (URL-safe: no special characters) and the signing key.
    assert sorted((p["length"], p["special"]) for p in passwords.values()) == [
        (32, False),
        (32, False),
        (64, False),
    ]
    _, user = gcp_dev.single("google_sql_user")
    _, role_password = version_of(gcp_dev, secret_address(gcp_dev, "APP_DB_PASSWORD"))
    _, secret_key = version_of(gcp_dev, secret_address(gcp_dev, "SECRET_KEY"))
    used = {user["password_wo"], role_password["secret_data_wo"], secret_key["secret_data_wo"]}
    assert used == {ref(address, "result") for address in passwords}
    assert secret_key["secret_data_wo"] in {
        ref(a, "result") for a, p in passwords.items() if p["length"] == 64
    }


def test_database_urls_point_at_the_cloudsql_socket(gcp_dev: SynthesizedGcp) -> None:
    """The service connects as app_service, the migration job as the owner (the built-in user)."""
    _, user = gcp_dev.single("google_sql_user")
    _, role_password = version_of(gcp_dev, secret_address(gcp_dev, "APP_DB_PASSWORD"))
    connection = ref(address_of(gcp_dev, SQL), "connection_name")
    socket = f"@/app?host=/cloudsql/{connection}"
    _, service_url = version_of(gcp_dev, secret_address(gcp_dev, "DATABASE_URL"))
    _, owner_url = version_of(gcp_dev, secret_address(gcp_dev, "", slug="migrate-database-url"))
    assert (
        service_url["secret_data_wo"]
        == f"postgresql+asyncpg://app_service:{role_password['secret_data_wo']}{socket}"
    )
    assert owner_url["secret_data_wo"] == f"postgresql+asyncpg://app:{user['password_wo']}{socket}"
    # A stack that stored the owner's URL in the service's secret (version 1) gets a new version.
    assert service_url["secret_data_wo_version"] == 2 and owner_url["secret_data_wo_version"] == 1


# --- Secret Manager -----------------------------------------------------------------


def test_secrets_have_write_only_versions(gcp_dev: SynthesizedGcp) -> None:
    slugs = {"database-url", "secret-key", "migrate-database-url", "app-db-password"}
    assert {p["secret_id"] for p in gcp_dev.resources(SECRET).values()} == {
        f"fastapi-svc-dev-{slug}" for slug in slugs
    }
    for slug in slugs:
        secret = secret_address(gcp_dev, "", slug=slug)
        has(
            gcp_dev,
            SECRET,
            {"secret_id": f"fastapi-svc-dev-{slug}", "project": PROJECT, "replication": {"auto": {}}},
        )
        _, version = version_of(gcp_dev, secret)
        assert set(version) == {"secret", "secret_data_wo", "secret_data_wo_version"}
        assert version["secret_data_wo_version"] == (2 if slug == "database-url" else 1)


def test_an_extra_secret_gets_a_grant_but_no_value(gcp_variant: SynthesizedGcp) -> None:
    stripe = secret_address(gcp_variant, "STRIPE_API_KEY")
    assert not [p for p in gcp_variant.resources(VERSION).values() if p["secret"] == ref(stripe, "id")]
    # The two database URLs, the role's password, SECRET_KEY, REDIS_URL.
    assert len(gcp_variant.resources(VERSION)) == 5


def test_service_and_job_depend_on_the_secret_versions_they_read(gcp_dev: SynthesizedGcp) -> None:
    assert len(gcp_dev.resources(VERSION)) == 4
    for kind in (SERVICE, JOB):
        _, resource = gcp_dev.single(kind)
        for env_name, slug in secrets_read(gcp_dev, kind).items():
            version, _ = version_of(gcp_dev, secret_address(gcp_dev, env_name, slug=slug))
            assert version in resource["depends_on"], (kind, env_name)


def test_only_write_only_attributes_carry_secrets(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    for synth in (gcp_dev, gcp_prod, gcp_variant):
        keys = {key for key, _ in walk(synth.json["resource"])}
        assert {"secret_data_wo", "password_wo"} <= keys
        assert not keys & {"secret_data", "password", "root_password"}


def test_no_secret_value_in_the_json(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp, gcp_variant: SynthesizedGcp
) -> None:
    # Generated passwords, or (REDIS_URL) Memorystore's AUTH string.
    generated = re.compile(
        r"\$\{(random_password\.[\w-]+\.result|urlencode\(google_redis_instance\.[\w-]+\.auth_string\))\}"
    )
    for synth in (gcp_dev, gcp_prod, gcp_variant):
        for key, value in walk([props for _, props in synth.all_resources()]):
            if re.search(r"password|secret_data|secret_key$", key, re.IGNORECASE) and not key.endswith(
                "_version"
            ):
                assert generated.search(str(value)), f"{key}: {value}"
        outside_references = re.sub(r"\$\{[^}]*\}", "", synth.synth)
        # No URL with literal credentials, nothing that looks like a generated password.
        assert not re.search(r"://[^/\s\"@]*:[^/\s\"@]+@", outside_references)
        # (asset paths carry cdktf's upper-case content hashes: not secrets)
        outside_assets = re.sub(r"assets/[\w-]+/[0-9A-F]{32}/", "", outside_references)
        outside_assets = re.sub(r'"config": "[0-9A-F]{32}"', "", outside_assets)
        tokens = re.findall(r"[A-Za-z0-9+/=]{16,}", outside_assets)
        mixed = [t for t in tokens if all(re.search(c, t) for c in ("[a-z]", "[A-Z]", "[0-9]"))]
        assert mixed == []


# --- Migrations ---------------------------------------------------------------------


def test_migration_job_runs_the_migrate_command(gcp_dev: SynthesizedGcp) -> None:
    has(
        gcp_dev,
        JOB,
        {
            "name": "fastapi-svc-dev-migrate",
            "location": REGION,
            "template": {
                "task_count": 1,
                "template": {
                    "max_retries": 0,  # a failed migration fails the deploy, never runs twice
                    "containers": [
                        {"image": image_of(gcp_dev), "command": ["python", "-m", "webapi.migrate"]}
                    ],
                },
            },
        },
    )
    waits_for = gcp_dev.dependencies(address_of(gcp_dev, JOB))
    assert {address_of(gcp_dev, "google_sql_database"), address_of(gcp_dev, "google_sql_user")} <= waits_for


def test_migrations_run_when_the_image_changes_before_the_service(gcp_dev: SynthesizedGcp) -> None:
    run, props, argv = provisioned(gcp_dev, "gcloud run jobs execute")
    assert argv[4] == "fastapi-svc-dev-migrate"
    assert {"--wait", f"--project={PROJECT}", f"--region={REGION}"} <= set(argv)
    assert props["triggers_replace"] == {"image": image_of(gcp_dev)}
    assert address_of(gcp_dev, JOB) in props["depends_on"]
    _, service = gcp_dev.single(SERVICE)
    assert run in service["depends_on"]


# --- Outputs, backend, providers ----------------------------------------------------


def test_service_url_is_an_output(gcp_dev: SynthesizedGcp) -> None:
    assert gcp_dev.json["output"]["service_url"]["value"] == ref(address_of(gcp_dev, SERVICE), "uri")


def test_local_backend_by_default(gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp) -> None:
    for synth in (gcp_dev, gcp_prod):
        assert synth.json["terraform"]["backend"] == {
            # at the project root, seen from cdktf.out/stacks/<stack>/
            "local": {"path": f"../../../terraform.{synth.spec.name}-gcp.tfstate"}
        }


def test_gcs_backend_with_a_state_bucket(gcp_variant: SynthesizedGcp) -> None:
    assert gcp_variant.json["terraform"]["backend"] == {
        "gcs": {"bucket": "my-state", "prefix": "fastapi-svc-prod/state"}
    }


def test_providers_are_configured_by_the_stack_only(gcp_dev: SynthesizedGcp) -> None:
    assert cdktf.Testing.to_have_provider_with_properties(
        gcp_dev.synth,
        "google",
        {"project": PROJECT, "region": REGION, "default_labels": {"project": "fastapi-svc", "stage": "dev"}},
    )
    assert cdktf.Testing.to_have_provider(gcp_dev.synth, "random")
    assert {name: len(configs) for name, configs in gcp_dev.json["provider"].items()} == {
        "google": 1,
        "random": 1,
    }
    assert not [c for c in gcp_dev.stack.service.node.find_all() if isinstance(c, cdktf.TerraformProvider)]
    for provider in gcp_dev.json["terraform"]["required_providers"].values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", provider["version"])  # pinned by the bindings


# --- The construct's inputs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "Bad_Name"}, "name must be"),
        ({"cpu": 3}, "cpu must be one of 1, 2, 4, 6, 8 on Cloud Run, got 3"),
        ({"memory_mib": 256}, "memory_mib must be 512..32768"),
        ({"memory_mib": 8192}, "memory_mib 8192 needs cpu >= 2"),
        ({"cpu": 4, "memory_mib": 1024}, "cpu 4 needs memory_mib >= 2048"),
        ({"max_instances": 20}, "tier db-f1-micro allows 25 connections"),
        ({"min_instances": 5, "max_instances": 1}, "min_instances <= max_instances"),
        ({"concurrency": 0}, "concurrency must be 1..1000, got 0"),
        ({"command": []}, "command must not be empty"),
    ],
)
def test_construct_rejects_invalid_input(options: dict[str, Any], message: str) -> None:
    from constructs_lib.gcp.cloud_run_service import CloudRunService

    stack = cdktf.TerraformStack(cdktf.Testing.app(), "invalid")
    arguments: dict[str, Any] = {
        "project": PROJECT,
        "region": REGION,
        "name": "svc-test",
        **sample_arguments(),
        **options,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        CloudRunService(stack, "service", **arguments)


def test_database_options_reject_invalid_input() -> None:
    from constructs_lib.gcp.cloud_run_service import CloudSqlOptions

    for options, message in (
        ({"version": "15"}, "version must be one of ['16', '17']"),
        ({"tier": "f1-micro"}, "tier must be db-f1-micro or db-g1-small or db-custom-"),
        ({"backup_retention_days": 0}, "backup_retention_days must be 1..365"),
        (
            {"backup_retention_days": 7, "transaction_log_retention_days": 7},
            "backup_retention_days (7) must be greater than transaction_log_retention_days (7)",
        ),
        (
            {"transaction_log_retention_days": None},
            "point_in_time_recovery needs transaction_log_retention_days",
        ),
        ({"user_name": "app_service"}, "user_name must not be 'app_service'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            CloudSqlOptions(**options)


def test_destroy_and_housekeeping(gcp_dev: SynthesizedGcp) -> None:
    # The migrations make the user own the tables: dropping it would fail, so it is abandoned.
    has(gcp_dev, "google_sql_user", {"deletion_policy": "ABANDON"})
    _, repository = gcp_dev.single("google_artifact_registry_repository")
    policies = {p["id"]: p for p in repository["cleanup_policies"]}
    assert policies["delete-old"]["action"] == "DELETE"
    assert policies["delete-old"]["condition"] == {"tag_state": "ANY", "older_than": "2592000s"}
    assert policies["keep-recent"]["most_recent_versions"] == {"keep_count": 10}
    assert gcp_dev.json["terraform"]["required_version"] == ">= 1.11"  # write-only attributes
