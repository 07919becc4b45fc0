"""Lambda's Python: ``compute.python`` (auto: the newest Lambda runs that this machine has), and
the function's runtime and its bundle's bytecode always for the same version.

Machines are simulated by replacing :func:`target_interpreter`, the probe the bundler compiles
bytecode with; the last test builds the real bundles of a real synth.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.aws.bundling import build as build_module
from constructs_lib.aws.bundling import bytecode, tools
from constructs_lib.aws.bundling import cdk as cdk_module
from constructs_lib.aws.bundling.build import locked_content_hash
from constructs_lib.aws.bundling.target import BundleTarget, host_python_version
from constructs_lib.aws.bundling.tools import choose_python, managed_python, target_interpreter
from stacks.spec import SpecError, load_spec
from tests.infra.conftest import CDK_CONTEXT, synth_aws

LAMBDA_VERSIONS = ("3.11", "3.12", "3.13", "3.14")
API = "Service/Api/Function/Resource"
MIGRATE = "Service/MigrateFunction/Resource"


def machine_with(*versions: str) -> Callable[[str], str | None]:
    """A stand-in for ``target_interpreter`` on a machine that has only ``versions``."""

    def probe(version: str) -> str | None:
        return f"/opt/python{version}/bin/python{version}" if version in versions else None

    return probe


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``machine("3.12")``: from now on this machine has CPython 3.12 only (for the choice, the
    content hash and the bytecode step alike)."""

    def have(*versions: str) -> None:
        probe = machine_with(*versions)
        for module in (tools, bytecode, build_module, cdk_module):
            monkeypatch.setattr(module, "target_interpreter", probe)

    return have


def _lambda_python(stage: str, python: str, *, bundling: bool = True) -> Any:
    from stacks.aws_stack import lambda_python

    spec = load_spec(context={"spec.compute.python": f'"{python}"'}, stage=stage)
    return lambda_python(spec, bundling=bundling)


# --- the choice --------------------------------------------------------------------------------


def test_auto_chooses_among_lambdas_amazon_linux_2023_pythons() -> None:
    from stacks.aws_stack import auto_python_versions, lambda_python_versions

    assert lambda_python_versions() == LAMBDA_VERSIONS
    assert auto_python_versions() == ("3.12", "3.13", "3.14")  # 3.11 runs on Amazon Linux 2


@pytest.mark.parametrize(
    ("has", "chosen", "bytecode"),
    [
        (LAMBDA_VERSIONS, "3.14", True),
        (("3.11", "3.13"), "3.13", True),
        (("3.12",), "3.12", True),
        (("3.11",), "3.14", False),  # auto leaves out 3.11 (Amazon Linux 2)
        (("3.10", "3.15"), "3.14", False),  # none Lambda runs: the newest, without bytecode
        ((), "3.14", False),
    ],
)
def test_auto_is_the_newest_lambda_python_this_machine_has(
    machine: Callable[..., None], has: tuple[str, ...], chosen: str, bytecode: bool
) -> None:
    machine(*has)
    choice = _lambda_python("dev", "auto")
    assert (choice.version, choice.bytecode, choice.requested) == (chosen, bytecode, "auto")
    assert choice.interpreter == machine_with(*has)(chosen)


def test_an_explicit_version_is_kept_with_or_without_its_interpreter(machine: Callable[..., None]) -> None:
    machine("3.11", "3.12")
    assert choose_python("3.12", LAMBDA_VERSIONS).bytecode
    assert _lambda_python("prod", "3.11").version == "3.11"  # named: allowed, with bytecode
    explicit = choose_python("3.14", LAMBDA_VERSIONS)
    assert (explicit.version, explicit.bytecode, explicit.requested) == ("3.14", False, "3.14")


