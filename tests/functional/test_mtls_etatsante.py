"""A consumer calls ``etatSante`` over mutual TLS; strangers fail the handshake (R-GW-1).

The real app, the options of ``ensu serve`` (shared through ``server_options``), a PKI
from ``ensu.pki`` in a temporary ``var/`` and a migrated SQLite database. A thin recorder
around the app keeps every scope's ``tls`` extension: a refused client must leave none.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ensu import db
from ensu.app import create_app
from ensu.certificates import thumbprint_s256
from ensu.cli.serve import server_options
from ensu.config import Settings
from ensu.edge.testing import serving
from ensu.pki import service as pki

ETAT_SANTE = "/ensudocuments/v1/etatSante"


class Recorder:
    """The app, plus the ``tls`` extension of every HTTP request it was given."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tls: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.tls.append(scope["extensions"]["tls"])
        await self.app(scope, receive, send)


@pytest.fixture
def settings(var_dir: Path) -> Settings:
    settings = Settings(var_dir=var_dir)
    db.upgrade(settings.database_url)
    pki.init(directory=settings.pki_dir_path)
    return settings


@pytest.fixture
def recorder(settings: Settings) -> Recorder:
    return Recorder(create_app(settings))


@pytest.fixture
def base_url(settings: Settings, recorder: Recorder) -> Iterator[str]:
    config = uvicorn.Config(recorder, **server_options(settings=settings), log_level="warning")
    with serving(config) as port:
        yield f"https://127.0.0.1:{port}"


def consumer(settings: Settings, name: str) -> ssl.SSLContext:
    return pki.client_ssl_context(directory=settings.pki_dir_path, name=name)


@pytest.mark.parametrize("name", ["consumer-a", "consumer-b"])
def test_consumer_with_its_certificate_gets_the_health(
    settings: Settings, base_url: str, recorder: Recorder, name: str
) -> None:
    with httpx.Client(verify=consumer(settings, name)) as client:
        response = client.get(base_url + ETAT_SANTE)
    assert response.status_code == 200
    assert response.json()["statut"] == "ok"
    (tls,) = recorder.tls
    info = {entry.name: entry for entry in pki.describe(directory=settings.pki_dir_path)}[name]
    assert tls["client_cert_name"] == info.subject
    leaf = ssl.PEM_cert_to_DER_cert(tls["client_cert_chain"][0])
    assert thumbprint_s256(leaf) == info.thumbprint_s256


def test_client_without_certificate_fails_the_handshake(
    settings: Settings, base_url: str, recorder: Recorder
) -> None:
    trusting_only = ssl.create_default_context(cafile=settings.pki_dir_path / "ca.pem")
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(base_url + ETAT_SANTE, verify=trusting_only)
    assert recorder.tls == []


def test_tls12_client_without_certificate_fails_during_the_handshake(
    settings: Settings, base_url: str, recorder: Recorder
) -> None:
    """In TLS 1.2 the server checks the certificate before the handshake completes.

    The server closes without an alert (asyncio drops it), hence no message to match.
    """
    trusting_only = ssl.create_default_context(cafile=settings.pki_dir_path / "ca.pem")
    trusting_only.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + ETAT_SANTE, verify=trusting_only)
    assert recorder.tls == []


def test_certificate_from_another_ca_is_refused(
    settings: Settings, base_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    stranger = tmp_path / "other-pki"
    pki.init(directory=stranger)  # same names and subjects, another CA
    context = ssl.create_default_context(cafile=settings.pki_dir_path / "ca.pem")
    context.load_cert_chain(stranger / "consumer-a.pem", stranger / "consumer-a.key")
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(base_url + ETAT_SANTE, verify=context)
    assert recorder.tls == []
