"""``ensu alerts test`` sends a test event through the whole circuit — stored,
journaled, a signed webhook to a real receiver, an e-mail to a real SMTP server
(aiosmtpd) — and fails when no channel delivered it (R-OPS-1, CGU §8: "des tests des
processus d'alerte")."""

from __future__ import annotations

import email.header
import json
import time

import pytest

from ensu.config import get_settings
from ensu.webhooks import signature
from tests.support.cli import Invoke
from tests.support.smtp import smtp_server
from tests.support.webhook_receiver import receiver


@pytest.fixture
def run(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("ENSU_WEBHOOK_ALLOW_HTTP", "true")
    get_settings.cache_clear()
    return run


def test_alerts_test_goes_through_mail_and_webhook(
    run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("alerts", "test").exit_code == 1  # no channel at all: the test fails
    with smtp_server() as (inbox, _port), receiver() as hook:
        monkeypatch.setenv("ENSU_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ENSU_SMTP_PORT", str(inbox.port))
        monkeypatch.setenv("ENSU_ALERT_EMAILS", "rssi@example.fr, soc@example.fr")
        get_settings.cache_clear()
        added = run("webhooks", "add", hook.url, "--event", "security.event")
        secret = added.output.strip().splitlines()[-1].removeprefix("secret: ")
        result = run("alerts", "test")
        assert result.exit_code == 0, result.output
        assert "delivered" in result.output
        assert "mail: sent" in result.output
        [got] = hook.received
        signature.verify(secret, got.headers["x-ensu-signature"], got.body, now=time.time())
        document = json.loads(got.body)
        assert document["type"] == "security.event"
        assert document["data"]["test"] is True
        [(_, recipients, message)] = inbox.messages
        assert recipients == ["rssi@example.fr", "soc@example.fr"]
        subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
        assert "Événement de sécurité" in subject
    listed = run("alerts", "list")
    assert "test" in listed.output
    assert "mail sent" in listed.output
