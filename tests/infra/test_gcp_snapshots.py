"""One reviewed snapshot per Google Cloud stack (Terraform JSON). Update with
`pytest --snapshot-update` only after reading the diff: a snapshot change is an
infrastructure change."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.gcp_synth import SynthesizedGcp
from tests.infra.snapshots import normalise_terraform


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_gcp_dev_stack(gcp_dev: SynthesizedGcp, snapshot_json: SnapshotAssertion) -> None:
    assert normalise_terraform(gcp_dev.json) == snapshot_json


def test_gcp_prod_stack(gcp_prod: SynthesizedGcp, snapshot_json: SnapshotAssertion) -> None:
    assert normalise_terraform(gcp_prod.json) == snapshot_json


def test_gcp_variant_stack(gcp_variant: SynthesizedGcp, snapshot_json: SnapshotAssertion) -> None:
    """prod with every optional part on, the cache and the uploads bucket included."""
    assert normalise_terraform(gcp_variant.json) == snapshot_json


def test_normalising_hides_the_image_tag_and_provider_versions_only() -> None:
    image = "europe-west1-docker.pkg.dev/p/svc/api:"
    config = {
        "output": {"image": {"value": image + "0123456789abcdef"}},
        "resource": {
            "terraform_data": {
                "build": {
                    "provisioner": [{"local-exec": {"command": f"gcloud --tag={image}fedcba9876543210 -q"}}]
                }
            },
            "random_password": {"key": {"length": 64}},
        },
        "terraform": {"required_providers": {"google": {"source": "google", "version": "6.50.0"}}},
    }
    normalised = normalise_terraform(config)
    assert normalised["output"]["image"]["value"] == image + "<hash>"
    command = normalised["resource"]["terraform_data"]["build"]["provisioner"][0]["local-exec"]["command"]
    assert command == f"gcloud --tag={image}<hash> -q"
    assert normalised["resource"]["random_password"] == {"key": {"length": 64}}
    assert normalised["terraform"]["required_providers"] == {
        "google": {"source": "google", "version": "<version>"}
    }
