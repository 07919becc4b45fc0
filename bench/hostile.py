"""`make hostile`: the service under hostile load, each figure beside its goal.

Every scenario runs against a server process of its own (``python -m webapi.serve``, with
STORAGE_BACKEND=local and no cache), so that the in-process login counters one scenario
fills do not answer for the next; all use one embedded PostgreSQL in a temporary directory,
migrated by its owner as the tests do, the service connecting as the application role.
Each simulated client has a loopback source address of its own (127.20.x.y): the service
throttles by address.

races   PATCH racing DELETE on one item, many pairs; POST /items, PATCH and attachment
        creation racing DELETE /users/{id} of their owner. Goal: no 500.
cap     160 parallel POST /items/{id}/attachments on one item. Goal: at most 100 rows (SQL).
flood   duplicate (409) and fresh sign-ups on 16 connections from one address while a user
        logs in, one login at a time, from another: login p50 against idle. Goal: <= 2x.
        Sign-ups answered 429 are expected (SIGNUP_MAX_PER_CLIENT is left at its default).
flush   an account locked by 5 wrong guesses; 10,000 logins with random emails from one
        address; then more guesses at the account from a third. Goal: they are still 429.
pause   keep-alive writers (POST /items, unique titles), keep-alive login probers (logins back
        to back) and users logging in with the right password from 3 devices each (following
        Retry-After) while every PostgreSQL process of the server is SIGSTOPped, then SIGCONTed;
        DB_COMMAND_TIMEOUT_SECONDS=2 (and connect, pool timeouts), so requests time out meanwhile.
hiccups the writers and probers through several short pauses (3 s): more moments at which the
        database stops between a commit and its reply, or between a response and the end of
        its request.
stop    the same as pause around pg_ctl stop -m fast, a wait, pg_ctl start.
        Goals: no account answered 429 for the right password once the database is back; no
        row whose POST got no 201 (unacknowledged write); no acknowledged row missing; no
        request left without an answer on a keep-alive connection.

Over all scenarios: every 500 a client saw (goal 0) and every traceback in a server log
(goal 0; "response already started" included). Each figure is written to
bench/hostile-results.json as soon as it is measured, the scenario's details (statuses,
the requests answered 500 with their request ids, the server log's problems) when it ends;
a scenario that crashes is a failed row and the next one still runs. A table at the end;
exit status 1 when a goal is missed.

Run: ``PYTHONPATH=service:. python -m bench.hostile [--quick] [--only races cap ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.hostile_client import (
    Connection,
    FloodSpec,
    Response,
    SourceAddresses,
    Tally,
    TransportFailure,
    pause_postgres,
    resume_postgres,
)
from devtools.localdb import LocalPostgres, free_port
from devtools.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
SERVICE_DIR = ROOT / "service"
RESULTS = ROOT / "bench" / "hostile-results.json"
API = "/api/v1"
DATABASE = "hostile"
SECRET_KEY = "hostile-signing-key-long-enough-for-hs512-0123456789abcdef012345678"
OWNER_ROLE = "app_owner"
APP_ROLE = "app_service"
APP_ROLE_PASSWORD = "hostile-app-role-password-0123456789"
PASSWORD = "right-password-0123"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0
ATTACHMENT_CAP = 100
LOGIN_MAX_FAILURES = 5  # the service's default LOGIN_MAX_FAILURES
FLOOD_CONNECTIONS = 16
# Sign-ups per second the flood offers: 2.5x what Argon2 can hash here (two at a time, ~25 ms
# each), so hashing each one queues logins behind it, while a cheap refusal costs little.
# Unpaced (0), the load generator and the server share the two cores and any answer, however
# cheap, slows the login by as much; --flood-rate 0 measures that.
FLOOD_RATE = 200.0
SPRAY_CONNECTIONS = 16
# Short database timeouts in the outage scenarios, so that requests time out within the run
# (and users following Retry-After make a few attempts during it, not one).
OUTAGE_ENV = {
    "DB_COMMAND_TIMEOUT_SECONDS": "2",
    "DB_CONNECT_TIMEOUT_SECONDS": "2",
    "DB_POOL_TIMEOUT_SECONDS": "2",
}
# Settings the run must not inherit from the caller's environment (the server gets its own).
_UNINHERITED_PREFIXES = ("DB_", "LOGIN_", "SIGNUP_", "REDIS_", "STORAGE_", "UPLOAD")
_UNINHERITED = {"FORWARDED_ALLOW_IPS", "K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME", "DATABASE_URL"}


@dataclass(frozen=True)
class Plan:
    """How hard each scenario pushes; --quick is a smoke run of the same scenarios."""

    race_pairs: int
    deletion_accounts: int
    cap_items: int
    cap_parallel: int
    idle_logins: int
    flood_s: float
    flood_rate: float
    spray_attempts: int
    outage_accounts: int
    clients_per_account: int
    writers: int
    login_probers: int
    warm_s: float
    pause_s: float
    hiccups: int
    hiccup_s: float
    hiccup_gap_s: float
    down_s: float
    after_s: float


FULL = Plan(
    race_pairs=120,
    deletion_accounts=8,
    cap_items=2,
    cap_parallel=160,
    idle_logins=25,
    flood_s=15.0,
    flood_rate=FLOOD_RATE,
    spray_attempts=10_000,
    outage_accounts=6,
    clients_per_account=3,
    writers=8,
    login_probers=4,
    warm_s=3.0,
    pause_s=15.0,
    hiccups=8,
    hiccup_s=3.0,
    hiccup_gap_s=1.5,
    down_s=12.0,
    after_s=3.0,
)
QUICK = Plan(
    race_pairs=30,
    deletion_accounts=3,
    cap_items=1,
    cap_parallel=160,
    idle_logins=10,
    flood_s=6.0,
    flood_rate=FLOOD_RATE,
    spray_attempts=10_000,
    outage_accounts=3,
    clients_per_account=3,
    writers=4,
    login_probers=2,
    warm_s=1.5,
    pause_s=12.0,
    hiccups=2,
    hiccup_s=3.0,
    hiccup_gap_s=1.5,
    down_s=8.0,
    after_s=1.0,
)


# --- results ------------------------------------------------------------------------------


class Report:
    """The rows and each scenario's details, rewritten to ``path`` after every change."""

    def __init__(self, path: Path, *, quick: bool, plan: Plan, service_dir: Path = SERVICE_DIR) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.scenarios: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.header = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
            "service": describe_service(service_dir),
            "plan": asdict(plan),
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
        }

    def add(self, scenario: str, figure: str, *, value: Any, measured: str, goal: str, met: bool) -> None:
        row = {
            "scenario": scenario,
            "figure": figure,
            "value": value,
            "measured": measured,
            "goal": goal,
            "met": met,
        }
        self.rows.append(row)
        sys.stderr.write(f"hostile:   {figure}: {measured} (goal {goal}) {'met' if met else 'MISSED'}\n")
        self.write()

    def scenario(self, name: str, details: dict[str, Any]) -> None:
        self.scenarios[name] = details
        self.write()

    @property
    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def write(self) -> None:
        document = {
            **self.header,
            "elapsed_s": self.elapsed_s,
            "rows": self.rows,
            "scenarios": self.scenarios,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
        temporary.replace(self.path)

    @property
    def missed(self) -> list[str]:
        return [row["figure"] for row in self.rows if not row["met"]]


def describe_service(service_dir: Path) -> dict[str, Any]:
    """Which code was attacked: the directory, and for this checkout's service/ the commit and
    whether the working tree differs from it."""
    described: dict[str, Any] = {"dir": str(service_dir)}
    if service_dir.resolve() == SERVICE_DIR.resolve():
        git = ["git", "-C", str(ROOT)]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            described["commit"] = subprocess.run(
                [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            changed = subprocess.run(
                [*git, "status", "--porcelain", "--", "service"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.splitlines()
            described["uncommitted_changes"] = len(changed)
    return described


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("figure", "measured", "goal", "met?")
    lines = [header] + [
        (row["figure"], row["measured"], row["goal"], "yes" if row["met"] else "NO") for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(rendered)


# --- the database and the server ----------------------------------------------------------


def as_role(url: str, role: str, password: str | None = None) -> str:
    """``url`` with its user replaced by ``role`` (the local server trusts 127.0.0.1)."""
    scheme, _, rest = url.partition("://")
    _, _, host_and_db = rest.rpartition("@")
    credentials = f"{role}:{password}" if password else role
    return f"{scheme}://{credentials}@{host_and_db}"


def _inherited_env() -> dict[str, str]:
    """The caller's environment without any of the service's settings: the run sets its own,
    and measures the defaults of the rest (SIGNUP_MAX_PER_CLIENT among them)."""
    try:
        from webapi.config import Settings  # noqa: PLC0415 - needs PYTHONPATH=service

        settings = {name.upper() for name in Settings.model_fields}
    except ImportError:
        settings = set()
    return {
        name: value
        for name, value in os.environ.items()
        if name not in settings and name not in _UNINHERITED and not name.startswith(_UNINHERITED_PREFIXES)
    }


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> dict[str, Any]:
        code, killed = stop_process(self.process, SHUTDOWN_TIMEOUT_S)
        return {"exit_code": code, "killed_after_sigterm_timeout": killed}


class Stack:
    """The embedded PostgreSQL, migrated, and the servers started against it."""

    def __init__(self, workdir: Path, log_dir: Path, service_dir: Path = SERVICE_DIR) -> None:
        self.service_dir = service_dir
        self.database = LocalPostgres(workdir / "pg")
        self.storage_dir = workdir / "storage"
        self.log_dir = log_dir
        self.app_url = ""

    @property
    def pgdata(self) -> Path:
        return self.database.pgdata

    def start(self) -> None:
        self.database.start()
        self.database.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') "
            f"THEN CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE; END IF; END $$"
        )
        self.database.psql(f'CREATE DATABASE "{DATABASE}" OWNER {OWNER_ROLE}')
        owner_url = as_role(self.database.url(DATABASE), OWNER_ROLE)
        result = subprocess.run(
            [sys.executable, "-m", "webapi.migrate"],
            cwd=self.service_dir,
            env={
                **_inherited_env(),
                "DATABASE_URL": owner_url,
                "ENVIRONMENT": "test",
                "PYTHONPATH": str(self.service_dir),
                "APP_DB_USER": APP_ROLE,
                "APP_DB_PASSWORD": APP_ROLE_PASSWORD,
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrations failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        self.app_url = as_role(owner_url, APP_ROLE, APP_ROLE_PASSWORD)

    def stop(self) -> None:
        self.database.stop()

    def sql(self, query: str) -> list[str]:
        """Rows of a query as the superuser, one line each (psql -tA)."""
        return [line for line in self.database.psql(query, DATABASE).splitlines() if line]

    def launch(self, name: str, extra_env: dict[str, str]) -> Server:
        """``python -m webapi.serve`` on a free loopback port, once /health answers 200."""
        port = free_port()
        env = {
            **_inherited_env(),
            "DATABASE_URL": self.app_url,
            "SECRET_KEY": SECRET_KEY,
            "ENVIRONMENT": "test",
            "STORAGE_BACKEND": "local",
            "LOCAL_STORAGE_DIR": str(self.storage_dir),
            "ACCESS_TOKEN_EXPIRE_MINUTES": "60",
            "PYTHONPATH": str(self.service_dir),
            "PORT": str(port),
            "HOST": "127.0.0.1",
            **extra_env,
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"server-{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "webapi.serve"],
                cwd=self.service_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(name=name, process=process, host="127.0.0.1", port=port, log_path=log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                    return server
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"server not healthy after {STARTUP_TIMEOUT_S} s\n{server.log_tail()}")
            time.sleep(0.1)


# The line that names an exception ("sqlalchemy.exc.IntegrityError: ..."), not SQLAlchemy's
# "[SQL: ...]", "[parameters: ...]" and "(Background on this error ...)" lines after it.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")


def scan_log(path: Path) -> dict[str, Any]:
    """What a server log says went wrong: tracebacks, ERROR lines, "response already started",
    and the 500s of its access log; each distinct problem once, with its first traceback."""
    text = path.read_text(errors="replace") if path.exists() else ""
    problems: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    tracebacks = 0
    access_500 = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):  # uvicorn or Python writing outside the JSON logging
            if line.startswith("Traceback"):
                tracebacks += 1
            problems[line.strip()[:200]] += 1
            continue
        if entry.get("message") == "request" and entry.get("status") == 500:
            access_500 += 1
        exception = str(entry.get("exception") or "")
        if not exception and entry.get("severity") not in ("ERROR", "CRITICAL"):
            continue
        last = next(
            (line for line in reversed(exception.splitlines()) if _EXCEPTION_LINE.match(line)),
            exception.strip().splitlines()[-1] if exception.strip() else "",
        )[:200]
        tracebacks += 1 if exception else 0
        key = f"{entry.get('severity')} {entry.get('logger')}: {entry.get('message')}"
        if last:
            key += f" [{last}]"
        problems[key] += 1
        if key not in examples:
            examples[key] = {
                "path": entry.get("path"),
                "request_id": entry.get("request_id"),
                "traceback": exception[-6000:],
            }
    return {
        "tracebacks": tracebacks,
        "response_already_started": text.count("response already started"),
        "access_log_500s": access_500,
        "problems": [
            {"count": count, "problem": key, **examples.get(key, {})}
            for key, count in problems.most_common(12)
        ],
    }


# --- what every scenario uses -------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password: str
    token: str
    source: str


@dataclass
class Context:
    stack: Stack
    server: Server
    plan: Plan
    report: Report
    name: str
    addresses: SourceAddresses
    tally: Tally = field(default_factory=Tally)
    details: dict[str, Any] = field(default_factory=dict)

    def conn(
        self, source: str | None = None, *, tally: Tally | None = None, timeout: float = 30.0
    ) -> Connection:
        return Connection(
            self.server.host, self.server.port, source=source, tally=tally or self.tally, timeout=timeout
        )

    def add(self, figure: str, value: Any, measured: str, goal: str, met: bool) -> None:
        self.report.add(self.name, figure, value=value, measured=measured, goal=goal, met=met)

    async def sql(self, query: str) -> list[str]:
        return await asyncio.to_thread(self.stack.sql, query)

    async def sign_up(self, label: str) -> User:
        """A new account, signed up and logged in from a source address of its own."""
        source = self.addresses()
        email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
        conn = self.conn(source)
        try:
            created = await conn.request(
                "POST", f"{API}/users", json_body={"email": email, "name": label, "password": PASSWORD}
            )
            _expect(created, 201, "sign-up")
            token = await conn.request(
                "POST", f"{API}/auth/token", form={"username": email, "password": PASSWORD}
            )
            _expect(token, 200, "login")
        finally:
            await conn.close()
        return User(
            id=created.json()["id"],
            email=email,
            password=PASSWORD,
            token=token.json()["access_token"],
            source=source,
        )

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /health/ready answers 200; raises after ``timeout_s``."""
        started = time.monotonic()
        conn = self.conn(timeout=5.0)
        try:
            while time.monotonic() - started < timeout_s:
                with contextlib.suppress(TransportFailure):
                    if (await conn.request("GET", "/health/ready")).status == 200:
                        return round(time.monotonic() - started, 2)
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        raise RuntimeError(f"/health/ready not 200 within {timeout_s} s of the database's return")


def _expect(response: Response, status: int, what: str) -> None:
    if response.status != status:
        raise RuntimeError(f"{what} answered {response.status}: {response.body[:300]!r}")


async def _create_item(conn: Connection, user: User, title: str) -> str:
    response = await conn.request("POST", f"{API}/items", json_body={"title": title}, token=user.token)
    _expect(response, 201, "POST /items")
    return str(response.json()["id"])


async def _attach(conn: Connection, user: User, item_id: str, n: int) -> Response:
    body = {"filename": f"file-{n}.txt", "content_type": "text/plain", "size": 16}
    return await conn.request("POST", f"{API}/items/{item_id}/attachments", json_body=body, token=user.token)


def outcome(result: Response | BaseException) -> str:
    if isinstance(result, Response):
        return str(result.status)
    if isinstance(result, TransportFailure):
        return f"no response: {result.kind}"
    return f"client error: {type(result).__name__}"


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``event`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, seconds))


def _count(statuses: Counter[str]) -> str:
    return ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())) or "none"


async def _close_all(conns: Sequence[Connection]) -> None:
    await asyncio.gather(*(c.close() for c in conns))


# --- scenarios ----------------------------------------------------------------------------

_rng = random.Random(20240601)  # noqa: S311 - jitter only, reproducible


async def races(ctx: Context) -> None:
    await _patch_versus_delete(ctx)
    await _writes_versus_account_deletion(ctx)


async def _patch_versus_delete(ctx: Context) -> None:
    owner = await ctx.sign_up("race-owner")
    setup = ctx.conn(owner.source)
    item_ids = [await _create_item(setup, owner, f"race {n}") for n in range(ctx.plan.race_pairs)]
    await setup.close()
    tally = Tally()
    by_kind: dict[str, Counter[str]] = {"PATCH": Counter(), "DELETE": Counter()}
    pending = list(item_ids)

    async def lane() -> None:
        patcher, deleter = ctx.conn(owner.source, tally=tally), ctx.conn(owner.source, tally=tally)
        while pending:
            item_id = pending.pop()
            await asyncio.gather(patcher.connect(), deleter.connect())

            async def patch(item_id: str = item_id) -> Response:
                await asyncio.sleep(_rng.uniform(0, 0.004))
                body = {"title": "patched", "description": "racing a delete"}
                return await patcher.request(
                    "PATCH", f"{API}/items/{item_id}", json_body=body, token=owner.token
                )

            async def delete(item_id: str = item_id) -> Response:
                await asyncio.sleep(_rng.uniform(0, 0.004))
                return await deleter.request("DELETE", f"{API}/items/{item_id}", token=owner.token)

            patched, deleted = await asyncio.gather(patch(), delete(), return_exceptions=True)
            by_kind["PATCH"][outcome(patched)] += 1
            by_kind["DELETE"][outcome(deleted)] += 1
        await _close_all([patcher, deleter])

    await asyncio.gather(*(lane() for _ in range(8)))
    ctx.tally.merge(tally)
    ctx.details["patch_versus_delete"] = {k: dict(v) for k, v in by_kind.items()} | tally.summary()
    ctx.add(
        f"500s: PATCH racing DELETE on one item ({len(item_ids)} pairs)",
        tally.count_500,
        f"{tally.count_500} (PATCH: {_count(by_kind['PATCH'])}; DELETE: {_count(by_kind['DELETE'])})",
        "0",
        tally.count_500 == 0,
    )


async def _writes_versus_account_deletion(ctx: Context) -> None:
    tally = Tally()
    by_kind: dict[str, Counter[str]] = {}
    for n in range(ctx.plan.deletion_accounts):
        user = await ctx.sign_up(f"doomed{n}")
        setup = ctx.conn(user.source)
        item_ids = [await _create_item(setup, user, f"doomed {n}.{i}") for i in range(4)]
        for i, item_id in enumerate(item_ids):
            _expect(await _attach(setup, user, item_id, i), 201, "POST attachment")
        await setup.close()
        conns = [ctx.conn(user.source, tally=tally) for _ in range(13)]
        await asyncio.gather(*(c.connect() for c in conns))

        async def after(delay: float, kind: str, call: Awaitable[Response]) -> None:
            await asyncio.sleep(delay)
            try:
                result: Response | BaseException = await call
            except TransportFailure as failure:
                result = failure
            by_kind.setdefault(kind, Counter())[outcome(result)] += 1

        calls = [after(_rng.uniform(0, 0.03), "DELETE /users/{id}", _delete_user(conns[0], user))]
        for i, item_id in enumerate(item_ids):
            calls += [
                after(
                    _rng.uniform(0, 0.03),
                    "POST /items",
                    conns[1 + i].request(
                        "POST", f"{API}/items", json_body={"title": "late"}, token=user.token
                    ),
                ),
                after(
                    _rng.uniform(0, 0.03),
                    "PATCH /items/{id}",
                    conns[5 + i].request(
                        "PATCH", f"{API}/items/{item_id}", json_body={"title": "late"}, token=user.token
                    ),
                ),
                after(
                    _rng.uniform(0, 0.03),
                    "POST /items/{id}/attachments",
                    _attach(conns[9 + i], user, item_id, 100 + i),
                ),
            ]
        await asyncio.gather(*calls)
        await _close_all(conns)
    ctx.tally.merge(tally)
    ctx.details["writes_versus_account_deletion"] = {k: dict(v) for k, v in by_kind.items()} | tally.summary()
    worst = ", ".join(f"{kind}: {n}" for kind, c in by_kind.items() if (n := c.get("500", 0)))
    ctx.add(
        f"500s: POST/PATCH/attachments racing the owner's account deletion ({ctx.plan.deletion_accounts} "
        "accounts x 12 writes)",
        tally.count_500,
        f"{tally.count_500}" + (f" ({worst})" if worst else ""),
        "0",
        tally.count_500 == 0,
    )


async def _delete_user(conn: Connection, user: User) -> Response:
    return await conn.request("DELETE", f"{API}/users/{user.id}", token=user.token)


async def cap(ctx: Context) -> None:
    user = await ctx.sign_up("cap")
    setup = ctx.conn(user.source)
    counts: list[int] = []
    statuses: Counter[str] = Counter()
    for n in range(ctx.plan.cap_items):
        item_id = await _create_item(setup, user, f"cap {n}")
        conns = [ctx.conn(user.source) for _ in range(ctx.plan.cap_parallel)]
        await asyncio.gather(*(c.connect() for c in conns))
        results = await asyncio.gather(
            *(_attach(c, user, item_id, i) for i, c in enumerate(conns)), return_exceptions=True
        )
        statuses.update(outcome(r) for r in results)
        await _close_all(conns)
        counts.append(
            int((await ctx.sql(f"SELECT count(*) FROM attachments WHERE item_id = '{item_id}'"))[0])
        )
    await setup.close()
    over = max(0, max(counts) - ATTACHMENT_CAP)
    ctx.details["cap"] = {"rows_per_item": counts, "statuses": dict(statuses)}
    ctx.add(
        f"attachment rows over the cap of {ATTACHMENT_CAP} after {ctx.plan.cap_parallel} parallel POSTs "
        "on one item",
        over,
        f"{over} (rows: {', '.join(map(str, counts))}; answers: {_count(statuses)})",
        "0",
        over == 0,
    )


def _p50(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2] if ordered else float("nan")


async def _run_flood(spec: FloodSpec) -> tuple[asyncio.subprocess.Process, float]:
    """Start ``python -m bench.hostile_client`` with ``spec``; returns once the flood has begun."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.hostile_client",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(asdict(spec)).encode())
    process.stdin.close()
    line = await asyncio.wait_for(process.stdout.readline(), 30.0)
    if line.strip() != b"started":
        await process.wait()
        stderr = await process.stderr.read() if process.stderr else b""
        raise RuntimeError(f"flood process did not start: {line!r} {stderr[-2000:]!r}")
    return process, time.monotonic()


async def _flood_result(process: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"flood process failed ({process.returncode}): {stderr[-2000:]!r}")
    result: dict[str, Any] = json.loads(stdout)
    return result


async def flood(ctx: Context) -> None:
    user = await ctx.sign_up("flood-login")
    conn = ctx.conn(user.source)
    form = {"username": user.email, "password": user.password}
    statuses: Counter[str] = Counter()

    async def login() -> float | None:
        try:
            response = await conn.request("POST", f"{API}/auth/token", form=form)
        except TransportFailure as failure:
            statuses[outcome(failure)] += 1
            return None
        statuses[str(response.status)] += 1
        return response.elapsed_s * 1000 if response.status == 200 else None

    for _ in range(3):
        await login()
    idle = [t for _ in range(ctx.plan.idle_logins) if (t := await login()) is not None]
    idle_statuses, statuses = statuses, Counter()

    run = uuid.uuid4().hex[:8]
    password = "flood-password-0123"
    spec = FloodSpec(
        host=ctx.server.host,
        port=ctx.server.port,
        path=f"{API}/users",
        bodies={
            "duplicate": json.dumps(
                {"email": f"flood-dup-{run}@example.com", "name": "F", "password": password}
            ),
            "fresh": json.dumps(
                {"email": f"flood-{run}-{{seq}}@example.com", "name": "F", "password": password}
            ),
        },
        source=ctx.addresses(),
        connections=FLOOD_CONNECTIONS,
        rate=ctx.plan.flood_rate,
        duration_s=ctx.plan.flood_s,
    )
    process, started = await _run_flood(spec)
    under: list[float] = []
    try:
        await asyncio.sleep(0.5)  # past the flood's first connections
        while time.monotonic() < started + ctx.plan.flood_s - 0.3:
            if (t := await login()) is not None:
                under.append(t)
    finally:
        await conn.close()
        result = await _flood_result(process, ctx.plan.flood_s + 60.0)
    flood_statuses: Counter[str] = Counter()
    for key, count in result["statuses"].items():
        flood_statuses[key.split(" ", 1)[1]] += count
    ctx.tally.statuses.update(flood_statuses)
    if flood_statuses.get("500"):
        ctx.tally.five_hundreds.append(
            {"request": f"POST {API}/users (flood)", "count": str(flood_statuses["500"])}
        )
    idle_p50, flood_p50 = _p50(idle), _p50(under)
    ratio = flood_p50 / idle_p50 if idle and under else float("inf")
    ctx.details["flood"] = {
        "idle_login_ms": [round(t, 1) for t in idle],
        "flood_login_ms": [round(t, 1) for t in under],
        "idle_login_statuses": dict(idle_statuses),
        "flood_login_statuses": dict(statuses),
        "flood": result,
        "unexpected_flood_statuses": {
            k: v for k, v in flood_statuses.items() if k not in ("201", "409", "429")
        },
    }
    rate = f"{ctx.plan.flood_rate:g}/s offered" if ctx.plan.flood_rate else "unpaced"
    ctx.add(
        f"login p50 during a sign-up flood ({FLOOD_CONNECTIONS} connections, one address, {rate}) vs idle",
        round(ratio, 2),
        f"{flood_p50:.0f} ms vs {idle_p50:.0f} ms idle = {ratio:.1f}x (logins: {_count(statuses)}; "
        f"sign-ups at {result['rps']:.0f}/s: {_count(Counter(result['statuses']))})",
        "<= 2x",
        ratio <= 2.0 and set(statuses) == {"200"},
    )


async def flush(ctx: Context) -> None:
    victim = await ctx.sign_up("victim")
    guesser = ctx.conn(ctx.addresses())

    async def guess(conn: Connection, n: int) -> str:
        form = {"username": victim.email, "password": f"wrong-guess-{n}"}
        try:
            return str((await conn.request("POST", f"{API}/auth/token", form=form)).status)
        except TransportFailure as failure:
            return outcome(failure)

    before = [await guess(guesser, n) for n in range(LOGIN_MAX_FAILURES + 1)]
    await guesser.close()
    spray_source = ctx.addresses()
    numbers = iter(range(ctx.plan.spray_attempts))
    spray: Counter[str] = Counter()
    tally = Tally()

    async def lane() -> None:
        conn = ctx.conn(spray_source, tally=tally)
        for n in numbers:
            form = {
                "username": f"spray-{n}-{uuid.uuid4().hex[:6]}@example.com",
                "password": "wrong-password-0",
            }
            try:
                spray[str((await conn.request("POST", f"{API}/auth/token", form=form)).status)] += 1
            except TransportFailure as failure:
                spray[outcome(failure)] += 1
        await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(SPRAY_CONNECTIONS)))
    spray_s = time.monotonic() - started
    ctx.tally.merge(tally)
    after_conn = ctx.conn(ctx.addresses())
    after = [await guess(after_conn, 100 + n) for n in range(3)]
    await after_conn.close()
    unlocked = any(status != "429" for status in after)
    ctx.details["flush"] = {
        "victim_guesses_before": before,
        "victim_locked_before": before[-1] == "429",
        "spray_statuses": dict(spray),
        "spray_seconds": round(spray_s, 1),
        "victim_guesses_after_from_a_new_address": after,
    }
    ctx.add(
        f"victim unlocked by {ctx.plan.spray_attempts:,} logins with random emails from one address",
        unlocked,
        f"{str(unlocked).lower()} (guesses after: {', '.join(after)}; before: {', '.join(before)}; "
        f"spray {spray_s:.0f} s: {_count(spray)})",
        "false",
        not unlocked and before[-1] == "429",
    )


@dataclass
class _OutageClients:
    """The writers' and the users' side of an outage scenario."""

    ctx: Context
    writer: User
    accounts: list[User]
    stop_writers: asyncio.Event = field(default_factory=asyncio.Event)
    stop_logins: asyncio.Event = field(default_factory=asyncio.Event)
    outcomes: dict[str, str] = field(default_factory=dict)  # title -> what its POST got
    writes: Tally = field(default_factory=Tally)
    probes: Tally = field(default_factory=Tally)
    logins: dict[str, Counter[str]] = field(default_factory=dict)

    async def write(self, lane: int) -> None:
        """One keep-alive connection, POST after POST; a short pause after anything but 201."""
        conn = self.ctx.conn(self.writer.source, tally=self.writes)
        seq = 0
        while not self.stop_writers.is_set():
            seq += 1
            title = f"{self.ctx.name}-w{lane}-{seq}"
            self.outcomes[title] = "pending"
            try:
                response = await conn.request(
                    "POST", f"{API}/items", json_body={"title": title}, token=self.writer.token
                )
            except TransportFailure as failure:
                self.outcomes[title] = outcome(failure)
                await _wait(self.stop_writers, 0.2)
                continue
            self.outcomes[title] = str(response.status)
            if response.status != 201:
                await _wait(self.stop_writers, 0.5)
        await conn.close()

    async def probe(self, account: User) -> None:
        """Logins back to back on one keep-alive connection: a login answers after the Argon2
        check, with its read transaction still open, so a database that stops then leaves the
        end of a request to run after its response, with the next request already sent."""
        conn = self.ctx.conn(account.source, tally=self.probes)
        form = {"username": account.email, "password": account.password}
        while not self.stop_writers.is_set():
            try:
                response = await conn.request("POST", f"{API}/auth/token", form=form)
            except TransportFailure:
                await _wait(self.stop_writers, 0.2)
                continue
            if response.status != 200:
                await _wait(self.stop_writers, 0.5)
        await conn.close()

    async def log_in(self, account: User, source: str) -> None:
        """A user (one of several devices) logging in with the right password, again and again,
        waiting as Retry-After says after a 503 or a 429."""
        conn = self.ctx.conn(source)
        counts = self.logins.setdefault(account.email, Counter())
        form = {"username": account.email, "password": account.password}
        await _wait(self.stop_logins, _rng.uniform(0, 1.5))
        while not self.stop_logins.is_set():
            try:
                response = await conn.request("POST", f"{API}/auth/token", form=form)
            except TransportFailure as failure:
                counts[outcome(failure)] += 1
                await _wait(self.stop_logins, 1.0)
                continue
            counts[str(response.status)] += 1
            pause = response.retry_after(5.0) if response.status in (429, 503) else 1.0
            await _wait(self.stop_logins, pause)
        await conn.close()

    async def after_recovery(self, account: User) -> str:
        """The right password once the database is back, from the account's own address; a 503
        (the pool still reconnecting) is retried for a while."""
        conn = self.ctx.conn(account.source)
        form = {"username": account.email, "password": account.password}
        deadline = time.monotonic() + 15.0
        try:
            while True:
                try:
                    response = await conn.request("POST", f"{API}/auth/token", form=form)
                except TransportFailure as failure:
                    return outcome(failure)
                if response.status != 503 or time.monotonic() > deadline:
                    return str(response.status)
                await asyncio.sleep(1.0)
        finally:
            await conn.close()


async def _pause_for(ctx: Context, seconds: float) -> int:
    """Every process of the database SIGSTOPped for ``seconds``; how many there were."""
    stopped = await asyncio.to_thread(pause_postgres, ctx.stack.pgdata)
    try:
        await asyncio.sleep(seconds)
    finally:
        resume_postgres(stopped)
    return len(stopped)


async def _fault(ctx: Context, kind: str) -> float:
    """Pause (SIGSTOP/SIGCONT), hiccups (short pauses) or stop and start the database; the
    seconds from its start to its end."""
    started = time.monotonic()
    if kind == "pause":
        ctx.details["paused_processes"] = await _pause_for(ctx, ctx.plan.pause_s)
    elif kind == "hiccups":
        for n in range(ctx.plan.hiccups):
            if n:
                await asyncio.sleep(ctx.plan.hiccup_gap_s)
            ctx.details["paused_processes"] = await _pause_for(ctx, ctx.plan.hiccup_s)
    else:
        await asyncio.to_thread(ctx.stack.database.stop)
        try:
            await asyncio.sleep(ctx.plan.down_s)
        finally:
            await asyncio.to_thread(ctx.stack.database.start)
    return time.monotonic() - started


async def _settle(tasks: Sequence[asyncio.Task[None]], timeout_s: float) -> int:
    """Wait for the clients to finish their last request; cancel (and count) those that do not."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(pending)


def _outage_figures(
    ctx: Context, kind: str, clients: _OutageClients, titles: set[str], lockouts: int
) -> None:
    what = {
        "pause": f"DB paused (SIGSTOP) {ctx.plan.pause_s:g} s",
        "hiccups": f"DB paused {ctx.plan.hiccups} x {ctx.plan.hiccup_s:g} s",
        "stop": f"DB stopped {ctx.plan.down_s:g} s",
    }[kind]
    accounts = len(clients.accounts)
    if accounts:
        ctx.add(
            f"lockouts after recovery: accounts 429 for the right password ({what})",
            lockouts,
            f"{lockouts} of {accounts}",
            "0",
            lockouts == 0,
        )
    unacknowledged = sorted(titles - {t for t, o in clients.outcomes.items() if o == "201"})
    why = Counter(clients.outcomes.get(t, "never sent") for t in unacknowledged)
    ctx.add(
        f"unacknowledged writes: rows whose POST got no 201 ({what})",
        len(unacknowledged),
        f"{len(unacknowledged)}" + (f" (their POSTs got: {_count(why)})" if why else ""),
        "0",
        not unacknowledged,
    )
    lost = sorted(t for t, o in clients.outcomes.items() if o == "201" and t not in titles)
    ctx.add(
        f"acknowledged writes missing from the database ({what})", len(lost), str(len(lost)), "0", not lost
    )
    unanswered: Counter[str] = Counter()
    for who, statuses in (
        ("writers", clients.writes.statuses),
        ("login probers", clients.probes.statuses),
        *(("users", counts) for counts in clients.logins.values()),
    ):
        unanswered.update({f"{who} {k}": v for k, v in statuses.items() if k.startswith("no response")})
    records = clients.writes.unanswered + clients.probes.unanswered
    reused = sum(1 for r in records if "reused keep-alive" in r["failure"])
    total = sum(unanswered.values())
    ctx.add(
        f"requests left without an answer on keep-alive connections ({what})",
        total,
        f"{total}"
        + (f" ({_count(unanswered)}; of the first {len(records)}, {reused} reused)" if total else ""),
        "0",
        total == 0,
    )
    ctx.details["outage"] = {
        "writes": clients.writes.summary(),
        "login_probes": clients.probes.summary(),
        "write_outcomes": dict(Counter(clients.outcomes.values())),
        "unacknowledged_titles": unacknowledged[:50],
        "lost_titles": lost[:50],
        "logins_per_account": {email: dict(c) for email, c in clients.logins.items()},
    }


async def outage(ctx: Context, kind: str) -> None:
    writer = await ctx.sign_up(f"{kind}-writer")
    users = 0 if kind == "hiccups" else ctx.plan.outage_accounts
    accounts = [await ctx.sign_up(f"{kind}-user{n}") for n in range(users)]
    probers = [await ctx.sign_up(f"{kind}-prober{n}") for n in range(ctx.plan.login_probers)]
    clients = _OutageClients(ctx, writer, accounts)
    writers = [asyncio.create_task(clients.write(lane)) for lane in range(ctx.plan.writers)]
    writers += [asyncio.create_task(clients.probe(account)) for account in probers]
    logins = [
        asyncio.create_task(clients.log_in(account, account.source if device == 0 else ctx.addresses()))
        for account in accounts
        for device in range(ctx.plan.clients_per_account)
    ]
    try:
        await asyncio.sleep(ctx.plan.warm_s)
        ctx.details["fault_seconds"] = round(await _fault(ctx, kind), 1)
        clients.stop_logins.set()
        ctx.details["login_clients_cancelled"] = await _settle(logins, 40.0)
        ctx.details["ready_after_seconds"] = await ctx.wait_ready(40.0)
        after = [await clients.after_recovery(account) for account in accounts]
        ctx.details["right_password_after_recovery"] = after
        await asyncio.sleep(ctx.plan.after_s)
    finally:
        clients.stop_writers.set()
        clients.stop_logins.set()
        ctx.details["writers_cancelled"] = await _settle(writers, 40.0)
        await _settle(logins, 5.0)
    ctx.tally.merge(clients.writes)
    ctx.tally.merge(clients.probes)  # the users' logins went to ctx.tally directly
    titles = set(await ctx.sql(f"SELECT title FROM items WHERE owner_id = '{writer.id}'"))
    _outage_figures(ctx, kind, clients, titles, sum(1 for status in after if status == "429"))


async def outage_pause(ctx: Context) -> None:
    await outage(ctx, "pause")


async def outage_stop(ctx: Context) -> None:
    await outage(ctx, "stop")


async def outage_hiccups(ctx: Context) -> None:
    await outage(ctx, "hiccups")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Context], Coroutine[Any, Any, None]]
    env: dict[str, str] = field(default_factory=dict)


SCENARIOS = (
    Scenario("races", races),
    Scenario("cap", cap),
    Scenario("flood", flood),
    Scenario("flush", flush),
    Scenario("pause", outage_pause, OUTAGE_ENV),
    Scenario("hiccups", outage_hiccups, OUTAGE_ENV),
    Scenario("stop", outage_stop, OUTAGE_ENV),
)


def run_scenario(report: Report, name: str, work: Callable[[dict[str, Any]], None]) -> None:
    """Run one scenario; a crash becomes a failed row. ``work`` fills the details it is given."""
    sys.stderr.write(f"hostile: {name}...\n")
    started = time.monotonic()
    details: dict[str, Any] = {}
    try:
        work(details)
    except Exception as exc:
        details["crash"] = traceback.format_exc()
        report.add(
            name,
            f"{name}: the scenario ran to its end",
            value=False,
            measured=f"crashed: {exc!r}"[:300],
            goal="runs",
            met=False,
        )
    details["elapsed_s"] = round(time.monotonic() - started, 1)
    report.scenario(name, details)


def _scenario_work(
    stack: Stack, report: Report, plan: Plan, addresses: SourceAddresses, scenario: Scenario
) -> Callable[[dict[str, Any]], None]:
    def work(details: dict[str, Any]) -> None:
        server = stack.launch(scenario.name, scenario.env)
        ctx = Context(stack, server, plan, report, scenario.name, addresses, details=details)
        try:
            asyncio.run(scenario.run(ctx))
        finally:
            details["server_stop"] = server.stop()
            details["tally"] = ctx.tally.summary()
            details["count_500"] = ctx.tally.count_500
            details["server_log"] = scan_log(server.log_path)

    return work


def _overall(report: Report) -> None:
    seen = sum(d.get("count_500", 0) for d in report.scenarios.values())
    logged = sum(d.get("server_log", {}).get("access_log_500s", 0) for d in report.scenarios.values())
    where = ", ".join(f"{n}: {d['count_500']}" for n, d in report.scenarios.items() if d.get("count_500"))
    report.add(
        "all",
        "500s seen by any client (all scenarios)",
        value=seen,
        measured=f"{seen}" + (f" ({where})" if where else "") + f"; {logged} in the servers' access logs",
        goal="0",
        met=seen == 0 and logged == 0,
    )
    tracebacks = sum(d.get("server_log", {}).get("tracebacks", 0) for d in report.scenarios.values())
    started = sum(
        d.get("server_log", {}).get("response_already_started", 0) for d in report.scenarios.values()
    )
    where = ", ".join(
        f"{n}: {d['server_log']['tracebacks']}"
        for n, d in report.scenarios.items()
        if d.get("server_log", {}).get("tracebacks")
    )
    report.add(
        "all",
        "server logs: tracebacks / 'response already started'",
        value=tracebacks,
        measured=f"{tracebacks} / {started}" + (f" ({where})" if where else ""),
        goal="0 / 0",
        met=tracebacks == 0 and started == 0,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every scenario (~1 minute)")
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--only", nargs="*", choices=names, default=(), help="run only these scenarios")
    parser.add_argument(
        "--flood-rate",
        type=float,
        help=f"sign-ups per second the flood offers (default {FLOOD_RATE:g}; 0: as fast as answered)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--log-dir", type=Path, help="keep the server logs here (default: removed)")
    parser.add_argument(
        "--service-dir",
        type=Path,
        default=SERVICE_DIR,
        help="the service to attack (default: service/ of this checkout); e.g. `git archive` of an "
        "older commit's service/ for a before/after comparison",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.flood_rate is not None:
        plan = replace(plan, flood_rate=args.flood_rate)
    report = Report(args.json, quick=args.quick, plan=plan, service_dir=args.service_dir.resolve())
    report.write()
    addresses = SourceAddresses()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        workdir = Path(tmp)
        stack = Stack(workdir, args.log_dir or workdir / "logs", args.service_dir.resolve())
        try:
            run_scenario(report, "setup", lambda _details: stack.start())
            if "crash" not in report.scenarios["setup"]:
                for scenario in SCENARIOS:
                    if not args.only or scenario.name in args.only:
                        run_scenario(
                            report, scenario.name, _scenario_work(stack, report, plan, addresses, scenario)
                        )
        finally:
            stack.stop()
    _overall(report)
    out = sys.stdout
    out.write(table(report.rows) + "\n")
    out.write(f"\nwritten to {args.json} ({report.elapsed_s} s)\n")
    if report.missed:
        out.write(f"goals missed: {len(report.missed)} of {len(report.rows)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
