"""Each check of the access chain on its own (R-GW-1 to R-GW-6), with a stand-in for the
stores: which attempts pass and what they leave on the :class:`Attempt`, which are refused
and with which journal reason, and the boundaries (the certificate's last second, the
habilitation's first and last day). ``test_chain.py`` covers the same chain through the
app; these are the fast, exact checks that mutation testing relies on."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ensu import clock
from ensu.certificates import ClientCertificate, parse_pem
from ensu.config import Environment, Settings
from ensu.consumers.models import AuthMethod, TeleserviceStatus
from ensu.consumers.schemas import TeleserviceView
from ensu.errors import (
    CertificateInvalid,
    CorrelationIdInvalid,
    EnsuError,
    HabilitationInactive,
    IPNotAllowed,
    TeleserviceInvalid,
    TokenInvalid,
    TokenMissing,
)
from ensu.gateway import checks
from ensu.gateway.checks import Attempt
from ensu.gateway.quota.counter import QuotaCounter
from ensu.oauth.tokens import AccessClaims, TokenError
from tests.support.certs import make_certificate

pytestmark = pytest.mark.anyio

CERT = make_certificate("checks")
OTHER_CERT = make_certificate("checks-other")
PEER = "192.0.2.10"
DAY = dt.date(2024, 6, 15)
UUID = "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11"


def _view(id_teleservice: str, *networks: str, **changes: Any) -> TeleserviceView:
    view = TeleserviceView(
        id_teleservice=id_teleservice,
        client_id=f"client-{id_teleservice}",
        name=id_teleservice,
        organisation_siret="73282932000074",
        organisation_name="Organisation",
        environment=Environment.SANDBOX,
        status=TeleserviceStatus.ACTIVE,
        valid_from=DAY,
        valid_until=DAY + dt.timedelta(days=30),
        families=frozenset(),
        codes=frozenset({"AMR"}),
        allowed_codes=frozenset({"AMR"}),
        period_start=DAY,
        period_end=DAY,
        networks=tuple(ipaddress.ip_network(n) for n in networks or ("192.0.2.0/24",)),
        thumbprints=frozenset({CERT.thumbprint}),
        certificates=(),
        quota_per_minute=10,
        auth_method=AuthMethod.TLS_CLIENT_AUTH,
        client_secret_hash=None,
        mention_information="",
        updated_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    return replace(view, **changes)


def _claims(**changes: Any) -> AccessClaims:
    claims = AccessClaims(
        issuer="https://ensu.example",
        audience="https://ensu.example/ensudocuments/v1",
        subject="client-TS-A",
        client_id="client-TS-A",
        issued_at=0,
        expires_at=600,
        not_before=0,
        jwt_id="jti-1",
        scopes=frozenset(),
        thumbprint=CERT.thumbprint,
        environment=Environment.SANDBOX,
        id_teleservice="TS-A",
        kid="kid-1",
    )
    return replace(claims, **changes)


@dataclass
class Authority:
    """The stores as the checks see them: téléservices by thumbprint, one token."""

    views: Mapping[str, tuple[TeleserviceView, ...]] = field(default_factory=dict)
    claims: AccessClaims | None = None
    refusal: str | None = None
    revoked: frozenset[str] = frozenset()
    #: Serial numbers in the CA's CRL.
    crl: frozenset[int] = frozenset()
    asked: list[Any] = field(default_factory=list)

    async def teleservices_for(self, thumbprint: str) -> tuple[TeleserviceView, ...]:
        self.asked.append(thumbprint)
        return self.views.get(thumbprint, ())

    async def verify_token(self, token: str, now: float) -> AccessClaims:
        self.asked.append((token, now))
        if self.refusal is not None:
            raise TokenError(self.refusal)
        assert self.claims is not None
        return self.claims

    async def is_revoked(self, claims: AccessClaims) -> bool:
        self.asked.append(claims.jwt_id)
        return claims.jwt_id in self.revoked

    def certificate_revoked(self, certificate: ClientCertificate, now: float) -> bool:
        return certificate.serial in self.crl

    @property
    def quota_counter(self) -> QuotaCounter:
        raise NotImplementedError


def _attempt(
    *,
    pem: str | None = CERT.pem,
    peer: str | None = PEER,
    headers: Iterable[tuple[bytes, bytes]] = (),
    authority: Authority | None = None,
    now: float = 0.0,
    **found: Any,
) -> Attempt:
    """A direct-mode attempt: the certificate in the ASGI ``tls`` extension."""
    tls = {"client_cert_chain": [pem]} if pem is not None else {}
    scope = {
        "type": "http",
        "headers": list(headers),
        "client": (peer, 50_000) if peer is not None else None,
        "extensions": {"tls": tls},
    }
    return Attempt(
        scope=scope,
        headers=dict(headers),
        settings=Settings(),
        authority=authority or Authority(),
        now=now,
        **found,
    )


async def _refused(check: checks.Check, attempt: Attempt, error: type[EnsuError]) -> str:
    with pytest.raises(error) as caught:
        await check(attempt)
    assert type(caught.value) is error
    return caught.value.reason


# -- R-GW-1: the certificate -----------------------------------------------------------


async def test_certificate_registered_and_in_date_passes() -> None:
    views = (_view("TS-A"), _view("TS-B"))
    attempt = _attempt(authority=Authority({CERT.thumbprint: views}), now=1.0)
    await checks.CertificateCheck()(attempt)
    assert attempt.certificate == parse_pem(CERT.pem)
    assert attempt.candidates == views


async def test_certificate_is_valid_up_to_its_last_second() -> None:
    """RFC 5280 §4.1.2.5: ``notAfter`` is inclusive; one second later it has expired."""
    certificate = parse_pem(CERT.pem)
    assert certificate is not None
    authority = Authority({CERT.thumbprint: (_view("TS-A"),)})
    last = _attempt(authority=authority, now=certificate.not_valid_after)
    await checks.CertificateCheck()(last)
    assert last.certificate == certificate
    late = _attempt(authority=authority, now=certificate.not_valid_after + 1)
    reason = await _refused(checks.CertificateCheck(), late, CertificateInvalid)
    assert reason == "certificate_expired"
    assert late.certificate is None


@pytest.mark.parametrize(
    ("pem", "reason"),
    [(None, "certificate_absent"), ("not a certificate", "certificate_absent")],
)
async def test_certificate_absent(pem: str | None, reason: str) -> None:
    attempt = _attempt(pem=pem, authority=Authority({CERT.thumbprint: (_view("TS-A"),)}))
    assert await _refused(checks.CertificateCheck(), attempt, CertificateInvalid) == reason


async def test_certificate_not_registered() -> None:
    attempt = _attempt(pem=OTHER_CERT.pem, authority=Authority({CERT.thumbprint: (_view("A"),)}))
    reason = await _refused(checks.CertificateCheck(), attempt, CertificateInvalid)
    assert reason == "certificate_not_registered"
    assert attempt.authority.asked == [OTHER_CERT.thumbprint]  # type: ignore[attr-defined]


async def test_certificate_in_the_crl_is_refused_before_any_store_read() -> None:
    """R-GW-1 "not revoked": a certificate in the CA's CRL is refused, registered or not,
    without asking for its téléservices."""
    certificate = parse_pem(CERT.pem)
    assert certificate is not None
    authority = Authority({CERT.thumbprint: (_view("TS-A"),)}, crl=frozenset({certificate.serial}))
    attempt = _attempt(authority=authority, now=1.0)
    reason = await _refused(checks.CertificateCheck(), attempt, CertificateInvalid)
    assert reason == "certificate_revoked"
    assert authority.asked == []  # no store read for a revoked certificate
    assert attempt.certificate is None


# -- R-GW-2: the IP allowlist ----------------------------------------------------------


async def test_ip_keeps_the_teleservices_whose_allowlist_holds_it() -> None:
    """A network holding the address is enough (any, not all); the others are dropped."""
    inside = _view("TS-A", "198.51.100.0/24", "192.0.2.0/28")
    outside = _view("TS-B", "198.51.100.0/24")
    attempt = _attempt(candidates=(inside, outside))
    await checks.IPCheck()(attempt)
    assert attempt.ip == PEER
    assert attempt.candidates == (inside,)


async def test_ip_outside_every_allowlist() -> None:
    attempt = _attempt(candidates=(_view("TS-A", "198.51.100.0/24"),))
    assert await _refused(checks.IPCheck(), attempt, IPNotAllowed) == "ip_outside_allowlist"
    assert attempt.ip is None


@pytest.mark.parametrize("peer", [None, "", "not-an-address"])
async def test_ip_unknown(peer: str | None) -> None:
    attempt = _attempt(peer=peer, candidates=(_view("TS-A", "0.0.0.0/0"),))
    assert await _refused(checks.IPCheck(), attempt, IPNotAllowed) == "ip_unknown"


# -- R-GW-3: ID_Teleservice ------------------------------------------------------------


async def test_teleservice_picks_the_named_one_among_the_candidates() -> None:
    first, second = _view("TS-A"), _view("TS-B")
    attempt = _attempt(headers=[(b"id_teleservice", b"TS-B")], candidates=(first, second))
    await checks.TeleserviceCheck()(attempt)
    assert attempt.teleservice is second


async def test_teleservice_header_is_read_as_latin_1() -> None:
    """Header bytes are ISO-8859-1 (RFC 9110 §5.5): ``é`` is one byte, 0xE9."""
    named = _view("TS-é")
    attempt = _attempt(headers=[(b"id_teleservice", "TS-é".encode("latin-1"))], candidates=(named,))
    await checks.TeleserviceCheck()(attempt)
    assert attempt.teleservice is named


async def test_teleservice_absent_or_not_bound() -> None:
    absent = _attempt(candidates=(_view("TS-A"),))
    reason = await _refused(checks.TeleserviceCheck(), absent, TeleserviceInvalid)
    assert reason == "id_teleservice_absent"
    unbound = _attempt(headers=[(b"id_teleservice", b"TS-B")], candidates=(_view("TS-A"),))
    reason = await _refused(checks.TeleserviceCheck(), unbound, TeleserviceInvalid)
    assert reason == "id_teleservice_not_bound"
    assert unbound.teleservice is None


# -- R-GW-4: the bearer token ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer abc.def", "abc.def"),
        (b"bearer abc.def", "abc.def"),
        (b"BEARER abc.def", "abc.def"),
        (b"Bearer  XabcX  ", "XabcX"),  # spaces around are dropped, nothing else
        (b"Bearer \tabc\t", "\tabc\t"),  # not SP: left for the verification to refuse
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"Bearer    ", None),
        (b"Bearer a b", None),
        (b"Bearerabc", None),
        (b"Basic abc", None),
        (b"XbearerX abc", None),
    ],
)
def test_bearer_token(value: bytes, token: str | None) -> None:
    """RFC 6750 §2.1: ``Bearer`` (any case), one space, the token, nothing after it."""
    assert checks.bearer_token({b"authorization": value}) == token


def test_bearer_token_only_in_the_authorization_header() -> None:
    assert checks.bearer_token({}) is None
    assert checks.bearer_token({b"x-authorization": b"Bearer abc"}) is None


def _token_attempt(authority: Authority, *, view: TeleserviceView | None = None) -> Attempt:
    return _attempt(
        headers=[(b"authorization", b"Bearer tok")],
        authority=authority,
        now=42.0,
        certificate=parse_pem(CERT.pem),
        teleservice=view or _view("TS-A"),
    )


async def test_token_of_this_client_bound_to_this_certificate_passes() -> None:
    claims = _claims()
    authority = Authority(claims=claims)
    attempt = _token_attempt(authority)
    await checks.TokenCheck()(attempt)
    assert attempt.claims is claims
    assert authority.asked == [("tok", 42.0), "jti-1"]  # verified at the attempt's time


async def test_token_absent_or_not_a_bearer_token() -> None:
    absent = _attempt(authority=Authority(claims=_claims()))
    assert await _refused(checks.TokenCheck(), absent, TokenMissing) == "token_absent"
    basic = _attempt(headers=[(b"authorization", b"Basic eDp5")])
    assert await _refused(checks.TokenCheck(), basic, TokenMissing) == "authorization_not_bearer"


async def test_token_that_does_not_verify_keeps_the_reason() -> None:
    attempt = _token_attempt(Authority(refusal="expired"))
    assert await _refused(checks.TokenCheck(), attempt, TokenInvalid) == "token_expired"
    assert attempt.claims is None


@pytest.mark.parametrize(
    ("claims", "error", "reason"),
    [
        (
            _claims(thumbprint=OTHER_CERT.thumbprint),
            TokenInvalid,
            "token_bound_to_another_certificate",
        ),
        (
            _claims(environment=Environment.PRODUCTION),
            HabilitationInactive,
            "token_of_another_environment",
        ),
        (
            _claims(client_id="client-TS-B"),
            TeleserviceInvalid,
            "id_teleservice_not_the_token_client",
        ),
    ],
    ids=["binding", "environment", "client"],
)
async def test_token_for_another_call(
    claims: AccessClaims, error: type[EnsuError], reason: str
) -> None:
    attempt = _token_attempt(Authority(claims=claims))
    assert await _refused(checks.TokenCheck(), attempt, error) == reason
    assert attempt.claims is None


async def test_revoked_token() -> None:
    attempt = _token_attempt(Authority(claims=_claims(), revoked=frozenset({"jti-1"})))
    assert await _refused(checks.TokenCheck(), attempt, TokenInvalid) == "token_revoked"
    assert attempt.claims is None


# -- R-GW-5: the habilitation ----------------------------------------------------------


def _noon(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(12), clock.PARIS).timestamp()


def _rights(view: TeleserviceView, day: dt.date) -> Attempt:
    return _attempt(teleservice=view, now=_noon(day))


@pytest.mark.parametrize("offset", [0, 1, 30])
async def test_rights_inside_the_validity_dates_inclusive(offset: int) -> None:
    await checks.RightsCheck()(_rights(_view("TS-A"), DAY + dt.timedelta(days=offset)))


async def test_rights_without_an_end_date() -> None:
    view = _view("TS-A", valid_until=None)
    await checks.RightsCheck()(_rights(view, DAY + dt.timedelta(days=3650)))
    before = _rights(view, DAY - dt.timedelta(days=1))
    reason = await _refused(checks.RightsCheck(), before, HabilitationInactive)
    assert reason == "habilitation_out_of_validity"


@pytest.mark.parametrize("offset", [-1, 31])
async def test_rights_outside_the_validity_dates(offset: int) -> None:
    attempt = _rights(_view("TS-A"), DAY + dt.timedelta(days=offset))
    reason = await _refused(checks.RightsCheck(), attempt, HabilitationInactive)
    assert reason == "habilitation_out_of_validity"


async def test_rights_use_the_paris_date() -> None:
    """R-GW-5: 23:30 UTC on the last day is already the next day in Paris."""
    view = _view("TS-A")
    assert view.valid_until is not None
    late = dt.datetime.combine(view.valid_until, dt.time(23, 30), dt.UTC).timestamp()
    attempt = _attempt(teleservice=view, now=late)
    reason = await _refused(checks.RightsCheck(), attempt, HabilitationInactive)
    assert reason == "habilitation_out_of_validity"


@pytest.mark.parametrize("status", [TeleserviceStatus.SUSPENDED, TeleserviceStatus.REVOKED])
async def test_rights_of_a_suspended_or_revoked_habilitation(status: TeleserviceStatus) -> None:
    attempt = _rights(_view("TS-A", status=status), DAY)
    reason = await _refused(checks.RightsCheck(), attempt, HabilitationInactive)
    assert reason == f"habilitation_{status.value}"


async def test_rights_of_another_environment() -> None:
    attempt = _rights(_view("TS-A", environment=Environment.PRODUCTION), DAY)
    reason = await _refused(checks.RightsCheck(), attempt, HabilitationInactive)
    assert reason == "habilitation_other_environment"


# -- R-GW-6: X-Correlation-ID ----------------------------------------------------------


async def test_correlation_id_valid_passes() -> None:
    await checks.CorrelationIdCheck()(_attempt(correlation_id=UUID))


@pytest.mark.parametrize(("value", "valid"), [(UUID, False), (None, True), (None, False)])
async def test_correlation_id_missing_or_invalid(value: str | None, valid: bool) -> None:
    attempt = _attempt(correlation_id=value, correlation_id_valid=valid)
    reason = await _refused(checks.CorrelationIdCheck(), attempt, CorrelationIdInvalid)
    assert reason == "correlation_id_invalid"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (UUID.encode(), UUID),
        (UUID.upper().encode(), UUID.upper()),
        (None, None),
        (b"", None),
        (UUID.encode() + b"0", None),
        (b"{" + UUID.encode() + b"}", None),
        (UUID.replace("-", "").encode(), None),
    ],
)
def test_valid_correlation_id(raw: bytes | None, expected: str | None) -> None:
    assert checks.valid_correlation_id(raw) == expected
