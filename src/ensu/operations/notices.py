"""Written notices to the téléservices' contacts (R-OPS-4, CGU §5.1, §6.6, §12): one
message per contact of the roles asked, each sent or failed, all returned for the
caller's record. Incidents write to the technical contact and the responsable de
traitement, breaches to the responsable de traitement and the DPO."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import mail
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole


class NoRecipient(LookupError):
    """None of the téléservices has a contact of the roles asked."""


async def write_to_contacts(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    teleservices: Iterable[str],
    roles: Sequence[ContactRole],
    subject: str,
    body: str,
) -> list[dict[str, object]]:
    """Mail ``body`` to each contact of ``roles`` of each of ``teleservices``; one
    notice per contact: ``{"id_teleservice", "role", "email", "at", "outcome"}``."""
    async with sessionmaker() as session:
        recipients = [
            (name, contact)
            for name in teleservices
            for contact in await consumers.contacts_of(
                session=session, id_teleservice=name, roles=roles
            )
        ]
    if not recipients:
        labels = ", ".join(role.value for role in roles)
        raise NoRecipient(
            f"no contact ({labels}) recorded for the téléservices concerned"
            " (ensu consumers contacts)"
        )
    notices: list[dict[str, object]] = []
    for name, contact in recipients:
        try:
            await mail.send_mail(settings, to=[contact.email], subject=subject, body=body)
            outcome = "sent"
        except mail.MailError as exc:
            outcome = f"error: {exc}"[:300]
        notices.append(
            {
                "id_teleservice": name,
                "role": contact.role.value,
                "email": contact.email,
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "outcome": outcome,
            }
        )
    return notices


def counts(notices: Sequence[dict[str, object]]) -> dict[str, object]:
    """``{"sent": n, "failed": m}``, for the journal."""
    sent = sum(1 for notice in notices if notice["outcome"] == "sent")
    return {"sent": sent, "failed": len(notices) - sent}
