"""The container contract, checked without a Docker daemon: the Dockerfile's
instructions, and the command it runs, started for real."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from devtools.localdb import free_port
from tests.conftest import SERVICE_DIR, TEST_SECRET_KEY


def _instructions() -> list[tuple[str, str]]:
    text = (SERVICE_DIR / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_follows_the_contract() -> None:
    instructions = _instructions()
    keywords = [k for k, _ in instructions]
    base = dict(instructions)["FROM"]
    assert re.fullmatch(r"python:3\.1[2-9]-slim(-\w+)?", base), base
    # Dependency layer before the code, installed from the lock with hashes.
    copies = [v for k, v in instructions if k == "COPY"]
    assert copies[0].split()[0] == "requirements.txt"
    assert keywords.index("RUN") < keywords.index("COPY", keywords.index("RUN"))
    assert any("--require-hashes -r requirements.txt" in v for k, v in instructions if k == "RUN")
    user = [v for k, v in instructions if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert "PORT=8080" in dict(instructions)["ENV"]
    command = json.loads(dict(instructions)["CMD"])  # exec form: a JSON array
    assert command == ["python", "-m", "webapi.serve"]


def test_dockerignore_keeps_caches_out() -> None:
    ignored = (SERVICE_DIR / ".dockerignore").read_text().split()
    assert "**/__pycache__" in ignored and ".env" in ignored


def test_only_service_files_are_in_the_build_context() -> None:
    names = {p.name for p in SERVICE_DIR.iterdir()} - {"__pycache__"}
    assert names == {
        "Dockerfile",
        ".dockerignore",
        "requirements.in",
        "requirements.txt",
        "webapi",
    }


@pytest.mark.slow
def test_the_image_command_serves_on_port_and_stops_gracefully_on_sigterm(database_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENVIRONMENT": "prod",
        "K_SERVICE": "api",
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(SERVICE_DIR),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "webapi.serve"],
        cwd=SERVICE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    output = server.stdout.read() if server.stdout else ""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in lines]
    assert "application startup" in messages
    assert "Application shutdown complete." in messages
    startup = next(entry for entry in lines if entry["message"] == "application startup")
    assert startup["platform"] == "cloud_run" and startup["environment"] == "prod"


def test_forwarded_headers_are_believed_only_from_known_proxies() -> None:
    from webapi.serve import forwarded_allow_ips

    assert forwarded_allow_ips({"K_SERVICE": "api"}) == "*"  # Cloud Run: only its front end connects
    assert forwarded_allow_ips({}) == "127.0.0.1"
    assert forwarded_allow_ips({"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}) == "10.0.0.0/8"
