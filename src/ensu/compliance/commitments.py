"""Security commitments of production téléservices and critical risks (CGU §3.4).

- R-SEC-1: each production téléservice has a commitment in force, an homologation
  attestation (its end of validity, reservations or provisional authorisation recorded)
  or a security questionnaire (its date). :func:`record_commitment` records it (the
  onboarding at validation, ``ensu compliance commitment set``).
- R-SEC-2 / R-SEC-3: the next one is due 3 months before the homologation ends, or
  3 years after the questionnaire (:func:`deadline_of`). The clock's daily job
  (:func:`enforce`) reminds the technical contact and the responsable de traitement
  120, 90, 60, 30, 14 and 7 days before that deadline, and suspends the téléservice the
  day after it (``consumers.suspend``: its next call is refused 403 910004) until a new
  attestation is validated (:func:`validate_commitment` restores it).
- R-SEC-4: a critical risk recorded by a manager either sets a resolution deadline (the
  same job suspends the day after it, unless resolved) or cuts at once; either way the
  consumer is told in writing.

A reminder whose day passed before the commitment was recorded (or while the clock was
stopped) is sent once, at the first run after, as the latest threshold passed; the
earlier ones are not sent late.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance import notices
from ensu.compliance.calendar import add_months
from ensu.compliance.errors import NotFound, Refused
from ensu.compliance.models import (
    ClockSuspension,
    CommitmentKind,
    CommitmentStatus,
    CriticalRisk,
    SecurityCommitment,
    SuspensionCause,
)
from ensu.compliance.notices import fr_date
from ensu.compliance.schemas import CommitmentView, RiskView
from ensu.config import Environment
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus
from ensu.consumers.schemas import TeleserviceView

#: Days before the deadline on which the contacts are reminded (R-SEC-2, R-SEC-3).
REMINDER_DAYS = (120, 90, 60, 30, 14, 7)
#: CGU §3.4.1: the new attestation is due 3 months before the current one ends.
HOMOLOGATION_LEAD_MONTHS = 3
#: CGU §3.4.2: the questionnaire is updated at least every 3 years.
QUESTIONNAIRE_MONTHS = 36
KIND_LABELS = {
    CommitmentKind.HOMOLOGATION: "attestation d'homologation de sécurité",
    CommitmentKind.QUESTIONNAIRE: "questionnaire de sécurité",
}


def deadline_of(kind: CommitmentKind, reference_date: dt.date) -> dt.date:
    """When the next attestation is due (R-SEC-2, R-SEC-3)."""
    if kind is CommitmentKind.HOMOLOGATION:
        return add_months(reference_date, -HOMOLOGATION_LEAD_MONTHS)
    return add_months(reference_date, QUESTIONNAIRE_MONTHS)


def _view(row: SecurityCommitment) -> CommitmentView:
    return CommitmentView(
        id=row.id,
        id_teleservice=row.id_teleservice,
        organisation_siret=row.organisation_siret,
        kind=row.kind,
        reference_date=row.reference_date,
        deadline=row.deadline,
        status=row.status,
        reservations=row.reservations,
        provisional=row.provisional,
    )


def _paris(moment: dt.datetime) -> str:
    return fr_date(clock.legal_date(moment))


async def teleservice(*, session: AsyncSession, id_teleservice: str) -> TeleserviceView:
    found = await consumers.get_by_id_teleservice(session=session, id_teleservice=id_teleservice)
    if found is None:
        raise NotFound(f"téléservice inconnu : {id_teleservice}")
    return found


# -- commitments -------------------------------------------------------------------------


async def record_commitment(
    *,
    session: AsyncSession,
    id_teleservice: str,
    kind: CommitmentKind,
    reference_date: dt.date,
    actor: Actor,
    validated: bool = True,
    reservations: str | None = None,
    provisional: bool = False,
    document_reference: str | None = None,
    now: dt.datetime | None = None,
) -> CommitmentView:
    """Record a security commitment of a production téléservice (R-SEC-1).

    ``reference_date``: the homologation's end of validity, or the questionnaire's date.
    ``validated`` (the producer's validation, as at onboarding) puts it in force at once:
    it supersedes the previous one and lifts a suspension the clock made for want of it;
    otherwise it waits for :func:`validate_commitment`. Refused: a sandbox téléservice,
    a questionnaire dated in the future, an attestation whose renewal is already due.
    """
    moment = now or clock.now()
    today = clock.legal_date(moment)
    target = await teleservice(session=session, id_teleservice=id_teleservice)
    if target.environment is not Environment.PRODUCTION:
        raise Refused("l'engagement de sécurité concerne les téléservices de production (§3.4)")
    if kind is CommitmentKind.QUESTIONNAIRE and reference_date > today:
        raise Refused("le questionnaire de sécurité ne peut être daté dans le futur")
    deadline = deadline_of(kind, reference_date)
    if deadline < today:
        raise Refused(
            f"le renouvellement de cette {KIND_LABELS[kind]} était dû le {fr_date(deadline)} :"
            " une attestation plus récente est nécessaire"
        )
    row = SecurityCommitment(
        id_teleservice=id_teleservice,
        organisation_siret=target.organisation_siret,
        kind=kind,
        reference_date=reference_date,
        deadline=deadline,
        status=CommitmentStatus.SUBMITTED,
        reservations=reservations,
        provisional=provisional,
        document_reference=document_reference,
        recorded_by=actor.label,
        recorded_at=moment,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_COMMITMENT_RECORDED,
        actor=actor.label,
        details={
            "commitment": row.id,
            "id_teleservice": id_teleservice,
            "kind": kind.value,
            "reference_date": reference_date.isoformat(),
            "deadline": deadline.isoformat(),
            "provisional": provisional,
        },
    )
    if validated:
        await _put_in_force(session, row, actor, moment)
    return _view(row)


async def validate_commitment(
    *, session: AsyncSession, commitment_id: int, actor: Actor, now: dt.datetime | None = None
) -> CommitmentView:
    """The producer validates a submitted attestation: in force, and the téléservice
    restored if the clock had suspended it for want of one (R-SEC-2)."""
    row = await _commitment(session, commitment_id)
    if row.status is not CommitmentStatus.SUBMITTED:
        raise Refused(f"l'engagement {commitment_id} n'est pas en attente de validation")
    await _put_in_force(session, row, actor, now or clock.now())
    return _view(row)


async def reject_commitment(
    *,
    session: AsyncSession,
    commitment_id: int,
    reason: str,
    actor: Actor,
    now: dt.datetime | None = None,
) -> CommitmentView:
    """The producer refuses a submitted attestation; the one in force stays."""
    row = await _commitment(session, commitment_id)
    if row.status is not CommitmentStatus.SUBMITTED:
        raise Refused(f"l'engagement {commitment_id} n'est pas en attente de validation")
    row.status = CommitmentStatus.REJECTED
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_COMMITMENT_REJECTED,
        actor=actor.label,
        details={"commitment": row.id, "id_teleservice": row.id_teleservice, "reason": reason},
    )
    return _view(row)


async def _commitment(session: AsyncSession, commitment_id: int) -> SecurityCommitment:
    row = await session.get(SecurityCommitment, commitment_id)
    if row is None:
        raise NotFound(f"engagement de sécurité inconnu : {commitment_id}")
    return row


async def _put_in_force(
    session: AsyncSession, row: SecurityCommitment, actor: Actor, moment: dt.datetime
) -> None:
    earlier = await session.scalars(
        select(SecurityCommitment).where(
            SecurityCommitment.id_teleservice == row.id_teleservice,
            SecurityCommitment.status == CommitmentStatus.VALIDATED,
        )
    )
    superseded = []
    for previous in earlier:
        previous.status = CommitmentStatus.SUPERSEDED
        superseded.append(previous.id)
    row.status, row.validated_by, row.validated_at = CommitmentStatus.VALIDATED, actor.label, moment
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_COMMITMENT_VALIDATED,
        actor=actor.label,
        details={
            "commitment": row.id,
            "id_teleservice": row.id_teleservice,
            "deadline": row.deadline.isoformat(),
            "superseded": superseded,
        },
    )
    await lift(
        session=session,
        id_teleservice=row.id_teleservice,
        cause=SuspensionCause.COMMITMENT,
        reason=f"nouvelle {KIND_LABELS[row.kind]} validée",
        actor=actor,
        now=moment,
    )


async def commitment_in_force(
    *, session: AsyncSession, id_teleservice: str
) -> CommitmentView | None:
    """The validated commitment of the téléservice, if any."""
    row = await session.scalar(
        select(SecurityCommitment).where(
            SecurityCommitment.id_teleservice == id_teleservice,
            SecurityCommitment.status == CommitmentStatus.VALIDATED,
        )
    )
    return _view(row) if row is not None else None


async def commitments(
    *, session: AsyncSession, id_teleservice: str | None = None
) -> list[CommitmentView]:
    statement = select(SecurityCommitment).order_by(SecurityCommitment.id)
    if id_teleservice is not None:
        statement = statement.where(SecurityCommitment.id_teleservice == id_teleservice)
    return [_view(row) for row in await session.scalars(statement)]


# -- suspensions made by the clock -------------------------------------------------------


async def suspend(
    *,
    session: AsyncSession,
    target: TeleserviceView,
    cause: SuspensionCause,
    cause_id: int,
    reason: str,
    actor: Actor,
    now: dt.datetime,
) -> bool:
    """Suspend for ``cause`` (once: ``False`` when already done for it)."""
    open_ = await session.scalar(
        select(ClockSuspension.id).where(
            ClockSuspension.id_teleservice == target.id_teleservice,
            ClockSuspension.cause == cause,
            ClockSuspension.cause_id == cause_id,
        )
    )
    if open_ is not None:
        return False
    applied = target.status is TeleserviceStatus.ACTIVE
    session.add(
        ClockSuspension(
            id_teleservice=target.id_teleservice,
            organisation_siret=target.organisation_siret,
            cause=cause,
            cause_id=cause_id,
            suspended_at=now,
            applied=applied,
        )
    )
    if applied:
        await consumers.suspend(
            session=session,
            id_teleservice=target.id_teleservice,
            actor=actor.label,
            reason=reason,
            now=now,
        )
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_TELESERVICE_SUSPENDED,
        actor=actor.label,
        details={
            "id_teleservice": target.id_teleservice,
            "cause": cause.value,
            "cause_id": cause_id,
            "reason": reason,
        },
    )
    return True


async def lift(
    *,
    session: AsyncSession,
    id_teleservice: str,
    cause: SuspensionCause,
    reason: str,
    actor: Actor,
    now: dt.datetime,
    cause_id: int | None = None,
) -> bool:
    """Lift the clock's suspensions for ``cause`` (``cause_id`` only, if given); resume
    the téléservice when none of the clock's suspensions remains open and it is still
    suspended. Returns ``True`` when it was resumed."""
    conditions = [
        ClockSuspension.id_teleservice == id_teleservice,
        ClockSuspension.lifted_at.is_(None),
    ]
    open_rows = list(await session.scalars(select(ClockSuspension).where(*conditions)))
    lifted = [
        row
        for row in open_rows
        if row.cause == cause and (cause_id is None or row.cause_id == cause_id)
    ]
    if not lifted:
        return False
    applied = any(row.applied for row in lifted)
    for row in lifted:
        row.lifted_at = now
    remaining = [row for row in open_rows if row.lifted_at is None]
    if remaining:  # another cause still holds the suspension, and now owns it
        remaining[0].applied = remaining[0].applied or applied
        await session.flush()
        return False
    await session.flush()
    if not applied:
        return False  # suspended by someone else first: theirs to resume
    target = await teleservice(session=session, id_teleservice=id_teleservice)
    if target.status is not TeleserviceStatus.SUSPENDED:
        return False
    await consumers.resume(
        session=session, id_teleservice=id_teleservice, actor=actor.label, reason=reason, now=now
    )
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_TELESERVICE_RESTORED,
        actor=actor.label,
        details={"id_teleservice": id_teleservice, "cause": cause.value, "reason": reason},
    )
    await notices.tell(
        session=session,
        target=target,
        key=f"restored:{id_teleservice}:{lifted[0].id}",
        kind="restoration",
        subject=f"Rétablissement de l'échange — {target.name}",
        body=(
            f"Bonjour,\n\nL'échange de données du téléservice {target.name}"
            f" ({id_teleservice}) avec l'API ENSU Documents est rétabli le {_paris(now)} :"
            f" {reason}."
        ),
        now=now,
    )
    return True


# -- critical risks (R-SEC-4) --------------------------------------------------------------


def _may_decide_risks(actor: Actor) -> bool:
    """A manager (or above), or the operator's shell on the server (``cli:``)."""
    return actor.is_staff(StaffRole.MANAGER) or actor.kind is ActorKind.SYSTEM


async def record_risk(
    *,
    session: AsyncSession,
    id_teleservice: str,
    description: str,
    actor: Actor,
    resolution_deadline: dt.date | None = None,
    now: dt.datetime | None = None,
) -> RiskView:
    """A critical risk (R-SEC-4): with ``resolution_deadline`` the consumer must resolve
    it by then (the clock suspends the day after otherwise); without, the téléservice is
    cut at once. Both are notified in writing."""
    if not _may_decide_risks(actor):
        raise Refused("seul un responsable (manager) peut constater un risque critique")
    description = description.strip()
    if not description:
        raise Refused("le risque critique doit être décrit")
    moment = now or clock.now()
    if resolution_deadline is not None and resolution_deadline < clock.legal_date(moment):
        raise Refused("le délai de résolution est déjà passé")
    target = await teleservice(session=session, id_teleservice=id_teleservice)
    row = CriticalRisk(
        id_teleservice=id_teleservice,
        organisation_siret=target.organisation_siret,
        description=description,
        resolution_deadline=resolution_deadline,
        recorded_by=actor.label,
        recorded_at=moment,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_RISK_RECORDED,
        actor=actor.label,
        details={
            "risk": row.id,
            "id_teleservice": id_teleservice,
            "resolution_deadline": resolution_deadline.isoformat() if resolution_deadline else None,
        },
    )
    if resolution_deadline is None:
        await _cut_for_risk(session, target, row, actor, moment)
    else:
        await notices.tell(
            session=session,
            target=target,
            key=f"risk:{row.id}:demand",
            kind="risk",
            subject=f"Risque critique : résolution demandée — {target.name}",
            body=(
                f"Bonjour,\n\nL'analyse de sécurité du téléservice {target.name}"
                f" ({id_teleservice}) fait apparaître un risque critique pour les données de"
                f" la DGFIP :\n\n{description}\n\nSa résolution est demandée au plus tard le"
                f" {fr_date(resolution_deadline)}. À défaut, l'échange sera suspendu le lendemain"
                " (CGU §3.4.2)."
            ),
            now=moment,
        )
    return _risk_view(row)


async def _cut_for_risk(
    session: AsyncSession,
    target: TeleserviceView,
    risk: CriticalRisk,
    actor: Actor,
    moment: dt.datetime,
    *,
    late: bool = False,
) -> None:
    reason = (
        "risque critique non résolu dans le délai"
        if late
        else "coupure préventive pour risque critique"
    )
    if not await suspend(
        session=session,
        target=target,
        cause=SuspensionCause.RISK,
        cause_id=risk.id,
        reason=reason,
        actor=actor,
        now=moment,
    ):
        return
    await notices.tell(
        session=session,
        target=target,
        key=f"risk:{risk.id}:cut",
        kind="suspension",
        subject=f"Suspension de l'échange : risque critique — {target.name}",
        body=(
            f"Bonjour,\n\nL'échange de données du téléservice {target.name}"
            f" ({target.id_teleservice}) est suspendu le {_paris(moment)} : {reason}.\n\n"
            f"{risk.description}\n\nIl sera rétabli lorsque la résolution du risque aura été"
            " constatée par la DGFIP (CGU §3.4.2)."
        ),
        now=moment,
    )


async def resolve_risk(
    *, session: AsyncSession, risk_id: int, actor: Actor, now: dt.datetime | None = None
) -> RiskView:
    """The risk is resolved: the téléservice is restored if the clock cut it for it."""
    if not _may_decide_risks(actor):
        raise Refused("seul un responsable (manager) peut constater la résolution d'un risque")
    row = await session.get(CriticalRisk, risk_id)
    if row is None:
        raise NotFound(f"risque inconnu : {risk_id}")
    if row.resolved_at is not None:
        raise Refused(f"le risque {risk_id} est déjà résolu")
    moment = now or clock.now()
    row.resolved_by, row.resolved_at = actor.label, moment
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_RISK_RESOLVED,
        actor=actor.label,
        details={"risk": row.id, "id_teleservice": row.id_teleservice},
    )
    await lift(
        session=session,
        id_teleservice=row.id_teleservice,
        cause=SuspensionCause.RISK,
        cause_id=row.id,
        reason="risque critique résolu",
        actor=actor,
        now=moment,
    )
    return _risk_view(row)


