from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tests.conftest import TEST_SECRET_KEY
from tests.service.conftest import stub_secrets
from webapi import config
from webapi.config import Environment, Platform, Settings, SettingsError, resolve_settings
from webapi.db import engine_options

STRONG = "k7#Qv9!zR2$mW4^pX8&nB3*cT6(hY1)j"  # 32 characters, varied
DB_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
KEY_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key-GhIjKl"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_deployed_environments_refuse_a_missing_key(environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is required"):
        settings(environment=environment)


@pytest.mark.parametrize("key", ["short", "changeme", "a" * 40, "your-secret-key-here"])
def test_deployed_environments_refuse_a_weak_key(key: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is too weak"):
        settings(environment="prod", secret_key=key)


def test_longer_algorithms_need_longer_keys() -> None:
    with pytest.raises(ValidationError, match="64 random characters for ALGORITHM HS512"):
        settings(environment="prod", secret_key=STRONG, algorithm="HS512")
    assert settings(environment="prod", secret_key=STRONG * 2, algorithm="HS512").algorithm == "HS512"


def test_algorithm_is_restricted_to_hmac() -> None:
    with pytest.raises(ValidationError, match="algorithm"):
        settings(algorithm="none")
    with pytest.raises(ValidationError, match="algorithm"):
        settings(algorithm="RS256")


def test_local_development_gets_an_ephemeral_key() -> None:
    resolved = resolve_settings(settings(environment="local"))
    assert resolved.secret_key is not None
    assert len(resolved.signing_key) >= 32
    assert resolve_settings(settings()).signing_key != resolved.signing_key


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/app")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "15")
    loaded = Settings(_env_file=None)  # type: ignore[call-arg]
    assert loaded.environment is Environment.PROD
    assert loaded.sqlalchemy_url() == "postgresql+asyncpg://u:p@db:5432/app"
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]
    assert loaded.access_token_expire_minutes == 15
    monkeypatch.setenv("CORS_ORIGINS", '["https://c.example"]')
    assert Settings(_env_file=None).cors_origins == ["https://c.example"]  # type: ignore[call-arg]


def test_secret_values_are_not_printed() -> None:
    loaded = settings(secret_key=STRONG, database_url="postgresql://u:hunter2@db/app")
    assert STRONG not in repr(loaded) and "hunter2" not in repr(loaded)


def test_missing_database_url_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        settings().sqlalchemy_url()


def test_lambda_reads_secrets_from_their_arns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    db_secret = {
        "username": "app",
        "password": "p@ss/word",
        "host": "db.cluster.local",
        "port": 5432,
        "dbname": "app",
        "engine": "postgres",
    }
    stubber = stub_secrets(monkeypatch, {DB_ARN: json.dumps(db_secret), KEY_ARN: STRONG})
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "api")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("DATABASE_SECRET_ARN", DB_ARN)
    monkeypatch.setenv("SECRET_KEY_SECRET_ARN", KEY_ARN)
    monkeypatch.setattr(config.Settings, "model_config", {**config.Settings.model_config, "env_file": None})
    config.get_settings.cache_clear()
    try:
        first = config.get_settings()
        second = config.get_settings()
    finally:
        config.get_settings.cache_clear()
    stubber.assert_no_pending_responses()  # each secret read exactly once
    assert first is second
    assert first.platform is Platform.LAMBDA
    assert first.signing_key == STRONG
    assert first.sqlalchemy_url() == "postgresql+asyncpg://app:p%40ss%2Fword@db.cluster.local:5432/app"


def test_a_weak_key_from_secrets_manager_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_secrets(monkeypatch, {KEY_ARN: "weak"})
    with pytest.raises(SettingsError, match="SECRET_KEY is too weak"):
        resolve_settings(settings(environment="prod", secret_key_secret_arn=KEY_ARN))


def test_a_malformed_database_secret_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_secrets(monkeypatch, {DB_ARN: '{"user": "x"}'})
    with pytest.raises(ValueError, match="DATABASE_SECRET_ARN"):
        resolve_settings(settings(database_secret_arn=DB_ARN))


def test_pool_is_one_connection_on_lambda_and_bounded_elsewhere() -> None:
    on_lambda = engine_options(settings(aws_lambda_function_name="api", db_pool_size=20))
    assert (on_lambda["pool_size"], on_lambda["max_overflow"], on_lambda["pool_pre_ping"]) == (1, 0, True)
    on_cloud_run = engine_options(settings(k_service="api", db_pool_size=16, db_max_overflow=4))
    assert (on_cloud_run["pool_size"], on_cloud_run["max_overflow"]) == (16, 4)
    assert on_cloud_run["pool_timeout"] > 0
    # A ping per checkout is a round trip per request: Lambda only, unless asked for.
    assert on_cloud_run["pool_pre_ping"] is False
    assert engine_options(settings(k_service="api", db_pool_pre_ping=True))["pool_pre_ping"] is True
    assert settings(k_service="api").platform is Platform.CLOUD_RUN


@pytest.mark.parametrize(
    ("given", "stage"),
    [
        ("production", Environment.PROD),
        ("Production", Environment.PROD),
        ("prod", Environment.PROD),
        ("PROD", Environment.PROD),
        ("development", Environment.DEV),
        ("dev", Environment.DEV),
        ("staging", Environment.STAGING),
        ("stage", Environment.STAGING),
        ("local", Environment.LOCAL),
    ],
)
def test_the_common_spellings_of_a_stage_are_that_stage(
    monkeypatch: pytest.MonkeyPatch, given: str, stage: Environment
) -> None:
    monkeypatch.setenv("ENVIRONMENT", given)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    settings = Settings(_env_file=None)
    assert settings.environment is stage
    assert settings.environment.is_deployed is (stage not in (Environment.LOCAL, Environment.TEST))


def test_an_unknown_stage_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "qa")
    with pytest.raises(ValidationError, match="environment"):
        Settings(_env_file=None)


def test_an_rds_master_secret_without_dbname_gets_the_stack_s_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RDS's generated master secret has no dbname: DATABASE_NAME names the stack's database."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:master-AbCdEf"
    master = '{"username": "app_admin", "password": "pw", "host": "c.cluster-x.eu-west-1.rds.amazonaws.com"}'
    stub_secrets(monkeypatch, {arn: master})
    settings = resolve_settings(
        Settings(database_secret_arn=arn, database_name="app", secret_key=TEST_SECRET_KEY, _env_file=None)
    )
    assert settings.sqlalchemy_url().endswith("@c.cluster-x.eu-west-1.rds.amazonaws.com:5432/app")