def test_auto_on_this_machine_has_an_interpreter_that_is_that_cpython() -> None:
    """The real probe: the interpreter auto found runs, and is CPython of the chosen version."""
    choice = _lambda_python("dev", "auto", bundling=False)
    if choice.interpreter is None:
        pytest.skip("this machine has no CPython 3.12+ (auto then builds a bundle without bytecode)")
    out = subprocess.run(
        [choice.interpreter, "-I", "-c", "import sys; print(*sys.version_info[:2], sys.implementation.name)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [*choice.version.split("."), "cpython"]


def test_an_installed_but_inactive_pyenv_version_is_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pyenv's shim of a version not selected fails ("command not found") and uv does not look
    in pyenv's directory; the version's own executable is used. Pre-releases and free-threaded
    builds are not."""
    version = host_python_version()
    versions = tmp_path / "pyenv" / "versions"
    for name in (f"{version}.1", f"{version}.2rc1", f"{version}.3t", f"{version}.0"):
        executable = versions / name / "bin" / f"python{version}"
        executable.parent.mkdir(parents=True)
        executable.symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setattr(tools, "version_manager_dirs", lambda: [versions])
    assert managed_python(version) == str(versions / f"{version}.1" / "bin" / f"python{version}")
    assert managed_python("3.99") is None


def test_the_content_hash_follows_the_machine(machine: Callable[..., None], tmp_path: Path) -> None:
    """A bundle without bytecode is another asset than one with: a machine that gains the
    interpreter redeploys the faster bundle."""
    (tmp_path / "app.py").write_text("X = 1\n")
    target = BundleTarget.create("3.13", "arm64")
    machine("3.13")
    with_bytecode = locked_content_hash(source_dir=tmp_path, lock=None, target=target)
    machine()
    assert locked_content_hash(source_dir=tmp_path, lock=None, target=target) != with_bytecode


# --- prod fails, dev warns ---------------------------------------------------------------------


@pytest.mark.parametrize("python", ["auto", "3.14"])
def test_prod_refuses_a_bundle_without_bytecode(machine: Callable[..., None], python: str) -> None:
    machine()
    with pytest.raises(SpecError) as raised:
        _lambda_python("prod", python)
    message = str(raised.value)
    assert "compute.python" in message
    assert "uv python install 3.14" in message
    assert "set compute.python to a version this machine has" in message


def test_prod_names_what_auto_looked_for(machine: Callable[..., None]) -> None:
    machine("3.10", "3.11")
    with pytest.raises(SpecError) as raised:
        _lambda_python("prod", "auto")
    message = str(raised.value)
    assert "compute.python is auto" in message
    assert "none of the CPythons it chooses among (3.12, 3.13, 3.14)" in message
    assert "auto leaves out 3.11" in message and 'compute.python: "3.11" names it' in message


def test_prod_refuses_an_explicit_version_the_machine_lacks(machine: Callable[..., None]) -> None:
    machine("3.12", "3.13")
    with pytest.raises(SpecError, match=r"compute\.python is 3\.14, but this machine has no CPython 3\.14"):
        _lambda_python("prod", "3.14")
    assert _lambda_python("prod", "3.13").version == "3.13"
    assert _lambda_python("prod", "auto").version == "3.13"


def test_dev_warns_and_synthesizes(machine: Callable[..., None], caplog: pytest.LogCaptureFixture) -> None:
    machine()
    with caplog.at_level(logging.WARNING, logger="stacks.aws_stack"):
        choice = _lambda_python("dev", "auto")
    assert (choice.version, choice.bytecode) == ("3.14", False)
    assert "compute.python" in caplog.text
    assert "uv python install 3.14" in caplog.text


def test_a_synth_that_skips_bundling_builds_nothing_to_refuse(machine: Callable[..., None]) -> None:
    machine()
    assert _lambda_python("prod", "3.14", bundling=False).version == "3.14"


def test_the_prod_stack_is_refused_before_anything_is_bundled(machine: Callable[..., None]) -> None:
    import aws_cdk as cdk

    from stacks.aws_stack import AwsServiceStack

    machine()
    context = {**CDK_CONTEXT}  # bundling this stack, as `make synth` and `cdk deploy` do
    app = cdk.App(context=context)
    spec = load_spec(context=context, stage="prod")
    with pytest.raises(SpecError, match=r"compute\.python"):
        AwsServiceStack(app, "refused", spec=spec)


# --- the stack: runtime from the same choice ---------------------------------------------------


def _functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The API's and the migration's function resources (by their logical ids)."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        match = re.fullmatch(r"Service(Api|Migrate)Function[0-9A-F]{8}", logical_id)
        if match and resource["Type"] == "AWS::Lambda::Function":
            found[API if match.group(1) == "Api" else MIGRATE] = resource
    assert set(found) == {API, MIGRATE}, sorted(found)
    return found


@pytest.mark.parametrize(("has", "runtime"), [(("3.12",), "python3.12"), (LAMBDA_VERSIONS, "python3.14")])
def test_the_stack_runs_the_chosen_python_and_passes_cdk_nag(
    machine: Callable[..., None], has: tuple[str, ...], runtime: str
) -> None:
    """Both functions (the API, the migration) get the runtime; an older one than the newest is
    suppressed in cdk-nag with its reason (synth_aws fails on any unsuppressed finding)."""
    machine(*has)
    synth = synth_aws("prod", {"spec.compute.python": '"auto"'})  # bundling skipped: the template only
    runtimes = {path: resource["Properties"]["Runtime"] for path, resource in _functions(synth.json).items()}
    assert runtimes == {API: runtime, MIGRATE: runtime}
    assert synth.stack.python.version == runtime.removeprefix("python")


@pytest.mark.slow
def test_runtime_and_bytecode_agree_in_a_real_synth(tmp_path: Path) -> None:
    """`make synth` as it runs on this machine (bundling on, auto, dev): the template's runtime is
    python3.X, and every .pyc in the staged bundle is cpython-3X for the same X (none at all on a
    machine without a CPython auto chooses; the synth warns then)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.aws_stack import AwsServiceStack

    context = {**CDK_CONTEXT}
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context=context)
    spec = load_spec(context=context, stage="dev")
    assert spec.compute.python == "auto"
    stack = AwsServiceStack(app, "agree", spec=spec)
    template = Template.from_stack(stack).to_json()
    version = stack.python.version
    assert stack.python.interpreter == target_interpreter(version)
    tag = "cpython-" + version.replace(".", "")
    for path, resource in _functions(template).items():
        properties = resource["Properties"]
        assert properties["Runtime"] == f"python{version}"
        asset = tmp_path / "cdk.out" / f"asset.{properties['Code']['S3Key'].removesuffix('.zip')}"
        # the wheels are for the same version (an extension module of pydantic_core)
        assert list((asset / "pydantic_core").glob(f"*.{tag}-*-linux-gnu.so"))
        compiled = list(asset.rglob("*.pyc"))
        if not stack.python.bytecode:
            assert compiled == []
            continue
        assert compiled, f"{path}: no bytecode in {asset}"
        tags = {re.sub(r"^.*\.(cpython-\d+)(?:\.opt-\d)?\.pyc$", r"\1", p.name) for p in compiled}
        assert tags == {tag}, tags
