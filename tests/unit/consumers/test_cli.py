"""``ensu consumers``: create, show, list, suspend, resume, revoke, ensure-dev."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ensu.cli import app as cli
from ensu.config import Settings, get_settings
from tests.support.certs import make_certificate
from tests.support.cli import Invoke

SIRET = "13000000000005"


def _create(run: Invoke, pem: Path, *extra: str) -> Result:
    result: Result = run(
        "consumers", "create",
        "--organisation-siret", SIRET, "--organisation-name", "Cabinet",
        "--name", "Aides", "--certificate", str(pem),
        "--family", "declaratives", "--code", "AMR",
        "--period-start", "2020-01-01", "--period-end", "2030-12-31",
        *extra,
    )  # fmt: skip
    return result


def _value(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(label):
            return line.split()[-1]
    raise AssertionError(f"{label} not in {output!r}")


def test_create_show_list_suspend_resume_revoke(run: Invoke, tmp_path: Path) -> None:
    pem = tmp_path / "client.pem"
    certificate = make_certificate("cli")
    pem.write_text(certificate.pem)
    created = _create(run, pem, "--client-id", "cli-client", "--network", "10.1.0.0/16")
    assert created.exit_code == 0, created.output
    assert _value(created.output, "client_id") == "cli-client"
    ident = _value(created.output, "ID_Teleservice")
    assert "client_secret" not in created.output

    shown = run("consumers", "show", ident)
    assert shown.exit_code == 0, shown.output
    for expected in ("cli-client", "10.1.0.0/16", certificate.thumbprint, "AMR", "DGFIP"):
        assert expected in shown.output
    listed = run("consumers", "list")
    assert listed.exit_code == 0, listed.output
    assert ident in listed.output
    assert "1 téléservice(s)" in listed.output

    assert "suspended" in run("consumers", "suspend", "cli-client", "--reason", "x").output
    again = run("consumers", "suspend", ident)
    assert again.exit_code == 1
    assert "suspendu" in again.output
    assert "active" in run("consumers", "resume", ident).output
    refused = run("consumers", "revoke", ident)  # asks, and the answer is no
    assert refused.exit_code == 1
    assert "revoked" in run("consumers", "revoke", ident, "--yes").output
    assert "revoked" in run("consumers", "list", "--status", "revoked").output


def test_secret_is_printed_once(run: Invoke, tmp_path: Path) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text(make_certificate("cli").pem)
    created = _create(run, pem, "--auth-method", "client_secret_basic")
    assert created.exit_code == 0, created.output
    secret = _value(created.output, "client_secret")
    assert len(secret) >= 43
    assert secret not in run("consumers", "show", _value(created.output, "client_id")).output


def test_errors_are_readable(run: Invoke, tmp_path: Path) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text(make_certificate("cli").pem)
    bad_family = _create(run, pem, "--family", "nope")
    assert bad_family.exit_code == 1
    assert "unknown families" in bad_family.output
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert _create(run, not_pem).exit_code == 1
    no_cert = run(
        "consumers", "create", "--organisation-siret", SIRET, "--name", "x",
        "--family", "declaratives", "--period-start", "2020-01-01", "--period-end", "2021-01-01",
    )  # fmt: skip
    assert no_cert.exit_code == 2
    assert "--certificate" in no_cert.output
    unknown = run("consumers", "show", "TS-NOPE")
    assert unknown.exit_code == 1
    assert "no téléservice" in unknown.output


def test_new_organisation_needs_a_name(run: Invoke, tmp_path: Path) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text(make_certificate("cli").pem)
    result = run(
        "consumers", "create", "--organisation-siret", SIRET, "--name", "x",
        "--certificate", str(pem), "--family", "declaratives",
        "--period-start", "2020-01-01", "--period-end", "2021-01-01",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "organisation inconnue" in result.output


def test_ensure_dev(run: Invoke, sqlite_settings: Settings) -> None:
    pki = sqlite_settings.pki_dir_path
    pki.mkdir(parents=True)
    (pki / "consumer-a.pem").write_text(make_certificate("consumer-a").pem)
    first = run("consumers", "ensure-dev")
    assert first.exit_code == 0, first.output
    assert "dev-consumer-a" in first.output
    assert "created" in first.output
    assert "skipped: no certificate" in first.output
    second = run("consumers", "ensure-dev")
    assert "unchanged" in second.output


def test_database_not_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSU_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["consumers", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "ensu db upgrade" in result.output


def test_create_refuses_a_quota_above_the_default(run: Invoke, tmp_path: Path) -> None:
    """R-Q-2: above 50/minute in the sandbox only through a justified decision."""
    pem = tmp_path / "client.pem"
    pem.write_text(make_certificate("quota").pem)
    refused = _create(run, pem, "--quota", "51")
    assert refused.exit_code != 0
    assert "ensu consumers quota" in refused.output
    assert run("consumers", "list").output.count("Aides") == 0  # nothing was created
    accepted = _create(run, pem, "--quota", "50")
    assert accepted.exit_code == 0, accepted.output


def test_contacts_are_set_and_shown(run: Invoke, tmp_path: Path) -> None:
    """``ensu consumers contacts``: whom the producer writes to (R-HAB-1, R-OPS-4)."""
    pem = tmp_path / "client.pem"
    pem.write_text(make_certificate("contacts").pem)
    assert _create(run, pem, "--client-id", "with-contacts").exit_code == 0
    empty = run("consumers", "contacts", "with-contacts")
    assert empty.exit_code == 0, empty.output
    assert "0 contact(s)" in empty.output
    set_ = run(
        "consumers", "contacts", "with-contacts",
        "--role", "technique", "--name", "Théo", "--email", "theo@example.fr",
    )  # fmt: skip
    assert set_.exit_code == 0, set_.output
    assert "theo@example.fr" in run("consumers", "contacts", "with-contacts").output
    bad = run(
        "consumers", "contacts", "with-contacts",
        "--role", "dpo", "--name", "D", "--email", "not-an-address",
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "adresse électronique invalide" in bad.output
    half = run("consumers", "contacts", "with-contacts", "--role", "dpo")
    assert half.exit_code == 1
    assert "go together" in half.output
