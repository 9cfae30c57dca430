"""An operator is alerted that a consumer enumerates companies, isolates it, cuts the
whole service, investigates, and closes the incident (R-OPS-1, R-OPS-2).

One real server as ``ensu serve`` runs it (detection and webhook dispatcher on), mutual
TLS, a real HTTP receiver for the signed webhook, the ``ensu incidents`` commands:

1. consumer A asks for 25 distinct SIRENs: a ``security.event`` (``enumeration``, TS-A)
   reaches the receiver, signed, within a minute;
2. ``ensu incidents isolate --teleservice TS-A``: A's very next call is 403 910004, its
   token endpoint refuses, B is still served;
3. ``--service``: every call is 503 930006, ``etatSante`` 503;
4. the journal of the period is attached, the checklist ticked, the incident closed:
   the service is back, A too (with a new token: the old one stays revoked).
"""

from __future__ import annotations

import datetime as dt
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn

from ensu import db
from ensu.app import create_app
from ensu.cli.serve import server_options
from ensu.config import Settings, get_settings
from ensu.documents.identifiers import complete_siren
from ensu.edge.testing import serving
from ensu.webhooks import service as webhooks
from ensu.webhooks import signature
from tests.functional.conftest import (
    A,
    B,
    Var,
    api_headers,
    app_server,
    free_port,
    prepare,
    request_token,
)
from tests.support.cli import Invoke, invoker
from tests.support.webhook_receiver import Receiver, receiver

SECRET = "the-soc-receiver-secret-0123456789"
LIST = "/ensudocuments/v1/documents"
SIRENS = [complete_siren(f"{30_000_000 + n * 7919:08d}") for n in range(25)]


def _settings(var: Var) -> Settings:
    return var.settings().model_copy(
        update={
            "probe_enabled": False,
            "metrics_port": 0,
            "detection_interval_seconds": 0.5,
            "detection_enumeration_subjects": 20,
            "webhook_allow_http": True,
            "detection_usual_hours": "00-24",  # the test may run at night
        }
    )


async def _subscribe(settings: Settings, url: str) -> None:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.session_scope(db.make_sessionmaker(engine)) as session:
            await webhooks.add(
                session=session,
                settings=settings,
                url=url,
                event_types=["security.*"],
                secret=SECRET,
                actor="test",
            )
    finally:
        await engine.dispose()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def _code(answer: httpx.Response) -> tuple[int, str | None]:
    body = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
    return answer.status_code, body.get("code")


