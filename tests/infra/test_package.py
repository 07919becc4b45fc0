"""The constructs install as a library: a wheel of constructs_lib only, with its package data, that
a user's own CDK or CDKTF app imports from wherever pip put it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USE = """
import sys
from constructs_lib.aws.fastapi_lambda_service import FastApiLambdaService
from constructs_lib.gcp import cloud_run_service
from constructs_lib.gcp.cloud_run_service import CloudRunService
assert cloud_run_service.BUILD_CONFIG.is_file(), cloud_run_service.BUILD_CONFIG
print(FastApiLambdaService.__module__, CloudRunService.__module__, cloud_run_service.__file__)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the build reads: setuptools writes build/ and *.egg-info beside
    # the project. The build backend comes from the package index, as for any pip install.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "constructs_lib", source / "constructs_lib", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("serverless_fastapi_constructs-*.whl")
    return built


def test_the_wheel_holds_the_constructs_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {name.split("/")[0] for name in names if not name.startswith("serverless_fastapi_constructs")}
    assert packaged == {"constructs_lib"}
    assert "constructs_lib/aws/fastapi_lambda_service.py" in names
    assert "constructs_lib/gcp/cloud_run_service.py" in names
    assert "constructs_lib/gcp/cloudbuild.yaml" in names  # package data the Cloud Run build reads


def test_an_app_outside_the_repository_imports_both_constructs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The tooling's environment provides aws-cdk-lib and cdktf (the extras); the constructs come
    # from the install only: the repository is neither the working directory nor on the path.
    result = subprocess.run(
        [sys.executable, "-c", USE],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(target) in result.stdout
    assert str(ROOT) not in result.stdout
