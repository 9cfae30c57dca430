"""Security incidents, through the phases of CGU §8 (R-OPS-2).

The terms list the phases; each is a function here, each action a row of
``incident_actions`` (journaled through ``audit``), so that the record of an incident is
what was done, by whom, when:

1. **Immediate response** — :func:`isolate`: cut one téléservice, every téléservice of
   an organisation, or the whole service. A téléservice is suspended
   (``consumers.service.suspend``: its calls 403 910004, no new token) and its tokens
   revoked (``oauth.service.revoke_client_tokens``); the whole service answers 503
   930006 (:mod:`ensu.operations.isolation`). Every instance enforces it within
   :data:`~ensu.operations.isolation.PROPAGATION_SECONDS`.
2. **Investigation** — :func:`export_journal`: the journal of the period and
   téléservice, as the provable bundle of ``ensu journal export`` (R-TR-3), kept with
   the incident; :func:`qualify`: perimeter, qualification, cause.
3. **Treatment** — :func:`restrict`: a lower quota, a narrower perimeter
   (``consumers.service.restrict``), lifted at closure; :func:`inform`: the written
   notice to the téléservices' contacts (R-OPS-4).
4. **Closure** — :func:`check` ticks the items of :data:`CHECKLIST` (the terms'
   "vérification avant remise en service"); :func:`close` refuses while one is missing
   or the journal does not verify, then lifts the isolations and restrictions.

:func:`review` counts the incidents by type and severity over a period, with the times
to isolate and to close (CGU §8: "une revue des incidents faite régulièrement pour
quantifier et surveiller les différents types d'incidents").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import files
from ensu.audit import keys
from ensu.audit import service as audit
from ensu.audit.export import export_bundle
from ensu.audit.store import JournalStore
from ensu.audit.tags import EventTag
from ensu.audit.verify import verify
from ensu.audit.witness import kept_path, read_kept
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole, TeleserviceStatus
from ensu.oauth import service as oauth
from ensu.operations import isolation, notices
from ensu.operations.models import Incident, IncidentAction, SecurityEvent

KINDS = (
    "enumeration",
    "credential_compromise",
    "unauthorised_access",
    "abuse",
    "availability",
    "data_breach",
    "other",
)
SEVERITIES = ("low", "medium", "high", "critical")
#: What must be verified before service resumes (CGU §8, "Après résolution").
CHECKLIST = {
    "cause_analysed": "analyse de l'incident : cause déterminée, corrections associées",
    "malicious_removed": "l'élément malveillant a été supprimé",
    "vulnerabilities_fixed": "les éventuelles vulnérabilités sont corrigées",
    "consumers_informed": "consommateurs concernés informés par écrit (R-OPS-4)",
}
#: Actions lifted at closure, and how.
LIFTED = frozenset({"isolate_teleservice", "cut_service", "restrict"})
#: Actions whose target is a téléservice the incident touched (informed by default).
TOUCHING = frozenset({"isolate_teleservice", "restrict"})
#: Whom :func:`inform` writes to (R-OPS-4).
INFORMED_ROLES = (ContactRole.TECHNIQUE, ContactRole.RESPONSABLE_TRAITEMENT)


class IncidentError(ValueError):
    """What cannot be done to an incident now; the message says why."""


@dataclass(frozen=True, slots=True)
class Isolated:
    targets: tuple[str, ...]
    clients_cut: int


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


async def _incident(session: AsyncSession, incident_id: int, *, open_: bool = True) -> Incident:
    row = await session.get(Incident, incident_id)
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    if open_ and row.phase == "closed":
        raise IncidentError(f"incident {incident_id} is closed")
    return row


async def _act(
    session: AsyncSession,
    incident: Incident,
    *,
    action: str,
    actor: str,
    target: str | None,
    details: dict[str, object],
    now: dt.datetime,
) -> IncidentAction:
    row = IncidentAction(
        incident_id=incident.id,
        at=now,
        actor=actor,
        action=action,
        target=target,
        details=details,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_INCIDENT_ACTION,
        actor=actor,
        details={"incident": incident.id, "action": action, "target": target},
    )
    return row


# -- opening ---------------------------------------------------------------------------


async def open_incident(
    *,
    session: AsyncSession,
    title: str,
    kind: str,
    severity: str,
    actor: str,
    events: tuple[int, ...] = (),
    now: dt.datetime | None = None,
) -> Incident:
    """Open an incident, attaching the security events that raised it (R-OPS-1)."""
    if kind not in KINDS:
        raise IncidentError(f"type {kind!r}: one of {', '.join(KINDS)}")
    if severity not in SEVERITIES:
        raise IncidentError(f"severity {severity!r}: one of {', '.join(SEVERITIES)}")
    if not title.strip():
        raise IncidentError("an incident needs a title")
    moment = _now(now)
    incident = Incident(
        title=title.strip()[:200],
        kind=kind,
        severity=severity,
        phase="open",
        opened_at=moment,
        opened_by=actor,
        checklist={},
    )
    session.add(incident)
    await session.flush()
    for event_id in events:
        event = await session.get(SecurityEvent, event_id)
        if event is None:
            raise IncidentError(f"no security event {event_id}")
        event.incident_id = incident.id
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_INCIDENT_OPENED,
        actor=actor,
        details={"incident": incident.id, "kind": kind, "severity": severity, "events": events},
    )
    return incident


# -- 1. immediate response ----------------------------------------------------------------


async def isolate(
    *,
    session: AsyncSession,
    incident_id: int,
    actor: str,
    reason: str,
    teleservice: str | None = None,
    organisation: str | None = None,
    whole_service: bool = False,
    now: dt.datetime | None = None,
) -> Isolated:
    """Cut exactly one of: a téléservice, an organisation's téléservices, the service."""
    if sum((teleservice is not None, organisation is not None, whole_service)) != 1:
        raise IncidentError("isolate one téléservice, one organisation or the whole service")
    incident = await _incident(session, incident_id)
    moment = _now(now)
    why = f"incident {incident.id}: {reason}"
    if whole_service:
        try:
            cut = await isolation.start_cut(
                session=session, reason=why, actor=actor, incident_id=incident.id, now=moment
            )
        except isolation.CutError as exc:
            raise IncidentError(str(exc)) from None
        await _act(
            session, incident, action="cut_service", actor=actor, target="service",
            details={"cut": cut.id, "reason": reason}, now=moment,
        )  # fmt: skip
        targets: tuple[str, ...] = ("service",)
        clients_cut = 0
    else:
        if organisation is not None:
            views = await consumers.list_teleservices(
                session=session, organisation_siret=organisation, status=TeleserviceStatus.ACTIVE
            )
            if not views:
                raise IncidentError(f"no active téléservice of organisation {organisation}")
            names = [view.id_teleservice for view in views]
        else:
            assert teleservice is not None
            names = [teleservice]
        for name in names:
            await _isolate_teleservice(session, incident, name, actor=actor, why=why, moment=moment)
        targets = tuple(names)
        clients_cut = len(names)  # one client per téléservice
    if incident.isolated_at is None:
        incident.isolated_at = moment
    incident.phase = "isolated" if incident.phase == "open" else incident.phase
    return Isolated(targets, clients_cut)


