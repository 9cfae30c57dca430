"""ensu.mail against a real local SMTP server (aiosmtpd), R-OPS-4."""

from __future__ import annotations

import email
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensu.config import Settings
from ensu.mail import MailError, MailNotConfigured, build_message, outbox, send_mail
from tests.support.smtp import Inbox, body_of, decoded, free_port
from tests.support.smtp import smtp_server as running_smtp_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    with running_smtp_server() as server:
        yield server


async def test_a_message_reaches_the_server_with_its_accents(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, mail_sender="dgfip@example.fr")
    sent = await send_mail(
        settings, to=["tech@example.fr"], subject="Accès validé", body="Votre demande est validée."
    )
    assert len(inbox.messages) == 1
    sender, recipients, message = inbox.messages[0]
    assert (sender, recipients) == ("dgfip@example.fr", ["tech@example.fr"])
    assert str(email.header.make_header(email.header.decode_header(message["Subject"]))) == (
        "Accès validé"
    )
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode("utf-8").strip() == "Votre demande est validée."
    assert sent.message_id == message["Message-ID"]


async def test_a_long_accented_subject_keeps_its_spaces(smtp_server: tuple[Inbox, int]) -> None:
    """Folded over several RFC 2047 words, every space survives (R-OPS-4)."""
    inbox, port = smtp_server
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port)
    subject = "Risque critique : résolution demandée — Téléservice zêta de l'organisation"
    body = "Ligne accentuée : « déjà »\n" + "é" * 200
    await send_mail(settings, to=["tech@example.fr"], subject=subject, body=body)
    message = inbox.messages[0][2]
    assert decoded(message["Subject"]) == subject
    assert body_of(message).replace("\r\n", "\n").rstrip("\n") == body


async def test_no_host_sends_nothing() -> None:
    with pytest.raises(MailNotConfigured):
        await send_mail(Settings(), to=["a@example.fr"], subject="s", body="b")


async def test_an_unreachable_server_is_a_mail_error() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=1)
    with pytest.raises(MailError):
        await send_mail(settings, to=["a@example.fr"], subject="s", body="b")


@pytest.mark.parametrize("subject", ["a\r\nBcc: victim@example.fr", "a\nb"])
def test_a_line_break_in_a_header_is_refused(subject: str) -> None:
    with pytest.raises(MailError):
        build_message(Settings(), to=["a@example.fr"], subject=subject, body="b")


def test_a_message_needs_a_recipient() -> None:
    with pytest.raises(MailError):
        build_message(Settings(), to=[], subject="s", body="b")


async def test_the_development_outbox_records_each_message_and_needs_no_server(
    var_dir: Path,
) -> None:
    settings = Settings(var_dir=var_dir, mail_outbox=True)
    assert outbox(settings) == []
    for subject in ("Premier", "Deuxième : accentué"):
        await send_mail(settings, to=["a@example.fr"], subject=subject, body="Bonjour,\nété")
    messages = outbox(settings)
    assert [message.subject for message in messages] == ["Deuxième : accentué", "Premier"]
    assert messages[0].recipients == "a@example.fr"
    assert messages[0].body.strip() == "Bonjour,\nété"


def test_the_outbox_is_refused_in_production(var_dir: Path) -> None:
    with pytest.raises(ValueError, match="ENSU_MAIL_OUTBOX"):
        Settings(
            var_dir=var_dir,
            environment="production",
            secret_key="9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
            mail_outbox=True,
        )
