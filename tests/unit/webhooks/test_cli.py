"""``ensu webhooks add|list|deliver|attempts|replay|enable|disable`` against a real
receiver, and a receiver that does not answer at all."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ensu import db
from ensu.config import Settings, get_settings
from ensu.webhooks import service as webhooks
from ensu.webhooks import signature
from tests.support.cli import Invoke
from tests.support.webhook_receiver import receiver


@pytest.fixture
def run(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("ENSU_WEBHOOK_ALLOW_HTTP", "true")
    get_settings.cache_clear()
    return run


def _emit(settings: Settings) -> str:
    async def main() -> str:
        engine = db.make_engine(settings.database_url)
        try:
            async with db.session_scope(db.make_sessionmaker(engine)) as session:
                [uid] = await webhooks.emit(
                    session=session, event_type="security.test", payload={"test": True}
                )
                return uid
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_the_commands(run: Invoke, sqlite_settings: Settings) -> None:
    refused = run("webhooks", "add", "ftp://example.org/", "--event", "x")
    assert refused.exit_code == 1
    with receiver() as hook:
        added = run("webhooks", "add", hook.url, "--event", "security.*", "--description", "SOC")
        assert added.exit_code == 0, added.output
        secret = added.output.strip().splitlines()[-1].removeprefix("secret: ")
        assert secret.startswith("whsec_")
        listed = run("webhooks", "list")
        assert hook.url in listed.output
        assert "active" in listed.output
        uid = _emit(sqlite_settings)
        assert "1 attempt(s) made" in run("webhooks", "deliver").output
        [got] = hook.received
        signature.verify(secret, got.headers["x-ensu-signature"], got.body, now=time.time())
        attempts = run("webhooks", "attempts", "--delivery", uid)
        assert uid in attempts.output
        assert "delivered" in attempts.output
        replayed = run("webhooks", "replay", uid)
        assert replayed.exit_code == 0, replayed.output
        assert len(hook.received) == 2
        assert run("webhooks", "disable", "1").exit_code == 0
        refused = run("webhooks", "replay", uid)
        assert refused.exit_code == 1
        assert "enable 1" in refused.output
        assert run("webhooks", "enable", "1").exit_code == 0


def test_a_receiver_that_does_not_answer_is_a_failed_attempt(
    run: Invoke, sqlite_settings: Settings
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert run("webhooks", "add", f"http://127.0.0.1:{port}/", "--event", "*").exit_code == 0
    uid = _emit(sqlite_settings)
    assert "1 attempt(s) made" in run("webhooks", "deliver").output
    attempts = run("webhooks", "attempts")
    assert "ConnectError" in attempts.output
    assert "pending" in attempts.output  # retried later
    replayed = run("webhooks", "replay", uid)
    assert replayed.exit_code == 1
    assert "failed" in replayed.output
