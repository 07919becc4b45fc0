"""Synthesize each stack once per test session (jsii start-up costs seconds).

Lambda bundling is skipped here (``aws:cdk:bundling-stacks: []``); test_bundle.py
builds the real bundle once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.infra.gcp_synth import VARIANT, SynthesizedGcp, synth_gcp

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}
# compute.python auto picks the newest Lambda Python the machine has: the synthesized templates
# (and their snapshots) name one, so they do not depend on the machine (with bundling skipped,
# prod does not refuse a version the machine lacks: nothing is bundled).
PINNED_PYTHON = {"spec.compute.python": '"3.14"'}
# The feature flags users get: the tests synthesize with cdk.json's context, as `cdk synth` does.
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class SynthesizedAws:
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    json: dict[str, Any]


def synth_aws(stage: str, overrides: dict[str, str] | None = None) -> SynthesizedAws:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    from stacks.aws_stack import AwsServiceStack
    from stacks.spec import load_spec

    context = {**CDK_CONTEXT, **SKIP_BUNDLING, **PINNED_PYTHON, **(overrides or {})}
    app = cdk.App(context=context)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(ServerlessChecks(verbose=True))
    spec = load_spec(context=context, stage=stage)
    stack = AwsServiceStack(app, f"{spec.name}-aws", spec=spec)
    template = Template.from_stack(stack)
    return SynthesizedAws(stack=stack, template=template, json=template.to_json())


@pytest.fixture(scope="session")
def aws_dev() -> SynthesizedAws:
    return synth_aws("dev", {"spec.cors_origins": "[https://app.example.com]"})


@pytest.fixture(scope="session")
def aws_prod() -> SynthesizedAws:
    return synth_aws(
        "prod",
        {
            "spec.database.rds_proxy": "true",
            "spec.scaling.reserve_concurrency": "true",
            "spec.cache.enabled": "true",
            "spec.storage.enabled": "true",
            "spec.cors_origins": "[https://app.example.org]",
        },
    )


# --- Google Cloud (CDK for Terraform): helpers in tests/infra/gcp_synth.py ------------


@pytest.fixture(scope="session")
def gcp_dev() -> SynthesizedGcp:
    return synth_gcp("dev")


@pytest.fixture(scope="session")
def gcp_prod() -> SynthesizedGcp:
    return synth_gcp("prod")


@pytest.fixture(scope="session")
def gcp_variant() -> SynthesizedGcp:
    """prod with every optional part of the spec changed (gcp_synth.VARIANT)."""
    return synth_gcp("prod", VARIANT)
