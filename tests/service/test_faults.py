"""Races and faults against the app's real pool and a real PostgreSQL: concurrent writes on one
item or one account, the attachment cap under parallel creates, and a database backend that
hangs after a route has decided its answer. None may answer 500; none may drop a request.

Like test_concurrency_and_outage, each test commits for real (concurrent requests need
connections of their own) and deletes the accounts it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from devtools.localdb import free_port
from tests.service.conftest import API, SignedUp, live_client, make_settings, sign_up
from webapi.db import is_unavailable
from webapi.deps import SessionDep
from webapi.main import create_app
from webapi.services.attachments import MAX_ATTACHMENTS_PER_ITEM

pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on its own pool (with attachments on, the local backend), one client."""
    settings = make_settings(
        database_url,
        db_pool_size=10,
        db_max_overflow=10,
        storage_backend="local",
        local_storage_dir=str(tmp_path / "storage"),
        signup_max_per_client=1000,
    )
    app = create_app(settings)
    async for client in live_client(app):
        try:
            yield client
        finally:
            async with app.state.db.engine.begin() as conn:
                await conn.execute(text("DELETE FROM users WHERE email LIKE 'fault-%'"))


async def _user(client: httpx.AsyncClient) -> SignedUp:
    return await sign_up(client, email=f"fault-{uuid.uuid4().hex[:12]}@example.com")


async def _item(client: httpx.AsyncClient, user: SignedUp) -> str:
    created = await client.post(f"{API}/items", json={"title": "Raced"}, headers=user.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    for response in responses:
        assert response.status_code == 204 or response.headers["content-type"] == "application/json"
    return Counter(r.status_code for r in responses)


async def test_a_patch_racing_a_delete_is_404_never_500(live: httpx.AsyncClient) -> None:
    user = await _user(live)
    seen: Counter[int] = Counter()
    for _ in range(40):
        item = await _item(live, user)
        url = f"{API}/items/{item}"
        responses = await asyncio.gather(
            live.patch(url, json={"title": "Patched", "description": "x"}, headers=user.headers),
            live.delete(url, headers=user.headers),
            live.patch(url, json={"description": None}, headers=user.headers),
            live.delete(url, headers=user.headers),
        )
        seen += _statuses(list(responses))
        assert (await live.get(url, headers=user.headers)).status_code == 404
    assert set(seen) <= {200, 204, 404}, seen
    assert seen[204] == 40, seen  # each item deleted exactly once


async def test_writes_while_the_account_is_deleted_are_401_or_404_never_500(live: httpx.AsyncClient) -> None:
    seen: Counter[int] = Counter()
    for _ in range(5):
        user = await _user(live)
        item = await _item(live, user)
        attachment = {"filename": "a.txt", "content_type": "text/plain", "size": 3}
        writes = [
            *(live.post(f"{API}/items", json={"title": f"t{n}"}, headers=user.headers) for n in range(20)),
            *(live.patch(f"{API}/items/{item}", json={"title": "p"}, headers=user.headers) for _ in range(5)),
            *(
                live.post(f"{API}/items/{item}/attachments", json=attachment, headers=user.headers)
                for _ in range(5)
            ),
        ]
        deletion = live.delete(f"{API}/users/{user.id}", headers=user.headers)
        responses = await asyncio.gather(writes[0], deletion, *writes[1:])
        assert responses[1].status_code == 204, responses[1].text
        seen += _statuses([r for n, r in enumerate(responses) if n != 1])
    assert set(seen) <= {200, 201, 401, 404}, seen


async def test_the_attachment_cap_holds_under_parallel_creates(live: httpx.AsyncClient) -> None:
    """160 parallel creates on one item, three times over (the race sits at the 100th row)."""
    user = await _user(live)
    attachment = {"filename": "a.txt", "content_type": "text/plain", "size": 3}
    for _ in range(3):
        item = await _item(live, user)
        url = f"{API}/items/{item}/attachments"
        seen = _statuses(
            list(
                await asyncio.gather(
                    *(live.post(url, json=attachment, headers=user.headers) for _ in range(160))
                )
            )
        )
        assert seen == {201: MAX_ATTACHMENTS_PER_ITEM, 409: 160 - MAX_ATTACHMENTS_PER_ITEM}, seen
        assert len((await live.get(url, headers=user.headers)).json()) == MAX_ATTACHMENTS_PER_ITEM


async def test_a_backend_hanging_after_the_answer_drops_no_request_on_the_connection(
    database_url: str,
) -> None:
    """A real server (uvicorn) and a keep-alive client. The first request's route pauses its own
    PostgreSQL backend (SIGSTOP) after deciding its answer, so the session's cleanup (its
    ROLLBACK) times out; the backend is resumed 1.3 s later. The second request, sent on the same
    connection right after the first answer, commits a row 2.5 s later. Both must be answered, and
    the row must be the second's.

    Before the fix the session closed after the response: the cleanup's timeout came out of the
    app after the first answer, uvicorn closed the connection ("response already started"), and
    the second request committed its row without an answer."""
    app = create_app(make_settings(database_url, db_command_timeout_seconds=1.0))
    paused: list[int] = []
    email = f"fault-{uuid.uuid4().hex[:12]}@example.com"

    @app.post("/test/answer-then-hang")
    async def answer_then_hang(session: SessionDep) -> dict[str, int]:
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        os.kill(pid, signal.SIGSTOP)
        paused.append(pid)
        # Resumed after the command timeout: asyncpg's cancel of the timed-out ROLLBACK then goes
        # through, and the cleanup's error comes out while the second request is in flight.
        asyncio.get_running_loop().call_later(1.3, os.kill, pid, signal.SIGCONT)
        return {"paused": pid}

    @app.post("/test/slow-write")
    async def slow_write(session: SessionDep) -> dict[str, str]:
        await asyncio.sleep(2.5)
        await session.execute(
            text("INSERT INTO users (id, email, name, hashed_password) VALUES (:id, :email, 'F', 'x')"),
            {"id": uuid.uuid4(), "email": email},
        )
        await session.commit()
        return {"written": email}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.02)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10
        ) as client:
            first = await client.post("/test/answer-then-hang")
            assert first.status_code == 200, first.text
            second = await client.post("/test/slow-write")
            assert second.status_code == 200, second.text
            assert second.json() == {"written": email}
            assert (await client.get("/health")).status_code == 200  # the connection still serves
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):  # resumed already, and gone
                os.kill(pid, signal.SIGCONT)
        server.should_exit = True
        await serving
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}) == 1
            await conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})
    finally:
        await engine.dispose()


