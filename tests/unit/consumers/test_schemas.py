"""The read model's checks (R-GW-2 allowlist) and certificates read from PEM (R-GW-1)."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from ensu.clock import legal_date
from ensu.config import Environment
from ensu.consumers.models import AuthMethod, TeleserviceStatus
from ensu.consumers.schemas import CertificateRef, TeleserviceView
from tests.support.certs import make_certificate


def _view(*networks: str) -> TeleserviceView:
    return TeleserviceView(
        id_teleservice="TS-1",
        client_id="c",
        name="n",
        organisation_siret="13000000000005",
        organisation_name="o",
        environment=Environment.SANDBOX,
        status=TeleserviceStatus.ACTIVE,
        valid_from=dt.date(2020, 1, 1),
        valid_until=None,
        families=frozenset(),
        codes=frozenset({"AMR"}),
        allowed_codes=frozenset({"AMR"}),
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2020, 12, 31),
        networks=tuple(ipaddress.ip_network(network) for network in networks),
        thumbprints=frozenset(),
        certificates=(),
        quota_per_minute=50,
        auth_method=AuthMethod.TLS_CLIENT_AUTH,
        client_secret_hash=None,
        mention_information="m",
        updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped, from a dual-stack socket
        ("10.0.0.1", False),
        ("::2", False),
        ("not an address", False),
        ("", False),
    ],
)
def test_allowlist(address: str, allowed: bool) -> None:
    assert _view("127.0.0.0/8", "::1/128").allows_address(address) is allowed


def test_open_ended_validity() -> None:
    view = _view("127.0.0.0/8")
    assert view.active_on(dt.date(2099, 1, 1))
    assert not view.active_on(dt.date(2019, 12, 31))


def test_legal_date_is_the_date_in_paris() -> None:
    """23:30 UTC on 31 December is already 1 January in Paris."""
    late = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert legal_date(late) == dt.date(2026, 1, 1)
    assert legal_date(dt.datetime(2025, 7, 1, 21, 59, tzinfo=dt.UTC)) == dt.date(2025, 7, 1)


def test_certificate_from_pem_ignores_other_blocks() -> None:
    certificate = make_certificate("pem")
    bundle = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + certificate.pem
    ref = CertificateRef.from_pem(bundle)
    assert ref == certificate.ref
    with pytest.raises(ValueError, match="no PEM certificate"):
        CertificateRef.from_pem(b"nothing here")
