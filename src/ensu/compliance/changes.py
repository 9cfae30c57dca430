"""Production changes announced ahead (R-SQ-4, CGU §9.3).

A change is announced at least **14 working days** before it applies, or **7** in an
emergency, whose reason is then recorded; French public holidays are not working days
(:mod:`ensu.compliance.calendar`, with the Alsace-Moselle variant when
``ENSU_CALENDAR_ALSACE_MOSELLE`` is set). The technical contact of every téléservice of
the environment is told in writing (R-OPS-4).
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
from ensu.compliance.calendar import add_working_days
from ensu.compliance.errors import Refused
from ensu.compliance.models import ChangeAnnouncement
from ensu.compliance.schemas import ChangeView
from ensu.config import Environment
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus

STANDARD_NOTICE_WORKING_DAYS = 14
EMERGENCY_NOTICE_WORKING_DAYS = 7


def _view(row: ChangeAnnouncement) -> ChangeView:
    return ChangeView(
        id=row.id,
        environment=row.environment,
        title=row.title,
        announced_on=row.announced_on,
        effective_on=row.effective_on,
        emergency_reason=row.emergency_reason,
    )


def earliest_change_date(
    announced_on: dt.date, *, emergency: bool, alsace_moselle: bool = False
) -> dt.date:
    """The first date a change announced on ``announced_on`` may apply (R-SQ-4)."""
    days = EMERGENCY_NOTICE_WORKING_DAYS if emergency else STANDARD_NOTICE_WORKING_DAYS
    return add_working_days(announced_on, days, alsace_moselle=alsace_moselle)


async def announce_change(
    *,
    session: AsyncSession,
    title: str,
    description: str,
    effective_on: dt.date,
    actor: Actor,
    environment: Environment = Environment.PRODUCTION,
    emergency_reason: str | None = None,
    alsace_moselle: bool = False,
    now: dt.datetime | None = None,
) -> ChangeView:
    """Announce a change applying on ``effective_on``; refused when that is sooner than
    14 working days away (7 with ``emergency_reason``)."""
    title, description = title.strip(), description.strip()
    reason = emergency_reason.strip() if emergency_reason is not None else None
    if not title or not description:
        raise Refused("un changement annoncé a un titre et une description")
    if emergency_reason is not None and not reason:
        raise Refused("un changement en urgence indique la raison de l'urgence")
    moment = now or clock.now()
    today = clock.legal_date(moment)
    earliest = earliest_change_date(
        today, emergency=reason is not None, alsace_moselle=alsace_moselle
    )
    if effective_on < earliest:
        days = EMERGENCY_NOTICE_WORKING_DAYS if reason else STANDARD_NOTICE_WORKING_DAYS
        raise Refused(
            f"un changement annoncé le {today:%d/%m/%Y} s'applique au plus tôt le"
            f" {earliest:%d/%m/%Y} ({days} jours ouvrés, CGU §9.3)"
        )
    row = ChangeAnnouncement(
        environment=environment,
        title=title,
        description=description,
        announced_on=today,
        effective_on=effective_on,
        emergency_reason=reason,
        announced_by=actor.label,
        announced_at=moment,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_CHANGE_ANNOUNCED,
        actor=actor.label,
        details={
            "change": row.id,
            "environment": environment.value,
            "effective_on": effective_on.isoformat(),
            "emergency": reason is not None,
        },
    )
    urgency = f"\n\nChangement en urgence : {reason}" if reason else ""
    for view in await consumers.list_teleservices(session=session, environment=environment):
        if view.status is TeleserviceStatus.REVOKED:
            continue
        await notices.tell(
            session=session,
            target=view,
            roles=notices.TECHNICAL,
            key=f"change:{row.id}:{view.id_teleservice}",
            kind="change",
            subject=f"Évolution de l'API ENSU Documents le {effective_on:%d/%m/%Y} : {title}",
            body=(
                f"Bonjour,\n\nUne évolution de l'API ENSU Documents s'appliquera le"
                f" {effective_on:%d/%m/%Y} ; elle concerne votre téléservice {view.name}"
                f" ({view.id_teleservice}).\n\n{title}\n\n{description}{urgency}"
            ),
            now=moment,
        )
    return _view(row)


async def changes(*, session: AsyncSession, since: dt.date | None = None) -> list[ChangeView]:
    statement = select(ChangeAnnouncement).order_by(ChangeAnnouncement.effective_on)
    if since is not None:
        statement = statement.where(ChangeAnnouncement.effective_on >= since)
    return [_view(row) for row in await session.scalars(statement)]