def _risk_view(row: CriticalRisk) -> RiskView:
    return RiskView(
        id=row.id,
        id_teleservice=row.id_teleservice,
        description=row.description,
        resolution_deadline=row.resolution_deadline,
        resolved=row.resolved_at is not None,
    )


async def open_risks(*, session: AsyncSession) -> list[RiskView]:
    rows = await session.scalars(
        select(CriticalRisk).where(CriticalRisk.resolved_at.is_(None)).order_by(CriticalRisk.id)
    )
    return [_risk_view(row) for row in rows]


# -- the daily job -----------------------------------------------------------------------


def reminder_threshold(days_left: int) -> int | None:
    """The reminder due with ``days_left`` days to the deadline: the smallest threshold
    not below it (``None`` before 120 days)."""
    due = [days for days in REMINDER_DAYS if days_left <= days]
    return min(due) if due else None


async def enforce(
    *, session: AsyncSession, today: dt.date, now: dt.datetime, actor: Actor
) -> dict[str, int]:
    """The clock's daily pass: reminders, suspensions past a deadline (R-SEC-2 to 4)."""
    counts = {"reminders": 0, "suspensions": 0}
    rows = await session.scalars(
        select(SecurityCommitment)
        .where(SecurityCommitment.status == CommitmentStatus.VALIDATED)
        .order_by(SecurityCommitment.id)
    )
    for row in list(rows):
        target = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=row.id_teleservice
        )
        if target is None or target.status is TeleserviceStatus.REVOKED:
            continue
        days_left = (row.deadline - today).days
        if days_left < 0:
            counts["suspensions"] += await _suspend_late(session, target, row, actor, now)
        else:
            counts["reminders"] += await _remind(session, target, row, days_left, now)
    risks = await session.scalars(
        select(CriticalRisk).where(
            CriticalRisk.resolved_at.is_(None), CriticalRisk.resolution_deadline < today
        )
    )
    for risk in list(risks):
        target = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=risk.id_teleservice
        )
        if target is not None and target.status is not TeleserviceStatus.REVOKED:
            await _cut_for_risk(session, target, risk, actor, now, late=True)
    return counts


