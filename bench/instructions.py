"""CPU instructions per request, counted by valgrind: a figure that does not drift with the machine.

Wall-clock figures on a shared 2-core machine move by 20-50% from one run to the next
(docs/performance.md), more than most changes to the service. This counts the instructions the
interpreter executes per request instead (``valgrind --tool=callgrind``, user space only: the
kernel's share of a system call is not in it), which repeats to within about 1% for the same
code and data, so a change can be compared with the commit before it.

How: a child interpreter builds the app with ``webapi.main.create_app``, starts it up, and calls
it in-process as an ASGI server would (no HTTP, no Mangum) for one route, against a PostgreSQL
started here and seeded as the Lambda figures seed it (a user with 20 items, a minted token).
It makes 300 warm-up requests and then N, or 2N; the figure is ``(Ir(2N) - Ir(N)) / N``, so
interpreter start-up, imports, warm-up and teardown cancel out. A run outside valgrind first
writes the bytecode caches, and the two counted runs write none, so both load the same code.
The database's own work runs in its server process, which valgrind does not trace.

Run: ``python -m bench.instructions`` (needs ``valgrind`` on PATH: ``apt-get install
valgrind``). ``--service DIR`` counts another checkout's ``service/`` (for a before/after:
``git worktree add /tmp/before HEAD~1`` then ``--service /tmp/before/service``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.lambda_bench import ITEMS_PATH, mint_token, prepare_database, seed

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
WARMUP = 300
SECRET_KEY = "instructions-bench-signing-key-0123456789abcdef0123456789abcdef"

ROUTES = ("GET /health", f"GET {ITEMS_PATH}", "POST /api/v1/items")

# The child: argv = route, requests. Environment: DATABASE_URL, SECRET_KEY, TOKEN.
CHILD = r"""
import asyncio, logging, os, sys
route, requests = sys.argv[1], int(sys.argv[2])
from webapi.main import create_app, startup
app = create_app()
devnull = open(os.devnull, "w")
for handler in logging.getLogger().handlers:
    handler.setStream(devnull)  # the access line is still formatted and written, to nowhere
method, _, target = route.partition(" ")
path, _, query = target.partition("?")
body = b'{"title": "a title", "description": "some text"}' if method == "POST" else b""
headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", b"Bearer " + os.environ["TOKEN"].encode())]
if body:
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
template = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
    "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
    "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
}
expected = 201 if method == "POST" else 200

async def call():
    scope = dict(template)
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = []

    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [expected]:
        raise SystemExit(f"{route}: status {status}, expected {expected}")

async def main():
    await startup(app)
    for _ in range(WARMUP + requests):
        await call()

asyncio.run(main())
""".replace("WARMUP", str(WARMUP))

_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(service_dir: Path, route: str, requests: int, env: dict[str, str]) -> int:
    """Instructions of one child run (start-up, warm-up and ``requests`` requests)."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            CHILD,
            route,
            str(requests),
        ],
        cwd=service_dir,
        env={**env, "PYTHONPATH": str(service_dir)},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{route}: child failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return int(found.group(1))


def _prime(service_dir: Path, route: str, env: dict[str, str]) -> None:
    """One run outside valgrind that may write bytecode, so that the two counted runs, which may
    not, both load the same cached bytecode: a run that compiles a module the other one loads
    differs from it by far more than the requests it makes."""
    subprocess.run(
        [sys.executable, "-c", CHILD, route, "1"],
        cwd=service_dir,
        env={**env, "PYTHONPATH": str(service_dir)},
        capture_output=True,
        check=True,
        timeout=300,
    )


def per_request(service_dir: Path, route: str, requests: int, env: dict[str, str]) -> int:
    """``(Ir(2N) - Ir(N)) / N`` for ``route``: the instructions of one request."""
    _prime(service_dir, route, env)
    # No bytecode written, and one hash seed: str hashes (and with them dict and set layouts)
    # otherwise differ from run to run, and so does the work.
    env = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    once = _instructions(service_dir, route, requests, env)
    twice = _instructions(service_dir, route, 2 * requests, env)
    return (twice - once) // requests


def count(service_dir: Path, requests: int, routes: Sequence[str] = ROUTES) -> dict[str, int]:
    """Instructions per request for each route, against a PostgreSQL started for the run."""
    from devtools.localdb import LocalPostgres  # noqa: PLC0415 - the embedded server only when counting

    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        database = LocalPostgres(Path(tmp) / "pg")
        database.start()
        try:
            url = prepare_database(database, "bench_instructions")
            env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "LANG": "C.UTF-8",
                "ENVIRONMENT": "test",
                "DATABASE_URL": url,
                "SECRET_KEY": SECRET_KEY,
                "TOKEN": mint_token(SECRET_KEY, seed(url)),
            }
            return {route: per_request(service_dir, route, requests, env) for route in routes}
        finally:
            database.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--service", type=Path, default=SERVICE_DIR, help="the service/ directory to count")
    parser.add_argument("--requests", type=int, default=100, help="N: requests of the shorter run")
    parser.add_argument("--route", action="append", choices=ROUTES, help="only this route (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.stderr.write("valgrind is not on PATH (apt-get install valgrind)\n")
        return 2
    counts = count(args.service.resolve(), args.requests, args.route or ROUTES)
    for route, instructions in counts.items():
        sys.stdout.write(f"{route:32s} {instructions / 1e6:8.2f} M instructions per request\n")
    if args.json:
        args.json.write_text(json.dumps({"service": str(args.service), "counts": counts}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