async def _isolate_teleservice(
    session: AsyncSession,
    incident: Incident,
    name: str,
    *,
    actor: str,
    why: str,
    moment: dt.datetime,
) -> None:
    try:
        view = await consumers.suspend(
            session=session, id_teleservice=name, actor=actor, reason=why, now=moment
        )
    except consumers.ConsumerError as exc:
        raise IncidentError(str(exc)) from None
    await oauth.revoke_client_tokens(
        session=session, client_id=view.client_id, actor=actor, reason=why, now=moment
    )
    await _act(
        session, incident, action="isolate_teleservice", actor=actor, target=name,
        details={"tokens_revoked_until": moment.isoformat()}, now=moment,
    )  # fmt: skip


# -- 2. investigation ---------------------------------------------------------------------


def incident_dir(settings: Settings, incident_id: int) -> Path:
    return settings.var_dir / "incidents" / str(incident_id)


async def export_journal(
    *,
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    teleservice: str,
    start: dt.datetime,
    end: dt.datetime,
    actor: str,
    now: dt.datetime | None = None,
) -> Path:
    """Attach the journal of ``teleservice`` over ``[start, end)`` to the incident: the
    offline-verifiable bundle of R-TR-3, kept under ``var/incidents/<id>/``."""
    incident = await _incident(session, incident_id, open_=False)
    moment = _now(now)
    journal = JournalStore.for_settings(settings)
    try:
        bundle = await export_bundle(
            journal,
            keys.load_or_create_signer(settings),
            id_teleservice=teleservice,
            start=start,
            end=end,
            now=moment,
        )
    finally:
        await journal.dispose()
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
    name = f"journal-{teleservice}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.json"
    path = incident_dir(settings, incident.id) / name
    files.write_private(path, data)  # call records: 0600 in 0700 folders (R-TR-2)
    await _act(
        session, incident, action="export", actor=actor, target=teleservice,
        details={
            "path": str(path), "sha256": hashlib.sha256(data).hexdigest(),
            "entries": len(bundle["entries"]), "from": start.isoformat(), "to": end.isoformat(),
        },
        now=moment,
    )  # fmt: skip
    if incident.phase in ("open", "isolated"):
        incident.phase = "investigating"
    return path


