"""The example apps' specs as a user gets them: ``python app.py init`` run on each example
(stacks/detect.py), the spec it writes loaded as ``make synth`` loads it."""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

from stacks.detect import init
from stacks.spec import Spec, load_spec
from tests.conftest import ROOT

EXAMPLES_DIR = ROOT / "tests" / "examples"
EXAMPLE_NAMES = ("hello", "factory_uv", "sync_sqlmodel", "own_docker", "no_db")


@functools.cache
def _specs_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="example-specs-"))


@functools.cache
def detected_spec_file(name: str) -> Path:
    """The deploy.yaml `init` writes for the example (in a directory of its own)."""
    directory = _specs_dir() / name
    directory.mkdir()
    spec_file = directory / "deploy.yaml"
    report = io.StringIO()
    status = init(EXAMPLES_DIR / name, spec_file, out=report)
    assert status == 0, report.getvalue()
    return spec_file


def detected_spec(name: str, *, stage: str = "dev") -> Spec:
    return load_spec(detected_spec_file(name), stage=stage)
