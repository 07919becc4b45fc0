"""The real server in a subprocess, started the way the container starts it:
``python -m webapi.serve`` with its configuration in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.localdb import free_port
from devtools.processes import stop_process
from tests.conftest import SERVICE_DIR, TEST_SECRET_KEY

STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def logs(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> int:
        """SIGTERM, as the platform sends it; the exit code (killed if it hangs)."""
        code, killed = stop_process(self.process, timeout)
        if killed:
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM\n{self.logs()}")
        return code


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}\n{server.logs()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not healthy after {STARTUP_TIMEOUT_SECONDS} s\n{server.logs()}")


@contextmanager
def live_server(database_url: str, log_path: Path, **extra_env: str) -> Iterator[LiveServer]:
    """A running server on a free loopback port. Leaving the block stops it with
    SIGTERM; the caller may stop it earlier to check the exit code."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": database_url,
        **extra_env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapi.serve"],
            cwd=SERVICE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
