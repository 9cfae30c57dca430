"""The journal signing key: generated once under var/journal, 0600, logged in production."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from ensu.audit import keys
from ensu.audit.note import Checkpoint, NoteVerifier
from ensu.config import Environment, Settings
from tests.unit.audit.conftest import T0


def test_generated_on_first_use_private_and_reused(var_dir: Path) -> None:
    settings = Settings(var_dir=var_dir, public_url="https://ensu.example.fr")
    signer = keys.load_or_create_signer(settings)
    private = var_dir / "journal" / "signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert signer.name == "ensu.example.fr/ensu-journal"
    again = keys.load_or_create_signer(settings)
    assert again.key_id == signer.key_id
    vkey = (var_dir / "journal" / "signing.vkey").read_text().strip()
    assert vkey == signer.verifier.vkey
    assert keys.load_verifier(settings).key_id == signer.key_id
    note = signer.sign(Checkpoint(origin=signer.name, size=1, root=bytes(32), time=T0))
    assert NoteVerifier.from_vkey(vkey).open(note).size == 1


def test_the_key_name_survives_a_change_of_public_url(var_dir: Path) -> None:
    first = keys.load_or_create_signer(Settings(var_dir=var_dir, public_url="https://a.test"))
    second = keys.load_or_create_signer(Settings(var_dir=var_dir, public_url="https://b.test"))
    assert second.name == first.name == "a.test/ensu-journal"


def test_a_generated_key_in_production_is_not_silent(
    var_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_construct(
        environment=Environment.PRODUCTION, var_dir=var_dir, public_url="https://p.test"
    )
    with caplog.at_level(logging.INFO, logger="ensu.audit"):
        keys.load_or_create_signer(settings)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert "publish its verifier key" in warnings[0].getMessage()


def test_unreadable_or_missing_keys_are_reported(var_dir: Path) -> None:
    settings = Settings(var_dir=var_dir)
    with pytest.raises(keys.JournalKeyError):
        keys.load_verifier(settings)
    (var_dir / "journal").mkdir()
    (var_dir / "journal" / "signing.key").write_text("not a key")
    with pytest.raises(keys.JournalKeyError):
        keys.load_or_create_signer(settings)
