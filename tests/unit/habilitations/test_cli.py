"""``ensu habilitations``: the operators' queue and decisions (R-HAB-2, R-HAB-4)."""

from __future__ import annotations

import anyio
import pytest

from ensu import db
from ensu.config import Settings
from tests.support.cli import Invoke
from tests.support.habilitations import submitted_request
from tests.support.smtp import smtp_server


def _submitted(settings: Settings) -> int:
    async def work() -> int:
        engine = db.make_engine(settings.database_url)
        try:
            async with db.session_scope(db.make_sessionmaker(engine)) as session:
                return (await submitted_request(session, settings)).id
        finally:
            await engine.dispose()

    return anyio.run(work)


def test_the_queue_a_request_and_its_decisions(
    run: Invoke, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = _submitted(sqlite_settings)
    queue = run("habilitations", "list", "--state", "submitted")
    assert queue.exit_code == 0, queue.output
    assert "Aides aux entreprises" in queue.output
    assert run("habilitations", "list", "--state", "validated").output.count("Aides") == 0
    shown = run("habilitations", "show", str(request_id))
    assert "soumise" in shown.output
    assert "request_changes, refuse, validate" in shown.output
    refused = run("habilitations", "refuse", str(request_id), "--reason", " ", "--analysis", "a")
    assert refused.exit_code == 1
    assert "exige un motif" in refused.output
    asked = run("habilitations", "request-changes", str(request_id), "--reason", "Précisez.")
    assert asked.exit_code == 0, asked.output
    assert "modifications demandées" in asked.output
    assert "Précisez." in run("habilitations", "timeline", str(request_id)).output
    assert run("habilitations", "show", "999").exit_code == 1


def test_validate_provisions_and_mails_then_revoke(
    run: Invoke, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = _submitted(sqlite_settings)
    with smtp_server() as (inbox, port):
        monkeypatch.setenv("ENSU_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ENSU_SMTP_PORT", str(port))
        validated = run("habilitations", "validate", str(request_id), "--analysis", "CRPA L.114-8")
        assert validated.exit_code == 0, validated.output
        assert "courriel envoyé à tess@example.fr" in validated.output
        again = run("habilitations", "notify", str(request_id))
        assert again.exit_code == 0, again.output
    assert len(inbox.messages) == 2
    id_teleservice = validated.output.split("ID_Teleservice")[1].split()[0]
    assert id_teleservice in run("consumers", "show", id_teleservice).output
    assert "active" in run("habilitations", "granted").output
    revoked = run("habilitations", "revoke", str(request_id), "--reason", "Fin de la base légale")
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in run("consumers", "show", id_teleservice).output


def test_a_mail_that_cannot_leave_says_how_to_send_it_again(
    run: Invoke, sqlite_settings: Settings
) -> None:
    request_id = _submitted(sqlite_settings)
    validated = run("habilitations", "validate", str(request_id), "--analysis", "CRPA")
    assert validated.exit_code == 1
    assert f"ensu habilitations notify {request_id}" in validated.output
