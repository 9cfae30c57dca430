"""The ASGI ``tls`` extension filled by our uvicorn protocols (R-GW-1).

A real uvicorn server runs in a thread with a tiny ASGI app that keeps every scope's
``tls`` extension and echoes it; clients connect with the development PKI's certificates.
"""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import orjson
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ensu.edge import tls, uvicorn_tls
from ensu.edge.testing import serving
from ensu.pki import service as pki
from ensu.pki.service import PkiLayout

PYPROJECT = Path(__file__).parents[3] / "pyproject.toml"
PROTOCOLS = [uvicorn_tls.HttpToolsTLSProtocol, uvicorn_tls.H11TLSProtocol]


class EchoApp:
    """Answers each request with its ``tls`` extension and keeps the objects it saw."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        tls = scope.get("extensions", {}).get("tls")
        self.seen.append(tls)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": orjson.dumps(tls)})


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    pki.init(directory=tmp_path / "pki")
    return PkiLayout(tmp_path / "pki")


@pytest.fixture
def echo() -> EchoApp:
    return EchoApp()


def tls_config(app: EchoApp, layout: PkiLayout, protocol: type[Any]) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=protocol,
        lifespan="off",
        log_level="warning",
        ssl_certfile=layout.server_cert,
        ssl_keyfile=layout.server_key,
        ssl_ca_certs=layout.ca_cert,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )


@pytest.fixture(params=PROTOCOLS, ids=["httptools", "h11"])
def tls_port(request: pytest.FixtureRequest, echo: EchoApp, layout: PkiLayout) -> Iterator[int]:
    with serving(tls_config(echo, layout, request.param)) as port:
        yield port


def der(path: Path) -> bytes:
    certificate = pki.load_certificate(path=path)
    return certificate.public_bytes(serialization.Encoding.DER)


def pem_der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


class Negotiated(Protocol):
    """The client side of a TLS connection (httpcore hands out ``_ssl._SSLSocket``)."""

    context: ssl.SSLContext

    def version(self) -> str | None: ...

    def cipher(self) -> tuple[str, str, int] | None: ...


def negotiated(response: httpx.Response) -> Negotiated:
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    assert ssl_object is not None
    return cast(Negotiated, ssl_object)


def iana_cipher(ssl_object: Negotiated) -> int:
    cipher = ssl_object.cipher()
    assert cipher is not None
    ids = {entry["name"]: entry["id"] & 0xFFFF for entry in ssl_object.context.get_ciphers()}
    return ids[cipher[0]]


# -- the pin ------------------------------------------------------------------------------


def test_installed_uvicorn_is_the_supported_minor() -> None:
    """The subclasses rely on uvicorn internals: the pin, the check and the install agree."""
    assert uvicorn.__version__.startswith(uvicorn_tls.SUPPORTED_UVICORN + ".")
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [spec for spec in dependencies if spec.startswith("uvicorn")]
    assert pins == [f"uvicorn[standard]~={uvicorn_tls.SUPPORTED_UVICORN}.0"]


@pytest.mark.parametrize("version", ["0.55.0", "0.53.9", "1.54.0", "0.5.4"])
def test_another_uvicorn_minor_is_refused_with_a_clear_error(version: str) -> None:
    with pytest.raises(RuntimeError, match=f"uvicorn {version} is installed"):
        uvicorn_tls.check_uvicorn_version(version=version)


def test_a_patch_release_is_accepted() -> None:
    uvicorn_tls.check_uvicorn_version(version=f"{uvicorn_tls.SUPPORTED_UVICORN}.7")


# -- the extension over real connections --------------------------------------------------


def test_extension_describes_the_connection(tls_port: int, layout: PkiLayout) -> None:
    context = pki.client_ssl_context(directory=layout.directory, name="consumer-a")
    with httpx.Client(verify=context) as client:
        response = client.get(f"https://127.0.0.1:{tls_port}/")
        client_side = negotiated(response)
        version, cipher = client_side.version(), iana_cipher(client_side)
    tls = response.json()
    consumer = layout.client_cert("consumer-a")
    assert [pem_der(pem) for pem in tls["client_cert_chain"]] == [der(consumer)]
    subject = pki.load_certificate(path=consumer).subject.rfc4514_string()
    assert tls["client_cert_name"] == subject
    assert tls["client_cert_error"] is None
    assert pem_der(tls["server_cert"]) == der(layout.server_cert)
    assert tls["tls_version"] == {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}[version or ""]
    assert tls["cipher_suite"] == cipher


def test_tls12_connection_reports_its_version_and_suite(tls_port: int, layout: PkiLayout) -> None:
    context = pki.client_ssl_context(directory=layout.directory, name="consumer-b")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with httpx.Client(verify=context) as client:
        tls = client.get(f"https://127.0.0.1:{tls_port}/").json()
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, RFC 5289
    assert "CN=consumer-b" in tls["client_cert_name"]


def test_extension_is_built_once_per_connection(
    tls_port: int, echo: EchoApp, layout: PkiLayout
) -> None:
    """Every request of a connection shares one extension; a new connection gets its own."""
    context = pki.client_ssl_context(directory=layout.directory, name="consumer-a")
    for _ in range(2):
        with httpx.Client(verify=context) as client:
            for _ in range(3):
                assert client.get(f"https://127.0.0.1:{tls_port}/").status_code == 200
    first, second = echo.seen[:3], echo.seen[3:]
    assert all(tls is first[0] for tls in first)
    assert all(tls is second[0] for tls in second)
    assert first[0] is not second[0]
    assert first[0] == second[0]


def test_client_without_certificate_never_reaches_the_app(
    tls_port: int, echo: EchoApp, layout: PkiLayout
) -> None:
    context = ssl.create_default_context(cafile=layout.ca_cert)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"https://127.0.0.1:{tls_port}/", verify=context)
    assert echo.seen == []


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["httptools", "h11"])
def test_plain_http_has_no_tls_extension(echo: EchoApp, protocol: type[Any]) -> None:
    """The ASGI TLS spec forbids the extension on a connection that is not TLS."""
    config = uvicorn.Config(echo, http=protocol, lifespan="off", log_level="warning")
    with serving(config) as port:
        response = httpx.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200
    assert echo.seen == [None]


# -- the pieces ---------------------------------------------------------------------------


class StubSSLObject:
    """An ``SSLObject`` before or without a negotiated session."""

    def getpeercert(self, binary_form: bool) -> bytes | None:
        return None

    def version(self) -> str | None:
        return None

    def cipher(self) -> tuple[str, str, int] | None:
        return None


def test_extension_without_peer_certificate_or_session() -> None:
    stub = cast(ssl.SSLObject, StubSSLObject())
    assert uvicorn_tls.tls_extension(ssl_object=stub, server_cert=None) == {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def test_server_context_requires_tls12() -> None:
    """CONTRACT, Transport: TLS 1.2 at least, whatever the default of the platform."""
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    default.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    config = uvicorn.Config("ensu.app:create_app")
    context = uvicorn_tls.minimum_tls12_context(config, lambda: default)
    assert context is default
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_client_subject_is_rfc4514(layout: PkiLayout) -> None:
    certificate = x509.load_pem_x509_certificate(layout.client_cert("consumer-b").read_bytes())
    chain, name = uvicorn_tls._client_certificate(der(layout.client_cert("consumer-b")))
    assert name == "CN=consumer-b,O=Éditeur Logiciel Fictif B,C=FR"
    assert name == certificate.subject.rfc4514_string()
    assert chain == [layout.client_cert("consumer-b").read_text()]


def test_server_context_offers_the_edges_profile_and_checks_the_crl(layout: PkiLayout) -> None:
    """RFC 9325 / FAPI 2.0 (ensu.edge.tls): ECDHE AEAD suites in TLS 1.2, and the CRL
    beside the CA checked on the leaf (R-GW-1)."""
    config = uvicorn.Config("ensu.app:create_app", ssl_ca_certs=str(layout.ca_cert))

    def default() -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    context = uvicorn_tls.minimum_tls12_context(config, default)
    offered = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert offered == set(tls.TLS12_CIPHERS)
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    layout.crl.unlink()  # no CRL: no CRL check (OpenSSL would refuse every leaf)
    without = uvicorn_tls.minimum_tls12_context(config, default)
    assert not without.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
