"""``ensu staff``: creation prints the TOTP secret once with its QR code; ``totp`` is for
development only; ``ensure-dev`` is what ``make run`` calls (R-HAB-2)."""

from __future__ import annotations

import re
import secrets
import stat

import pytest

from ensu import clock
from ensu.accounts import totp
from ensu.cli.staff import DEV_EMAIL
from ensu.config import get_settings
from tests.support.cli import Invoke


def _secret(output: str) -> str:
    found = re.search(r"TOTP secret \(shown once\): ([A-Z2-7]+)", output)
    assert found, output
    return found.group(1)


def test_create_prints_the_secret_once_with_a_qr_code(run: Invoke) -> None:
    done = run("staff", "create", "--email", "Agent@DGFIP.example", "--role", "manager")
    assert done.exit_code == 0, done.output
    secret = _secret(done.output)
    assert "agent@dgfip.example: manager created" in done.output
    assert "Password (shown once):" in done.output  # no terminal: generated
    assert "█" in done.output or "▀" in done.output  # the QR code, in block characters
    assert f"otpauth://totp/ENSU%20Documents%3Aagent%40dgfip.example?secret={secret}" in (
        done.output.replace("\n", "")
    )
    code = run("staff", "totp", "agent@dgfip.example")
    assert code.exit_code == 0
    assert code.output.strip() == totp.code_at(secret, clock.time())
    again = run("staff", "create", "--email", "agent@dgfip.example", "--role", "reporter")
    assert again.exit_code == 1
    assert "existe déjà" in again.output


def test_reset_totp_makes_a_new_secret(run: Invoke) -> None:
    first = _secret(run("staff", "create", "--email", "a@dgfip.example", "--role", "admin").output)
    reset = run("staff", "reset-totp", "a@dgfip.example")
    assert reset.exit_code == 0
    assert _secret(reset.output) != first
    assert run("staff", "reset-totp", "nobody@dgfip.example").exit_code == 1


def test_codes_are_not_printed_in_production(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSU_ENVIRONMENT", "production")
    monkeypatch.setenv("ENSU_SECRET_KEY", secrets.token_hex(32))
    get_settings.cache_clear()
    done = run("staff", "totp", "agent@dgfip.example")
    assert done.exit_code == 1
    assert "development (sandbox) only" in done.output
    assert run("staff", "ensure-dev").exit_code == 1


def test_ensure_dev_creates_the_instructor_once_and_says_how_to_sign_in(run: Invoke) -> None:
    first = run("staff", "ensure-dev")
    assert first.exit_code == 0, first.output
    password = re.search(rf"{re.escape(DEV_EMAIL)}, password (\S+);", first.output)
    assert password, first.output
    assert "http://127.0.0.1:8080/connexion" in first.output
    assert f"ensu staff totp {DEV_EMAIL}" in first.output
    second = run("staff", "ensure-dev")
    assert f"password {password.group(1)};" in second.output
    kept = get_settings().var_dir / "dev-staff.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
