"""Stopping a child server as a platform does: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, bool]:
    """SIGTERM (unless it already exited), then wait up to ``timeout`` seconds; SIGKILL if it
    is still running. Returns the exit code and whether it had to be killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(), True
