"""The deployment spec: defaults, stage differences, overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.spec import SAMPLE_APP, Architecture, SpecError, Stage, load_spec


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_seed(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "project: shop\n"))
    assert spec.stage is Stage.DEV
    assert spec.compute.memory_mib == 1024 and spec.compute.architecture is Architecture.ARM64
    # Five instances in dev: db-f1-micro's connections leave room for no more (test_spec_limits.py).
    assert (spec.scaling.min_instances, spec.scaling.max_instances, spec.scaling.concurrency) == (0, 5, 80)
    # No app section: the repository's example service, at the repository's root.
    assert spec.app == SAMPLE_APP and spec.app.health_path == "/health"
    assert spec.database.engine == "postgresql" and spec.database.tier == "db-f1-micro"
    assert spec.name == "shop-dev"


def test_the_repository_spec_is_valid() -> None:
    spec = load_spec()
    assert spec.project == "fastapi-svc"
    assert spec.service_path.joinpath("webapi", "main.py").is_file()
    # deploy.yaml spells out the example service's app section: the same as the default.
    assert spec.app == SAMPLE_APP


def test_prod_differs_where_it_should(tmp_path: Path) -> None:
    path = write(tmp_path, "project: shop\n")
    dev, prod = load_spec(path, stage="dev"), load_spec(path, stage="prod")
    assert not dev.database.deletion_protection and prod.database.deletion_protection
    assert prod.database.backup_retention_days > dev.database.backup_retention_days
    # Point-in-time recovery in both, with fewer days of logs than of backups (Cloud SQL's rule).
    for spec in (dev, prod):
        assert spec.database.point_in_time_recovery
        assert spec.database.backup_retention_days > spec.database.transaction_log_retention_days
    assert (dev.database.tier, prod.database.tier) == ("db-f1-micro", "db-custom-2-8192")
    assert (dev.scaling.max_instances, prod.scaling.max_instances) == (5, 20)
    assert prod.log_retention_days > dev.log_retention_days
    assert dev.database.min_capacity_acu == 0  # dev pauses when idle
    assert (
        prod.database.min_capacity_acu > 0 and prod.database.max_capacity_acu > dev.database.max_capacity_acu
    )


def test_file_then_context_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path, "project: shop\ncompute:\n  memory_mib: 2048\ndatabase:\n  deletion_protection: true\n"
    )
    spec = load_spec(
        path, context={"spec.compute.memory_mib": "512", "spec.cors_origins": "[https://a.example]"}
    )
    assert spec.compute.memory_mib == 512  # context wins over the file
    assert spec.database.deletion_protection  # the file wins over the dev default
    assert spec.cors_origins == ("https://a.example",)
    assert load_spec(path, context={"stage": "prod"}).stage is Stage.PROD


@pytest.mark.parametrize(
    ("text", "context", "field", "allowed"),
    [
        (
            "project: shop\ncompute:\n  memory_mib: 64\n",
            {},
            "compute.memory_mib",
            "greater than or equal to 512",
        ),
        (
            "project: shop\n",
            {"spec.compute.timeout_seconds": "60"},
            "compute.timeout_seconds",
            "less than or equal to 28",
        ),
        (
            "project: shop\ncompute:\n  architecture: sparc\n",
            {},
            "compute.architecture",
            "'arm64' or 'x86_64'",
        ),
        (
            "project: shop\nscaling:\n  min_instances: 5\n  max_instances: 2\n",
            {},
            "scaling",
            "must be <= scaling.max_instances",
        ),
        ("project: shop\ndatabase:\n  engine: mysql\n", {}, "database.engine", "'postgresql'"),
        ("project: shop\ndatabase:\n  version: '12'\n", {}, "database.version", "'16' or '17'"),
        ("project: shop\ndatabase:\n  max_capacity_acu: 1.3\n", {}, "database", "multiple of 0.5"),
        ("project: Shop!\n", {}, "project", "pattern"),
        ("project: shop\nmemory: 1\n", {}, "memory", "Extra inputs are not permitted"),
        ("project: shop\ncors_origins: [example.com]\n", {}, "spec", "not an origin"),
        ("project: shop\nenvironment:\n  lower: x\n", {}, "environment.lower", "pattern"),
        ("compute: {}\n", {}, "project", "Field required"),
        (
            "project: shop\ncache:\n  enabled: true\ngcp:\n  vpc_egress: none\n",
            {},
            "spec",
            "cache.enabled needs a VPC path on Google Cloud",
        ),
        ("project: shop\n", {"spec.gcp.network": "shared"}, "gcp", "network and subnetwork go together"),
        (
            "project: shop\n",
            {"spec.cache.aws_engine": "memcached"},
            "cache.aws_engine",
            "'valkey' or 'redis'",
        ),
        ("project: shop\n", {"spec.cache.gcp_tier": "PREMIUM"}, "cache.gcp_tier", "'BASIC' or 'STANDARD_HA'"),
        ("project: shop\n", {"spec.storage.prefix": "../up"}, "storage.prefix", "pattern"),
        ("project: shop\n", {"spec.storage.max_upload_mib": "0"}, "storage.max_upload_mib", "greater than"),
        (
            "project: shop\n",
            {"spec.storage.url_expiry_seconds": "86400"},
            "storage.url_expiry_seconds",
            "less than",
        ),
        ("project: shop\n", {"spec.gcp.subnet_cidr": "10.0.0.0/29"}, "gcp.subnet_cidr", "pattern"),
    ],
)
def test_invalid_values_fail_naming_the_field(
    tmp_path: Path, text: str, context: dict[str, str], field: str, allowed: str
) -> None:
    with pytest.raises(SpecError) as error:
        load_spec(write(tmp_path, text), context=context)
    message = str(error.value)
    assert f"  {field}:" in message, message
    assert allowed in message, message


def test_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="stage: must be one of dev, prod"):
        load_spec(write(tmp_path, "project: shop\n"), stage="qa")


def test_cache_and_storage_are_off_by_default_and_switch_on(tmp_path: Path) -> None:
    path = write(tmp_path, "project: shop\n")
    dev, prod = load_spec(path, stage="dev"), load_spec(path, stage="prod")
    for spec in (dev, prod):
        assert not spec.cache.enabled and not spec.storage.enabled  # they cost money while idle
        assert "redis" in spec.lambda_drop_packages  # and nothing of them ships
    assert not dev.storage.versioned and prod.storage.versioned
    on = load_spec(path, context={"spec.cache.enabled": "true", "spec.storage.enabled": "true"})
    assert on.cache.enabled and on.cache.aws_engine == "valkey" and on.cache.gcp_tier == "BASIC"
    assert on.gcp.vpc_egress == "direct"  # so a cache on Google Cloud is reachable by default
    assert "redis" not in on.lambda_drop_packages
    assert on.storage.enabled and on.storage.prefix == "uploads/" and on.storage.max_upload_mib == 10
    existing = load_spec(path, context={"spec.gcp.network": "shared", "spec.gcp.subnetwork": "shared-euw1"})
    assert (existing.gcp.network, existing.gcp.subnetwork) == ("shared", "shared-euw1")


def test_spec_names_another_file_for_both_clouds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SPEC=path make synth``: app.py's two synths call load_spec() without a path, so the
    variable reaches both."""
    other = tmp_path / "staging.yaml"
    other.write_text("project: other\n")
    monkeypatch.setenv("SPEC", str(other))
    assert load_spec().project == "other"
    assert load_spec(stage="prod").name == "other-prod"
    monkeypatch.setenv("SPEC", str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match=r"SPEC=.*missing\.yaml: no such spec file"):
        load_spec()
    monkeypatch.setenv("SPEC", "")
    assert load_spec().project == "fastapi-svc"  # empty: deploy.yaml


