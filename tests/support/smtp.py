"""A real SMTP server for the tests (aiosmtpd), and what it received."""

from __future__ import annotations

import email
import email.header
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    """The messages the server accepted: (envelope sender, recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.port = 0  # set by smtp_server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def subjects(self, recipient: str | None = None) -> list[str]:
        """The decoded subjects, in arrival order (of one recipient's messages)."""
        return [
            decoded(message["Subject"])
            for _sender, recipients, message in self.messages
            if recipient is None or recipient in recipients
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A server on a free loopback port, stopped on exit."""
    inbox = Inbox()
    port = inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")


def decoded(header: str) -> str:
    """A header as a person reads it (RFC 2047 words decoded)."""
    return str(email.header.make_header(email.header.decode_header(header)))
