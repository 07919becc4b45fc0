"""checkov (terraform_json, in its own environment) over the synthesized Google Cloud stacks.

Zero failed checks; the only skips are the ones in .checkov-gcp.yaml, each with its reason,
and each still needed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.infra.gcp_synth import SynthesizedGcp

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / ".checkov-gcp.yaml"
STAGES = ("dev", "prod", "variant")
# Checks that must pass on every stack: proof that checkov parsed the SQL instance, the
# IAM grants and the registry (terraform_json can silently parse nothing), and that the
# fixed findings stay fixed: CKV_GCP_6 (mutual TLS), CKV_GCP_111 (log_statement).
MUST_PASS = {"CKV_GCP_6", "CKV_GCP_11", "CKV_GCP_14", "CKV_GCP_111", "CKV_GCP_42", "CKV_GCP_101"}
# And on the variant (cache and uploads on): Memorystore AUTH (95) and TLS (97), the subnet's
# flow logs (26) and Private Google Access (74), the uploads bucket not public (28, 114) and
# with uniform access (29).
MUST_PASS_VARIANT = {
    "CKV_GCP_95",
    "CKV_GCP_97",
    "CKV_GCP_26",
    "CKV_GCP_74",
    "CKV_GCP_28",
    "CKV_GCP_29",
    "CKV_GCP_114",
}


def configured_skips() -> dict[str, str]:
    """check id -> the comment lines that follow it in the config: its reason."""
    skips: dict[str, str] = {}
    current: str | None = None
    for line in CHECKOV_CONFIG.read_text().splitlines():
        entry = re.fullmatch(r"\s+-\s+(CKV2?_[A-Z]+_\d+)\s*", line)
        if entry:
            current = entry.group(1)
            skips[current] = ""
        elif current and line.strip().startswith("#"):
            skips[current] += " " + line.strip().lstrip("#").strip()
        else:
            current = None
    return {check: reason.strip() for check, reason in skips.items()}


def run_checkov(
    directory: Path, *options: str
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "terraform_json",
            "--directory",
            str(directory),
            "--output",
            "json",
            "--compact",
            *options,
        ],
        cwd=directory,  # away from the AWS .checkov.yaml, which checkov would read from the cwd
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    start = min((i for i in (result.stdout.find("{"), result.stdout.find("[")) if i >= 0), default=-1)
    assert start >= 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout[start:])
    return (report if isinstance(report, list) else [report]), result


@pytest.fixture(scope="module")
def stacks_dir(
    tmp_path_factory: pytest.TempPathFactory,
    gcp_dev: SynthesizedGcp,
    gcp_prod: SynthesizedGcp,
    gcp_variant: SynthesizedGcp,
) -> Path:
    """Every variant's Terraform JSON, one directory each: one checkov run covers them all."""
    root = tmp_path_factory.mktemp("gcp-stacks")
    for stage, synth in zip(STAGES, (gcp_dev, gcp_prod, gcp_variant), strict=True):
        (root / stage).mkdir()
        (root / stage / "cdk.tf.json").write_text(json.dumps(checkov_readable(json.loads(synth.synth))))
    return root


def checkov_readable(stack: dict[str, Any]) -> dict[str, Any]:
    """checkov's terraform_json parser only takes blocks that are objects, and crashes
    ("this method receives only dicts") on the string ``terraform.required_version``.
    That setting declares no resource to check, so the copy checkov reads goes without it."""
    terraform = {k: v for k, v in stack["terraform"].items() if k != "required_version"}
    assert stack["terraform"].get("required_version") == ">= 1.11"
    return {**stack, "terraform": terraform}


def failed_checks(report: list[dict[str, Any]]) -> list[str]:
    """Each failed check of a run_checkov report: id, file, resource and name."""
    return [
        f"{check['check_id']} {check['file_path']} {check['resource']}: {check['check_name']}"
        for section in report
        for check in section["results"]["failed_checks"]
    ]


@pytest.fixture(scope="module")
def checkov_report(stacks_dir: Path) -> list[dict[str, Any]]:
    report, result = run_checkov(stacks_dir, "--config-file", str(CHECKOV_CONFIG))
    failed = failed_checks(report)
    assert failed == [], "\n".join(failed)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return report


def test_every_skip_has_a_reason() -> None:
    skips = configured_skips()
    assert set(skips) == set(yaml.safe_load(CHECKOV_CONFIG.read_text())["skip-check"])
    for check, reason in skips.items():
        assert len(reason) >= 80, f"{check}: give the reason in the comment under it"


@pytest.mark.slow
def test_checkov_passes_every_stack(checkov_report: list[dict[str, Any]]) -> None:
    assert [section["check_type"] for section in checkov_report] == ["terraform_json"]
    results = checkov_report[0]["results"]
    summary = checkov_report[0]["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    # Every file checked, in depth.
    for stage in STAGES:
        passed = [c for c in results["passed_checks"] if c["file_path"] == f"/{stage}/cdk.tf.json"]
        assert len(passed) >= 25, f"{stage}: only {len(passed)} checks passed"
        assert {c["check_id"] for c in passed} >= MUST_PASS, stage
    variant = [c for c in results["passed_checks"] if c["file_path"] == "/variant/cdk.tf.json"]
    assert {c["check_id"] for c in variant} >= MUST_PASS_VARIANT
    for bucket_check in ("CKV_GCP_29", "CKV_GCP_114"):  # both buckets: build staging and uploads
        assert sum(c["check_id"] == bucket_check for c in variant) == 2, bucket_check
    skipped = {check["check_id"] for check in results.get("skipped_checks", [])}
    assert skipped <= set(configured_skips())


@pytest.mark.slow
def test_every_skip_is_still_needed(stacks_dir: Path) -> None:
    """Without the config, exactly the skipped checks fail (on some stack: CKV2_GCP_18 is about
    the variant's network only): a skip nothing needs is removed."""
    skips = configured_skips()
    report, _ = run_checkov(stacks_dir, "--skip-download", "--check", ",".join(skips))
    failed = {check["check_id"] for section in report for check in section["results"]["failed_checks"]}
    assert failed == set(skips)


def test_flags_checkov_cannot_read_from_terraform_json(gcp_dev: SynthesizedGcp) -> None:
    """CKV_GCP_54 (log_lock_waits) and CKV_GCP_57 (log_min_duration_statement) crash on the
    terraform_json form of database_flags and report nothing; assert them here instead,
    with the other CIS logging flags."""
    _, instance = gcp_dev.single("google_sql_database_instance")
    flags = {flag["name"]: flag["value"] for flag in instance["settings"]["database_flags"]}
    assert flags == {
        "log_checkpoints": "on",
        "log_connections": "on",
        "log_disconnections": "on",
        "log_lock_waits": "on",
        "log_min_messages": "error",
        "log_min_error_statement": "error",
        "log_temp_files": "0",
        "log_min_duration_statement": "-1",
        "log_statement": "ddl",
    }
