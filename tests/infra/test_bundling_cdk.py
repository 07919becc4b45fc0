"""Extra sources, and the CDK asset when the lock and the extra sources lie outside the app
(bundling skipped: nothing is built, offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from constructs_lib.aws.bundling import BundlingError, Dependencies, build_bundle, content_hash

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "service"


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "lambda_handler.py").write_text("def handler(event, context):\n    return event\n")
    return app


def _entry(tmp_path: Path, text: str = "X = 1\n") -> Path:
    entry = tmp_path / "entry" / "serverless_fastapi_entry"
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "__init__.py").write_text(text)
    return entry


def test_extra_sources_go_in_and_into_the_hash(tmp_path: Path) -> None:
    app, entry = _app(tmp_path), _entry(tmp_path)

    def digest(extra: dict[str, Path]) -> str:
        return content_hash(source_dir=app, python_version="3.14", architecture="arm64", extra_sources=extra)

    without = digest({})
    with_entry = digest({"serverless_fastapi_entry": entry})
    assert with_entry != without
    (entry / "__init__.py").write_text("X = 2\n")
    assert digest({"serverless_fastapi_entry": entry}) not in (with_entry, without)
    assert digest({"other_name": entry}) != digest({"serverless_fastapi_entry": entry})

    output = tmp_path / "bundle"
    build_bundle(
        output,
        source_dir=app,
        python_version="3.14",
        architecture="arm64",
        extra_sources={"serverless_fastapi_entry": entry},
    )
    assert (output / "serverless_fastapi_entry" / "__init__.py").read_text() == "X = 2\n"
    assert (output / "lambda_handler.py").is_file()


def test_an_extra_source_may_not_replace_an_app_file(tmp_path: Path) -> None:
    app = _app(tmp_path)
    other = tmp_path / "other.py"
    other.write_text("")
    with pytest.raises(BundlingError, match=r"would overwrite an app file: lambda_handler\.py"):
        build_bundle(
            tmp_path / "bundle",
            source_dir=app,
            python_version="3.14",
            architecture="arm64",
            extra_sources={"lambda_handler.py": other},
        )
    with pytest.raises(BundlingError, match="inside the bundle"):
        build_bundle(
            tmp_path / "bundle2",
            source_dir=app,
            python_version="3.14",
            architecture="arm64",
            extra_sources={"../escape.py": other},
        )


def test_cdk_asset_with_a_lock_and_extra_sources_elsewhere(tmp_path: Path) -> None:
    """The lock and the entry package are staged into the asset input (all the container sees),
    the Docker command names no host path, and the asset does not depend on where they lie."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda
    from aws_cdk.assertions import Template

    from constructs_lib.aws.bundling import lambda_code

    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stacks, staged = {}, {}
    for place in ("one", "two"):
        root = tmp_path / place
        lock_dir = root / "locks"
        lock_dir.mkdir(parents=True)
        requirements = lock_dir / "requirements.txt"
        shutil.copyfile(SERVICE_DIR / "requirements.txt", requirements)
        stack = stacks[place] = cdk.Stack(app, f"Stack{place}")
        code = lambda_code(
            source_dir=SERVICE_DIR,
            runtime=aws_lambda.Runtime.PYTHON_3_14,
            architecture=aws_lambda.Architecture.ARM_64,
            dependencies=Dependencies.from_path(requirements),
            extra_requirements=("mangum>=0.19",),
            extra_sources={"serverless_fastapi_entry": _entry(root)},
            lock_dir=lock_dir,
        )
        assert isinstance(code, aws_lambda.AssetCode)
        staged[place] = Path(code.path)
        aws_lambda.Function(
            stack,
            "Function",
            runtime=aws_lambda.Runtime.PYTHON_3_14,
            architecture=aws_lambda.Architecture.ARM_64,
            handler="serverless_fastapi_entry.lambda_api.handler",
            code=code,
        )
    keys = {}
    for place, stack in stacks.items():
        (function,) = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
        keys[place] = function["Properties"]["Code"]["S3Key"]
        inputs = staged[place]
        assert inputs != SERVICE_DIR
        lock = inputs / ".bundling-inputs" / "requirements.txt"
        assert lock.read_bytes() == (SERVICE_DIR / "requirements.txt").read_bytes()
        assert (inputs / ".bundling-inputs" / "extra" / "0" / "__init__.py").is_file()
        assert (inputs / "webapi" / "main.py").is_file() and not (inputs / "requirements.txt").exists()
    # CDK hashes the bundling options (the Docker command) with the content hash: equal keys
    # say the command names no host path.
    assert keys["one"] == keys["two"]


def test_a_spec_kept_in_the_app_stays_out_of_the_bundle(tmp_path: Path) -> None:
    """`make init APP=x SPEC=x/deploy.yaml` puts the spec and its locks in the app's directory:
    neither is the app's code (a scaling change must not change the bundle or the image)."""
    from constructs_lib.aws.bundling.source import source_files

    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "deploy.yaml").write_text("project: x\n")
    (tmp_path / ".deploy-locks").mkdir()
    (tmp_path / ".deploy-locks" / "requirements-cp314-arm64-0.txt").write_text("fastapi==1\n")
    assert [str(p) for p in source_files(tmp_path)] == ["main.py"]
