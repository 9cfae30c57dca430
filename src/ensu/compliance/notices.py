"""Written notices (R-OPS-4, CGU §5.1, §12, §14): kept, then mailed.

Every suspension, reminder, resiliation, change and new version of the terms writes one
:class:`~ensu.compliance.models.Notice` per recipient, in the transaction of the event
itself (an outbox: the notice exists if and only if the event was committed). Its
``key`` names the event (or the job, its slot) and the recipient, and is unique: writing
the same notice twice writes nothing, which is what makes a job run twice send nothing
twice. :func:`dispatch` then mails the pending notices through :mod:`ensu.mail`, each
claimed first so that the server's loop and a cron run never send the same one; a
failure is retried at the next run, up to :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import mail
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance.models import Notice
from ensu.compliance.schemas import NoticeView
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole
from ensu.consumers.schemas import TeleserviceView

logger = logging.getLogger("ensu.compliance")

PENDING, SENT, FAILED, UNDELIVERABLE = "pending", "sent", "failed", "undeliverable"
#: Attempts before a notice is given up (then listed as ``failed`` for an operator).
MAX_ATTEMPTS = 5
#: A claim older than this was left by a runner that died: the notice is pending again.
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
#: Whom the clock writes to about a téléservice (R-SEC-2: both; R-SQ-4: technical only).
BOTH = (ContactRole.TECHNIQUE, ContactRole.RESPONSABLE_TRAITEMENT)
TECHNICAL = (ContactRole.TECHNIQUE,)
SIGNATURE = "\n\n--\nDGFIP — API ENSU Documents (message automatique, conservé au dossier)"


def fr_date(day: dt.date) -> str:
    """``day`` as the notices write it (``31/12/2026``)."""
    return day.strftime("%d/%m/%Y")


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def view(row: Notice) -> NoticeView:
    created = _aware(row.created_at)
    assert created is not None
    return NoticeView(
        id=row.id,
        kind=row.kind,
        organisation_siret=row.organisation_siret,
        id_teleservice=row.id_teleservice,
        recipient=row.recipients[0] if row.recipients else None,
        subject=row.subject,
        body=row.body,
        status=row.status,
        created_at=created,
        sent_at=_aware(row.sent_at),
    )


async def contacts(
    *, session: AsyncSession, id_teleservice: str, roles: Sequence[ContactRole] = BOTH
) -> list[str]:
    """The e-mail addresses of the téléservice's contacts of ``roles``, without repeats."""
    found = await consumers.contacts_of(session=session, id_teleservice=id_teleservice, roles=roles)
    return list(dict.fromkeys(contact.email for contact in found))


async def write(
    *,
    session: AsyncSession,
    key: str,
    kind: str,
    recipients: Iterable[str],
    subject: str,
    body: str,
    now: dt.datetime,
    organisation_siret: str | None = None,
    id_teleservice: str | None = None,
) -> int:
    """Keep one notice per recipient under ``{key}:{recipient}``; those already written
    are left as they are. Without a recipient the notice is kept ``undeliverable``.
    Returns how many were new."""
    targets: list[str | None] = [*dict.fromkeys(recipients)] or [None]
    keys = {f"{key}:{target or '-'}": target for target in targets}
    existing = set(await session.scalars(select(Notice.key).where(Notice.key.in_(keys))))
    for full_key, target in keys.items():
        if full_key in existing:
            continue
        session.add(
            Notice(
                key=full_key,
                kind=kind,
                organisation_siret=organisation_siret,
                id_teleservice=id_teleservice,
                recipients=[target] if target else [],
                subject=subject,
                body=body + SIGNATURE,
                status=PENDING if target else UNDELIVERABLE,
                created_at=now,
                attempts=0,
                last_error=None if target else "aucun contact enregistré",
            )
        )
    await session.flush()
    if None in targets:
        logger.warning("notice %s: no contact to write to (kept, not sent)", key)
    return len(keys) - len(existing)


async def tell(
    *,
    session: AsyncSession,
    target: TeleserviceView,
    key: str,
    kind: str,
    subject: str,
    body: str,
    now: dt.datetime,
    roles: Sequence[ContactRole] = BOTH,
) -> int:
    """:func:`write` to the contacts of ``roles`` of the téléservice ``target``."""
    return await write(
        session=session,
        key=key,
        kind=kind,
        recipients=await contacts(
            session=session, id_teleservice=target.id_teleservice, roles=roles
        ),
        subject=subject,
        body=body,
        now=now,
        organisation_siret=target.organisation_siret,
        id_teleservice=target.id_teleservice,
    )


async def notices_of(
    *, session: AsyncSession, organisation_siret: str, limit: int = 500
) -> list[NoticeView]:
    """The organisation's notices, newest first (the portal shows them; R-OPS-4)."""
    rows = await session.scalars(
        select(Notice)
        .where(Notice.organisation_siret == organisation_siret)
        .order_by(Notice.id.desc())
        .limit(limit)
    )
    return [view(row) for row in rows]


async def pending_count(*, session: AsyncSession) -> int:
    """How many notices wait to be mailed (``ensu jobs list``)."""
    found = await session.scalar(
        select(func.count()).select_from(Notice).where(Notice.status == PENDING)
    )
    return found or 0


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    not_configured: bool = False


async def dispatch(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: dt.datetime,
    limit: int = 200,
) -> DispatchReport:
    """Mail the pending notices, each claimed first, in their own transactions."""
    report = DispatchReport()
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Notice.id)
                .where(Notice.status == PENDING, _claimable(now))
                .order_by(Notice.id)
                .limit(limit)
            )
        )
    for notice_id in ids:
        if not await _claim(sessionmaker, notice_id, now):
            continue
        outcome = await _send_one(sessionmaker, settings, notice_id, now)
        if outcome == "not_configured":
            report.not_configured = True
            break
        if outcome == SENT:
            report.sent += 1
        else:
            report.failed += 1
    return report


def _claimable(now: dt.datetime):  # type: ignore[no-untyped-def]
    return or_(Notice.claimed_at.is_(None), Notice.claimed_at < now - CLAIM_TIMEOUT)


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], notice_id: int, now: dt.datetime
) -> bool:
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            update(Notice)
            .where(Notice.id == notice_id, Notice.status == PENDING, _claimable(now))
            .values(claimed_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


async def _send_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    notice_id: int,
    now: dt.datetime,
) -> str:
    async with sessionmaker() as session, session.begin():
        row = await session.get_one(Notice, notice_id)
        try:
            sent = await mail.send_mail(
                settings, to=row.recipients, subject=row.subject, body=row.body
            )
        except mail.MailNotConfigured as exc:
            row.claimed_at, row.last_error = None, str(exc)
            return "not_configured"
        except mail.MailError as exc:
            row.attempts += 1
            row.claimed_at, row.last_error = None, str(exc)[:1000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = FAILED
            logger.warning("notice %s not sent (attempt %s): %s", row.key, row.attempts, exc)
            return FAILED
        row.status, row.sent_at, row.message_id = SENT, now, sent.message_id
        row.attempts += 1
        row.last_error = None
        await audit.record_event(
            session=session,
            tag=EventTag.COMPLIANCE_NOTICE_SENT,
            actor="job:notices",
            details={
                "notice": row.id,
                "kind": row.kind,
                "id_teleservice": row.id_teleservice,
                "siret": row.organisation_siret,
                "message_id": sent.message_id,
            },
        )
        return SENT
