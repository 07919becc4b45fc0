"""Dependencies from whatever the app declares them in, hash-locked per target at synth, reused
afterwards; and what happens to packages without a wheel for the target.

The tests that resolve use the index (PyPI); the others run offline.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.aws.bundling import (
    BundleTarget,
    BundlingError,
    Dependencies,
    LocalPythonBundler,
    MissingWheelError,
    build_bundle,
    content_hash,
    find_uv,
    hash_locked_pins,
    lock_requirements,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "service"
ARM_313 = BundleTarget.create("3.13", "arm64")
EXTRAS = ("mangum>=0.19",)


def _host() -> BundleTarget:
    try:
        return BundleTarget.host()
    except BundlingError as error:
        pytest.skip(f"no bundle for this machine: {error}")


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command run through subprocess.run, recorded (and run)."""
    ran: list[list[str]] = []
    real_run: Callable[..., Any] = subprocess.run

    def spy(command: list[str], *args: Any, **kwargs: Any) -> Any:
        ran.append([str(part) for part in command])
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    return ran


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("def handler(event, context):\n    return event\n")
    return app


# --- detection --------------------------------------------------------------------------------


def test_detect_prefers_requirements_then_uv_lock_then_pyproject(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(tmp_path)
    assert Dependencies.detect(app) is None
    pyproject = app / "pyproject.toml"
    pyproject.write_text('[project]\nname = "app"\nversion = "1"\ndependencies = ["fastapi"]\n')
    assert Dependencies.detect(app) == Dependencies("pyproject", pyproject.resolve())
    (app / "poetry.lock").write_text("")
    with caplog.at_level(logging.WARNING, logger="constructs_lib.aws.bundling"):
        assert Dependencies.detect(app) == Dependencies("pyproject", pyproject.resolve())
    assert "poetry.lock" in caplog.text and "not honoured" in caplog.text
    (app / "uv.lock").write_text("version = 1\n")
    assert Dependencies.detect(app) == Dependencies(
        "uv-lock", pyproject.resolve(), (app / "uv.lock").resolve()
    )
    (app / "requirements.txt").write_text("fastapi\n")
    assert Dependencies.detect(app) == Dependencies("requirements", (app / "requirements.txt").resolve())
    assert Dependencies.detect(SERVICE_DIR) == Dependencies("requirements", SERVICE_DIR / "requirements.txt")


def test_an_unusable_pyproject_is_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.poetry.dependencies]\npython = "^3.12"\nfastapi = "*"\n')
    with pytest.raises(BundlingError, match=r"pyproject\.toml has no \[project\]\.dependencies") as raised:
        Dependencies.from_path(pyproject)
    assert str(pyproject) in str(raised.value)
    pyproject.write_text('[project]\nname = "a"\nversion = "1"\ndynamic = ["dependencies"]\n')
    with pytest.raises(BundlingError, match="dynamic"):
        Dependencies.detect(tmp_path)
    with pytest.raises(BundlingError, match=r"setup\.cfg"):
        (tmp_path / "setup.cfg").write_text("")
        Dependencies.from_path(tmp_path / "setup.cfg")


def test_hash_locked_pins() -> None:
    assert hash_locked_pins("fastapi\n") is None
    assert hash_locked_pins("pyjwt==2.10.1\n") is None  # pinned, no hash
    assert hash_locked_pins("a==1 \\\n    --hash=sha256:00\n-r other.txt\n") is None
    assert hash_locked_pins("A_b==1.0 ; python_version < '3.12' \\\n    --hash=sha256:00\n    # via x\n") == {
        "a-b": "1.0"
    }


# --- the sample app: used as it is --------------------------------------------------------------


def test_the_sample_requirements_are_used_as_they_are(tmp_path: Path, commands: list[list[str]]) -> None:
    service = Dependencies.detect(SERVICE_DIR)
    lock_dir = tmp_path / "locks"
    for target in (BundleTarget.create("3.14", "arm64"), ARM_313, BundleTarget.create("3.11", "x86_64")):
        lock = lock_requirements(service, target, extra_requirements=EXTRAS, lock_dir=lock_dir)
        assert lock == SERVICE_DIR / "requirements.txt"
    assert commands == []  # no resolution, no uv at all
    assert not lock_dir.exists()
    # An extra the file does not satisfy needs resolving, hence a lock directory.
    with pytest.raises(BundlingError, match="lock_dir"):
        lock_requirements(service, ARM_313, extra_requirements=("mangum>=99",), lock_dir=None)


# --- resolution (network) ---------------------------------------------------------------------


