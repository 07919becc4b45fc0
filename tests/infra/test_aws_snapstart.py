"""``compute.snap_start``: SnapStart on the API function's published versions (the HTTP API
invokes the ``live`` alias of one), and the spec refusing what Lambda refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.spec import SpecError, load_spec
from tests.infra.conftest import SynthesizedAws, synth_aws
from tests.infra.test_aws_stack import api_function, migrate_function


@pytest.fixture(scope="module")
def aws_snapstart() -> SynthesizedAws:
    # SnapStart runs Python 3.12 and later: named, as this machine may have only 3.11 for auto.
    return synth_aws("dev", {"spec.compute.snap_start": "true", "spec.compute.python": "'3.12'"})


def test_the_api_function_snapshots_its_published_versions(aws_snapstart: SynthesizedAws) -> None:
    function_id, function = api_function(aws_snapstart)
    assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Properties"]["Runtime"] == "python3.12"
    # The migration function runs once per deploy: nothing to snapshot.
    _, migrate = migrate_function(aws_snapstart)
    assert "SnapStart" not in migrate["Properties"]

    # The API invokes the live alias, which points at a published version of that function:
    # the version a snapshot is taken of.
    aliases = aws_snapstart.template.find_resources(
        "AWS::Lambda::Alias", {"Properties": {"FunctionName": {"Ref": function_id}, "Name": "live"}}
    )
    assert len(aliases) == 1
    ((alias_id, alias),) = aliases.items()
    version_id, attribute = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
    assert attribute == "Version"
    version = aws_snapstart.json["Resources"][version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": function_id}
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    integrations = aws_snapstart.template.find_resources("AWS::ApiGatewayV2::Integration")
    assert [i["Properties"]["IntegrationUri"] for i in integrations.values()] == [{"Ref": alias_id}]


def test_snapstart_is_off_by_default(aws_dev: SynthesizedAws) -> None:
    _, function = api_function(aws_dev)
    assert "SnapStart" not in function["Properties"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("compute", "context", "fields"),
    [
        # Lambda: SnapStart and provisioned concurrency exclude each other.
        (
            "  snap_start: true\n",
            {"spec.scaling.min_instances": "1"},
            ("compute.snap_start", "scaling.min_instances"),
        ),
        # Lambda's SnapStart runs the Python 3.12 runtime and later ones.
        ("  snap_start: true\n  python: '3.11'\n", {}, ("compute.snap_start", "compute.python")),
    ],
)
def test_the_spec_refuses_what_lambda_refuses(
    tmp_path: Path, compute: str, context: dict[str, str], fields: tuple[str, ...]
) -> None:
    with pytest.raises(SpecError) as error:
        load_spec(write(tmp_path, f"project: shop\ncompute:\n{compute}"), context=context)
    for field in fields:
        assert field in str(error.value), error.value


@pytest.mark.parametrize("python", ["auto", "3.12", "3.13", "3.14"])
def test_snapstart_is_accepted_with_the_pythons_it_runs(tmp_path: Path, python: str) -> None:
    spec = load_spec(write(tmp_path, f"project: shop\ncompute:\n  snap_start: true\n  python: '{python}'\n"))
    assert spec.compute.snap_start and spec.compute.python == python