# --- the app section -----------------------------------------------------------------------


def app_spec(tmp_path: Path, app: str, *, files: dict[str, str] | None = None) -> Path:
    """A spec beside an app directory ``myapp`` holding ``files``."""
    minimal = (
        'from fastapi import FastAPI\napp = FastAPI()\n\n@app.get("/health")\ndef health():\n    return {}\n'
    )
    for name, text in (files or {"main.py": minimal}).items():
        target = tmp_path / "myapp" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return write(tmp_path, "project: shop\napp:\n" + app)


def test_an_app_section_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    spec = load_spec(app_spec(tmp_path, "  path: myapp\n  entrypoint: main:app\n"))
    assert spec.service_path == (tmp_path / "myapp").resolve()
    assert spec.lock_dir == tmp_path.resolve() / ".deploy-locks"
    # A generic app's defaults: no migrations, a DATABASE_URL for asyncpg, nothing of the sample's.
    assert spec.app.migrations.kind.value == "none"
    assert (spec.app.database.settings, spec.app.database.driver) == ("url", "asyncpg")
    assert spec.lambda_drop_packages == ()


@pytest.mark.parametrize(
    ("app", "field"),
    [
        ("  path: nowhere\n  entrypoint: main:app\n", "app.path"),
        ("  path: myapp\n  entrypoint: web.main:app\n", "app.entrypoint: no module web.main"),
        ("  path: myapp\n  entrypoint: main\n", "app.entrypoint"),
        ("  path: myapp\n  entrypoint: main:app\n  dependencies: reqs.txt\n", "app.dependencies"),
        (
            "  path: myapp\n  entrypoint: main:app\n  migrations:\n    kind: alembic\n",
            "app.migrations.config",
        ),
        (
            "  path: myapp\n  entrypoint: main:app\n  migrations:\n    kind: command\n",
            "app.migrations.command is required",
        ),
        ("  path: myapp\n  entrypoint: main:app\n  base_dir: /etc\n", "app.base_dir"),
        ("  path: myapp\n  entrypoint: main:app\n  database:\n    driver: pg8000\n", "app.database.driver"),
    ],
)
def test_a_wrong_app_section_names_the_field(tmp_path: Path, app: str, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        load_spec(app_spec(tmp_path, app))


def test_an_app_of_your_own_gets_no_sample_cache_or_storage(tmp_path: Path) -> None:
    path = app_spec(tmp_path, "  path: myapp\n  entrypoint: main:app\n")
    for section in ("cache", "storage"):
        with pytest.raises(SpecError, match=rf"{section}\.enabled: the {section} reaches the app"):
            load_spec(path, context={f"spec.{section}.enabled": "true"})


def test_the_apps_delivered_variables_cannot_be_set_twice(tmp_path: Path) -> None:
    path = app_spec(
        tmp_path,
        "  path: myapp\n  entrypoint: main:app\n  database:\n    settings: parts\n",
    )
    with pytest.raises(SpecError, match="POSTGRES_DB"):
        load_spec(path, context={"spec.environment": "{POSTGRES_DB: other}"})


def test_a_health_path_the_app_does_not_serve_fails_synth(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"app\.health_path: /healthz is not among the app's GET routes"):
        load_spec(app_spec(tmp_path, "  path: myapp\n  entrypoint: main:app\n  health_path: /healthz\n"))
    no_health = {"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}
    with pytest.raises(SpecError, match=r"app\.health_path: /health is not among"):
        load_spec(app_spec(tmp_path / "other", "  path: myapp\n  entrypoint: main:app\n", files=no_health))
