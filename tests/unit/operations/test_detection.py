"""The detection rules over call records, and the detector following a real journal
(R-OPS-1): each rule fires on the behaviour it names and not below its threshold; an
event is stored, journaled and queued for the webhook; the cool-down keeps one event per
rule and subject; the cursor never judges a call twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.audit import keys
from ensu.audit.models import Event
from ensu.audit.records import CallRecord, Decision
from ensu.audit.store import JournalStore
from ensu.audit.writer import JournalWriter
from ensu.config import Settings
from ensu.operations import detection
from ensu.operations.models import SecurityEvent
from ensu.webhooks.models import WebhookDelivery

T0 = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)  # 11:00 in Paris
LUHN_SIRENS = [f"{n:09d}" for n in range(100_000_000, 100_000_000 + 40)]


def _call(
    seconds: float,
    *,
    siren: str | None = "732829320",
    teleservice: str | None = "TS-A",
    refused: str | None = None,
    ip: str = "198.51.100.7",
) -> CallRecord:
    return CallRecord(
        at=T0 + dt.timedelta(seconds=seconds),
        consumer="13000000000005" if teleservice else None,
        id_teleservice=teleservice,
        client_id="client-a" if teleservice else None,
        ip=ip,
        correlation_id="0f0f0f0f-0000-4000-8000-000000000001",
        siren=siren,
        route="/ensudocuments/v1/documents",
        decision=Decision.REFUSED if refused else Decision.ALLOWED,
        reason=refused or "ok",
        status=403 if refused else 200,
        error_code="910004" if refused else None,
    )


def _first(rule: detection.Rule, calls: list[CallRecord]) -> tuple[int, detection.Finding] | None:
    for index, call in enumerate(calls):
        found = rule.observe(index, call)
        if found is not None:
            return index, found
    return None


def test_enumeration_fires_at_the_threshold_of_distinct_subjects() -> None:
    calls = [_call(i, siren=LUHN_SIRENS[i]) for i in range(20)]
    found = _first(detection.Enumeration(20), calls)
    assert found is not None
    index, finding = found
    assert index == 19
    assert finding.subject == "TS-A"
    assert finding.evidence["distinct_subjects"] == 20
    assert finding.evidence["first_index"] == 0
    assert "énumération" in finding.summary


def test_enumeration_ignores_the_same_subject_asked_again_and_old_calls() -> None:
    same = [_call(i) for i in range(100)]
    assert _first(detection.Enumeration(20), same) is None
    spread = [_call(i * 20, siren=LUHN_SIRENS[i]) for i in range(30)]  # 19 in 6 minutes
    assert _first(detection.Enumeration(20), spread) is None


def test_burst_repeated_refusals_mismatch_and_off_hours() -> None:
    burst = [_call(i * 0.01) for i in range(200)]
    assert _first(detection.Burst(200), burst) is not None
    assert _first(detection.Burst(200), burst[:199]) is None
    refusals = [_call(i, refused="token_invalid", teleservice=None) for i in range(20)]
    found = _first(detection.RepeatedRefusals(20), refusals)
    assert found is not None
    assert found[1].subject == "ip:198.51.100.7"
    assert _first(detection.RepeatedRefusals(20), refusals[:19]) is None
    mismatch = _first(detection.Mismatch(), [_call(0), _call(1, refused="ip_outside_allowlist")])
    assert mismatch is not None
    assert mismatch[0] == 1
    assert _first(detection.Mismatch(), [_call(0, refused="quota_exceeded")]) is None
    night = T0.replace(hour=1)  # 02:00 Paris
    off = _first(detection.OffHours(6, 22), [_call((night - T0).total_seconds())])
    assert off is not None
    assert "02:00" in off[1].summary
    assert _first(detection.OffHours(6, 22), [_call(0)]) is None


@pytest.fixture
def detect_settings(var_dir: Path, database_url: str) -> Settings:
    return Settings(var_dir=var_dir, database_url=database_url, detection_enumeration_subjects=5)


async def _append(settings: Settings, calls: list[CallRecord]) -> None:
    journal = JournalStore.for_settings(settings)
    writer = JournalWriter(journal, keys.load_or_create_signer(settings), checkpoint_interval=0)
    await writer.start()
    try:
        for call in calls:
            await writer.append(call)
    finally:
        await writer.close()
        await journal.dispose()


@pytest.mark.anyio
async def test_the_detector_raises_one_event_stored_journaled_and_announced(
    detect_settings: Settings, database_url: str
) -> None:
    del database_url
    engine = db.make_engine(detect_settings.database_url)
    sessionmaker: async_sessionmaker[AsyncSession] = db.make_sessionmaker(engine)
    journal = JournalStore.for_settings(detect_settings)
    await journal.ensure_schema()
    try:
        await _append(detect_settings, [_call(0)])  # before the detector: not judged
        detector = detection.Detector(
            settings=detect_settings, sessionmaker=sessionmaker, journal=journal
        )
        assert await detector.run_once() == []
        await _append(detect_settings, [_call(1 + i, siren=LUHN_SIRENS[i]) for i in range(12)])
        [event] = await detector.run_once()
        assert event.rule == "enumeration"
        assert event.id_teleservice == "TS-A"
        assert event.evidence["distinct_subjects"] == 5
        assert await detector.run_once() == []  # nothing new
        again = detection.Detector(  # another instance: follows the cursor
            settings=detect_settings, sessionmaker=sessionmaker, journal=journal
        )
        assert await again.run_once() == []
        async with sessionmaker() as session:
            stored = list(await session.scalars(select(SecurityEvent)))
            journaled = list(
                await session.scalars(
                    select(Event).where(Event.tag == "operations:security_event:raised")
                )
            )
            queued = list(await session.scalars(select(WebhookDelivery)))
        assert [e.id for e in stored] == [event.id]
        assert journaled[0].details["security_event"] == event.id
        assert queued == []  # no subscription: nothing to send
        assert stored[0].alerts["mail"] == "no ENSU_ALERT_EMAILS"
    finally:
        await journal.dispose()
        await engine.dispose()
