"""The authorization server's logic: client authentication, tokens, introspection,
revocation, metadata (R-GW-4; RFC 6749 §4.4, RFC 8705, RFC 9068, RFC 7662, RFC 7009,
RFC 8414, RFC 9700).

Client authentication (:func:`authenticate`) is the same at ``/token``,
``/introspect`` and ``/revoke``: ``client_id`` is required in the body, and the presented
certificate must be one registered for that client (RFC 8705 §2: the certificate *is*
the credential for ``tls_client_auth``, §2.1); a ``client_secret_basic`` client adds
its secret in HTTP Basic (RFC 6749 §2.3.1), never instead of the certificate. The
caller's IP must be inside the téléservice's allowlist, as on the data routes (R-GW-2).
The methods not supported are refused, never ignored: a ``client_assertion`` (RFC 7523
§2.2, ``private_key_jwt``/``client_secret_jwt``) or a ``client_secret`` in the body
(``client_secret_post``, RFC 6749 §2.3.1) is ``invalid_client``.

Refusal words at ``/token`` (RFC 6749 §5.2):

- ``invalid_request`` (400): not a form, a parameter repeated, ``client_id`` or
  ``grant_type`` missing;
- ``invalid_client`` (401): no certificate, unknown client, certificate not registered
  for this client, caller IP outside the allowlist, wrong or missing secret, Basic
  credentials for another client or for a ``tls_client_auth`` client, an authentication
  method not supported (client assertion, secret in the body). Nothing tells these
  cases apart;
- ``unauthorized_client`` (400): the client *did* authenticate but may not have a token:
  téléservice suspended, revoked, outside its validity dates, or of the other
  environment (R-GW-5). Only the certificate's holder can learn this, so saying it helps
  the partner and tells an attacker nothing;
- ``unsupported_grant_type`` (400): anything but ``client_credentials``;
- ``invalid_scope`` (400): a scope other than those of :data:`SCOPES`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.audit import service as audit
from ensu.audit.records import EventRecord
from ensu.audit.tags import EventTag
from ensu.certificates import ClientCertificate, parse_address
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod
from ensu.consumers.schemas import TeleserviceView
from ensu.oauth import keys, tokens
from ensu.oauth.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from ensu.oauth.models import CLIENT_CUTOFF_PREFIX, Revocation

GRANT_TYPE = "client_credentials"
#: The scopes this server knows; a request without ``scope`` gets all of them.
SCOPES = frozenset({"documents"})
AUTH_METHODS = (AuthMethod.TLS_CLIENT_AUTH.value, AuthMethod.CLIENT_SECRET_BASIC.value)
#: RFC 7662 §2.2: every inactive case answers exactly this, whatever the cause.
INACTIVE = b'{"active":false}'


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    client_id: str
    secret: str


def parse_basic(authorization: str) -> BasicCredentials:
    """HTTP Basic credentials, form-urldecoded as RFC 6749 §2.3.1 requires."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidClient("Authentification du client invalide.", reason="authorization_scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient(
            "Authentification du client invalide.", reason="basic_malformed"
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("Authentification du client invalide.", reason="basic_malformed")
    return BasicCredentials(client_id=unquote_plus(client_id), secret=unquote_plus(secret))


def _refused(reason: str) -> InvalidClient:
    return InvalidClient("Authentification du client refusée.", reason=reason)


async def _check_secret(view: TeleserviceView, basic: BasicCredentials | None) -> None:
    """The secret for a ``client_secret_basic`` client; none for a ``tls_client_auth`` one
    (RFC 6749 §2.3: one method per client)."""
    if view.auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        if basic is None:
            raise _refused("secret_missing")
        if not await consumers.check_client_secret(view, basic.secret):
            raise _refused("secret_wrong")
    elif basic is not None:
        raise _refused("auth_method_not_registered")


#: Body parameters of authentication methods this server does not support (RFC 8414
#: metadata lists the supported ones): refused, not ignored.
UNSUPPORTED_CREDENTIALS = {
    "client_assertion": "client_assertion_unsupported",
    "client_assertion_type": "client_assertion_unsupported",
    "client_secret": "client_secret_post_unsupported",
}


def _refuse_unsupported_methods(form: Mapping[str, str]) -> None:
    for name, reason in UNSUPPORTED_CREDENTIALS.items():
        if name in form:
            raise InvalidClient(
                "Méthode d'authentification du client non prise en charge"
                " (tls_client_auth ou client_secret_basic attendus).",
                reason=reason,
            )


def _check_ip(view: TeleserviceView, peer: str | None) -> None:
    """R-GW-2 at the token endpoint: the caller's IP inside the téléservice's allowlist."""
    address = parse_address(peer) if peer else None
    if address is None or not any(address in network for network in view.networks):
        raise _refused("ip_outside_allowlist")


def presented_client(
    form: Mapping[str, str], authorization: str | None
) -> tuple[str, BasicCredentials | None]:
    """The ``client_id`` the request names and its Basic credentials, if any; the
    unsupported methods and a Basic user that is not ``client_id`` refused."""
    client_id = form.get("client_id")
    if not client_id:
        raise InvalidRequest("Le paramètre client_id est requis.", reason="client_id_missing")
    _refuse_unsupported_methods(form)
    basic = parse_basic(authorization) if authorization else None
    if basic is not None and basic.client_id != client_id:
        raise _refused("basic_client_id_mismatch")
    return client_id, basic


#: How the endpoints find a client: ``(client_id, certificate)`` → its view, or ``None``.
ClientLookup = Callable[[str, ClientCertificate], Awaitable[TeleserviceView | None]]


def lookup_in(session: AsyncSession) -> ClientLookup:
    """The lookup that reads the database in ``session``."""

    async def lookup(client_id: str, certificate: ClientCertificate) -> TeleserviceView | None:
        return await consumers.get_by_client_id(session=session, client_id=client_id)

    return lookup


async def authenticate(
    *,
    lookup: ClientLookup,
    form: Mapping[str, str],
    certificate: ClientCertificate | None,
    authorization: str | None,
    peer: str | None,
) -> TeleserviceView:
    """The authenticated client, or :class:`InvalidRequest`/:class:`InvalidClient`.

    ``form``: the request's body parameters (``client_id``, and any credential it carries);
    ``peer``: the caller's IP as the gateway reads it (:func:`ensu.certificates.client_ip`).
    Authentication only: whether the client may have a token is :func:`authorize`'s call.
    """
    client_id, basic = presented_client(form, authorization)
    if certificate is None:
        raise _refused("certificate_missing")
    view = await lookup(client_id, certificate)
    if view is None:
        if basic is not None:
            await consumers.check_client_secret(None, basic.secret)  # same time as a real one
        raise _refused("client_unknown")
    if certificate.thumbprint not in view.thumbprints:
        raise _refused("certificate_not_registered")
    _check_ip(view, peer)
    await _check_secret(view, basic)
    return view


async def authenticate_client(
    *,
    session: AsyncSession,
    form: Mapping[str, str],
    certificate: ClientCertificate | None,
    authorization: str | None,
    peer: str | None,
) -> TeleserviceView:
    """:func:`authenticate` against the database (``/introspect``, ``/revoke``)."""
    return await authenticate(
        lookup=lookup_in(session),
        form=form,
        certificate=certificate,
        authorization=authorization,
        peer=peer,
    )


def authorize(*, client: TeleserviceView, settings: Settings, today: dt.date) -> None:
    """``unauthorized_client`` unless the téléservice is active, inside its validity
    dates and of this deployment's environment (R-GW-5)."""
    if client.environment is not settings.environment:
        raise UnauthorizedClient(
            "Ce téléservice relève d'un autre environnement.", reason="environment"
        )
    if not client.active_on(today):
        raise UnauthorizedClient(
            "Ce téléservice est suspendu, révoqué ou hors de sa période de validité.",
            reason=f"teleservice_{client.status.value}",
        )


def parse_scope(raw: str | None) -> frozenset[str]:
    """Space-delimited scopes (RFC 6749 §3.3); none asked means all of :data:`SCOPES`."""
    if raw is None or not raw.strip():
        return SCOPES
    asked = frozenset(raw.split(" ")) - {""}
    unknown = asked - SCOPES
    if unknown:
        raise InvalidScope(f"Portée inconnue : {' '.join(sorted(unknown))}.", reason="scope")
    return asked


def _grant_type(form: Mapping[str, str]) -> None:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("Le paramètre grant_type est requis.", reason="grant_type_missing")
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantType(
            "Seul grant_type=client_credentials est accepté.", reason="grant_type"
        )


async def token(
    *,
    lookup: ClientLookup,
    signing_key: Callable[[], Awaitable[keys.ActiveKey]],
    journal: Callable[[EventRecord], Awaitable[object]],
    settings: Settings,
    form: Mapping[str, str],
    certificate: ClientCertificate | None,
    authorization: str | None,
    peer: str | None,
    now: dt.datetime,
) -> dict[str, object]:
    """The token endpoint (RFC 6749 §4.4): the response body, or an :class:`OAuthError`.

    The token is bound to the presenting certificate (RFC 8705 §3) and lives
    ``settings.token_ttl_seconds``; there is no refresh token (RFC 6749 §4.4.3). Nothing
    here needs the database: the router's ``lookup`` serves clients from the gateway's
    one-second cache of téléservice views (so a suspension or a removed certificate is
    enforced within a second on every instance, as on the data routes), ``signing_key``
    is cached in process (:class:`~ensu.oauth.keys.CurrentKey`), and the issuance is
    appended to the journal through its group commit (``journal``): no token is handed
    out whose record is not durable (R-TR-1).
    """
    client = await authenticate(
        lookup=lookup,
        form=form,
        certificate=certificate,
        authorization=authorization,
        peer=peer,
    )
    assert certificate is not None  # authenticate refuses without one
    _grant_type(form)
    authorize(client=client, settings=settings, today=clock.legal_date(now))
    scopes = parse_scope(form.get("scope"))
    key = await signing_key()
    issued = issue_token(
        key=key,
        settings=settings,
        client=client,
        thumbprint=certificate.thumbprint,
        scopes=scopes,
        now=now,
    )
    await journal(issuance_record(issued, client=client, kid=key.kid, now=now))
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": settings.token_ttl_seconds,
        "scope": " ".join(sorted(scopes)),
    }