async def qualify(
    *,
    session: AsyncSession,
    incident_id: int,
    actor: str,
    qualification: str | None = None,
    cause: str | None = None,
    now: dt.datetime | None = None,
) -> Incident:
    """Record the qualification (perimeter, impact) and the cause (fait générateur)."""
    incident = await _incident(session, incident_id)
    if qualification:
        incident.qualification = qualification.strip()
    if cause:
        incident.cause = cause.strip()
    await _act(
        session, incident, action="qualify", actor=actor, target=None,
        details={"qualification": qualification, "cause": cause}, now=_now(now),
    )  # fmt: skip
    if incident.phase in ("open", "isolated"):
        incident.phase = "investigating"
    return incident


# -- 3. treatment ---------------------------------------------------------------------------


async def restrict(
    *,
    session: AsyncSession,
    incident_id: int,
    teleservice: str,
    actor: str,
    reason: str,
    quota_per_minute: int | None = None,
    codes: tuple[str, ...] | None = None,
    period_start: dt.date | None = None,
    period_end: dt.date | None = None,
    now: dt.datetime | None = None,
) -> IncidentAction:
    """A temporary restriction through ``consumers.service.restrict``, lifted at closure."""
    incident = await _incident(session, incident_id)
    moment = _now(now)
    try:
        previous = await consumers.restrict(
            session=session,
            id_teleservice=teleservice,
            actor=actor,
            reason=f"incident {incident.id}: {reason}",
            quota_per_minute=quota_per_minute,
            codes=codes,
            period_start=period_start,
            period_end=period_end,
            now=moment,
        )
    except consumers.ConsumerError as exc:
        raise IncidentError(str(exc)) from None
    incident.phase = "treating"
    return await _act(
        session, incident, action="restrict", actor=actor, target=teleservice,
        details={"previous": previous, "reason": reason}, now=moment,
    )  # fmt: skip


async def inform(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    incident_id: int,
    actor: str,
    message: str,
    teleservices: tuple[str, ...] = (),
) -> list[dict[str, object]]:
    """Write to the technical contact and the responsable de traitement of the
    téléservices concerned (R-OPS-4, CGU §5.1 and §12: "dûment averti par écrit"); by
    default those the incident isolated or restricted. The notices are kept as an
    action of the incident."""
    if not message.strip():
        raise IncidentError("a notice needs a message (--message)")
    async with sessionmaker() as session:
        incident = await _incident(session, incident_id, open_=False)
        done = await actions(session=session, incident_id=incident_id)
    targets = teleservices or tuple(
        sorted({a.target for a in done if a.action in TOUCHING and a.target is not None})
    )
    if not targets:
        raise IncidentError("no téléservice concerned yet: name them (--teleservice)")
    body = "\n".join(
        [
            "Madame, Monsieur,",
            "",
            "Le producteur de l'API ENSU DOCUMENTS vous informe d'un événement de sécurité"
            " concernant votre téléservice (conditions générales d'utilisation, articles 5.1"
            " et 12) :",
            "",
            f"Incident n° {incident.id} — {incident.title}",
            "",
            message.strip(),
            "",
            "La DGFIP, producteur de l'API",
        ]
    )
    try:
        sent = await notices.write_to_contacts(
            settings=settings,
            sessionmaker=sessionmaker,
            teleservices=targets,
            roles=INFORMED_ROLES,
            subject=f"Incident de sécurité n° {incident.id} : {incident.title}",
            body=body,
        )
    except notices.NoRecipient as exc:
        raise IncidentError(str(exc)) from None
    async with sessionmaker() as session, session.begin():
        incident = await _incident(session, incident_id, open_=False)
        await _act(
            session, incident, action="inform", actor=actor, target=",".join(targets)[:100],
            details={"notices": sent, **notices.counts(sent)}, now=_now(None),
        )  # fmt: skip
    return sent


# -- 4. closure -------------------------------------------------------------------------------


async def check(
    *, session: AsyncSession, incident_id: int, item: str, note: str, actor: str
) -> Incident:
    """Tick an item of :data:`CHECKLIST`, with what was verified."""
    if item not in CHECKLIST:
        raise IncidentError(f"item {item!r}: one of {', '.join(CHECKLIST)}")
    if not note.strip():
        raise IncidentError("say what was verified (--note)")
    incident = await _incident(session, incident_id)
    moment = _now(None)
    incident.checklist = {
        **incident.checklist,
        item: {"by": actor, "at": moment.isoformat(), "note": note.strip()},
    }
    await _act(
        session, incident, action="check", actor=actor, target=item,
        details={"note": note.strip()}, now=moment,
    )  # fmt: skip
    return incident


