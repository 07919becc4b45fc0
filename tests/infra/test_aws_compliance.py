"""External checkers over the synthesized AWS templates: cdk-nag (in the synth),
cfn-lint with the serverless rules, and checkov in its own environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

from tests.conftest import ROOT
from tests.infra.conftest import SynthesizedAws

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"


@pytest.fixture(params=["dev", "prod"])
def synthesized(request: pytest.FixtureRequest) -> SynthesizedAws:
    return request.getfixturevalue(f"aws_{request.param}")  # type: ignore[no-any-return]


def _template_file(synth: SynthesizedAws, tmp_path: Path) -> Path:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(synth.json, indent=1))
    return path


def test_cdk_nag_has_no_unsuppressed_findings(synthesized: SynthesizedAws) -> None:
    annotations = Annotations.from_stack(synthesized.stack)
    findings = [
        f"{m.id}: {m.entry.data}"
        for finder in (annotations.find_error, annotations.find_warning)
        for m in finder("*", Match.string_like_regexp(r"(AwsSolutions|Serverless)-.*"))
    ]
    assert findings == []


def test_every_nag_suppression_names_a_rule_and_a_reason(synthesized: SynthesizedAws) -> None:
    suppressions = [
        rule
        for resource in synthesized.json["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions, "expected the documented suppressions"
    for rule in suppressions:
        assert rule["id"].startswith(("AwsSolutions-", "Serverless-"))
        assert len(rule["reason"]) >= 40, rule


def cfn_lint_errors(template: Path) -> list[str]:
    """cfn-lint with the serverless rules: its errors (rules E* and ES*), one line each."""
    result = subprocess.run(
        [
            str(CFN_LINT),
            "--append-rules",
            "cfn_lint_serverless.rules",
            "--format",
            "parseable",
            "--",
            str(template),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # parseable: file:line:col:end-line:end-col:RULE:message; rules E* and ES* are errors.
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # bit flags; 1 = crashed
    return [line for line in result.stdout.splitlines() if line.split(":")[5].startswith("E")]


@pytest.mark.slow
def test_cfn_lint_with_serverless_rules(synthesized: SynthesizedAws, tmp_path: Path) -> None:
    assert cfn_lint_errors(_template_file(synthesized, tmp_path)) == []


@pytest.mark.slow
def test_checkov_cloudformation(synthesized: SynthesizedAws, tmp_path: Path) -> None:
    template = _template_file(synthesized, tmp_path)
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "cloudformation",
            "--file",
            str(template),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else {}
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for r in reports
        for check in r.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "\n".join(failed)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