def issue_token(
    *,
    key: keys.ActiveKey,
    settings: Settings,
    client: TeleserviceView,
    thumbprint: str,
    scopes: frozenset[str],
    now: dt.datetime,
) -> tokens.IssuedToken:
    """Sign a token for an authenticated, authorized client (not journaled: see
    :func:`issuance_record`)."""
    return tokens.issue(
        key=key,
        issuer=settings.issuer,
        audience=settings.audience,
        client_id=client.client_id,
        id_teleservice=client.id_teleservice,
        environment=client.environment,
        thumbprint=thumbprint,
        scopes=scopes,
        now=now.timestamp(),
        ttl_seconds=settings.token_ttl_seconds,
    )


def issuance_record(
    issued: tokens.IssuedToken, *, client: TeleserviceView, kid: str, now: dt.datetime
) -> EventRecord:
    """The journal record of an issuance: its id, key and binding, never the token
    (R-TR-1). Appended straight to the log (no outbox row: no change of the database
    goes with it), so it carries no ``event_id``."""
    claims = issued.claims
    return EventRecord(
        at=now,
        tag=EventTag.OAUTH_TOKEN_ISSUED,
        actor=f"client:{client.client_id}",
        details={
            "client_id": client.client_id,
            "id_teleservice": client.id_teleservice,
            "jti": claims.jwt_id,
            "kid": kid,
            "exp": claims.expires_at,
            "scope": " ".join(sorted(claims.scopes)),
            "thumbprint": claims.thumbprint,
        },
    )


