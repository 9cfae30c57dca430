"""Security events: rules over the journal, in near real time (R-OPS-1, CGU §8).

The terms ask the parties for "la détection d'intrusions, la corrélation d'événements de
sécurité … (notamment la détection de comportements anormaux)" and for tested alert
circuits. The :class:`Detector` of ``ensu serve`` reads the journal's new call records
every ``ENSU_DETECTION_INTERVAL_SECONDS`` (:func:`ensu.audit.service.calls_since`) and
runs them through :data:`RULES`, one small class per behaviour, each correlating per
téléservice (per address when the call was refused before a téléservice was known):

- :class:`Enumeration`: one téléservice asks for many distinct subjects (SIREN / IDSP)
  in a few minutes — a consumer harvesting companies rather than serving its users;
- :class:`Burst`: many calls in a few seconds;
- :class:`RepeatedRefusals`: refusal after refusal (probing, a broken or stolen client);
- :class:`Mismatch`: a certificate, an address or an ``ID_Teleservice`` that does not
  go with the rest (stolen credentials used from elsewhere), at once;
- :class:`OffHours`: a call served outside the usual hours (Paris).

A finding becomes a :class:`~ensu.operations.models.SecurityEvent` with its evidence
(counts, the journal indices and correlation ids that show it), journaled through
``audit``, and emitted as the webhook event ``security.event`` in the same transaction
(so only a committed event is ever announced); the e-mail to ``ENSU_ALERT_EMAILS``
follows the commit. One event per rule and subject per :data:`COOLDOWN` at most: the
alert says "look", not every call again.

Windows are counted on the records' own times, so the rules judge the journal, not the
detector's pace. The cursor is advanced by compare-and-set with the events it produced:
with several instances, one wins each round, the others drop their windows and follow.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import mail
from ensu.audit import service as audit
from ensu.audit.records import CallRecord, Decision
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.background import Periodic
from ensu.config import Settings
from ensu.operations.models import DetectionCursor, SecurityEvent
from ensu.webhooks import service as webhooks

logger = logging.getLogger("ensu.operations.detection")

PARIS = ZoneInfo("Europe/Paris")
WEBHOOK_EVENT = "security.event"
COOLDOWN = dt.timedelta(minutes=15)
SAMPLE = 10
#: Refusal reasons that say a credential is used where it does not belong (R-GW-1..4).
MISMATCHES = frozenset(
    {
        "certificate_not_registered",
        "ip_outside_allowlist",
        "id_teleservice_not_bound",
        "id_teleservice_not_the_token_client",
        "token_bound_to_another_certificate",
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    subject: str
    id_teleservice: str | None
    ip: str | None
    summary: str
    evidence: dict[str, object]


def subject_of(call: CallRecord) -> str:
    """What the rules correlate on: the téléservice, else the caller's address."""
    return call.id_teleservice or f"ip:{call.ip or 'inconnue'}"


@dataclass
class _Window:
    """The calls of one subject within ``span``: (time, journal index, value)."""

    span: dt.timedelta
    items: deque[tuple[dt.datetime, int, str]] = field(default_factory=deque)

    def add(self, at: dt.datetime, index: int, value: str) -> None:
        self.items.append((at, index, value))
        while self.items and at - self.items[0][0] > self.span:
            self.items.popleft()

    def evidence(self) -> dict[str, object]:
        return {
            "calls": len(self.items),
            "first_index": self.items[0][1],
            "last_index": self.items[-1][1],
            "from": self.items[0][0].isoformat(),
            "to": self.items[-1][0].isoformat(),
            "window_seconds": int(self.span.total_seconds()),
        }


class Rule(Protocol):
    name: str

    def observe(self, index: int, call: CallRecord) -> Finding | None: ...


def _finding(rule: str, call: CallRecord, summary: str, evidence: dict[str, object]) -> Finding:
    evidence = {**evidence, "correlation_id": call.correlation_id}
    return Finding(rule, subject_of(call), call.id_teleservice, call.ip, summary, evidence)


