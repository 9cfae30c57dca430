"""During a planned window the API answers 503 930001 with ``Retry-After``, ``etatSante``
says ``maintenance`` and ``/token`` answers ``temporarily_unavailable``; every instance
behind the database agrees (R-SQ-1). Refusals are journaled like any other."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.app import create_app
from ensu.audit import store
from ensu.audit.models import Event
from ensu.config import Settings
from ensu.operations.models import MaintenanceWindow
from tests.unit.gateway.conftest import PEER, SIREN, World, cert_header

pytestmark = pytest.mark.anyio
PREFIX = "/ensudocuments/v1"


async def open_window(
    sessionmaker: async_sessionmaker[AsyncSession], start: float, end: float
) -> int:
    """A window around *now*, inserted as such: ``plan`` only takes windows in the night
    ahead, and the test runs at any hour."""
    async with sessionmaker() as session, session.begin():
        row = MaintenanceWindow(
            start_at=dt.datetime.fromtimestamp(start, dt.UTC),
            end_at=dt.datetime.fromtimestamp(end, dt.UTC),
            night="2026-12-02",
            reason="test",
            planned_by="test",
            planned_at=dt.datetime.now(dt.UTC),
        )
        session.add(row)
        await session.flush()
        return row.id


async def cancel_window(sessionmaker: async_sessionmaker[AsyncSession], window_id: int) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(MaintenanceWindow)
            .where(MaintenanceWindow.id == window_id)
            .values(cancelled_at=dt.datetime.now(dt.UTC), cancelled_by="test")
        )


async def calls(world: World) -> list[dict[str, Any]]:
    async with world.app.state.journal.store.read() as connection:
        rows = await store.leaves(connection, 0, 10_000)
    records = [orjson.loads(row.record) for row in rows if row.kind == "call"]
    return [record.get("fields", record) for record in records]


async def test_a_window_answers_503_930001_everywhere(world: World) -> None:
    await world.token("A")  # a token from before the window still meets the window
    now = time.time()
    window_id = await open_window(world.sessionmaker, now - 60, now + 600)
    await world.app.state.maintenance.refresh()

    answer = await world.get(f"{PREFIX}/documents", "A", params={"siren": SIREN})
    assert answer.status_code == 503
    assert answer.json()["code"] == "930001"
    assert 590 <= int(answer.headers["retry-after"]) <= 600
    assert answer.headers["x-correlation-id"]

    health = await world.http.get(f"{PREFIX}/etatSante")
    assert health.status_code == 503
    assert health.json()["statut"] == "maintenance"
    assert 590 <= int(health.headers["retry-after"]) <= 600

    token = await world.http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "client-b"},
        headers=cert_header(world.consumers["B"].certificate),
    )
    assert token.status_code == 503
    assert token.json()["error"] == "temporarily_unavailable"
    assert 590 <= int(token.headers["retry-after"]) <= 600

    last = (await calls(world))[-1]
    assert (last["status"], last["error_code"]) == (503, "930001")
    await asyncio.sleep(1.2)  # the relay journals the token refusal's event
    async with world.sessionmaker() as session:
        events = (await session.scalars(select(Event))).all()
    refused = [e for e in events if e.tag == "oauth:token:refused"]
    assert refused[-1].details["reason"] == "maintenance"

    await cancel_window(world.sessionmaker, window_id)
    await world.app.state.maintenance.refresh()
    served = await world.get(f"{PREFIX}/documents", "A", params={"siren": SIREN})
    assert served.status_code == 200, served.text
    assert (await world.http.get(f"{PREFIX}/etatSante")).json()["statut"] == "ok"


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=PEER)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield app, http


async def states(*clients: httpx.AsyncClient) -> list[int]:
    return [(await http.get(f"{PREFIX}/etatSante")).status_code for http in clients]


async def test_two_instances_on_one_database_agree_within_a_second(
    world: World, tmp_path: Path
) -> None:
    """A second app on the same database (its own journal): both enter the window at its
    start by their clocks, and both follow a cancellation within a second."""
    other = world.settings.model_copy(update={"var_dir": tmp_path / "other"})
    async with running(other) as (_, second):
        first = world.http
        start = time.time() + 2.0
        window_id = await open_window(world.sessionmaker, start, start + 600)
        while time.time() < start - 0.3:
            assert await states(first, second) == [200, 200]
            await asyncio.sleep(0.1)
        await asyncio.sleep(max(0.0, start - time.time()) + 0.05)
        assert await states(first, second) == [503, 503]

        await cancel_window(world.sessionmaker, window_id)
        cancelled = time.monotonic()
        while await states(first, second) != [200, 200]:
            assert time.monotonic() - cancelled < 1.0, "an instance missed the cancellation"
            await asyncio.sleep(0.02)