async def record_refusal(
    *,
    session: AsyncSession,
    error: OAuthError,
    endpoint: str,
    client_id: str | None,
    certificate: ClientCertificate | None,
    peer: str | None,
) -> None:
    """Journal a refused request (R-TR-1, and the repeated refusals of R-OPS-1)."""
    tag = (
        EventTag.OAUTH_CLIENT_AUTHENTICATION_FAILED
        if isinstance(error, InvalidClient)
        else EventTag.OAUTH_TOKEN_REFUSED
    )
    await audit.record_event(
        session=session,
        tag=tag,
        actor=f"client:{(client_id or '?')[:64]}",
        details={
            "endpoint": endpoint,
            "error": error.error,
            "reason": error.reason,
            "client_id": (client_id or "")[:64] or None,
            "thumbprint": certificate.thumbprint if certificate else None,
            "ip": peer,
        },
    )


# -- introspection and revocation --------------------------------------------------------


async def _verified(
    *, session: AsyncSession, settings: Settings, token_value: str, now: dt.datetime
) -> tokens.AccessClaims | None:
    published = await keys.verification_keys(session=session, now=now)
    try:
        return tokens.verify(
            token_value,
            keys=published,
            issuer=settings.issuer,
            audience=settings.audience,
            now=now.timestamp(),
        )
    except tokens.TokenError:
        return None


