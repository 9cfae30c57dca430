"""Outgoing e-mail: the one SMTP transport every feature's written notices use (R-HAB-4,
R-OPS-1, R-OPS-4).

This module only *sends*. What a notice says, to whom, and the record of what was sent
belong to the feature that sends it. Settings: ``ENSU_SMTP_HOST`` (unset: no mail is
sent, :class:`MailNotConfigured`), ``ENSU_SMTP_PORT``, ``ENSU_SMTP_SECURITY``
(``none``, ``starttls`` or ``tls``), ``ENSU_SMTP_USERNAME`` / ``ENSU_SMTP_PASSWORD``,
``ENSU_MAIL_SENDER``.

In development (``ENSU_MAIL_OUTBOX=true``, refused in production) every message is also
written to ``{ENSU_VAR_DIR}/outbox/`` as an ``.eml`` file, and with no SMTP host that
*is* the delivery: :func:`outbox` reads them back (the portal's "Courriels envoyés").

smtplib is blocking, so :func:`send_mail` runs it in a worker thread, bounded by
``ENSU_SMTP_TIMEOUT_SECONDS``. A failure raises :class:`MailError`, and nothing is
retried here: the caller decides whether to retry (its record says what was sent).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
from pathlib import Path

from ensu.config import Settings, SmtpSecurity


class MailError(Exception):
    """The message could not be handed to the SMTP server."""


class MailNotConfigured(MailError):
    """``ENSU_SMTP_HOST`` is not set: this deployment sends no mail."""


@dataclass(frozen=True, slots=True)
class SentMail:
    """What was handed to the server: enough for the sender's own record."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str


def build_message(
    settings: Settings, *, to: Sequence[str], subject: str, body: str
) -> EmailMessage:
    """A plain-text UTF-8 message (French notices keep their accents)."""
    if not to:
        raise MailError("a message needs at least one recipient")
    for header_value in (subject, *to):
        if "\n" in header_value or "\r" in header_value:
            raise MailError("line breaks are not allowed in a header")  # header injection
    message = EmailMessage()
    message["From"] = settings.mail_sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = settings.mail_sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(body, charset="utf-8")
    return _with_subject(message, subject)


def _with_subject(message: EmailMessage, subject: str) -> EmailMessage:
    """``message`` with ``subject`` encoded by :class:`email.header.Header`.

    Python 3.11's default policy drops the space between two RFC 2047 encoded words when
    it folds a long accented subject ("demandée — Téléservice" arrived as "demandée
    —Téléservice"). ``Header`` folds it right; parsed back as the message's source, the
    header is kept as folded (``refold_source="long"``: its lines are short).
    """
    encoded = Header(subject, "utf-8", header_name="Subject").encode(linesep="\n")
    source = f"Subject: {encoded}\n".encode("ascii") + message.as_bytes()
    parsed = message_from_bytes(source, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _deliver(settings: Settings, message: EmailMessage) -> None:
    host = settings.smtp_host
    assert host is not None  # checked by send_mail
    timeout = settings.smtp_timeout_seconds
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security is SmtpSecurity.TLS:
        smtp = smtplib.SMTP_SSL(host, settings.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_security is SmtpSecurity.STARTTLS:
            smtp.starttls(context=context)
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value()
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)


async def send_mail(settings: Settings, *, to: Sequence[str], subject: str, body: str) -> SentMail:
    """Send one plain-text message; :class:`MailError` when it could not be handed over."""
    if not settings.smtp_host and not settings.mail_outbox:
        raise MailNotConfigured("ENSU_SMTP_HOST is not set: no mail is sent")
    message = build_message(settings, to=to, subject=subject, body=body)
    if settings.mail_outbox:
        await asyncio.to_thread(_record, settings.outbox_dir, message)
    if not settings.smtp_host:
        return _sent(settings, message, to, subject)
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_deliver, settings, message),
            settings.smtp_timeout_seconds * 2,
        )
    except (OSError, smtplib.SMTPException, TimeoutError) as error:
        raise MailError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {error}") from error
    return _sent(settings, message, to, subject)


def _sent(settings: Settings, message: EmailMessage, to: Sequence[str], subject: str) -> SentMail:
    return SentMail(
        message_id=str(message["Message-ID"]),
        sender=settings.mail_sender,
        recipients=tuple(to),
        subject=subject,
    )


# -- the development outbox ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message of the development outbox, as the portal shows it."""

    at: dt.datetime
    message_id: str
    sender: str
    recipients: str
    subject: str
    body: str


def _record(folder: Path, message: EmailMessage) -> None:
    """Write the message whole (``.eml``): written aside, then renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    partial = final.with_suffix(".tmp")
    partial.write_bytes(message.as_bytes(policy=email.policy.default))
    partial.replace(final)


def _read(path: Path) -> OutboxMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("plain",))
    return OutboxMessage(
        at=parsedate_to_datetime(str(parsed["Date"])),
        message_id=str(parsed["Message-ID"]),
        sender=str(parsed["From"]),
        recipients=str(parsed["To"]),
        subject=str(parsed["Subject"]),
        body=part.get_content() if isinstance(part, EmailMessage) else "",
    )


def outbox(settings: Settings, *, limit: int = 50) -> list[OutboxMessage]:
    """The outbox's ``limit`` latest messages, newest first (empty when there is none)."""
    folder = settings.outbox_dir
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.eml"), reverse=True)[:limit]
    return [_read(path) for path in paths]
