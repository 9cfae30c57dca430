"""The authorization server's routes, at the root (CONTRACT.md "OAuth 2.0"; R-GW-4).

Thin: read the form and the certificate, throttle, call ``service``, write RFC 6749 §5.1
/ §5.2 JSON with ``Cache-Control: no-store``. The body is parsed here rather than by
FastAPI so that a repeated parameter is refused (RFC 6749 §3.2) and size is bounded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import clock
from ensu.audit.records import EventRecord
from ensu.audit.service import Journal
from ensu.bounds import length_within
from ensu.certificates import ClientCertificate, client_ip, presented_certificate
from ensu.config import Settings
from ensu.consumers.schemas import TeleserviceView
from ensu.db import store_failures
from ensu.errors import JournalUnavailable, ServiceCut
from ensu.oauth import keys, service
from ensu.oauth.errors import (
    InvalidClient,
    InvalidRequest,
    OAuthError,
    RequestTooLarge,
    SlowDown,
    TemporarilyUnavailable,
)
from ensu.oauth.schemas import (
    AuthorizationServerMetadata,
    IntrospectionResponse,
    JsonWebKeySet,
    OAuthErrorResponse,
    TokenResponse,
)
from ensu.oauth.throttle import Throttle

router = APIRouter(tags=["oauth"])
logger = logging.getLogger("ensu.oauth")

FORM = "application/x-www-form-urlencoded"
#: R-GW-6, OWASP API4:2023: a client-credentials form is a few hundred bytes.
MAX_FORM_BYTES = 8192
TOO_LARGE = f"Corps de requête trop volumineux ({MAX_FORM_BYTES} octets au plus)."
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorResponse},
    401: {"model": OAuthErrorResponse},
    429: {"model": OAuthErrorResponse},
    503: {"model": OAuthErrorResponse},
}


def _form_body(*fields: tuple[str, bool, str]) -> dict[str, Any]:
    """OpenAPI for a form body that the route parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", "description": text}
                            for name, _, text in fields
                        },
                        "required": [name for name, required, _ in fields if required],
                    }
                }
            },
        }
    }


CLIENT_ID = ("client_id", True, "Identifiant du client (RFC 8705 §2.1)")
TOKEN = ("token", True, "Le jeton d'accès")
HINT = ("token_type_hint", False, "access_token (ignoré)")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _throttle(request: Request) -> Throttle:
    """One throttle per application, made on first use (tests may install their own)."""
    state = request.app.state
    if getattr(state, "oauth_throttle", None) is None:
        state.oauth_throttle = Throttle()
    throttle: Throttle = state.oauth_throttle
    return throttle


