"""One reviewed snapshot per stack. Update with `pytest --snapshot-update` only after
reading the diff: a snapshot change is an infrastructure change."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import SynthesizedAws
from tests.infra.snapshots import normalise


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_aws_dev_template(aws_dev: SynthesizedAws, snapshot_json: SnapshotAssertion) -> None:
    assert normalise(aws_dev.json) == snapshot_json


def test_aws_prod_template(aws_prod: SynthesizedAws, snapshot_json: SnapshotAssertion) -> None:
    assert normalise(aws_prod.json) == snapshot_json


def test_normalising_hides_hashes_only() -> None:
    template = {
        "Parameters": {"BootstrapVersion": {"Type": "String"}, "Stage": {"Type": "String"}},
        "Resources": {
            "FnCurrentVersion1A2B3C4D" + "0" * 32: {
                "Properties": {"S3Key": "a" * 64 + ".zip", "MemorySize": 1024}
            }
        },
    }
    normalised = normalise(template)
    assert normalised["Parameters"] == {"Stage": {"Type": "String"}}
    resource = normalised["Resources"]["FnCurrentVersion1A2B3C4D<hash>"]
    assert resource["Properties"] == {"S3Key": "<hash>.zip", "MemorySize": 1024}
