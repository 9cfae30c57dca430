"""The app's own CRL check (R-GW-1, "not revoked"): ``ensu.certificates.RevocationList``.

It reads the CA's ``crl.pem`` again when the file changes (looked at every
``CRL_CHECK_SECONDS``), and fails closed on a CRL it cannot trust.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ensu.certificates import CRL_CHECK_SECONDS, ClientCertificate, RevocationList, parse_pem
from ensu.pki import service as pki
from ensu.pki.service import PkiLayout


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    pki.init(directory=tmp_path / "pki")
    return PkiLayout(tmp_path / "pki")


def certificate(layout: PkiLayout, name: str) -> ClientCertificate:
    parsed = parse_pem(layout.client_cert(name).read_text())
    assert parsed is not None
    return parsed


def test_a_revocation_is_seen_at_the_next_look_at_the_file(layout: PkiLayout) -> None:
    crl = RevocationList(layout.crl)
    a, b = certificate(layout, "consumer-a"), certificate(layout, "consumer-b")
    assert not crl.is_revoked(a, 100.0)
    pki.revoke(directory=layout.directory, name="consumer-a")
    assert not crl.is_revoked(a, 100.0 + CRL_CHECK_SECONDS / 2)  # not looked at yet
    assert crl.is_revoked(a, 100.0 + CRL_CHECK_SECONDS)
    assert not crl.is_revoked(b, 100.0 + CRL_CHECK_SECONDS)


def test_no_file_revokes_nothing(layout: PkiLayout) -> None:
    layout.crl.unlink()
    assert not RevocationList(layout.crl).is_revoked(certificate(layout, "consumer-a"), 1.0)


def test_an_untrusted_crl_refuses_every_certificate_until_fixed(
    layout: PkiLayout, tmp_path: Path
) -> None:
    crl = RevocationList(layout.crl)
    a = certificate(layout, "consumer-a")
    good = layout.crl.read_bytes()
    layout.crl.write_bytes(b"-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n")
    assert crl.is_revoked(a, 1.0)
    other = tmp_path / "other"
    pki.init(directory=other)  # another CA's CRL, valid but not signed by ca.pem
    layout.crl.write_bytes(PkiLayout(other).crl.read_bytes())
    assert crl.is_revoked(a, 2.0)
    layout.crl.write_bytes(good)
    assert not crl.is_revoked(a, 3.0)
