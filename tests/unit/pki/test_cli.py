"""``ensu pki init | issue | show`` as a user runs them (R-GW-1)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ensu.cli import app
from ensu.config import get_settings
from ensu.pki import service


@pytest.fixture
def pki_dir(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The commands read the settings from the environment, as in a shell."""
    monkeypatch.setenv("ENSU_VAR_DIR", str(var_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield var_dir / "pki"
    get_settings.cache_clear()


runner = CliRunner()


def test_init_then_init_again(pki_dir: Path) -> None:
    first = runner.invoke(app, ["pki", "init"])
    assert first.exit_code == 0, first.output
    assert f"Development PKI written to {pki_dir}" in first.output
    assert "CN=consumer-a,O=Cabinet Comptable Fictif A,C=FR" in first.output
    ca = (pki_dir / "ca.pem").read_bytes()
    second = runner.invoke(app, ["pki", "init"])
    assert second.exit_code == 0
    assert f"already in {pki_dir}" in second.output
    assert (pki_dir / "ca.pem").read_bytes() == ca
    forced = runner.invoke(app, ["pki", "init", "--force"])
    assert forced.exit_code == 0
    assert (pki_dir / "ca.pem").read_bytes() != ca


def test_init_reports_a_partial_pki(pki_dir: Path) -> None:
    service.init(directory=pki_dir)
    (pki_dir / "ca.key").unlink()
    result = runner.invoke(app, ["pki", "init"])
    assert result.exit_code == 1
    assert "missing: ca.key" in result.output
    assert "--force" in result.output


def test_issue_prints_the_thumbprint(pki_dir: Path) -> None:
    service.init(directory=pki_dir)
    result = runner.invoke(app, ["pki", "issue", "consumer-c", "-o", "Mutuelle Fictive C"])
    assert result.exit_code == 0, result.output
    (info,) = [entry for entry in service.describe(directory=pki_dir) if entry.name == "consumer-c"]
    assert "O=Mutuelle Fictive C" in result.output
    assert info.thumbprint_s256 in result.output


def test_issue_refuses_a_bad_name(pki_dir: Path) -> None:
    service.init(directory=pki_dir)
    result = runner.invoke(app, ["pki", "issue", "../evil"])
    assert result.exit_code == 1
    assert "invalid consumer name" in result.output
    assert not (pki_dir.parent / "evil.pem").exists()


def test_show_prints_subjects_thumbprints_and_expiry(pki_dir: Path) -> None:
    service.init(directory=pki_dir)
    result = runner.invoke(app, ["pki", "show"])
    assert result.exit_code == 0, result.output
    for info in service.describe(directory=pki_dir):
        assert info.path.name in result.output
        assert info.thumbprint_s256 in result.output
        assert info.sha256_hex in result.output
        assert info.not_after.date().isoformat() in result.output


def test_show_without_pki_points_to_init(pki_dir: Path) -> None:
    result = runner.invoke(app, ["pki", "show"])
    assert result.exit_code == 1
    assert "ensu pki init" in result.output


def test_production_gets_no_development_pki(pki_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSU_ENVIRONMENT", "production")
    monkeypatch.setenv("ENSU_SECRET_KEY", secrets.token_hex(32))
    get_settings.cache_clear()
    result = runner.invoke(app, ["pki", "init"])
    assert result.exit_code == 1
    assert "not for production" in result.output
    assert not pki_dir.exists()


def test_revoke_lists_the_consumer_in_the_crl_and_show_flags_it(pki_dir: Path) -> None:
    """R-GW-1: ``ensu pki revoke NAME`` and ``ensu pki show`` as a user runs them."""
    assert runner.invoke(app, ["pki", "init"]).exit_code == 0
    result = runner.invoke(app, ["pki", "revoke", "consumer-b"])
    assert result.exit_code == 0, result.output
    serial = service.load_certificate(path=pki_dir / "consumer-b.pem").serial_number
    assert f"Revoked consumer-b (serial {serial:#x})" in result.output
    assert set(service.revoked_serials(directory=pki_dir)) == {serial}
    again = runner.invoke(app, ["pki", "revoke", "consumer-b"])
    assert (again.exit_code, "revoked already" in again.output) == (0, True)
    shown = runner.invoke(app, ["pki", "show"]).output
    rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if ".pem" in line}
    assert "revoked" in rows["consumer-b.pem"]
    assert "revoked" not in rows["consumer-a.pem"]
    unknown = runner.invoke(app, ["pki", "revoke", "nobody"])
    assert unknown.exit_code == 1
    assert "no consumer certificate" in unknown.output