@pytest.mark.slow
def test_unpinned_requirements_are_locked_per_target_and_reused(
    tmp_path: Path, commands: list[list[str]]
) -> None:
    app = _app(tmp_path)
    (app / "requirements.txt").write_text("fastapi\n")
    dependencies = Dependencies.detect(app)
    lock_dir = tmp_path / "locks"
    locks = {}
    for target in (ARM_313, _host()):
        lock = lock_requirements(dependencies, target, extra_requirements=EXTRAS, lock_dir=lock_dir)
        assert lock is not None and lock.parent == lock_dir
        assert lock.name.startswith(f"requirements-{target.cpython_tag}-{target.architecture}-")
        pins = hash_locked_pins(lock.read_text())
        assert pins is not None, lock.read_text()
        assert {"fastapi", "pydantic-core", "starlette", "mangum"} <= pins.keys()
        assert "--hash=sha256:" in lock.read_text()
        locks[target] = lock
    compiles = [command for command in commands if command[1:3] == ["pip", "compile"]]
    assert len(compiles) == 2
    assert {compiles[0][compiles[0].index("--python-platform") + 1]} == {ARM_313.uv_platform}

    # Next synth: the same lock, nothing resolved, no uv run at all.
    commands.clear()
    for target, lock in locks.items():
        assert lock_requirements(dependencies, target, extra_requirements=EXTRAS, lock_dir=lock_dir) == lock
    assert commands == []
    # Another input is another lock; the old one stays (a user commits the directory).
    (app / "requirements.txt").write_text("fastapi\nmangum==0.22.0\n")
    changed = lock_requirements(
        Dependencies.detect(app), ARM_313, extra_requirements=EXTRAS, lock_dir=lock_dir
    )
    assert changed != locks[ARM_313] and changed is not None and changed.is_file()
    assert "mangum==0.22.0" in changed.read_text()
    assert len(list(lock_dir.iterdir())) == 3
    # The content hash covers the lock, not the unresolved input: another target, another hash.
    assert content_hash(
        source_dir=app,
        dependencies=dependencies,
        python_version="3.13",
        architecture="arm64",
        lock_dir=lock_dir,
    ) != content_hash(
        source_dir=app,
        dependencies=dependencies,
        python_version="3.13",
        architecture="arm64",
        lock_dir=lock_dir,
        extra_requirements=EXTRAS,
    )


@pytest.mark.slow
def test_pyproject_with_uv_lock_gets_our_extras(tmp_path: Path, commands: list[list[str]]) -> None:
    app = _app(tmp_path)
    (app / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["pyjwt>=2.8"]\n\n[dependency-groups]\ndev = ["iniconfig"]\n'
    )
    subprocess.run([find_uv(), "lock", "--quiet"], cwd=app, check=True, capture_output=True)
    dependencies = Dependencies.detect(app)
    assert dependencies is not None and dependencies.kind == "uv-lock"
    target = _host()
    lock_dir = tmp_path / "locks"
    # Without extras the user's lock is exported as it is: no resolution.
    plain = lock_requirements(dependencies, target, lock_dir=lock_dir)
    assert plain is not None and "pyjwt==" in plain.read_text()
    assert "iniconfig" not in plain.read_text()  # no dev group
    assert not [command for command in commands if "compile" in command]
    output = tmp_path / "bundle"
    build_bundle(
        output,
        source_dir=app,
        dependencies=dependencies,
        python_version=target.python_version,
        architecture=target.architecture,
        manylinux=target.manylinux,
        extra_requirements=EXTRAS,
        lock_dir=lock_dir,
    )
    installed = {path.name.split("-")[0].lower() for path in output.glob("*.dist-info")}
    assert {"pyjwt", "mangum"} <= installed
    assert (output / "mangum" / "__init__.py").is_file()
    assert (output / "main.py").is_file()
    assert [command for command in commands if command[1:2] == ["export"]]


@pytest.mark.slow
def test_pyproject_without_lock_is_resolved(tmp_path: Path) -> None:
    app = _app(tmp_path)
    (app / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\ndependencies = ["pyjwt"]\n')
    lock = lock_requirements(Dependencies.detect(app), ARM_313, lock_dir=tmp_path / "locks")
    assert lock is not None
    pins = hash_locked_pins(lock.read_text())
    assert pins is not None and "pyjwt" in pins


# --- packages without a wheel for the target (network) ----------------------------------------

# docopt 0.6.2: pure Python, published as an sdist only. netifaces 0.11.0 and crcmod 1.7:
# C extensions, no Linux wheels at all.
PURE_SDIST = "docopt==0.6.2"
COMPILED_SDISTS = ("netifaces==0.11.0", "crcmod==1.7")


@pytest.mark.slow
def test_a_pure_python_sdist_is_built_here(tmp_path: Path) -> None:
    app = _app(tmp_path)
    (app / "requirements.txt").write_text(f"{PURE_SDIST}\n")
    output = tmp_path / "bundle"
    build_bundle(
        output,
        source_dir=app,
        dependencies=Dependencies.detect(app),
        python_version="3.13",
        architecture="arm64",
        lock_dir=tmp_path / "locks",
    )
    assert (output / "docopt.py").is_file()
    wheel = (output / "docopt-0.6.2.dist-info" / "WHEEL").read_text()
    assert "Root-Is-Purelib: true" in wheel and "Tag: py3-none-any" in wheel


@pytest.mark.slow
@pytest.mark.parametrize("target", ["lambda", "host"])
def test_compiled_sdists_fail_naming_each_and_the_choices(tmp_path: Path, target: str) -> None:
    """For arm64 uv refuses what it built (tagged for this machine); for this machine uv installs
    it and the bundler finds the extension modules. Either way: an error, never a bundle."""
    bundle_target = ARM_313 if target == "lambda" else _host()
    app = _app(tmp_path)
    (app / "requirements.txt").write_text("\n".join((PURE_SDIST, *COMPILED_SDISTS)) + "\n")
    output = tmp_path / "bundle"
    bundler = LocalPythonBundler(
        source_dir=app,
        dependencies=Dependencies.detect(app),
        python_version=bundle_target.python_version,
        architecture=bundle_target.architecture,
        manylinux=bundle_target.manylinux,
        lock_dir=tmp_path / "locks",
    )
    output.mkdir()
    with pytest.raises(MissingWheelError) as raised:
        bundler.try_bundle(str(output))  # no docker_fallback: the synth fails
    assert raised.value.packages == ("crcmod", "netifaces")
    message = str(raised.value)
    assert "docopt" not in message.split("Choices", maxsplit=1)[0]
    assert "docker_fallback=True" in message
    assert "compute.architecture" in message and "Python runtime" in message
    assert "--find-links" in message
    assert list(output.iterdir()) == []