async def test_a_commit_held_up_by_a_pause_is_answered_with_its_outcome(database_url: str) -> None:
    """The backend pauses (SIGSTOP) between the INSERT and the COMMIT, for twice the command
    timeout. The COMMIT is waited for (DB_COMMIT_TIMEOUT_SECONDS), so the answer is the write's
    201. Before, the command timeout answered 503 and PostgreSQL committed the row on resuming:
    a write the client was told had failed (and would write twice by retrying)."""
    settings = make_settings(database_url, db_command_timeout_seconds=1.0, db_commit_timeout_seconds=10.0)
    app = create_app(settings)
    email = f"fault-{uuid.uuid4().hex[:12]}@example.com"

    @app.post("/test/pause-before-commit", status_code=201)
    async def pause_before_commit(session: SessionDep) -> dict[str, str]:
        await session.execute(
            text("INSERT INTO users (id, email, name, hashed_password) VALUES (:id, :email, 'F', 'x')"),
            {"id": uuid.uuid4(), "email": email},
        )
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        os.kill(pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(2.0, os.kill, pid, signal.SIGCONT)
        await session.commit()
        return {"written": email}

    async for client in live_client(app):
        answer = await client.post("/test/pause-before-commit")
        assert answer.status_code == 201, answer.text
        async with app.state.db.engine.begin() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}) == 1
            await conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    ],
)
def test_a_server_going_away_is_unavailable_however_sqlalchemy_wraps_it(cause: Exception) -> None:
    """What PostgreSQL stopping raised through SQLAlchemy (seen by make hostile as 500s): a plain
    DBAPIError around the driver's error, not invalidated. Each is a 503, not a 500."""
    wrapper = Exception(str(cause))
    wrapper.__cause__ = cause
    error = sa_exc.DBAPIError("SELECT 1", {}, wrapper)
    assert not error.connection_invalidated
    assert is_unavailable(error)
    assert not is_unavailable(sa_exc.DBAPIError("SELECT 1", {}, ValueError("a real bug")))
