"""Both edges offer the TLS profile of RFC 9325 (BCP 195) and FAPI 2.0, nothing else.

A scan of each edge (``direct``: uvicorn; ``nginx``: the template in front of the app),
one handshake per protocol version and per suite, presenting a consumer's certificate:

- TLS 1.0 and 1.1 with any suite OpenSSL knows (security level 0): refused;
- TLS 1.2: every suite OpenSSL knows, one at a time; the accepted ones are exactly the
  ECDHE-ECDSA AEAD suites of :data:`ensu.edge.tls.TLS12_CIPHERS` (the server key is the
  development PKI's ECDSA P-256 key, so the ECDHE-RSA ones cannot be chosen);
- TLS 1.3: each of the five suites of RFC 8446 with ``openssl s_client`` (Python cannot
  restrict them); the accepted ones are exactly :data:`ensu.edge.tls.TLS13_SUITES`.

The control: the same scan against a deliberately permissive server (TLS 1.0, CBC and
non-ECDHE suites) finds them, so that the scan is known to see what it looks for.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ensu.edge import tls
from tests.functional.conftest import A, Stack

CLIENT_TIMEOUT = 5.0
OLD_VERSIONS = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
TLS13_ALL = (*tls.TLS13_SUITES, "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    cert: Path
    key: Path


def all_tls12_ciphers() -> list[str]:
    """Every TLS 1.2-and-below suite this OpenSSL knows, security level 0 included."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return sorted({c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"})


def handshake(
    target: Target, version: ssl.TLSVersion, ciphers: str
) -> tuple[str, bytes | None] | None:
    """The suite and server certificate of a handshake at ``version`` offering ``ciphers``
    only, or None when the server refuses it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the offer is scanned, not the server's identity
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is what is scanned
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    try:
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    except ssl.SSLError:
        return None  # a suite this OpenSSL cannot offer at this version
    context.load_cert_chain(target.cert, target.key)
    try:
        with (
            socket.create_connection((target.host, target.port), CLIENT_TIMEOUT) as raw,
            context.wrap_socket(raw) as connection,
        ):
            cipher = connection.cipher()
            assert cipher is not None
            return cipher[0], connection.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        return None


def tls13_accepts(target: Target, suite: str) -> bool:
    """``openssl s_client`` offering the one TLS 1.3 ``suite``: did the server take it?"""
    binary = shutil.which("openssl")
    assert binary is not None, "openssl is needed to scan TLS 1.3 suites"
    command = [
        binary,
        "s_client",
        "-connect",
        f"{target.host}:{target.port}",
        "-tls1_3",
        "-ciphersuites",
        suite,
        "-cert",
        str(target.cert),
        "-key",
        str(target.key),
        "-brief",
    ]
    result = subprocess.run(command, input=b"", capture_output=True, timeout=30, check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    return f"Ciphersuite: {suite}" in output  # the exit status tells how it closed


@dataclass(frozen=True)
class Scan:
    old_versions: dict[ssl.TLSVersion, str | None]
    tls12: set[str]
    tls13: set[str]
    server_cert: bytes | None


def scan(target: Target) -> Scan:
    old = {}
    for version in OLD_VERSIONS:
        accepted = handshake(target, version, "ALL:COMPLEMENTOFALL")
        old[version] = accepted[0] if accepted else None
    tls12: set[str] = set()
    server_cert = None
    for name in all_tls12_ciphers():
        accepted = handshake(target, ssl.TLSVersion.TLSv1_2, name)
        if accepted is not None:
            tls12.add(accepted[0])
            server_cert = accepted[1]
    tls13 = {suite for suite in TLS13_ALL if tls13_accepts(target, suite)}
    return Scan(old, tls12, tls13, server_cert)


def target_of(stack: Stack, route: str) -> Target:
    host, port = stack.urls[route].removeprefix("https://").rsplit(":", 1)
    layout = stack.var.pki
    return Target(host, int(port), layout.client_cert(A.stem), layout.client_key(A.stem))


def test_each_edge_offers_tls12_and_13_with_ecdhe_aead_suites_only(
    stack: Stack, route: str
) -> None:
    result = scan(target_of(stack, route))
    assert result.old_versions == dict.fromkeys(OLD_VERSIONS), "TLS 1.0/1.1 accepted"
    expected = {name for name in tls.TLS12_CIPHERS if name.startswith("ECDHE-ECDSA-")}
    assert result.tls12 == expected
    assert result.tls13 == set(tls.TLS13_SUITES)
    assert result.server_cert is not None
    key = x509.load_der_x509_certificate(result.server_cert).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"


@pytest.fixture
def permissive(stack: Stack) -> Iterator[Target]:
    """A server with OpenSSL's most permissive settings and the same ECDSA key: TLS 1.0
    up, every suite at security level 0. It completes handshakes and closes."""
    layout = stack.var.pki
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    context.load_cert_chain(layout.server_cert, layout.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(CLIENT_TIMEOUT)
            try:
                with context.wrap_socket(raw, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        yield Target("127.0.0.1", port, layout.client_cert(A.stem), layout.client_key(A.stem))
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_control_the_scan_sees_old_versions_and_weak_suites(permissive: Target) -> None:
    result = scan(permissive)
    assert any(result.old_versions.values()), "the scan cannot see TLS 1.0/1.1"
    assert any("CBC" in n or n.endswith("-SHA") for n in result.tls12), result.tls12
    assert not result.tls12 <= set(tls.TLS12_CIPHERS)
    assert result.tls13 >= set(tls.TLS13_SUITES)