class Enumeration:
    """R-OPS-1: one téléservice asks for ``threshold`` distinct subjects within
    ``span``."""

    name = "enumeration"

    def __init__(self, threshold: int, span: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.threshold, self.span = threshold, span
        self.windows: dict[str, _Window] = {}

    def observe(self, index: int, call: CallRecord) -> Finding | None:
        asked = call.siren or call.idsp
        if asked is None or call.id_teleservice is None:
            return None
        window = self.windows.setdefault(call.id_teleservice, _Window(self.span))
        window.add(call.at, index, asked)
        distinct = Counter(value for _, _, value in window.items)
        if len(distinct) < self.threshold:
            return None
        minutes = int(self.span.total_seconds() // 60)
        return _finding(
            self.name,
            call,
            f"{call.id_teleservice} a demandé {len(distinct)} usagers distincts en"
            f" {minutes} min (seuil {self.threshold}) : énumération probable",
            {
                **window.evidence(),
                "distinct_subjects": len(distinct),
                "sample_subjects": sorted(distinct)[:SAMPLE],
                "threshold": self.threshold,
            },
        )


class Burst:
    """R-OPS-1: ``threshold`` calls or more within ``span`` by one subject."""

    name = "burst"

    def __init__(self, threshold: int, span: dt.timedelta = dt.timedelta(seconds=10)) -> None:
        self.threshold, self.span = threshold, span
        self.windows: dict[str, _Window] = {}

    def observe(self, index: int, call: CallRecord) -> Finding | None:
        window = self.windows.setdefault(subject_of(call), _Window(self.span))
        window.add(call.at, index, "")
        if len(window.items) < self.threshold:
            return None
        return _finding(
            self.name,
            call,
            f"{subject_of(call)} : {len(window.items)} appels en"
            f" {int(self.span.total_seconds())} s (seuil {self.threshold})",
            {**window.evidence(), "threshold": self.threshold},
        )


class RepeatedRefusals:
    """R-OPS-1: ``threshold`` refusals or more within ``span`` by one subject."""

    name = "refusals"

    def __init__(self, threshold: int, span: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.threshold, self.span = threshold, span
        self.windows: dict[str, _Window] = {}

    def observe(self, index: int, call: CallRecord) -> Finding | None:
        if call.decision is not Decision.REFUSED:
            return None
        window = self.windows.setdefault(subject_of(call), _Window(self.span))
        window.add(call.at, index, call.reason)
        if len(window.items) < self.threshold:
            return None
        reasons = Counter(value for _, _, value in window.items)
        return _finding(
            self.name,
            call,
            f"{subject_of(call)} : {len(window.items)} refus en"
            f" {int(self.span.total_seconds() // 60)} min (seuil {self.threshold})",
            {**window.evidence(), "reasons": dict(reasons.most_common(5))},
        )


class Mismatch:
    """R-OPS-1: a certificate, an address or a technical identifier that does not go
    with the credentials presented (R-GW-1 to R-GW-4): one is enough."""

    name = "mismatch"

    def observe(self, index: int, call: CallRecord) -> Finding | None:
        if call.decision is not Decision.REFUSED or call.reason not in MISMATCHES:
            return None
        return _finding(
            self.name,
            call,
            f"{subject_of(call)} : appel refusé ({call.reason}) depuis {call.ip or '?'}",
            {
                "index": index,
                "reason": call.reason,
                "thumbprint": call.thumbprint,
                "at": call.at.isoformat(),
            },
        )


class OffHours:
    """R-OPS-1: a call served outside the usual hours, ``start`` to ``end`` (Paris)."""

    name = "off_hours"

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end

    def observe(self, index: int, call: CallRecord) -> Finding | None:
        if call.decision is not Decision.ALLOWED or call.id_teleservice is None:
            return None
        local = call.at.astimezone(PARIS)
        if self.start <= local.hour < self.end:
            return None
        return _finding(
            self.name,
            call,
            f"{call.id_teleservice} : appel servi à {local:%H:%M} (heure de Paris), hors des"
            f" heures habituelles {self.start:02d}:00-{self.end:02d}:00",
            {"index": index, "at": call.at.isoformat(), "route": call.route},
        )


def rules_for(settings: Settings) -> tuple[Rule, ...]:
    """The rules, with the thresholds of the settings."""
    start, end = settings.detection_hours
    return (
        Enumeration(settings.detection_enumeration_subjects),
        Burst(settings.detection_burst_calls),
        RepeatedRefusals(settings.detection_refusals),
        Mismatch(),
        OffHours(start, end),
    )


# -- raising an event -------------------------------------------------------------------


def payload_of(event: SecurityEvent, *, test: bool = False) -> dict[str, object]:
    """What the webhook and the e-mail say of an event."""
    return {
        "event": event.id,
        "rule": event.rule,
        "subject": event.subject,
        "id_teleservice": event.id_teleservice,
        "ip": event.ip,
        "summary": event.summary,
        "detected_at": event.detected_at.isoformat(),
        "evidence": event.evidence,
        "test": test,
    }


async def raise_event(
    *, session: AsyncSession, finding: Finding, actor: str, now: dt.datetime, test: bool = False
) -> SecurityEvent:
    """Store the event, journal it and queue its webhook, in the caller's transaction."""
    event = SecurityEvent(
        rule=finding.rule,
        subject=finding.subject,
        id_teleservice=finding.id_teleservice,
        ip=finding.ip,
        summary=finding.summary,
        evidence=finding.evidence,
        detected_at=now,
        alerts={},
    )
    session.add(event)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_SECURITY_EVENT_RAISED,
        actor=actor,
        details={
            "security_event": event.id,
            "rule": event.rule,
            "subject": event.subject,
            "summary": event.summary[:200],
            "test": test,
        },
    )
    uids = await webhooks.emit(
        session=session, event_type=WEBHOOK_EVENT, payload=payload_of(event, test=test), now=now
    )
    event.alerts = {"webhooks": uids}
    return event


async def test_circuit(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], actor: str
) -> tuple[SecurityEvent, list[webhooks.Attempt], str]:
    """``ensu alerts test`` (CGU §8: "des tests des processus d'alerte"): a test event
    through the whole circuit — stored, journaled, its webhooks sent now, its e-mail
    sent; the event, the webhook attempts and the mail's outcome."""
    moment = dt.datetime.now(dt.UTC)
    finding = Finding(
        rule="test",
        subject="test",
        id_teleservice=None,
        ip=None,
        summary="Test du circuit d'alerte (ensu alerts test) : aucune action requise.",
        evidence={"requested_by": actor},
    )
    async with sessionmaker() as session, session.begin():
        event = await raise_event(
            session=session, finding=finding, actor=actor, now=moment, test=True
        )
    await webhooks.deliver_due(sessionmaker=sessionmaker, settings=settings)
    uids = event.alerts.get("webhooks")
    attempts: list[webhooks.Attempt] = []
    async with sessionmaker() as session:
        for uid in uids if isinstance(uids, list) else ():
            attempts += await webhooks.attempts(session=session, delivery=str(uid), limit=1)
    outcome = await mail_alert(settings=settings, sessionmaker=sessionmaker, event=event)
    return event, attempts, outcome


async def mail_alert(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], event: SecurityEvent
) -> str:
    """E-mail the event to ``ENSU_ALERT_EMAILS``; the outcome, noted on the event."""
    if not settings.alert_emails:
        outcome = "no ENSU_ALERT_EMAILS"
    else:
        try:
            await mail.send_mail(
                settings,
                to=settings.alert_emails,
                subject=f"[ENSU] Événement de sécurité {event.id} : {event.rule} — {event.subject}",
                body=_mail_body(event),
            )
            outcome = "sent"
        except mail.MailError as exc:
            outcome = f"error: {exc}"[:300]
            logger.error("security event %s: alert mail not sent: %s", event.id, exc)
    async with sessionmaker() as session, session.begin():
        stored = await session.get(SecurityEvent, event.id)
        if stored is not None:
            stored.alerts = {**stored.alerts, "mail": outcome}
    return outcome


