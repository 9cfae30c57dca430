"""The quota through the whole server: four uvicorn worker processes, three consumers
sending 1,000 calls each, over two windows (R-Q-1, issue 4).

The counter-level test (``test_quota_processes``) proves the store exact with injected
windows; this one proves the product: real ``ensu serve --workers 4`` over mutual TLS,
real minutes. What was accepted in each window is read from the journal, where each
call's record carries the instant the quota check used, so a burst that straddles a
minute boundary is judged window by window. Each window accepts exactly the quota (at
most 1 % fewer, never one more) and every 429 carries a valid ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import orjson
import pytest

from ensu import db
from ensu.config import Environment, Settings
from ensu.consumers import service as consumers
from ensu.consumers.schemas import CertificateRef
from ensu.pki import service as pki
from tests.functional.conftest import SIRET, free_port

pytestmark = pytest.mark.slow

WORKERS = 4
NAMES = ("consumer-a", "consumer-b", "consumer-c")
QUOTA = 500
CALLS = 1_000
IN_FLIGHT = 16
ROUTE = "/ensudocuments/v1/codesDocuments"
START_TIMEOUT = 60.0


async def _register(settings: Settings) -> None:
    engine = db.make_engine(settings.database_url)
    async with db.make_sessionmaker(engine)() as session, session.begin():
        await consumers.ensure_organisation(
            session=session, siret=SIRET, name="Organisation de test", actor="test"
        )
        for name in NAMES:
            pem = pki.PkiLayout(settings.pki_dir_path).client_cert(name).read_bytes()
            await consumers.create_teleservice(
                session=session,
                organisation_siret=SIRET,
                name=f"Téléservice {name}",
                environment=Environment.SANDBOX,
                certificates=[CertificateRef.from_pem(pem)],
                families=("declaratives",),
                period_start=dt.date(2020, 1, 1),
                period_end=dt.date(2030, 12, 31),
                valid_from=dt.date(2020, 1, 1),
                quota_per_minute=QUOTA,
                client_id=f"client-{name}",
                id_teleservice=f"TS-{name.upper()}",
                actor="test",
            )
    await engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, int]]:
    """``ensu serve --workers 4`` on a prepared var dir; its settings and port."""
    var = tmp_path_factory.mktemp("quota-workers") / "var"
    settings = Settings(var_dir=var)
    db.upgrade(settings.database_url)
    pki.init(directory=settings.pki_dir_path)
    pki.issue_client(directory=settings.pki_dir_path, name="consumer-c")
    asyncio.run(_register(settings))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENSU_")}
    env |= {"ENSU_VAR_DIR": str(var), "ENSU_LISTEN_PORT": str(port)}
    log = var / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ensu"), "serve", "--workers", str(WORKERS)],
            cwd=var,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        _wait_ready(settings, port, process, log)
        yield settings, port
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _client(settings: Settings, port: int, name: str) -> httpx.AsyncClient:
    context = pki.client_ssl_context(directory=settings.pki_dir_path, name=name)
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}", verify=context, limits=limits, timeout=30
    )


def _wait_ready(settings: Settings, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    context = pki.client_ssl_context(directory=settings.pki_dir_path, name=NAMES[0])
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(verify=context, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with suppress(httpx.TransportError):
                url = f"https://127.0.0.1:{port}/ensudocuments/v1/etatSante"
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    pytest.fail(f"`ensu serve --workers {WORKERS}` did not start:\n{log.read_text()[-3000:]}")


async def _burst(settings: Settings, port: int, name: str) -> list[httpx.Response]:
    """``CALLS`` calls of consumer ``name``, ``IN_FLIGHT`` at a time."""
    async with _client(settings, port, name) as client:
        answer = await client.post(
            "/token", data={"grant_type": "client_credentials", "client_id": f"client-{name}"}
        )
        assert answer.status_code == 200, answer.text
        headers = {
            "Authorization": f"Bearer {answer.json()['access_token']}",
            "ID_Teleservice": f"TS-{name.upper()}",
        }
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def call() -> httpx.Response:
            async with gate:
                sent = {**headers, "X-Correlation-ID": str(uuid.uuid4())}
                return await client.get(ROUTE, headers=sent)

        return list(await asyncio.gather(*(call() for _ in range(CALLS))))


async def _all_bursts(settings: Settings, port: int) -> list[httpx.Response]:
    results = await asyncio.gather(*(_burst(settings, port, name) for name in NAMES))
    return [response for responses in results for response in responses]


def _windows(settings: Settings) -> tuple[Counter[tuple[str, int]], Counter[tuple[str, int]]]:
    """Attempts and acceptances per (téléservice, minute), from the journal."""
    attempts: Counter[tuple[str, int]] = Counter()
    accepted: Counter[tuple[str, int]] = Counter()
    with sqlite3.connect(settings.var_dir / "journal.db") as connection:
        rows = connection.execute("SELECT record FROM journal_leaves WHERE kind = 'call'")
        for (raw,) in rows:
            document = orjson.loads(raw)
            record = document.get("fields", document)
            if not record["route"].endswith("codesDocuments"):
                continue
            at = dt.datetime.fromisoformat(record["at"].replace("Z", "+00:00"))
            key = (record["id_teleservice"], math.floor(at.timestamp() / 60))
            attempts[key] += 1
            accepted[key] += record["status"] == 200
    return attempts, accepted


def _wait_for_the_next_minute() -> None:
    time.sleep(60 - time.time() % 60 + 0.5)


def test_four_workers_accept_exactly_the_quota_per_window(
    server: tuple[Settings, int],
) -> None:
    settings, port = server
    responses = asyncio.run(_all_bursts(settings, port))
    _wait_for_the_next_minute()
    responses += asyncio.run(_all_bursts(settings, port))
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 429}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "900804"
            assert 1 <= int(response.headers["retry-after"]) <= 60
        assert int(response.headers["ratelimit-limit"]) == QUOTA
    attempts, accepted = _windows(settings)
    assert sum(attempts.values()) == len(responses)  # every call has its record
    assert len({minute for _, minute in attempts}) >= 2  # several windows
    for key, tried in attempts.items():
        expected = min(QUOTA, tried)
        assert accepted[key] <= expected, (key, accepted[key], tried)  # never one more
        assert accepted[key] >= math.floor(expected * 0.99), (key, accepted[key], tried)
    assert statuses[200] == sum(accepted.values())
