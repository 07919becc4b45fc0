"""`cdk synth` through the pinned CLI, as a user runs it: no AWS credentials, no
Docker, the real Lambda bundle built locally."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.slow
def test_cdk_synth_without_credentials(tmp_path: Path) -> None:
    from constructs_lib.aws.bundling.tools import choose_python
    from stacks.aws_stack import auto_python_versions

    if not choose_python("auto", auto_python_versions()).bytecode:
        pytest.skip("no CPython 3.12+ here: prod refuses a bundle without bytecode (test_python_runtime.py)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        DOCKER_HOST="unix:///nonexistent",
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "-c", "stage=prod", "-o", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    template = json.loads((out / "fastapi-svc-prod-aws.template.json").read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    handlers = {f["Properties"].get("Handler") for f in functions}
    # compute.python auto: the newest Lambda Python this machine has, the bundle compiled for it
    (runtime,) = {
        f["Properties"]["Runtime"] for f in functions if f["Properties"]["Runtime"].startswith("python")
    }
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    assert "serverless_fastapi_entry.lambda_api.handler" in handlers
    assets = json.loads((out / "fastapi-svc-prod-aws.assets.json").read_text())["files"]
    bundles = [
        out / a["source"]["path"]
        for a in assets.values()
        if (out / a["source"]["path"] / "serverless_fastapi_entry" / "lambda_api.py").exists()
    ]
    assert len(bundles) == 1, "one bundle shared by the API and the migration function"
    bundle = bundles[0]
    assert (bundle / "webapi" / "migrations" / "env.py").is_file()
    assert (bundle / "fastapi").is_dir() and (bundle / "asyncpg").is_dir()
    compiled = list(bundle.rglob("*.pyc"))
    assert compiled, "prod ships bytecode (or refuses to synth)"
    assert all(tag in pyc.name for pyc in compiled)  # only the runtime's bytecode
    assert not (bundle / "tests").exists()
    assert any(p.name.endswith(f"{tag}-aarch64-linux-gnu.so") for p in (bundle / "asyncpg").rglob("*.so"))


CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"


@pytest.mark.slow
def test_cdktf_synth_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(
        HOME=str(tmp_path),
        CHECKPOINT_DISABLE="1",
        STAGE="prod",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    out = tmp_path / "cdktf.out"
    result = subprocess.run(
        [str(CDKTF), "synth", "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    stack = json.loads((out / "stacks" / "fastapi-svc-prod-gcp" / "cdk.tf.json").read_text())
    assert set(stack["terraform"]["required_providers"]) == {"google", "random"}
    assert "google_cloud_run_v2_service" in stack["resource"]
    assert not (ROOT / ".gen").exists()  # prebuilt providers: no generated bindings
