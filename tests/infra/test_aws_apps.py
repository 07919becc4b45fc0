"""Apps other than the sample on AWS: each example of tests/examples synthesized through the
stack (the spec's app section), with cdk-nag in the synth and cfn-lint over the template.

Bundling is skipped (test_runtime's examples build and run the bundles for this machine); the
asset hash still covers each app's dependencies, locked for Lambda's arm64 / Python."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from constructs_lib.aws.fastapi_lambda_service import API_HANDLER, MIGRATE_HANDLER
from stacks.spec import Spec
from tests.example_specs import EXAMPLE_NAMES, detected_spec
from tests.infra.conftest import CDK_CONTEXT, SKIP_BUNDLING
from tests.infra.test_aws_compliance import cfn_lint_errors


@dataclass
class Synthesized:
    name: str
    stack: Any
    json: dict[str, Any]

    @property
    def spec(self) -> Spec:
        return self.stack.spec  # type: ignore[no-any-return]

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            key: value["Properties"]
            for key, value in self.json["Resources"].items()
            if value["Type"] == "AWS::Lambda::Function"
            and value["Properties"].get("Handler", "").startswith("serverless")
        }

    def function(self, handler: str) -> dict[str, Any]:
        (found,) = [p for p in self.functions().values() if p["Handler"] == handler]
        return found

    def count(self, kind: str) -> int:
        return sum(1 for value in self.json["Resources"].values() if value["Type"] == kind)


@pytest.fixture(scope="session")
def synthesized() -> dict[str, Synthesized]:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    from stacks.aws_stack import AwsServiceStack

    app = cdk.App(context={**CDK_CONTEXT, **SKIP_BUNDLING})
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(ServerlessChecks(verbose=True))
    stacks = {}
    for name in EXAMPLE_NAMES:
        spec = detected_spec(name)
        stacks[name] = AwsServiceStack(app, f"{spec.name}-aws", spec=spec)
    return {
        name: Synthesized(name, stack, Template.from_stack(stack).to_json()) for name, stack in stacks.items()
    }


@pytest.fixture(params=EXAMPLE_NAMES)
def example(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized[request.param]


def test_each_app_is_served_by_the_runtime_entry(example: Synthesized) -> None:
    api = example.function(API_HANDLER)
    env = api["Environment"]["Variables"]
    assert env["FASTAPI_DEPLOY_ENTRYPOINT"] == example.spec.app.entrypoint
    # Nothing of the example service's own settings reaches an app that does not read them.
    assert not {"ENVIRONMENT", "APP_NAME", "DATABASE_SECRET_ARN", "SECRET_KEY_SECRET_ARN"} & set(env)
    # A signing key only for an app that reads one (sync_sqlmodel's SECRET_KEY).
    key = example.spec.app.secret_key_variable
    assert ("FASTAPI_DEPLOY_SECRETS" in env) == (key is not None)
    if key is not None:
        assert env["FASTAPI_DEPLOY_SECRETS"]["Fn::Join"][1][0] == '{"' + key + '": "'


def test_an_app_without_a_database_has_no_vpc_no_cluster_no_migrations(example: Synthesized) -> None:
    has_database = example.spec.app.database.enabled
    for kind in ("AWS::EC2::VPC", "AWS::RDS::DBCluster", "AWS::EC2::VPCEndpoint"):
        assert (example.count(kind) > 0) == has_database, kind
    api = example.function(API_HANDLER)
    assert ("VpcConfig" in api) == has_database
    assert ("FASTAPI_DEPLOY_DATABASE" in api["Environment"]["Variables"]) == has_database


def test_migrations_run_only_when_the_app_has_them(example: Synthesized) -> None:
    migrates = example.spec.app.migrations.kind.value == "alembic"
    handlers = {p["Handler"] for p in example.functions().values()}
    assert (MIGRATE_HANDLER in handlers) == migrates
    assert (example.count("Custom::Trigger") == 1) == migrates
    if migrates:
        env = example.function(MIGRATE_HANDLER)["Environment"]["Variables"]
        assert json.loads(env["FASTAPI_DEPLOY_MIGRATIONS"]) == {"kind": "alembic", "config": "alembic.ini"}
        # The migrations connect to the cluster itself (no proxy host), with the driver's form.
        joined = "".join(str(part) for part in env["FASTAPI_DEPLOY_DATABASE"]["Fn::Join"][1])
        assert '"host": null' in joined


def test_the_database_settings_take_the_apps_driver(synthesized: dict[str, Synthesized]) -> None:
    env = synthesized["sync_sqlmodel"].function(API_HANDLER)["Environment"]["Variables"]
    text = json.dumps(env["FASTAPI_DEPLOY_DATABASE"])
    assert '\\"driver\\": \\"psycopg\\"' in text and '\\"settings\\": \\"url\\"' in text
    own = json.dumps(synthesized["own_docker"].function(API_HANDLER)["Environment"]["Variables"])
    assert '\\"scheme\\": \\"postgresql\\"' in own and '\\"driver\\": \\"psycopg2\\"' in own


def test_cdk_nag_has_no_unsuppressed_findings(example: Synthesized) -> None:
    annotations = Annotations.from_stack(example.stack)
    findings = [
        f"{m.id}: {m.entry.data}"
        for finder in (annotations.find_error, annotations.find_warning)
        for m in finder("*", Match.string_like_regexp(r"(AwsSolutions|Serverless)-.*"))
    ]
    assert findings == []


@pytest.mark.slow
def test_cfn_lint_with_serverless_rules(example: Synthesized, tmp_path: Path) -> None:
    template = tmp_path / "template.json"
    template.write_text(json.dumps(example.json))
    assert cfn_lint_errors(template) == []
