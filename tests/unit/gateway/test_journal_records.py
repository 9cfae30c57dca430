"""Every call, allowed or refused, has its journal record, written before the response
leaves; without a journal, no data leaves (R-TR-1, R-TR-2)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest
from sqlalchemy.exc import OperationalError

from ensu.audit import store
from ensu.audit.service import Journal
from ensu.documents.storage import digest
from tests.unit.gateway.conftest import SIREN, World

pytestmark = pytest.mark.anyio
PREFIX = "/ensudocuments/v1"


async def _calls(journal: Journal) -> list[dict[str, Any]]:
    async with journal.store.read() as connection:
        rows = await store.leaves(connection, 0, 10_000)
    records = [orjson.loads(row.record) for row in rows if row.kind == "call"]
    return [record.get("fields", record) for record in records]


async def test_allowed_and_refused_calls_are_journaled(world: World) -> None:
    journal: Journal = world.app.state.journal
    token = await world.token("A")
    doc = next(d for d in world.docs if world.consumers["A"].allows(d.code, d.start, d.end))
    listed = await world.get(f"{PREFIX}/documents", "A", params={"siren": SIREN, "taille": "3"})
    content = await world.get(f"{PREFIX}/documents/IDENSUA/{doc.idensua}/contenu", "A")
    refused = await world.get(f"{PREFIX}/documents", "A", headers={"ID_Teleservice": "TS-B"})
    absent = await world.get(f"{PREFIX}/documents/IDENSUA/{'Z' * 64}", "A")
    assert [r.status_code for r in (listed, content, refused, absent)] == [200, 200, 403, 404]
    calls = await _calls(journal)
    assert len(calls) == 4
    by_status = {call["status"]: call for call in calls if call["status"] != 200}
    allowed = [call for call in calls if call["status"] == 200]
    assert allowed[0]["siren"] == SIREN
    assert allowed[0]["document_ids"] == [
        d["identifiants"]["IDENSUA"] for d in listed.json()["documents"]
    ]
    assert allowed[1]["document_ids"] == [doc.idensua]
    assert allowed[1]["decision"] == "allowed"
    for call in allowed:
        assert call["id_teleservice"] == "TS-A"
        assert call["thumbprint"] == world.consumers["A"].certificate.thumbprint
        assert call["jti"]
        assert call["ip"] == "127.0.0.1"
        assert call["correlation_id"]
    assert by_status[403]["error_code"] == "910003"
    assert by_status[403]["decision"] == "refused"
    assert by_status[404]["error_code"] == "920404"
    assert token not in str(calls)  # never a token (R-TR-1)


async def test_no_journal_no_data(world: World) -> None:
    """The journal store locked by another process: 503 930002, no byte of the PDF."""
    doc = next(d for d in world.docs if world.consumers["A"].allows(d.code, d.start, d.end))
    await world.token("A")
    path = world.settings.var_dir / "journal.db"
    assert path.exists()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        response = await world.get(f"{PREFIX}/documents/IDENSUA/{doc.idensua}/contenu", "A")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503
    assert response.json()["code"] == "930002"
    assert doc.content not in response.content
    assert digest(doc.content) not in response.content


async def test_a_tampered_journal_stops_the_data(world: World) -> None:
    """R-TR-2 (integrity I3): an edited record is detected and the API answers 930002
    until an operator restores a verified state."""
    journal: Journal = world.app.state.journal
    for _ in range(3):
        assert (await world.get(f"{PREFIX}/codesDocuments", "A")).status_code == 200
    await journal.writer.checkpoint()
    path = world.settings.var_dir / "journal.db"
    with sqlite3.connect(path, isolation_level=None) as other:
        other.execute(
            "UPDATE journal_leaves SET record = replace(record, X'22', X'27') WHERE leaf_index = 0"
        )
    for _ in range(20):  # the monitor scrubs the log a slice at a time
        await journal.monitor.check()
        if journal.stopped:
            break
    assert journal.stopped
    response = await world.get(f"{PREFIX}/codesDocuments", "A")
    assert response.status_code == 503
    assert response.json()["code"] == "930002"


def test_odd_paths_keep_their_record() -> None:
    from ensu.gateway.layer import _route  # noqa: PLC0415 - a private helper under test

    assert _route({"raw_path": b"/ensudocuments/v1/documents", "path": ""}) == (
        "/ensudocuments/v1/documents"
    )
    assert _route({"raw_path": b"/a\xc3\xa9 b", "path": ""}) == "/a%C3%A9%20b"
    assert len(_route({"raw_path": b"/" + b"x" * 500, "path": ""})) == 200
    assert _route({"path": "/only-path"}) == "/only-path"


async def test_a_database_failure_while_serving_is_503_930004_and_journaled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route served by the gateway itself (no FastAPI handler) maps
    a database failure to 503 930004, journaled, never a 500 (blobs in PostgreSQL)."""
    doc = next(d for d in world.docs if world.consumers["A"].allows(d.code, d.start, d.end))

    async def database_down(sha256: bytes) -> bytes:
        raise OperationalError("SELECT content FROM blobs", {}, OSError("connection lost"))

    monkeypatch.setattr(world.app.state.blob_store, "get", database_down)
    response = await world.get(f"{PREFIX}/documents/IDENSUA/{doc.idensua}/contenu", "A")
    assert response.status_code == 503
    assert response.json()["code"] == "930004"
    assert response.headers["retry-after"]
    last = (await _calls(world.app.state.journal))[-1]
    assert (last["status"], last["error_code"]) == (503, "930004")
    assert last["route"].endswith("/contenu")