def _is_active_for(claims: tokens.AccessClaims, client: TeleserviceView, today: dt.date) -> bool:
    """The token belongs to ``client`` (RFC 7662 §4: a client sees only its own tokens),
    which is active, of the token's environment, and still holds the bound certificate."""
    return (
        claims.client_id == client.client_id
        and client.active_on(today)
        and client.environment is claims.environment
        and claims.thumbprint in client.thumbprints
    )


async def introspect(
    *,
    session: AsyncSession,
    settings: Settings,
    client: TeleserviceView,
    token_value: str,
    now: dt.datetime,
) -> dict[str, object] | None:
    """RFC 7662 §2.2 for the authenticated ``client``; ``None`` means :data:`INACTIVE`.

    Inactive, indistinguishably: garbage, bad signature, unknown or retired key, expired,
    revoked, *another client's token* (we answer inactive rather than reveal that a
    token exists), client suspended or revoked, certificate no longer registered.
    """
    claims = await _verified(session=session, settings=settings, token_value=token_value, now=now)
    if claims is None or not _is_active_for(claims, client, clock.legal_date(now)):
        return None
    if await is_revoked(session=session, jti=claims.jwt_id):
        return None
    return {
        "active": True,
        "scope": " ".join(sorted(claims.scopes)),
        "client_id": claims.client_id,
        "token_type": "Bearer",
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "nbf": claims.not_before,
        "sub": claims.subject,
        "aud": claims.audience,
        "iss": claims.issuer,
        "jti": claims.jwt_id,
        "cnf": {"x5t#S256": claims.thumbprint},
        "ensu_env": claims.environment.value,
        "id_teleservice": claims.id_teleservice,
    }


async def revoke(
    *,
    session: AsyncSession,
    settings: Settings,
    client: TeleserviceView,
    token_value: str,
    now: dt.datetime,
) -> tokens.AccessClaims | None:
    """RFC 7009: revoke ``client``'s own token; its claims when something was revoked.

    The endpoint answers 200 whatever this returns: an invalid or expired token needs no
    revocation (§2.2), and another client's token is left alone *silently* (§2.1 lets the
    server refuse; saying so would confirm the token is valid to someone who should not
    hold it). The revocation is stored until the token expires; the gateway refuses the
    token on its next call (:func:`is_revoked`).
    """
    claims = await _verified(session=session, settings=settings, token_value=token_value, now=now)
    if claims is None or claims.client_id != client.client_id:
        return None
    expires_at = dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
    insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(Revocation)
        .values(
            jti=claims.jwt_id, client_id=claims.client_id, expires_at=expires_at, revoked_at=now
        )
        .on_conflict_do_nothing(index_elements=[Revocation.jti])
    )
    await audit.record_event(
        session=session,
        tag=EventTag.OAUTH_TOKEN_REVOKED,
        actor=f"client:{client.client_id}",
        details={"client_id": client.client_id, "jti": claims.jwt_id, "exp": claims.expires_at},
    )
    return claims


