"""The means of access mailed to the technical contact after the validation (R-HAB-4),
through a real SMTP server; a failure is journaled, not lost."""

from __future__ import annotations

import email.header

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.config import Settings
from ensu.habilitations import service as habilitations
from tests.support.habilitations import APPLICANT, INSTRUCTOR, submitted_request
from tests.support.smtp import body_of, free_port, smtp_server

pytestmark = pytest.mark.anyio


async def _validated(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> habilitations.Decision:
    async with sessionmaker() as session, session.begin():
        view = await submitted_request(session, settings)
        return await habilitations.validate(
            session=session,
            settings=settings,
            actor=INSTRUCTOR,
            request_id=view.id,
            legal_analysis="Base légale : CRPA L.114-8.",
        )


async def test_the_technical_contact_receives_the_means_of_access(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    decision = await _validated(sessionmaker, settings)
    with smtp_server() as (inbox, port):
        mailing = settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "mail_sender": "dgfip@example.fr"}
        )
        async with sessionmaker() as session, session.begin():
            sent = await habilitations.deliver_notice(
                session=session, settings=mailing, notice=decision.notice, actor=INSTRUCTOR
            )
    assert sent is not None
    ((sender, recipients, message),) = inbox.messages
    assert (sender, recipients) == ("dgfip@example.fr", ["tess@example.fr"])
    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
    assert subject.startswith("API ENSU DOCUMENTS : accès bac à sable ouvert")
    body = body_of(message)
    assert f"ID_Teleservice : {decision.habilitation.id_teleservice}" in body
    assert f"client_id      : {decision.habilitation.client_id}" in body
    async with sessionmaker() as session:
        tags = list(await session.scalars(select(Event.tag)))
    assert "habilitations:notice:sent" in tags


async def test_a_mail_that_fails_is_journaled(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    decision = await _validated(sessionmaker, settings)
    nowhere = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_timeout_seconds": 1}
    )
    async with sessionmaker() as session, session.begin():
        sent = await habilitations.deliver_notice(
            session=session, settings=nowhere, notice=decision.notice, actor=APPLICANT
        )
    assert sent is None
    async with sessionmaker() as session:
        failed = await session.scalar(
            select(Event).where(Event.tag == "habilitations:notice:failed")
        )
    assert failed is not None
    assert failed.details["to"] == ["tess@example.fr"]