async def _remind(
    session: AsyncSession,
    target: TeleserviceView,
    row: SecurityCommitment,
    days_left: int,
    now: dt.datetime,
) -> int:
    threshold = reminder_threshold(days_left)
    if threshold is None:
        return 0
    label = KIND_LABELS[row.kind]
    what = (
        f"l'homologation de sécurité actuelle prend fin le {fr_date(row.reference_date)}"
        if row.kind is CommitmentKind.HOMOLOGATION
        else f"le questionnaire de sécurité date du {fr_date(row.reference_date)}"
    )
    return await notices.tell(
        session=session,
        target=target,
        key=f"commitment:{row.id}:reminder:{threshold}",
        kind="reminder",
        subject=f"Rappel : {label} à renouveler avant le {fr_date(row.deadline)} — {target.name}",
        body=(
            f"Bonjour,\n\nPour le téléservice {target.name} ({target.id_teleservice}), {what}."
            f" Une nouvelle {label} doit être transmise à la DGFIP au plus tard le"
            f" {fr_date(row.deadline)} (dans {days_left} jour(s)). À défaut, l'échange de données"
            " sera suspendu le lendemain jusqu'à sa transmission (CGU §3.4)."
        ),
        now=now,
    )


async def _suspend_late(
    session: AsyncSession,
    target: TeleserviceView,
    row: SecurityCommitment,
    actor: Actor,
    now: dt.datetime,
) -> int:
    label = KIND_LABELS[row.kind]
    reason = f"{label} non renouvelée au {fr_date(row.deadline)}"
    if not await suspend(
        session=session,
        target=target,
        cause=SuspensionCause.COMMITMENT,
        cause_id=row.id,
        reason=reason,
        actor=actor,
        now=now,
    ):
        return 0
    await notices.tell(
        session=session,
        target=target,
        key=f"commitment:{row.id}:suspended",
        kind="suspension",
        subject=f"Suspension de l'échange — {target.name}",
        body=(
            f"Bonjour,\n\nFaute de nouvelle {label} transmise au {fr_date(row.deadline)},"
            f" l'échange de données du téléservice {target.name} ({target.id_teleservice})"
            f" est suspendu depuis le {_paris(now)}. Il sera rétabli dès la validation de la"
            " nouvelle attestation par la DGFIP (CGU §3.4)."
        ),
        now=now,
    )
    return 1