#: The longest a token lives (``ENSU_TOKEN_TTL_SECONDS`` is at most 3600).
_LONGEST_TTL = dt.timedelta(seconds=3600 + keys.LEEWAY_SECONDS)


def client_cutoff(client_id: str) -> str:
    """The revocation ``jti`` that cuts every token of ``client_id`` issued until now."""
    return f"{CLIENT_CUTOFF_PREFIX}{client_id}"


async def revoke_client_tokens(
    *, session: AsyncSession, client_id: str, actor: str, reason: str, now: dt.datetime
) -> None:
    """Revoke every token issued to ``client_id`` up to ``now`` (an incident's isolation,
    R-OPS-2): one revocation row, :func:`client_cutoff`, that the gateway applies to each
    token by its client and issue time, within a second on every instance
    (ensu.gateway.revocations); kept until the last such token has expired. Cutting the
    same client again moves the cut-off."""
    expires_at = now + _LONGEST_TTL
    insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    statement = insert(Revocation).values(
        jti=client_cutoff(client_id), client_id=client_id, expires_at=expires_at, revoked_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Revocation.jti],
            set_={"expires_at": expires_at, "revoked_at": now},
        )
    )
    await audit.record_event(
        session=session,
        tag=EventTag.OAUTH_TOKEN_REVOKED,
        actor=actor,
        details={"client_id": client_id, "issued_until": now.isoformat(), "reason": reason[:200]},
    )


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def is_revoked(*, session: AsyncSession, jti: str) -> bool:
    """True when the token ``jti`` was revoked (the gateway's check, RFC 7009 §2)."""
    return await session.scalar(select(Revocation.jti).where(Revocation.jti == jti)) is not None


async def purge_revocations(*, session: AsyncSession, now: dt.datetime) -> int:
    """Forget revocations of tokens expired (beyond the leeway) at ``now``: ``verify``
    refuses those anyway. Returns the number purged."""
    horizon = now - dt.timedelta(seconds=keys.LEEWAY_SECONDS)
    result = await session.execute(delete(Revocation).where(Revocation.expires_at < horizon))
    return int(getattr(result, "rowcount", 0) or 0)


def binding_matches(claims: tokens.AccessClaims, thumbprint: str) -> bool:
    """``cnf.x5t#S256`` equals the presented certificate's thumbprint (RFC 8705 §3.1)."""
    return tokens.binding_matches(claims, thumbprint)


# -- discovery -------------------------------------------------------------------------


def metadata(settings: Settings) -> dict[str, object]:
    """RFC 8414 §2 authorization server metadata; every endpoint requires mutual TLS, so
    no ``mtls_endpoint_aliases`` are needed (RFC 8705 §5)."""
    base = settings.issuer
    return {
        "issuer": base,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
        "introspection_endpoint": f"{base}/introspect",
        "revocation_endpoint": f"{base}/revoke",
        "grant_types_supported": [GRANT_TYPE],
        "response_types_supported": [],
        "scopes_supported": sorted(SCOPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "tls_client_certificate_bound_access_tokens": True,
    }


async def jwks(*, session: AsyncSession, settings: Settings, now: dt.datetime) -> dict[str, object]:
    """The published keys (RFC 7517 §5); a first key is made if none exists yet."""
    await keys.current(session=session, secret_key=settings.secret_key, now=now)
    return dict(await keys.jwks(session=session, now=now))