async def close(
    *,
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    actor: str,
    now: dt.datetime | None = None,
) -> list[str]:
    """Close the incident once the checklist is complete, the cause recorded and the
    journal verified; then lift its isolations and restrictions. What was lifted."""
    incident = await _incident(session, incident_id)
    missing = [item for item in CHECKLIST if item not in incident.checklist]
    if missing:
        raise IncidentError(f"not verified yet: {', '.join(missing)}")
    if not incident.cause or not incident.qualification:
        raise IncidentError("record the qualification and the cause first (qualify)")
    await _verify_journal(settings)
    moment = _now(now)
    lifted = await _lift(session, incident, actor, moment)
    incident.phase, incident.closed_at, incident.closed_by = "closed", moment, actor
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_INCIDENT_CLOSED,
        actor=actor,
        details={"incident": incident.id, "lifted": lifted},
    )
    return lifted


async def _verify_journal(settings: Settings) -> None:
    journal = JournalStore.for_settings(settings)
    try:
        result = await verify(
            journal,
            keys.load_verifier(settings),
            kept=read_kept(kept_path(settings)),
            exchange_days=settings.journal_retention_days,
        )
    finally:
        await journal.dispose()
    if not result.ok:
        raise IncidentError(f"the journal does not verify: {result.problem}")


async def _lift(
    session: AsyncSession, incident: Incident, actor: str, moment: dt.datetime
) -> list[str]:
    actions = await session.scalars(
        select(IncidentAction)
        .where(
            IncidentAction.incident_id == incident.id,
            IncidentAction.action.in_(LIFTED),
            IncidentAction.undone_at.is_(None),
        )
        .order_by(IncidentAction.id.desc())
    )
    why = f"incident {incident.id} closed"
    lifted = []
    for action in actions:
        if action.action == "cut_service":
            await isolation.end_cut(session=session, actor=actor, now=moment)
        elif action.action == "isolate_teleservice":
            assert action.target is not None
            await consumers.resume(
                session=session, id_teleservice=action.target, actor=actor, reason=why, now=moment
            )
        else:
            assert action.target is not None
            previous = action.details["previous"]
            assert isinstance(previous, dict)
            await consumers.lift_restriction(
                session=session,
                id_teleservice=action.target,
                previous=previous,
                actor=actor,
                reason=why,
                now=moment,
            )
        action.undone_at = moment
        lifted.append(f"{action.action} {action.target}")
    return lifted


# -- reading and review -----------------------------------------------------------------------


async def incidents(*, session: AsyncSession, open_only: bool = False) -> list[Incident]:
    query = select(Incident).order_by(Incident.id)
    if open_only:
        query = query.where(Incident.phase != "closed")
    return list((await session.scalars(query)).all())


async def actions(*, session: AsyncSession, incident_id: int) -> list[IncidentAction]:
    await _incident(session, incident_id, open_=False)
    return list(
        (
            await session.scalars(
                select(IncidentAction)
                .where(IncidentAction.incident_id == incident_id)
                .order_by(IncidentAction.id)
            )
        ).all()
    )


async def review(
    *, session: AsyncSession, start: dt.datetime, end: dt.datetime
) -> dict[str, object]:
    """The incidents opened in ``[start, end)``: counts by type and severity, still
    open, median hours to isolate and to close."""
    rows = list(
        (
            await session.scalars(
                select(Incident).where(Incident.opened_at >= start, Incident.opened_at < end)
            )
        ).all()
    )
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    to_isolate: list[float] = []
    to_close: list[float] = []
    for row in rows:
        by_kind[row.kind][row.severity] += 1
        opened = _utc(row.opened_at)
        assert opened is not None
        isolated, closed = _utc(row.isolated_at), _utc(row.closed_at)
        if isolated is not None:
            to_isolate.append((isolated - opened).total_seconds() / 3600)
        if closed is not None:
            to_close.append((closed - opened).total_seconds() / 3600)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "total": len(rows),
        "open": sum(1 for row in rows if row.phase != "closed"),
        "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
        "median_hours_to_isolate": _median(to_isolate),
        "median_hours_to_close": _median(to_close),
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[middle], 2)
    return round((ordered[middle - 1] + ordered[middle]) / 2, 2)


def review_json(report: dict[str, object]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)
