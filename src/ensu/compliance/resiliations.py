"""The end of an exchange (R-SQ-5, CGU §13, §14).

- Either party ends it in writing, with its reasons, and **two months' notice**: the
  effective date is at least two calendar months after the request; meanwhile the
  exchange goes on, then the clock's daily job ends it on that date (the téléservice is
  revoked through ``consumers.revoke``), not before.
- An immediate cut only for a security problem at one of the parties (§14, last
  paragraph): the téléservice is revoked at once.
- The end of the legal basis the consumer relies on ends the exchange on that date
  (§13): at once when it is today or past, else on that date by the same job.

Each is notified in writing to the technical contact and the responsable de traitement.
The end of delivery (``ended_at``) starts the 6 years of retention (R-TR-4).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.accounts.principal import Actor
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance import notices
from ensu.compliance.calendar import add_months
from ensu.compliance.commitments import teleservice
from ensu.compliance.errors import Refused
from ensu.compliance.models import Party, Resiliation, ResiliationKind
from ensu.compliance.notices import fr_date
from ensu.compliance.schemas import ResiliationView
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus
from ensu.consumers.schemas import TeleserviceView

#: CGU §14: "un préavis de deux mois".
NOTICE_MONTHS = 2
PARTY_LABELS = {Party.CONSUMER: "le consommateur de l'API", Party.PRODUCER: "la DGFIP"}


def _view(row: Resiliation) -> ResiliationView:
    return ResiliationView(
        id=row.id,
        id_teleservice=row.id_teleservice,
        organisation_siret=row.organisation_siret,
        party=row.party,
        kind=row.kind,
        reason=row.reason,
        requested_on=row.requested_on,
        effective_on=row.effective_on,
        ended=row.ended_at is not None,
    )


def earliest_effective_date(requested_on: dt.date) -> dt.date:
    """Two calendar months after the request (R-SQ-5)."""
    return add_months(requested_on, NOTICE_MONTHS)


async def request_resiliation(
    *,
    session: AsyncSession,
    id_teleservice: str,
    party: Party,
    reason: str,
    actor: Actor,
    effective_on: dt.date | None = None,
    security: bool = False,
    now: dt.datetime | None = None,
) -> ResiliationView:
    """End the exchange of a téléservice (R-SQ-5).

    Without ``security``: effective on ``effective_on`` (default: the earliest date, two
    months ahead), refused earlier. With ``security`` (its ``reason`` says which
    problem): revoked at once. An applicant may only end its own organisation's.
    """
    reason = reason.strip()
    if not reason:
        raise Refused("la résiliation doit indiquer ses motifs (CGU §14)")
    moment = now or clock.now()
    today = clock.legal_date(moment)
    target = await _open_target(session, id_teleservice, actor)
    if security:
        kind, effective = ResiliationKind.SECURITY, today
    else:
        kind = ResiliationKind.NOTICE
        earliest = earliest_effective_date(today)
        effective = effective_on or earliest
        if effective < earliest:
            raise Refused(
                f"un préavis de deux mois est nécessaire : la résiliation demandée le"
                f" {fr_date(today)} peut prendre effet au plus tôt le {fr_date(earliest)}"
                f" ({(earliest - today).days} jours)"
            )
    return await _record(
        session,
        target,
        party=party,
        kind=kind,
        reason=reason,
        today=today,
        effective=effective,
        actor=actor,
        moment=moment,
    )


async def end_of_legal_basis(
    *,
    session: AsyncSession,
    id_teleservice: str,
    ends_on: dt.date,
    reason: str,
    actor: Actor,
    now: dt.datetime | None = None,
) -> ResiliationView:
    """The legal text the exchange rests on stops applying on ``ends_on`` (§13): the
    exchange ends that day (at once if it is today or past)."""
    reason = reason.strip()
    if not reason:
        raise Refused("indiquer le texte juridique qui cesse de s'appliquer")
    moment = now or clock.now()
    today = clock.legal_date(moment)
    target = await _open_target(session, id_teleservice, actor)
    return await _record(
        session,
        target,
        party=Party.PRODUCER,
        kind=ResiliationKind.LEGAL_BASIS,
        reason=reason,
        today=today,
        effective=max(ends_on, today),
        actor=actor,
        moment=moment,
    )


async def _open_target(session: AsyncSession, id_teleservice: str, actor: Actor) -> TeleserviceView:
    target = await teleservice(session=session, id_teleservice=id_teleservice)
    if actor.organisation_siret is not None and not actor.acts_for(target.organisation_siret):
        raise Refused("seule l'organisation du téléservice peut en demander la résiliation")
    if target.status is TeleserviceStatus.REVOKED:
        raise Refused(f"l'échange du téléservice {id_teleservice} a déjà pris fin")
    pending = await session.scalar(
        select(Resiliation.id).where(
            Resiliation.id_teleservice == id_teleservice,
            Resiliation.ended_at.is_(None),
            Resiliation.cancelled_at.is_(None),
        )
    )
    if pending is not None:
        raise Refused(f"une résiliation est déjà en cours pour {id_teleservice} (n° {pending})")
    return target


async def _record(
    session: AsyncSession,
    target: TeleserviceView,
    *,
    party: Party,
    kind: ResiliationKind,
    reason: str,
    today: dt.date,
    effective: dt.date,
    actor: Actor,
    moment: dt.datetime,
) -> ResiliationView:
    row = Resiliation(
        id_teleservice=target.id_teleservice,
        organisation_siret=target.organisation_siret,
        party=party,
        kind=kind,
        reason=reason,
        requested_on=today,
        effective_on=effective,
        requested_by=actor.label,
        requested_at=moment,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_RESILIATION_REQUESTED,
        actor=actor.label,
        details={
            "resiliation": row.id,
            "id_teleservice": target.id_teleservice,
            "party": party.value,
            "kind": kind.value,
            "effective_on": effective.isoformat(),
        },
    )
    if effective <= today:
        await _end(session, row, target, actor, moment)
        return _view(row)
    await notices.tell(
        session=session,
        target=target,
        key=f"resiliation:{row.id}:requested",
        kind="resiliation",
        subject=f"Résiliation de l'échange au {fr_date(effective)} — {target.name}",
        body=(
            f"Bonjour,\n\n{PARTY_LABELS[party].capitalize()} met fin à l'échange de données"
            f" du téléservice {target.name} ({target.id_teleservice}) pour le motif suivant :"
            f"\n\n{reason}\n\nLa résiliation prendra effet le {fr_date(effective)}. D'ici là,"
            " l'échange est maintenu conformément aux CGU (§14)."
        ),
        now=moment,
    )
    return _view(row)


async def _end(
    session: AsyncSession,
    row: Resiliation,
    target: TeleserviceView,
    actor: Actor,
    moment: dt.datetime,
) -> None:
    if target.status is not TeleserviceStatus.REVOKED:
        await consumers.revoke(
            session=session,
            id_teleservice=target.id_teleservice,
            actor=actor.label,
            reason=f"résiliation ({row.kind.value}) : {row.reason}"[:500],
            now=moment,
        )
    row.ended_at = moment
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_RESILIATION_ENDED,
        actor=actor.label,
        details={"resiliation": row.id, "id_teleservice": target.id_teleservice},
    )
    why = {
        ResiliationKind.NOTICE: "la résiliation notifiée prend effet",
        ResiliationKind.SECURITY: "coupure immédiate pour un motif de sécurité",
        ResiliationKind.LEGAL_BASIS: "le fondement juridique de l'échange a cessé",
    }[row.kind]
    await notices.tell(
        session=session,
        target=target,
        key=f"resiliation:{row.id}:ended",
        kind="resiliation",
        subject=f"Fin de l'échange — {target.name}",
        body=(
            f"Bonjour,\n\nL'échange de données du téléservice {target.name}"
            f" ({target.id_teleservice}) avec l'API ENSU Documents a pris fin le"
            f" {fr_date(clock.legal_date(moment))} : {why}.\n\nMotif : {row.reason}"
        ),
        now=moment,
    )


async def end_due(
    *, session: AsyncSession, today: dt.date, now: dt.datetime, actor: Actor
) -> dict[str, int]:
    """The clock's daily pass: end the exchanges whose effective date has come."""
    rows = await session.scalars(
        select(Resiliation)
        .where(
            Resiliation.ended_at.is_(None),
            Resiliation.cancelled_at.is_(None),
            Resiliation.effective_on <= today,
        )
        .order_by(Resiliation.id)
    )
    ended = 0
    for row in list(rows):
        target = await teleservice(session=session, id_teleservice=row.id_teleservice)
        await _end(session, row, target, actor, now)
        ended += 1
    return {"ended": ended}


async def resiliations(
    *, session: AsyncSession, organisation_siret: str | None = None
) -> list[ResiliationView]:
    statement = select(Resiliation).order_by(Resiliation.id)
    if organisation_siret is not None:
        statement = statement.where(Resiliation.organisation_siret == organisation_siret)
    return [_view(row) for row in await session.scalars(statement)]
