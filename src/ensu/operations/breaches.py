"""The register of personal-data breaches (R-OPS-3, CGU §6.6).

The terms: each controller notifies the CNIL of a breach "dans les soixante-douze (72)
heures au plus tard après en avoir pris connaissance", and "s'engage à informer les
autres responsables de traitement de ladite violation". So:

- :func:`record` enters a breach with the moment it was *discovered* (not recorded): the
  deadline is ``discovered_at + 72 h`` (:func:`deadline`), in real time (UTC), whatever
  the calendar (weekends and holidays count: the regulation says hours);
- a breach whose risk is ``unlikely`` stays in the register, documented, without
  notification (RGPD art. 33.1 and 33.5); ``risk`` and ``high`` must be notified:
  :func:`notify_cnil` records the notification and its reference;
- :func:`remind` — run by ``ensu serve`` every minute (:class:`BreachClock`) and by
  ``ensu breaches remind`` — alerts ``ENSU_ALERT_EMAILS`` and the webhook
  ``breach.deadline`` when 24 hours are left, when 6 hours are left, and when the
  deadline has passed, each once per breach;
- :func:`inform_controllers` writes to the responsables de traitement and DPOs of the
  téléservices concerned (``consumers.service.contacts_of``) and records each notice.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import mail
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.background import Periodic
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole
from ensu.operations import notices
from ensu.operations.maintenance import utc
from ensu.operations.models import Breach
from ensu.webhooks import service as webhooks

logger = logging.getLogger("ensu.operations.breaches")

DEADLINE = dt.timedelta(hours=72)
RISKS = ("unlikely", "risk", "high")
NATURES = frozenset({"confidentiality", "integrity", "availability"})
#: The alerts before the deadline, largest first, and the one after it.
THRESHOLDS = (("24h", dt.timedelta(hours=24)), ("6h", dt.timedelta(hours=6)))
OVERDUE = "overdue"
WEBHOOK_EVENT = "breach.deadline"
#: Whom a breach is written to, for each téléservice concerned.
CONTROLLER_ROLES = (ContactRole.RESPONSABLE_TRAITEMENT, ContactRole.DPO)


class BreachError(ValueError):
    """What cannot be done to the register; the message says why."""


def deadline(breach: Breach) -> dt.datetime:
    """The last moment to notify the CNIL: 72 hours after the discovery."""
    return utc(breach.discovered_at) + DEADLINE


def must_notify(breach: Breach) -> bool:
    return breach.risk != "unlikely" and breach.cnil_notified_at is None


async def _breach(session: AsyncSession, breach_id: int) -> Breach:
    row = await session.get(Breach, breach_id)
    if row is None:
        raise BreachError(f"no breach {breach_id}")
    return row


async def record(
    *,
    session: AsyncSession,
    title: str,
    description: str,
    discovered_at: dt.datetime,
    nature: tuple[str, ...],
    risk: str,
    teleservices: tuple[str, ...],
    actor: str,
    measures: str | None = None,
    incident_id: int | None = None,
    now: dt.datetime | None = None,
) -> Breach:
    """Enter a breach in the register; :class:`BreachError` for what does not fit."""
    moment = now or dt.datetime.now(dt.UTC)
    if risk not in RISKS:
        raise BreachError(f"risk {risk!r}: one of {', '.join(RISKS)}")
    if not nature or not set(nature) <= NATURES:
        raise BreachError(f"nature: one or more of {', '.join(sorted(NATURES))}")
    if utc(discovered_at) > moment:
        raise BreachError("a breach cannot be discovered in the future")
    if not title.strip() or not description.strip():
        raise BreachError("a breach needs a title and a description")
    for name in teleservices:
        if await consumers.get_by_id_teleservice(session=session, id_teleservice=name) is None:
            raise BreachError(f"unknown téléservice {name}")
    breach = Breach(
        title=title.strip()[:200],
        description=description.strip(),
        discovered_at=utc(discovered_at),
        recorded_at=moment,
        recorded_by=actor,
        nature=",".join(sorted(set(nature))),
        risk=risk,
        teleservices=sorted(set(teleservices)),
        measures=measures,
        incident_id=incident_id,
        alerts=[],
        notices=[],
    )
    session.add(breach)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_BREACH_RECORDED,
        actor=actor,
        details={
            "breach": breach.id,
            "discovered_at": breach.discovered_at.isoformat(),
            "deadline": deadline(breach).isoformat(),
            "risk": risk,
            "teleservices": breach.teleservices,
        },
    )
    return breach


async def notify_cnil(
    *,
    session: AsyncSession,
    breach_id: int,
    reference: str,
    actor: str,
    at: dt.datetime | None = None,
) -> Breach:
    """Record the notification to the CNIL (its reference, when it was made)."""
    breach = await _breach(session, breach_id)
    if breach.cnil_notified_at is not None:
        raise BreachError(f"breach {breach_id} was notified already")
    if not reference.strip():
        raise BreachError("the CNIL's reference of the notification is required")
    moment = utc(at or dt.datetime.now(dt.UTC))
    breach.cnil_notified_at, breach.cnil_reference = moment, reference.strip()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_BREACH_CNIL_NOTIFIED,
        actor=actor,
        details={
            "breach": breach.id,
            "reference": breach.cnil_reference,
            "late": moment > deadline(breach),
        },
    )
    return breach


async def close(*, session: AsyncSession, breach_id: int, actor: str) -> Breach:
    breach = await _breach(session, breach_id)
    if must_notify(breach):
        raise BreachError(f"breach {breach_id} must be notified to the CNIL before closing")
    breach.closed_at = dt.datetime.now(dt.UTC)
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_BREACH_CLOSED,
        actor=actor,
        details={"breach": breach.id},
    )
    return breach


async def register(*, session: AsyncSession, open_only: bool = False) -> list[Breach]:
    query = select(Breach).order_by(Breach.id)
    if open_only:
        query = query.where(Breach.closed_at.is_(None))
    return list((await session.scalars(query)).all())


# -- the deadline --------------------------------------------------------------------------


def due_alert(breach: Breach, now: dt.datetime) -> str | None:
    """The alert due now for ``breach`` and not sent yet, if any."""
    if not must_notify(breach):
        return None
    left = deadline(breach) - now
    if left <= dt.timedelta(0):
        return None if OVERDUE in breach.alerts else OVERDUE
    for name, bound in reversed(THRESHOLDS):  # the tightest one that applies
        if left <= bound:
            return None if name in breach.alerts else name
    return None


async def remind(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: dt.datetime | None = None,
) -> list[tuple[int, str]]:
    """Send the deadline alerts that are due (each once); the (breach, alert) sent."""
    moment = now or dt.datetime.now(dt.UTC)
    sent: list[tuple[int, str]] = []
    async with sessionmaker() as session, session.begin():
        # Locked (PostgreSQL): two instances never send one alert twice.
        query = select(Breach).where(Breach.closed_at.is_(None)).with_for_update(skip_locked=True)
        for breach in await session.scalars(query.order_by(Breach.id)):
            alert = due_alert(breach, moment)
            if alert is None:
                continue
            breach.alerts = [*breach.alerts, alert]
            await _announce(session, breach, alert, moment)
            sent.append((breach.id, alert))
    for breach_id, alert in sent:
        await _mail_alert(settings, sessionmaker, breach_id, alert, moment)
    return sent


def left(breach: Breach, now: dt.datetime) -> str:
    seconds = (deadline(breach) - now).total_seconds()
    if seconds <= 0:
        return f"dépassé de {int(-seconds // 3600)} h {int(-seconds % 3600 // 60):02d}"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} restantes"


async def _announce(session: AsyncSession, breach: Breach, alert: str, now: dt.datetime) -> None:
    payload: dict[str, object] = {
        "breach": breach.id,
        "title": breach.title,
        "alert": alert,
        "discovered_at": utc(breach.discovered_at).isoformat(),
        "deadline": deadline(breach).isoformat(),
        "left": left(breach, now),
    }
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_BREACH_DEADLINE_ALERT,
        actor="system:breach-clock",
        details=payload,
    )
    await webhooks.emit(session=session, event_type=WEBHOOK_EVENT, payload=payload, now=now)


async def _mail_alert(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    breach_id: int,
    alert: str,
    now: dt.datetime,
) -> None:
    if not settings.alert_emails:
        return
    async with sessionmaker() as session:
        breach = await _breach(session, breach_id)
    subject = (
        f"[ENSU] Violation {breach.id} : notification CNIL"
        f" {'en retard' if alert == OVERDUE else 'à faire'} ({left(breach, now)})"
    )
    body = "\n".join(
        [
            f"Violation de données n° {breach.id} : {breach.title}",
            f"Découverte le {utc(breach.discovered_at):%d/%m/%Y %H:%M} UTC ;"
            f" échéance CNIL (72 h) le {deadline(breach):%d/%m/%Y %H:%M} UTC"
            f" ({left(breach, now)}).",
            "",
            "Enregistrer la notification : ensu breaches notify-cnil ID --reference …",
        ]
    )
    try:
        await mail.send_mail(settings, to=settings.alert_emails, subject=subject, body=body)
    except mail.MailError as exc:
        logger.error("breach %s: deadline alert not mailed: %s", breach_id, exc)


# -- the other controllers -------------------------------------------------------------------


async def inform_controllers(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    breach_id: int,
    actor: str,
    message: str,
) -> list[dict[str, object]]:
    """Write to the responsable de traitement and the DPO of each téléservice concerned
    (CGU §6.6); every notice (sent or failed) is recorded on the breach and journaled."""
    async with sessionmaker() as session:
        breach = await _breach(session, breach_id)
    try:
        sent = await notices.write_to_contacts(
            settings=settings,
            sessionmaker=sessionmaker,
            teleservices=breach.teleservices,
            roles=CONTROLLER_ROLES,
            subject=f"Violation de données à caractère personnel n° {breach.id}",
            body=_notice(breach, message),
        )
    except notices.NoRecipient as exc:
        raise BreachError(str(exc)) from None
    async with sessionmaker() as session, session.begin():
        stored = await _breach(session, breach_id)
        stored.notices = [*stored.notices, *sent]
        await audit.record_event(
            session=session,
            tag=EventTag.OPERATIONS_BREACH_CONTROLLERS_INFORMED,
            actor=actor,
            details={"breach": breach_id, **notices.counts(sent)},
        )
    return sent


def _notice(breach: Breach, message: str) -> str:
    return "\n".join(
        [
            "Madame, Monsieur,",
            "",
            "En application de l'article 6.6 des conditions générales d'utilisation de l'API"
            " ENSU DOCUMENTS, nous vous informons d'une violation de données à caractère"
            " personnel ayant un impact sur le dispositif d'échange :",
            "",
            f"Référence : violation n° {breach.id} — {breach.title}",
            f"Découverte le : {utc(breach.discovered_at):%d/%m/%Y à %H:%M} UTC",
            f"Nature : {breach.nature}",
            "",
            message.strip() or breach.description,
            "",
            "La DGFIP, producteur de l'API",
        ]
    )


class BreachClock(Periodic):
    """Runs :func:`remind` every ``interval`` seconds in the server."""

    job = "breach-clock"

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        interval: float = 60.0,
    ) -> None:
        super().__init__(interval=interval, logger=logger)
        self.settings = settings
        self.sessionmaker = sessionmaker

    async def tick(self) -> None:
        await remind(settings=self.settings, sessionmaker=self.sessionmaker)
