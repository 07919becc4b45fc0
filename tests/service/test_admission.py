"""Database.admitted: requests reach the database in arrival order, at most as many at a time as
the pool holds connections, and a wait past the pool timeout is a 503 like the pool's own."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from tests.service.conftest import API, SignedUp
from webapi.config import Settings
from webapi.db import Database, engine_options


def gated(engine: AsyncEngine, slots: int, timeout: float = 5.0) -> Database:
    return Database(
        engine=engine,
        sessionmaker=async_sessionmaker(engine),
        gate=asyncio.Semaphore(slots),
        gate_timeout_seconds=timeout,
    )


def test_the_gate_is_as_wide_as_the_pool(settings: Settings) -> None:
    database = Database.from_settings(settings)
    options = engine_options(settings)
    assert database.gate is not None
    assert database.gate._value == options["pool_size"] + options["max_overflow"]
    assert database.gate_timeout_seconds == options["pool_timeout"]


async def test_sessions_are_admitted_in_arrival_order_and_no_newcomer_passes(engine: AsyncEngine) -> None:
    # The pool's failure: a connection that comes back is taken by whoever asks next. Here the
    # request that gives its slot back asks again at once, before the woken waiter runs: it
    # must queue behind b, c and d, not take the slot it just released.
    database = gated(engine, slots=1)
    order: list[str] = []
    release_first = asyncio.Event()

    async def first() -> None:
        async with database.admitted():
            order.append("a")
            await release_first.wait()
        async with database.admitted():  # no await in between: the slot is free this instant
            order.append("a again")

    async def request(name: str) -> None:
        async with database.admitted():
            order.append(name)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(request(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0.01)  # b, c, d queue behind a
    release_first.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["a", "b", "c", "d", "a again"]


async def test_admission_order_holds_with_a_real_pool_under_contention(database_url: str) -> None:
    # 24 requests on 3 connections, each holding its connection for a query: each is admitted
    # in the order it asked, and never more than 3 at once.
    engine = create_async_engine(database_url, pool_size=3, max_overflow=0)
    database = gated(engine, slots=3)
    asked: list[int] = []
    admitted: list[int] = []
    inside = 0
    most = 0

    async def request(n: int) -> None:
        nonlocal inside, most
        asked.append(n)
        async with database.admitted():
            admitted.append(n)
            inside += 1
            most = max(most, inside)
            async with database.sessionmaker() as session:
                await session.execute(text("SELECT pg_sleep(0.005)"))
            inside -= 1

    try:
        await asyncio.gather(*(request(n) for n in range(24)))
    finally:
        await engine.dispose()
    assert admitted == asked
    assert most == 3


async def test_a_wait_past_the_pool_timeout_is_a_503(
    app: FastAPI, client: httpx.AsyncClient, user: SignedUp
) -> None:
    database: Database = app.state.db
    database.gate = asyncio.Semaphore(1)
    database.gate_timeout_seconds = 0.2
    await database.gate.acquire()  # every connection in use
    try:
        response = await client.get(f"{API}/items", headers=user.headers)
    finally:
        database.gate.release()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"]
    # The slot is free again: the next request is served.
    assert (await client.get(f"{API}/items", headers=user.headers)).status_code == 200


@pytest.mark.parametrize("slots", [1, 2])
async def test_a_request_that_fails_gives_its_turn_back(
    app: FastAPI, client: httpx.AsyncClient, user: SignedUp, slots: int
) -> None:
    database: Database = app.state.db
    database.gate = asyncio.Semaphore(slots)
    missing = await client.get(f"{API}/items/00000000-0000-0000-0000-000000000000", headers=user.headers)
    assert missing.status_code == 404
    refused = await client.get(f"{API}/items", headers={"Authorization": "Bearer nonsense"})
    assert refused.status_code == 401
    assert database.gate._value == slots
