"""Conformance: schemathesis, with its default checks, against the real server started
as the container starts it, finds no response the OpenAPI document does not declare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PostgresForTests
from tests.service.live_server import live_server

API = "/api/v1"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Loaded by schemathesis only (importing it here would register its auth in this process).
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
PASSWORD = "correct horse battery"
# Test cases per operation and phase: about 10 s of schemathesis on 2 cores.
MAX_EXAMPLES = 50
SEED = 20240601
RUN_TIMEOUT_SECONDS = 180


def sign_up_and_log_in(base_url: str) -> str:
    email, password = "schemathesis@example.com", PASSWORD
    with httpx.Client(base_url=f"{base_url}{API}", timeout=10.0, trust_env=False) as client:
        created = client.post("/users", json={"email": email, "name": "Schemathesis", "password": password})
        assert created.status_code == 201, created.text
        login = client.post("/auth/token", data={"username": email, "password": password})
        assert login.status_code == 200, login.text
        return str(login.json()["access_token"])


@pytest.mark.slow
def test_openapi_conformance(postgres: PostgresForTests, tmp_path: Path) -> None:
    database_url = postgres.migrated("app_schemathesis")

    with live_server(database_url, tmp_path / "server.log") as server:
        token = sign_up_and_log_in(server.base_url)
        command = [
            str(SCHEMATHESIS),
            "--no-color",
            "run",
            f"{server.base_url}/openapi.json",
            # All checks (schemathesis' default), all phases, positive and negative data.
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            # Nothing kept between runs: no example database.
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
        ]
        env = {
            **os.environ,
            # The Authorization header: the token above, renewed if a test case deletes
            # the account (see the hooks module).
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "WEBAPI_BASE_URL": server.base_url,
            "WEBAPI_TEST_TOKEN": token,
            # Loopback only, whatever proxy the environment names.
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
        # cwd outside the repository: no schemathesis.toml is picked up, nothing is written.
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        assert result.returncode == 0, (
            f"schemathesis failed:\n{result.stdout}\n{result.stderr}\n--- server log ---\n{server.logs()}"
        )

        # Graceful shutdown: uvicorn finishes the lifespan (the pool is disposed), then
        # re-raises the SIGTERM it caught, so the process ends by that signal (or 0).
        exit_code = server.stop(timeout=5)
        logs = server.logs(tail=2000)
        assert exit_code in (0, -signal.SIGTERM), f"server exited with {exit_code}\n{logs}"
        assert "Application shutdown complete." in logs, logs