async def test_the_case_reference_is_in_the_calls_record(world: World) -> None:
    """CONTRACT.md: ``referenceDemande`` is journaled, on an answered call and on one
    refused after it was read (here outside the perimeter); a malformed one is not."""
    journal: Journal = world.app.state.journal
    listed = await world.get(
        f"{PREFIX}/documents", "A", params={"siren": SIREN, "referenceDemande": "DOSSIER-2024-0042"}
    )
    outside = await world.get(
        f"{PREFIX}/documents",
        "B",
        params={"siren": SIREN, "referenceDemande": "DOSSIER 7", "dateDebut": "2001-01-01"},
    )
    malformed = await world.get(
        f"{PREFIX}/documents", "A", params={"siren": SIREN, "referenceDemande": "<script>"}
    )
    assert [r.status_code for r in (listed, outside, malformed)] == [200, 403, 400]
    calls = await _calls(journal)
    assert [call.get("reference_demande") for call in calls] == [
        "DOSSIER-2024-0042",
        "DOSSIER 7",
        None,
    ]


async def test_a_refusal_during_an_integrity_stop_is_journaled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-TR-1, R-TR-2: the stop serves no data, but the refusal itself (503 930002) is
    journaled, the writer being able to take it."""
    journal: Journal = world.app.state.journal
    await world.token("A")
    monkeypatch.setattr(journal.monitor, "stopped", True)
    response = await world.get(f"{PREFIX}/codesDocuments", "A")
    assert (response.status_code, response.json()["code"]) == (503, "930002")
    await journal.writer.checkpoint()  # the queued record is committed by then
    last = (await _calls(journal))[-1]
    assert (last["status"], last["error_code"], last["reason"]) == (
        503,
        "930002",
        "journal_integrity_stop",
    )
    assert last["correlation_id"] == response.headers["x-correlation-id"]
    assert journal.unjournaled == 0


async def test_a_refusal_the_journal_cannot_take_is_counted_and_logged(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal store down: the refusal cannot be journaled; it is counted and the
    log says so (a line a second at most), with its correlation id, never a token."""
    journal: Journal = world.app.state.journal
    token = await world.token("A")
    monkeypatch.setattr(type(journal.writer), "available", property(lambda _: False))
    with caplog.at_level("WARNING", logger="ensu.audit"):
        first = await world.get(f"{PREFIX}/codesDocuments", "A")
        second = await world.get(f"{PREFIX}/codesDocuments", "A")
    assert [r.status_code for r in (first, second)] == [503, 503]
    assert journal.unjournaled == 2
    lines = [r.getMessage() for r in caplog.records if "not journaled" in r.getMessage()]
    assert len(lines) == 1
    assert first.headers["x-correlation-id"] in lines[0]
    assert token not in caplog.text