def _mail_body(event: SecurityEvent) -> str:
    lines = [
        f"Événement de sécurité n° {event.id} ({event.rule})",
        "",
        event.summary,
        "",
        f"Téléservice : {event.id_teleservice or '-'}",
        f"Adresse : {event.ip or '-'}",
        f"Détecté le : {event.detected_at.astimezone(PARIS):%d/%m/%Y %H:%M:%S} (Paris)",
        "",
        "Éléments :",
        *(f"  {key} : {value}" for key, value in sorted(event.evidence.items())),
        "",
        "Isoler le téléservice : ensu incidents open … puis ensu incidents isolate …",
    ]
    return "\n".join(lines)


# -- the job ------------------------------------------------------------------------------


class Detector(Periodic):
    """Reads the journal's new calls and raises the rules' events (see the module)."""

    job = "security-detection"

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        journal: JournalStore,
        rules: Sequence[Rule] | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__(interval=interval or settings.detection_interval_seconds, logger=logger)
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.journal = journal
        self.rules = tuple(rules) if rules is not None else rules_for(settings)
        self.position: int | None = None
        self.last_raised: dict[tuple[str, str], dt.datetime] = {}
        #: The events this process raised, by rule (``ensu_security_events_total``).
        self.raised_by_rule: Counter[str] = Counter()

    async def start(self) -> None:
        """Take the cursor before the server serves: no call of this run is missed."""
        try:
            self.position = await self._cursor()
        except Exception as exc:  # the first round tries again
            logger.error("security detection: no cursor yet: %r", exc)
        await super().start()

    async def tick(self) -> None:
        """A round; a failure reads again from the cursor at the next."""
        await self.run_once()

    async def _cursor(self) -> int:
        """The stored cursor; on the very first run, the journal's current end (the
        past is not judged again at every deployment)."""
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(DetectionCursor, 1)
            if row is not None:
                return row.position
            end = await audit.journal_size(self.journal)
            session.add(DetectionCursor(id=1, position=end, updated_at=dt.datetime.now(dt.UTC)))
            return end

    async def run_once(self, *, now: dt.datetime | None = None) -> list[SecurityEvent]:
        """Judge every new call; the events raised (their alerts sent)."""
        if self.position is None:
            self.position = await self._cursor()
        raised: list[SecurityEvent] = []
        while True:
            calls, after = await audit.calls_since(self.journal, self.position)
            if after == self.position:
                break
            findings = self._judge(calls)
            events = await self._commit(self.position, after, findings, now)
            if events is None:  # another instance judged this range: follow it
                self._reset()
                self.position = await self._cursor()
                continue
            self.position = after
            raised += events
            self.raised_by_rule.update(event.rule for event in events)
        for event in raised:
            await mail_alert(settings=self.settings, sessionmaker=self.sessionmaker, event=event)
        return raised

    def _judge(self, calls: Iterable[tuple[int, CallRecord]]) -> list[Finding]:
        findings = []
        for index, call in calls:
            for rule in self.rules:
                finding = rule.observe(index, call)
                if finding is None:
                    continue
                key = (finding.rule, finding.subject)
                last = self.last_raised.get(key)
                if last is not None and call.at - last < COOLDOWN:
                    continue
                self.last_raised[key] = call.at
                findings.append(finding)
        return findings

    async def _commit(
        self, old: int, new: int, findings: Sequence[Finding], now: dt.datetime | None
    ) -> list[SecurityEvent] | None:
        moment = now or dt.datetime.now(dt.UTC)
        async with self.sessionmaker() as session, session.begin():
            moved = await session.execute(
                update(DetectionCursor)
                .where(DetectionCursor.id == 1, DetectionCursor.position == old)
                .values(position=new, updated_at=moment)
            )
            if getattr(moved, "rowcount", 0) != 1:
                return None
            return [
                await raise_event(
                    session=session, finding=finding, actor="system:detection", now=moment
                )
                for finding in findings
            ]

    def _reset(self) -> None:
        for rule in self.rules:
            windows = getattr(rule, "windows", None)
            if isinstance(windows, dict):
                windows.clear()


async def events(
    *, session: AsyncSession, since: dt.datetime | None = None, limit: int = 100
) -> list[SecurityEvent]:
    """The latest security events, newest first."""
    query = select(SecurityEvent).order_by(SecurityEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(SecurityEvent.detected_at >= since)
    return list((await session.scalars(query)).all())
