"""Production refuses development material (R-GW-1, R-SEC-1; OWASP API8:2023;
ensu.development): a default, empty or weak secret, and the development CA recognised
by its subject or its fingerprints, not by a marker file that a copy leaves behind."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import shutil
import string
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from ensu import db, development
from ensu.app import create_app
from ensu.cli import app as cli
from ensu.config import Environment, Settings, get_settings
from ensu.pki import service as pki

STRONG = secrets.token_hex(32)


def production(var: Path, pki_dir: Path | None = None, secret: str = STRONG) -> Settings:
    return Settings(
        var_dir=var,
        pki_dir=pki_dir,
        environment=Environment.PRODUCTION,
        secret_key=SecretStr(secret),
    )


@pytest.mark.parametrize(
    "secret",
    [
        "x",
        "",
        "development-only-secret",
        "a" * 64,
        "ab" * 32,
        "a-real-secret-from-the-vault-0123456789",  # 39 characters: ~234 bits at most
        "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)),
    ],
)
def test_a_default_empty_or_weak_secret_is_refused(var_dir: Path, secret: str) -> None:
    with pytest.raises(ValidationError, match="ENSU_SECRET_KEY"):
        production(var_dir, secret=secret)


@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_hex(32),
        secrets.token_urlsafe(32),
        base64.b64encode(secrets.token_bytes(32)).decode(),
        "".join(secrets.choice(string.ascii_letters + string.punctuation) for _ in range(40)),
    ],
    ids=["hex", "urlsafe", "base64", "printable-40"],
)
def test_32_random_bytes_in_the_usual_forms_pass(var_dir: Path, secret: str) -> None:
    assert production(var_dir, secret=secret).environment is Environment.PRODUCTION


@pytest.fixture
def dev_pki(var_dir: Path) -> Path:
    directory = var_dir / "pki"
    pki.init(directory=directory)
    return directory


def test_the_marker_is_not_needed_the_subject_is_enough(var_dir: Path, dev_pki: Path) -> None:
    (dev_pki / pki.MARKER_NAME).unlink()
    with pytest.raises(ValidationError, match="development CA"):
        production(var_dir)


def test_a_copy_elsewhere_without_marker_nor_registry_is_refused(
    var_dir: Path, dev_pki: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "etc" / "ensu" / "pki"
    shutil.copytree(dev_pki, elsewhere)
    (elsewhere / pki.MARKER_NAME).unlink()
    (var_dir / development.REGISTRY_NAME).unlink()
    with pytest.raises(ValidationError, match="development CA"):
        production(tmp_path / "other-var", pki_dir=elsewhere)


def _self_signed(key: ec.EllipticCurvePrivateKey, organisation: str) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )


def _install_ca(directory: Path, certificate: x509.Certificate) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.pem").write_bytes(pem)


def test_the_development_key_under_another_subject_is_caught_by_the_registry(
    var_dir: Path, dev_pki: Path
) -> None:
    """The registry keeps the key's fingerprint: a CA re-made from the development key
    under a respectable subject is still refused."""
    key = serialization.load_pem_private_key((dev_pki / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    disguised = var_dir / "prod-pki"
    _install_ca(disguised, _self_signed(key, "Ministère fictif"))
    with pytest.raises(ValidationError, match="fingerprint is in the registry"):
        production(var_dir, pki_dir=disguised)
    (var_dir / development.REGISTRY_NAME).unlink()  # without the registry, not recognised
    assert production(var_dir, pki_dir=disguised).environment is Environment.PRODUCTION


def test_another_ca_passes(var_dir: Path, dev_pki: Path) -> None:
    real = var_dir / "real-pki"
    _install_ca(real, _self_signed(ec.generate_private_key(ec.SECP256R1()), "AC réelle"))
    assert production(var_dir, pki_dir=real).environment is Environment.PRODUCTION


def test_every_generation_is_registered(var_dir: Path, dev_pki: Path) -> None:
    first = development.registered(var_dir / development.REGISTRY_NAME)
    pki.init(directory=dev_pki, force=True)
    second = development.registered(var_dir / development.REGISTRY_NAME)
    assert len(first) == 2
    assert first < second
    assert len(second) == 4


@pytest.mark.anyio
async def test_the_app_refuses_to_start_on_settings_that_skipped_validation(
    var_dir: Path, dev_pki: Path
) -> None:
    """``model_copy`` skips the validators: the app checks again at start-up."""
    sandbox = Settings(var_dir=var_dir)
    db.upgrade(sandbox.database_url)
    copied = sandbox.model_copy(
        update={"environment": Environment.PRODUCTION, "secret_key": SecretStr("x")}
    )
    app = create_app(copied)
    with pytest.raises(RuntimeError, match="refusing to start: ENSU_SECRET_KEY"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    ("secret", "expected"), [("x", "ENSU_SECRET_KEY"), (STRONG, "development CA")]
)
def test_ensu_serve_refuses_with_the_reason(
    var_dir: Path, dev_pki: Path, monkeypatch: pytest.MonkeyPatch, secret: str, expected: str
) -> None:
    (dev_pki / pki.MARKER_NAME).unlink()
    monkeypatch.setenv("ENSU_VAR_DIR", str(var_dir))
    monkeypatch.setenv("ENSU_ENVIRONMENT", "production")
    monkeypatch.setenv("ENSU_SECRET_KEY", secret)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert expected in result.output
    assert secret not in result.output or secret == "x"
