"""An operator investigates with the journal, finds it tampered with, restores it and
resumes (R-TR-2, R-TR-3, R-TR-4, R-OPS-2), with the ``ensu journal`` commands only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ensu import db
from ensu.audit import keys
from ensu.audit import service as audit
from ensu.audit.integrity import IntegrityMonitor
from ensu.audit.records import CallRecord, Decision
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.audit.writer import JournalWriter
from ensu.config import Settings, get_settings
from tests.support.cli import Invoke

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def run(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The ``ensu`` command with a 30-day journal retention."""
    monkeypatch.setenv("ENSU_JOURNAL_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    return run


def _call(number: int, teleservice: str) -> CallRecord:
    refused = number % 10 == 0
    return CallRecord(
        at=T0 + dt.timedelta(minutes=10 * number),
        consumer="13000000000005",
        id_teleservice=teleservice,
        client_id=f"client-{teleservice.lower()}",
        thumbprint="B" * 43,
        jti=None if refused else f"jti-{number}",
        ip="198.51.100.7",
        correlation_id=f"0f0f0f0f-0000-4000-8000-{number:012d}",
        siren="732829320",
        document_codes=("AMR",),
        document_ids=() if refused else (f"IDENSUA{number:04d}",),
        reference_demande=f"DOSSIER-{number % 4}" if number % 4 else None,
        route="/ensudocuments/v1/documents/{idensua}",
        decision=Decision.REFUSED if refused else Decision.ALLOWED,
        reason="TokenInvalid" if refused else "ok",
        status=401 if refused else 200,
        error_code="900901" if refused else None,
    )


async def _journal_some_calls(settings: Settings) -> None:
    """What the app does on each call, and an event recorded by a feature."""
    engine = db.make_engine(settings.database_url)
    async with db.session_scope(db.make_sessionmaker(engine)) as session:
        await audit.record_event(
            session=session,
            tag=EventTag.CONSUMERS_TELESERVICE_SUSPENDED,
            actor="cli:ops",
            details={"id_teleservice": "TS-A", "reason": "homologation échue"},
        )
    await engine.dispose()
    journal = JournalStore.for_settings(settings)
    writer = JournalWriter(  # checkpoints signed after the calls they cover, as in life
        journal,
        keys.load_or_create_signer(settings),
        checkpoint_every=50,
        clock=lambda: T0 + dt.timedelta(days=2),
    )
    await writer.start()
    await asyncio.gather(
        *(writer.append(_call(n, "TS-A" if n % 2 else "TS-B")) for n in range(240))
    )
    await writer.checkpoint()
    await writer.close()
    await journal.dispose()


async def _monitor_once(settings: Settings) -> str | None:
    journal = JournalStore.for_settings(settings)
    monitor = IntegrityMonitor(journal, keys.load_verifier(settings))
    await monitor.check()
    await journal.dispose()
    return monitor.problem


def _edit_leaf(settings: Settings, index: int, change: Callable[[bytes], bytes]) -> bytes:
    path = settings.var_dir / "journal.db"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        (record,) = connection.execute(
            "SELECT record FROM journal_leaves WHERE leaf_index = ?", (index,)
        ).fetchone()
        connection.execute(
            "UPDATE journal_leaves SET record = ? WHERE leaf_index = ?", (change(record), index)
        )
    original: bytes = record
    return original


def test_the_journal_of_one_case_is_found_by_its_reference(
    run: Invoke, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """CONTRACT.md: ``referenceDemande`` is journaled; ``ensu journal export --reference``
    finds the calls of that case, and the bundle says so and verifies offline."""
    asyncio.run(_journal_some_calls(sqlite_settings))
    bundle = tmp_path / "case.json"
    exported = run(
        "journal", "export", "--consumer", "TS-A", "--from", "2026-03-02",
        "--to", "2026-03-02", "--reference", "DOSSIER-1", "--out", str(bundle),
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert "23 records exported" in exported.output  # TS-A's calls 1, 5, 9 ... 89
    document = json.loads(bundle.read_text())
    assert document["query"]["reference"] == "DOSSIER-1"
    assert {e["content"]["reference_demande"] for e in document["entries"]} == {"DOSSIER-1"}
    checked = run("journal", "check-bundle", str(bundle))
    assert checked.exit_code == 0, checked.output
    document["query"]["reference"] = "DOSSIER-3"  # the records are not that case's
    bundle.write_text(json.dumps(document))
    refused = run("journal", "check-bundle", str(bundle))
    assert refused.exit_code == 1
    assert "another case reference" in refused.output


def test_export_tamper_detect_restore_resume(
    run: Invoke, sqlite_settings: Settings, tmp_path: Path
) -> None:
    asyncio.run(_journal_some_calls(sqlite_settings))
    relayed = run("journal", "relay")
    assert relayed.exit_code == 0, relayed.output
    assert "1 events appended" in relayed.output

    verified = run("journal", "verify")
    assert verified.exit_code == 0, verified.output
    assert "journal verified: 241 leaves (0 purged)" in verified.output

    vkey = tmp_path / "producer.vkey"
    assert run("journal", "key", "--out", str(vkey)).exit_code == 0
    bundle = tmp_path / "bundle.json"
    exported = run(
        "journal", "export", "--consumer", "TS-A",
        "--from", "2026-03-02", "--to", "2026-03-02", "--out", str(bundle),
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert "45 records exported" in exported.output  # 13:00 of calls, every other one
    checked = run("journal", "check-bundle", str(bundle), "--key", str(vkey))
    assert checked.exit_code == 0, checked.output
    assert "OK 45 records" in checked.output
    forged = json.loads(bundle.read_text())
    forged["entries"][2]["content"]["decision"] = "refused"
    bundle.write_text(json.dumps(forged))
    refused = run("journal", "check-bundle", str(bundle), "--key", str(vkey))
    assert refused.exit_code == 1
    assert "FAIL entry 2" in refused.output

    original = _edit_leaf(sqlite_settings, 7, lambda r: r.replace(b"198.51.100.7", b"10.0.0.1"))
    broken = run("journal", "verify")
    assert broken.exit_code == 1
    assert "leaf_hash_mismatch (leaf 7)" in broken.output
    as_json = json.loads(run("journal", "verify", "--json").output)
    assert as_json["problem"] == {
        "code": "leaf_hash_mismatch",
        "index": 7,
        "message": "the record does not hash to its leaf",
    }
    assert asyncio.run(_monitor_once(sqlite_settings)) is not None
    status = run("journal", "status")
    assert status.exit_code == 1
    assert "alarm       leaf_hash_mismatch (leaf 7)" in status.output
    not_yet = run("journal", "resume", "--reason", "try")
    assert not_yet.exit_code == 1
    assert "refused" in not_yet.output

    _edit_leaf(sqlite_settings, 7, lambda _: original)  # restored from a backup
    resumed = run("journal", "resume", "--reason", "leaf 7 restored from backup")
    assert resumed.exit_code == 0, resumed.output
    assert "1 alarm(s) cleared" in resumed.output
    assert run("journal", "status").exit_code == 0
    assert asyncio.run(_monitor_once(sqlite_settings)) is None

    purged = run("journal", "purge")  # ENSU_JOURNAL_RETENTION_DAYS=30: the calls expire
    assert purged.exit_code == 0, purged.output
    assert "purged 240 records" in purged.output
    after = run("journal", "verify")
    assert after.exit_code == 0, after.output
    assert "(240 purged)" in after.output


def test_check_bundle_documents_what_it_needs(run: Invoke) -> None:
    shown = run("journal", "check-bundle", "--help")
    assert shown.exit_code == 0
    assert "standard library" in shown.output
    assert "cryptography" in shown.output
    missing = run("journal", "check-bundle", "nowhere.json")
    assert missing.exit_code == 2
