"""The access chain of the terms of use (CGU §4, §8), one small check per step.

Each check reads what the previous ones established on the :class:`Attempt` and either
adds its own finding or raises the contract's error; the chain stops at the first
failure and no data is exchanged (R-GW-1 to R-GW-6). The order is the terms' order:
certificate, IP, technical identifier, token, rights, quota; header validation
(``X-Correlation-ID``) comes after the identity checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ensu import clock
from ensu.certificates import ClientCertificate, client_ip, parse_address, presented_certificate
from ensu.config import Settings
from ensu.consumers.models import TeleserviceStatus
from ensu.consumers.schemas import TeleserviceView
from ensu.errors import (
    CertificateInvalid,
    CorrelationIdInvalid,
    HabilitationInactive,
    IPNotAllowed,
    TeleserviceInvalid,
    TokenInvalid,
    TokenMissing,
)
from ensu.gateway.quota.counter import QuotaCheck, QuotaCounter, QuotaDecision
from ensu.oauth.tokens import AccessClaims, TokenError, binding_matches


class Authority(Protocol):
    """What the checks need from the stores, cached by the gateway's state."""

    async def teleservices_for(self, thumbprint: str) -> tuple[TeleserviceView, ...]: ...

    async def verify_token(self, token: str, now: float) -> AccessClaims: ...

    async def is_revoked(self, claims: AccessClaims) -> bool: ...

    def certificate_revoked(self, certificate: ClientCertificate, now: float) -> bool: ...

    @property
    def quota_counter(self) -> QuotaCounter: ...


@dataclass(slots=True)
class Attempt:
    """One request going through the chain, and what each check found."""

    scope: Mapping[str, Any]
    headers: Mapping[bytes, bytes]
    settings: Settings
    authority: Authority
    now: float
    certificate: ClientCertificate | None = None
    candidates: tuple[TeleserviceView, ...] = ()
    ip: str | None = None
    teleservice: TeleserviceView | None = None
    claims: AccessClaims | None = None
    #: The id the answer and the journal carry: the request's if valid, else a fresh one.
    correlation_id: str | None = None
    #: Whether the request's own ``X-Correlation-ID`` was a UUID (R-GW-6).
    correlation_id_valid: bool = True
    quota: QuotaDecision | None = None


class Check(Protocol):
    name: str

    async def __call__(self, attempt: Attempt) -> None: ...


class CertificateCheck:
    """R-GW-1: a verified client certificate, in date, not revoked (the CA's CRL, reloaded
    on change: :class:`ensu.certificates.RevocationList`), registered for a téléservice."""

    name = "certificate"

    async def __call__(self, attempt: Attempt) -> None:
        certificate = presented_certificate(attempt.scope, attempt.settings)
        if certificate is None:
            raise CertificateInvalid(reason="certificate_absent")
        if certificate.not_valid_after < attempt.now:
            raise CertificateInvalid(reason="certificate_expired")
        if attempt.authority.certificate_revoked(certificate, attempt.now):
            raise CertificateInvalid(reason="certificate_revoked")
        candidates = await attempt.authority.teleservices_for(certificate.thumbprint)
        if not candidates:
            raise CertificateInvalid(reason="certificate_not_registered")
        attempt.certificate, attempt.candidates = certificate, candidates


class IPCheck:
    """R-GW-2: the caller's IP inside the allowlist of a téléservice of that certificate."""

    name = "ip"

    async def __call__(self, attempt: Attempt) -> None:
        raw = client_ip(attempt.scope, attempt.settings)
        address = parse_address(raw) if raw else None
        if address is None:
            raise IPNotAllowed(reason="ip_unknown")
        candidates = tuple(
            view for view in attempt.candidates if any(address in n for n in view.networks)
        )
        if not candidates:
            raise IPNotAllowed(reason="ip_outside_allowlist")
        attempt.ip, attempt.candidates = str(address), candidates


class TeleserviceCheck:
    """R-GW-3: ``ID_Teleservice`` present and one bound to the presented certificate."""

    name = "teleservice"

    async def __call__(self, attempt: Attempt) -> None:
        raw = attempt.headers.get(b"id_teleservice")
        if raw is None:
            raise TeleserviceInvalid(reason="id_teleservice_absent")
        wanted = raw.decode("latin-1")
        for view in attempt.candidates:
            if view.id_teleservice == wanted:
                attempt.teleservice = view
                return
        raise TeleserviceInvalid(reason="id_teleservice_not_bound")