def _json(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(document),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


def _error(error: OAuthError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json",
        headers={**NO_STORE, **error.headers()},
    )


async def _read_form(request: Request) -> dict[str, str]:
    """The urlencoded body: bounded, each parameter at most once, empty ones omitted
    (RFC 6749 §3.1, §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InvalidRequest(f"Le corps doit être {FORM}.", reason="content_type")
    declared = request.headers.get("content-length")
    if declared is not None and not length_within(declared.encode("latin-1"), MAX_FORM_BYTES):
        raise RequestTooLarge(TOO_LARGE, reason="body_too_large")  # refused before it is read
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:  # chunked, or more than declared
            raise RequestTooLarge(TOO_LARGE, reason="body_too_large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=16
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("Corps de requête illisible.", reason="body_malformed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"Paramètre répété : {name}.", reason="parameter_repeated")
        form[name] = value
    return {name: value for name, value in form.items() if value != ""}


Handler = Callable[
    [AsyncSession, dict[str, str], ClientCertificate | None, dt.datetime], Awaitable[Response]
]


async def _guarded(request: Request, endpoint: str, handler: Handler) -> Response:
    """Throttle, read the form, run ``handler`` in a transaction; a refusal is journaled
    in a transaction of its own (the handler's is rolled back). A database down or too
    slow (the engine is bounded) is 503 ``temporarily_unavailable``: no token is handed
    out whose issuance was not committed with its event, and never a 500."""
    try:
        return await _handled(request, endpoint, handler)
    except store_failures() as error:
        logger.warning("%s: store unavailable: %s", endpoint, type(error).__name__)
        return _error(TemporarilyUnavailable(reason=f"store_{type(error).__name__}"))


async def _handled(request: Request, endpoint: str, handler: Handler) -> Response:
    settings = _settings(request)
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    peer = client_ip(request.scope, settings)
    certificate = presented_certificate(request.scope, settings)
    form: dict[str, str] = {}
    try:
        _check(_throttle(request).check_ip(peer or "?"))
        _refuse_revoked(request, certificate)
        form = await _read_form(request)
        _check(_throttle(request).check_client(form.get("client_id", "")))
        async with sessionmaker() as session, session.begin():
            return await handler(session, form, certificate, clock.now())
    except SlowDown as error:
        return _error(error)  # not journaled: that would amplify a flood
    except OAuthError as error:
        async with sessionmaker() as session, session.begin():
            await service.record_refusal(
                session=session,
                error=error,
                endpoint=endpoint,
                client_id=form.get("client_id"),
                certificate=certificate,
                peer=peer,
            )
        return _error(error)


def _refuse_revoked(request: Request, certificate: ClientCertificate | None) -> None:
    """R-GW-1: no token for a certificate in the CA's CRL (reloaded on change), even when
    the edge that let it through read an older CRL."""
    if certificate is not None and request.app.state.authority.certificate_revoked(
        certificate, clock.time()
    ):
        raise InvalidClient("Authentification du client refusée.", reason="certificate_revoked")


def _check(retry_after: int) -> None:
    if retry_after:
        raise SlowDown(retry_after)


async def _client(
    request: Request,
    session: AsyncSession,
    form: dict[str, str],
    certificate: ClientCertificate | None,
) -> TeleserviceView:
    return await service.authenticate_client(
        session=session,
        form=form,
        certificate=certificate,
        authorization=request.headers.get("authorization"),
        peer=client_ip(request.scope, _settings(request)),
    )


def _token_parameter(form: dict[str, str]) -> str:
    value = form.get("token")
    if value is None:
        raise InvalidRequest("Le paramètre token est requis.", reason="token_missing")
    return value


@router.post(
    "/token",
    summary="Obtenir un jeton d'accès (client credentials, RFC 6749 §4.4, RFC 8705)",
    response_model=TokenResponse,
    responses=ERRORS,
    openapi_extra=_form_body(
        ("grant_type", True, "client_credentials"),
        CLIENT_ID,
        ("scope", False, "Portées séparées par des espaces (documents)"),
    ),
)
async def token(request: Request) -> Response:
    async def handler(
        session: AsyncSession,
        form: dict[str, str],
        certificate: ClientCertificate | None,
        now: dt.datetime,
    ) -> Response:
        state = request.app.state
        window = state.maintenance.current(now.timestamp())
        if window is not None:  # R-SQ-1: no token during a planned window (journaled)
            raise TemporarilyUnavailable(
                reason="maintenance", retry_after=window.retry_after(now.timestamp())
            )
        if request.app.state.cuts.current() is not None:  # R-OPS-2: the service is cut
            raise TemporarilyUnavailable(reason="service_cut", retry_after=ServiceCut.RETRY_AFTER)
        settings = _settings(request)
        body = await service.token(
            lookup=_cached_lookup(state.authority, session),
            signing_key=lambda: _signing_key(request, now),
            journal=lambda record: _journal(state.journal, record),
            settings=settings,
            form=form,
            certificate=certificate,
            authorization=request.headers.get("authorization"),
            peer=client_ip(request.scope, settings),
            now=now,
        )
        return _json(body)

    return await _guarded(request, "token", handler)


class ClientViews(Protocol):
    """The gateway's cache of téléservice views by certificate (one second at most)."""

    async def teleservices_for(self, thumbprint: str) -> tuple[TeleserviceView, ...]: ...


def _cached_lookup(views: ClientViews, session: AsyncSession) -> service.ClientLookup:
    """Clients from the gateway's cache: the certificate's téléservices, the one named
    ``client_id``; the database only when the cache has none (a refusal, then told apart
    precisely: unknown client or certificate not registered)."""
    fallback = service.lookup_in(session)

    async def lookup(client_id: str, certificate: ClientCertificate) -> TeleserviceView | None:
        for view in await views.teleservices_for(certificate.thumbprint):
            if view.client_id == client_id:
                return view
        return await fallback(client_id, certificate)

    return lookup


async def _signing_key(request: Request, now: dt.datetime) -> keys.ActiveKey:
    state = request.app.state
    current: keys.CurrentKey = state.signing_key
    return await current.get(
        sessionmaker=state.sessionmaker, secret_key=_settings(request).secret_key, now=now
    )


async def _journal(journal: Journal, record: EventRecord) -> None:
    """The issuance, durable before the token leaves; a journal that cannot take it
    (integrity stop, store down) hands out no token: 503 ``temporarily_unavailable``."""
    try:
        journal.ensure_serving()
        await journal.append(record)
    except JournalUnavailable as error:
        raise TemporarilyUnavailable(reason="journal_unavailable") from error


@router.post(
    "/introspect",
    summary="Introspection d'un jeton (RFC 7662)",
    response_model=IntrospectionResponse,
    responses=ERRORS,
    openapi_extra=_form_body(TOKEN, HINT, CLIENT_ID),
)
async def introspect(request: Request) -> Response:
    async def handler(
        session: AsyncSession,
        form: dict[str, str],
        certificate: ClientCertificate | None,
        now: dt.datetime,
    ) -> Response:
        client = await _client(request, session, form, certificate)
        answer = await service.introspect(
            session=session,
            settings=_settings(request),
            client=client,
            token_value=_token_parameter(form),
            now=now,
        )
        if answer is None:
            return Response(service.INACTIVE, media_type="application/json", headers=NO_STORE)
        return _json(answer)

    return await _guarded(request, "introspect", handler)


@router.post(
    "/revoke",
    summary="Révocation d'un jeton (RFC 7009)",
    response_class=Response,  # RFC 7009 §2.2: an empty 200
    responses={200: {"description": "Révocation prise en compte (corps vide)"}, **ERRORS},
    openapi_extra=_form_body(TOKEN, HINT, CLIENT_ID),
)
async def revoke(request: Request) -> Response:
    async def handler(
        session: AsyncSession,
        form: dict[str, str],
        certificate: ClientCertificate | None,
        now: dt.datetime,
    ) -> Response:
        client = await _client(request, session, form, certificate)
        revoked = await service.revoke(
            session=session,
            settings=_settings(request),
            client=client,
            token_value=_token_parameter(form),
            now=now,
        )
        if revoked is not None:  # this process's gateway refuses it from the next call on
            authority = getattr(request.app.state, "authority", None)
            if authority is not None:
                authority.revocations.add(revoked.jwt_id, revoked.expires_at)
        return Response(status_code=200, headers=NO_STORE)

    return await _guarded(request, "revoke", handler)


class JWKSetResponse(JSONResponse):
    """RFC 7517 §8.5's media type, so that the OpenAPI document says what is sent (a JSON
    response class, so that FastAPI describes the body with the model's schema)."""

    media_type = "application/jwk-set+json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@router.get(
    "/jwks",
    summary="Clés publiques de signature (RFC 7517)",
    response_model=JsonWebKeySet,
    response_class=JWKSetResponse,
)
async def jwks(request: Request) -> Response:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        document = await service.jwks(session=session, settings=_settings(request), now=clock.now())
    # Short caching: a rotated key stays published an hour, a new one must be seen soon.
    return JWKSetResponse(document, headers={"Cache-Control": "public, max-age=60"})


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Métadonnées du serveur d'autorisation (RFC 8414)",
    response_model=AuthorizationServerMetadata,
)
async def authorization_server_metadata(request: Request) -> Response:
    return Response(
        orjson.dumps(service.metadata(_settings(request))),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=3600"},
    )