def test_enumeration_alerted_then_isolated_cut_and_closed(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = prepare(tmp_path / "var")
    settings = _settings(var)
    anyio.run(_subscribe, settings, hook.url)
    monkeypatch.setenv("ENSU_LISTEN_PORT", str(free_port()))
    run: Invoke = next(invoker(var.directory, monkeypatch))
    config = uvicorn.Config(
        create_app(settings, served=True), **server_options(settings=settings), log_level="warning"
    )
    started = dt.datetime.now(dt.UTC)
    with (
        serving(config) as port,
        httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=var.context(A)) as a,
        httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=var.context(B)) as b,
    ):
        token_a = request_token(a, A.client_id).json()["access_token"]
        token_b = request_token(b, B.client_id).json()["access_token"]

        # 1. the enumeration, alerted within a minute by the signed webhook
        began = time.monotonic()
        for siren in SIRENS:
            answer = a.get(LIST, params={"siren": siren}, headers=api_headers(token_a, A))
            assert answer.status_code in {200, 404}, answer.text
        assert hook.wait(1, timeout=60), "no security.event within a minute"
        alerted = time.monotonic() - began
        got = hook.received[0]
        signature.verify(SECRET, got.headers["x-ensu-signature"], got.body, now=time.time())
        event = json.loads(got.body)
        assert event["type"] == "security.event"
        assert event["data"]["rule"] == "enumeration"
        assert event["data"]["id_teleservice"] == A.id_teleservice
        assert event["data"]["evidence"]["distinct_subjects"] >= 20
        print(f"enumeration alerted {alerted:.1f} s after the first call")
        assert a.get(
            LIST, params={"siren": SIRENS[0]}, headers=api_headers(token_a, A)
        ).status_code in {200, 404}

        # 2. isolate A: its very next call fails, B is still served
        opened = run(
            "incidents", "open", "--title", "Énumération par TS-A", "--kind", "enumeration",
            "--severity", "high", "--event", str(event["data"]["event"]),
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        isolated = run(
            "incidents", "isolate", "1", "--teleservice", "TS-A", "--reason", "énumération"
        )
        assert isolated.exit_code == 0, isolated.output
        assert "1 client(s): every token issued until now revoked" in isolated.output
        after = a.get(LIST, params={"siren": SIRENS[1]}, headers=api_headers(token_a, A))
        assert _code(after) == (403, "910004")
        assert request_token(a, A.client_id).status_code in {400, 401}
        assert b.get(
            LIST, params={"siren": SIRENS[1]}, headers=api_headers(token_b, B)
        ).status_code in {200, 404}

        # 3. the whole service
        cut = run("incidents", "isolate", "1", "--service", "--reason", "compromission possible")
        assert cut.exit_code == 0, cut.output
        refused = b.get(LIST, params={"siren": SIRENS[1]}, headers=api_headers(token_b, B))
        assert _code(refused) == (503, "930006")
        assert refused.headers["retry-after"] == "60"
        assert b.get("/ensudocuments/v1/etatSante").status_code == 503
        assert request_token(b, B.client_id).status_code == 503

        # 4. investigate, verify, close: everything back
        today = started.date()
        exported = run(
            "incidents", "export", "1", "--teleservice", "TS-A",
            "--from", today.isoformat(), "--to", (today + dt.timedelta(days=1)).isoformat(),
        )  # fmt: skip
        assert exported.exit_code == 0, exported.output
        bundle_path = Path(exported.output.split("journal attached: ")[1].strip())
        bundle = json.loads(bundle_path.read_text())
        assert stat.S_IMODE(bundle_path.stat().st_mode) == 0o600  # call records (R-TR-2)
        assert len(bundle["entries"]) >= len(SIRENS)
        refused_close = run("incidents", "close", "1")
        assert refused_close.exit_code == 1
        assert "not verified yet" in refused_close.output
        assert (
            run(
                "incidents", "qualify", "1", "--qualification", "TS-A seul", "--cause", "clé volée"
            ).exit_code
            == 0
        )
        for item in (
            "cause_analysed",
            "malicious_removed",
            "vulnerabilities_fixed",
            "consumers_informed",
        ):
            assert run("incidents", "check", "1", item, "--note", "vérifié").exit_code == 0
        closed = run("incidents", "close", "1")
        assert closed.exit_code == 0, closed.output
        assert b.get(
            LIST, params={"siren": SIRENS[2]}, headers=api_headers(token_b, B)
        ).status_code in {200, 404}
        old = a.get(LIST, params={"siren": SIRENS[2]}, headers=api_headers(token_a, A))
        assert _code(old) == (401, "900901")  # its tokens stay revoked
        fresh = request_token(a, A.client_id).json()["access_token"]
        assert a.get(
            LIST, params={"siren": SIRENS[2]}, headers=api_headers(fresh, A)
        ).status_code in {200, 404}
    review = run(
        "incidents",
        "review",
        "--from",
        today.isoformat(),
        "--to",
        (today + dt.timedelta(days=1)).isoformat(),
    )
    report = json.loads(review.output)
    assert report["by_kind"] == {"enumeration": {"high": 1}}
    assert report["open"] == 0
    get_settings.cache_clear()


def test_every_instance_cuts_the_service_when_the_command_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-OPS-2: two instances on one database; once ``ensu incidents isolate --service``
    has returned, both answer 503 930006 (each follows the cut within a second)."""
    var = prepare(tmp_path / "var")
    monkeypatch.setenv("ENSU_LISTEN_PORT", str(free_port()))
    run: Invoke = next(invoker(var.directory, monkeypatch))
    with (
        app_server(var.settings()) as first,
        app_server(var.settings()) as second,
    ):
        clients = [
            httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=var.context(B))
            for port in (first, second)
        ]
        try:
            tokens = [
                request_token(client, B.client_id).json()["access_token"] for client in clients
            ]
            for client, token in zip(clients, tokens, strict=True):
                served = client.get(
                    LIST, params={"siren": SIRENS[0]}, headers=api_headers(token, B)
                )
                assert served.status_code in {200, 404}
            assert (
                run(
                    "incidents", "open", "--title", "t", "--kind", "other", "--severity", "low"
                ).exit_code
                == 0
            )
            cut = run("incidents", "isolate", "1", "--service", "--reason", "test")
            assert cut.exit_code == 0, cut.output
            for client, token in zip(clients, tokens, strict=True):
                answer = client.get(
                    LIST, params={"siren": SIRENS[0]}, headers=api_headers(token, B)
                )
                assert _code(answer) == (503, "930006")
        finally:
            for client in clients:
                client.close()
    get_settings.cache_clear()