def bearer_token(headers: Mapping[bytes, bytes]) -> str | None:
    """The bearer token of the ``Authorization`` header only (RFC 6750 §2.1; never the
    query or the body), the scheme compared case-insensitively."""
    raw = headers.get(b"authorization")
    if raw is None:
        return None
    scheme, _, token = raw.decode("latin-1").partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class TokenCheck:
    """R-GW-4: a valid access token of this téléservice, bound to this certificate.

    CONTRACT.md's table: no ``Authorization: Bearer <token>`` (absent, another scheme,
    no token after the scheme) is 401 900902 "no bearer token"; a bearer token that does
    not verify is 401 900901; a valid token of the other environment (a sandbox token at
    production or the reverse) is 403 910004, like an habilitation of the other
    environment.
    """

    name = "token"

    async def __call__(self, attempt: Attempt) -> None:
        token = bearer_token(attempt.headers)
        if token is None:
            absent = b"authorization" not in attempt.headers
            raise TokenMissing(reason="token_absent" if absent else "authorization_not_bearer")
        try:
            claims = await attempt.authority.verify_token(token, attempt.now)
        except TokenError as exc:
            raise TokenInvalid(reason=f"token_{exc.reason}") from None
        assert attempt.certificate is not None
        assert attempt.teleservice is not None
        if not binding_matches(claims, attempt.certificate.thumbprint):
            raise TokenInvalid(reason="token_bound_to_another_certificate")
        if claims.environment is not attempt.settings.environment:
            raise HabilitationInactive(reason="token_of_another_environment")
        if claims.client_id != attempt.teleservice.client_id:
            raise TeleserviceInvalid(reason="id_teleservice_not_the_token_client")
        # A téléservice that is not active is refused 403 910004 by RightsCheck, its
        # tokens revoked or not: an incident's isolation (R-OPS-2) suspends it and
        # revokes its tokens, and its calls say "habilitation inactive", not "bad token".
        active = attempt.teleservice.status is TeleserviceStatus.ACTIVE
        if active and await attempt.authority.is_revoked(claims):
            raise TokenInvalid(reason="token_revoked")
        attempt.claims = claims


class RightsCheck:
    """R-GW-5: the habilitation is active today and of this environment.

    The document-level rights (code and period inside the perimeter) are applied by the
    routes, which see the request's codes and dates.
    """

    name = "rights"

    async def __call__(self, attempt: Attempt) -> None:
        view = attempt.teleservice
        assert view is not None
        today = clock.legal_date(attempt.now)  # the token endpoint's day (ensu.clock)
        if view.status is not TeleserviceStatus.ACTIVE:
            raise HabilitationInactive(reason=f"habilitation_{view.status.value}")
        if view.environment is not attempt.settings.environment:
            raise HabilitationInactive(reason="habilitation_other_environment")
        if today < view.valid_from or (view.valid_until is not None and today > view.valid_until):
            raise HabilitationInactive(reason="habilitation_out_of_validity")


class CorrelationIdCheck:
    """R-GW-6: ``X-Correlation-ID`` is a UUID (checked after the identity checks)."""

    name = "correlation_id"

    async def __call__(self, attempt: Attempt) -> None:
        if attempt.correlation_id is None or not attempt.correlation_id_valid:
            raise CorrelationIdInvalid(reason="correlation_id_invalid")


UUID_PATTERN = re.compile(rb"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def valid_correlation_id(raw: bytes | None) -> str | None:
    """The header's value when it is a UUID in its canonical 8-4-4-4-12 form, else None."""
    if raw is None or not UUID_PATTERN.fullmatch(raw):
        return None
    return raw.decode("ascii")


#: The chain, in the order of the terms (CGU §4, §9.2).
CHAIN: tuple[Check, ...] = (
    CertificateCheck(),
    IPCheck(),
    TeleserviceCheck(),
    TokenCheck(),
    RightsCheck(),
    QuotaCheck(),
    CorrelationIdCheck(),
)
