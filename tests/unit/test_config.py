"""Settings: defaults that make ``make run`` work, and production refusing development
material (the foundation issue, item 3).
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ensu.config import Environment, Settings, TLSMode

#: 32 random bytes, as `openssl rand -hex 32` makes them (production needs 256 bits).
STRONG_SECRET = secrets.token_hex(32)


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert settings.environment is Environment.SANDBOX
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'ensu.db'}"
    assert settings.blob_dir_path == tmp_path / "blobs"
    assert settings.pki_dir_path == tmp_path / "pki"
    assert settings.tls_mode is TLSMode.DIRECT
    assert settings.redis_url is None


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENSU_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ENSU_TLS_MODE", "proxy")
    monkeypatch.setenv("ENSU_TRUSTED_PROXIES", "127.0.0.1/32, ::1/128")
    monkeypatch.setenv("ENSU_LISTEN_PORT", "9443")
    settings = Settings()
    assert settings.tls_mode is TLSMode.PROXY
    assert settings.trusted_proxies == [
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    ]
    assert settings.listen_port == 9443


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path, tls_mode="sideways")
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path, listen_port=0)


def test_production_refuses_the_default_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ENSU_SECRET_KEY"):
        Settings(var_dir=tmp_path, environment=Environment.PRODUCTION)


def test_production_refuses_the_development_pki(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "DEVELOPMENT").touch()
    with pytest.raises(ValidationError, match="development PKI"):
        Settings(
            var_dir=tmp_path,
            environment=Environment.PRODUCTION,
            secret_key=SecretStr(STRONG_SECRET),
        )


def test_production_starts_with_real_material(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        environment=Environment.PRODUCTION,
        secret_key=SecretStr(STRONG_SECRET),
    )
    assert settings.environment is Environment.PRODUCTION


def test_accel_redirect_needs_the_proxy_and_files(tmp_path: Path) -> None:
    """ENSU_ACCEL_REDIRECT without nginx in front, or without files to send, would answer
    empty bodies: refused at start, with the reason."""
    with pytest.raises(ValidationError, match="ENSU_TLS_MODE=proxy"):
        Settings(var_dir=tmp_path, accel_redirect=True)
    with pytest.raises(ValidationError, match="ENSU_BLOB_BACKEND=filesystem"):
        Settings(var_dir=tmp_path, accel_redirect=True, tls_mode="proxy", blob_backend="database")
    assert Settings(var_dir=tmp_path, accel_redirect=True, tls_mode="proxy").accel_redirect
