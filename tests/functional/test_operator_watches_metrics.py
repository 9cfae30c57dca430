"""An operator watches the service: ``ensu serve``'s app with its operators' listener.

Over a real server (uvicorn serving mutual TLS, the app as ``ensu serve`` makes it):
``/metrics`` parses with the Prometheus text parser and moves when calls are made,
``/healthz`` says ready, the availability probe passes through the whole chain and its
outcomes reach the availability minutes, whose report is served as JSON and SVG; none
of it on the consumers' listener (R-SQ-2, metrics for the operator's tools).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from ensu import db
from ensu.app import create_app
from ensu.cli.serve import server_options
from ensu.config import Settings
from ensu.operations.models import AvailabilityMinute
from tests.functional.conftest import SIREN, A, Var, api_headers, free_port, prepare, request_token

API = "/ensudocuments/v1"


@dataclass
class Served:
    var: Var
    settings: Settings
    api: str
    operators: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, verify=self.var.context(A), timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    var = prepare(tmp_path_factory.mktemp("operator") / "var")
    settings = var.settings().model_copy(
        update={
            "listen_port": free_port(),
            "metrics_port": free_port(),
            "probe_interval_seconds": 0.3,
        }
    )
    config = uvicorn.Config(
        create_app(settings, served=True), **server_options(settings=settings), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server stopped during start-up"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(
            var,
            settings,
            f"https://127.0.0.1:{settings.listen_port}",
            f"http://127.0.0.1:{settings.metrics_port}",
        )
    finally:
        server.should_exit = True
        thread.join()


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels (the Prometheus text parser)."""
    answer = httpx.get(f"{served.operators}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


LISTED = {"route": f"{API}/documents", "status": "200", "code": "none"}
NO_TOKEN = {"route": f"{API}/documents", "status": "401", "code": "900902"}


def test_metrics_parse_and_move_when_calls_are_made(served: Served) -> None:
    before = scrape(served)
    with served.client() as client:
        token = request_token(client, A.client_id).json()["access_token"]
        for _ in range(3):
            answer = client.get(
                f"{API}/documents", params={"siren": SIREN}, headers=api_headers(token, A)
            )
            assert answer.status_code == 200, answer.text
        headers = api_headers(token, A)
        del headers["Authorization"]
        assert (
            client.get(f"{API}/documents", params={"siren": SIREN}, headers=headers).status_code
            == 401
        )
        # The metrics are not on the consumers' listener.
        assert client.get("/metrics").status_code == 404
    after = scrape(served)
    assert (
        value(after, "ensu_requests_total", **LISTED)
        - value(before, "ensu_requests_total", **LISTED)
        == 3
    )
    assert (
        value(after, "ensu_requests_total", **NO_TOKEN)
        - value(before, "ensu_requests_total", **NO_TOKEN)
        == 1
    )
    count = "ensu_request_duration_seconds_count"
    route = {"route": f"{API}/documents"}
    assert value(after, count, **route) - value(before, count, **route) == 4
    assert (
        value(after, "ensu_journal_records_total")
        >= value(before, "ensu_journal_records_total") + 4
    )
    assert value(after, "ensu_journal_wait_seconds_count") >= 4
    assert value(after, "ensu_integrity_stop") == 0
    assert value(after, "ensu_journal_writable") == 1
    assert value(after, "ensu_maintenance_active") == 0
    assert 0 <= value(after, "ensu_cache_age_seconds", cache="revocations") < 5


def test_healthz_says_ready_and_other_requests_are_refused(served: Served) -> None:
    answer = httpx.get(f"{served.operators}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"journal_writable": True, "integrity": True, "database": True},
    }
    assert httpx.get(f"{served.operators}/nothing").status_code == 404
    assert httpx.post(f"{served.operators}/metrics").status_code == 405


def test_the_probe_passes_through_the_chain_and_feeds_the_availability(served: Served) -> None:
    deadline = time.monotonic() + 20
    while value(scrape(served), "ensu_probe_up") != 1:
        assert time.monotonic() < deadline, "the probe never passed"
        time.sleep(0.2)
    samples = scrape(served)
    assert value(samples, "ensu_availability_observations_total", source="probe", outcome="ok") >= 1
    probe_calls = {"route": f"{API}/codesDocuments", "status": "200", "code": "none"}
    assert value(samples, "ensu_requests_total", **probe_calls) >= 1

    report = httpx.get(f"{served.operators}/availability")  # flushes this process's counts
    assert report.status_code == 200
    document = report.json()
    assert document["target"] == 0.9716
    assert len(document["days"]) >= 1

    async def totals() -> tuple[int, int]:
        engine = db.make_engine(served.settings.database_url)
        try:
            async with engine.connect() as connection:
                row = (
                    await connection.execute(
                        select(
                            func.sum(AvailabilityMinute.probe_ok),
                            func.sum(AvailabilityMinute.answered),
                        )
                    )
                ).one()
        finally:
            await engine.dispose()
        return int(row[0] or 0), int(row[1] or 0)

    probe_ok, answered = anyio.run(totals)
    assert probe_ok >= 1
    assert answered >= 1

    chart = httpx.get(
        f"{served.operators}/availability.svg",
        params={"from": str(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3))},
    )
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/svg+xml"
    assert ET.fromstring(chart.text).tag == "{http://www.w3.org/2000/svg}svg"  # noqa: S314
    refused = httpx.get(f"{served.operators}/availability", params={"from": "yesterday"})
    assert refused.status_code == 400
