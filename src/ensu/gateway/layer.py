"""The gateway: one pure ASGI layer in front of the document routes (R-GW-1..6).

It runs :data:`ensu.gateway.checks.CHAIN` in order, stops at the first failure with the
contract's problem document, and otherwise hands the route one typed
:class:`~ensu.gateway.caller.Caller` in ``scope``. It also echoes ``X-Correlation-ID`` on
every response under the API prefix. It is the hot path, so it is plain ASGI (no
``BaseHTTPMiddleware``), and what it reads from the stores is cached: certificate → views
for one second (so a suspension elsewhere is enforced within a second), verified token
claims until their expiry, the signing keys by the :class:`~ensu.oauth.keys.KeyRing`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.schemas import TeleserviceView
from ensu.documents.service import Perimeter
from ensu.errors import PROBLEM_JSON, EnsuError
from ensu.gateway.cache import TTLCache
from ensu.gateway.caller import SCOPE_KEY, Caller
from ensu.gateway.checks import CHAIN, Attempt, valid_correlation_id
from ensu.oauth import service as oauth
from ensu.oauth import tokens
from ensu.oauth.keys import KeyRing

logger = logging.getLogger("ensu.gateway")

API_PREFIX = "/ensudocuments/v1"
#: Served without the chain (health, CONTRACT.md); the correlation id is still echoed.
OPEN_PATHS = frozenset({f"{API_PREFIX}/etatSante"})
VIEW_TTL_SECONDS = 1.0


class StoreAuthority:
    """The stores the checks read, behind in-process caches (see the module docstring)."""

    def __init__(
        self, *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.keyring = KeyRing()
        self.views: TTLCache[str, tuple[TeleserviceView, ...]] = TTLCache(ttl=VIEW_TTL_SECONDS)
        self.claims: dict[str, tokens.AccessClaims] = {}
        self.revoked: TTLCache[str, bool] = TTLCache(ttl=VIEW_TTL_SECONDS)

    async def teleservices_for(self, thumbprint: str) -> tuple[TeleserviceView, ...]:
        views = self.views.get(thumbprint)
        if views is None:
            async with self.sessionmaker() as session:
                views = await consumers.find_by_thumbprint(session=session, thumbprint=thumbprint)
            self.views.put(thumbprint, views)
        return views

    async def verify_token(self, token: str, now: float) -> tokens.AccessClaims:
        cached = self.claims.get(token)
        if cached is not None and cached.expires_at > now:
            return cached
        claims = await self._verify(token, now)
        if len(self.claims) >= 10_000:
            self.claims = {t: c for t, c in self.claims.items() if c.expires_at > now}
            if len(self.claims) >= 10_000:
                self.claims.clear()
        self.claims[token] = claims
        return claims

    async def _verify(self, token: str, now: float) -> tokens.AccessClaims:
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        settings = self.settings
        for refresh in (False, True):  # an unknown kid may be a rotation made elsewhere
            keys = await self.keyring.keys(
                sessionmaker=self.sessionmaker, now=moment, refresh=refresh
            )
            try:
                return tokens.verify(
                    token, keys=keys, issuer=settings.issuer, audience=settings.audience, now=now
                )
            except tokens.TokenError as exc:
                if exc.reason != "unknown_kid" or refresh:
                    raise
        raise AssertionError("unreachable")

    async def is_revoked(self, jwt_id: str) -> bool:
        # Not cached as "not revoked": a revocation is effective on the next call (RFC 7009).
        if self.revoked.get(jwt_id):
            return True
        async with self.sessionmaker() as session:
            revoked = await oauth.is_revoked(session=session, jti=jwt_id)
        if revoked:
            self.revoked.put(jwt_id, True)
        return revoked

    def forget(self) -> None:
        """Drop every cached view and claim (after a change made in this process)."""
        self.views.clear()
        self.claims.clear()


def _caller(attempt: Attempt) -> Caller:
    view = attempt.teleservice
    assert view is not None
    assert attempt.certificate is not None
    assert attempt.claims is not None
    assert attempt.ip is not None
    assert attempt.correlation_id is not None
    return Caller(
        teleservice=view,
        certificate=attempt.certificate,
        ip=attempt.ip,
        claims=attempt.claims,
        correlation_id=attempt.correlation_id,
        perimeter=Perimeter(
            codes=view.allowed_codes, period_start=view.period_start, period_end=view.period_end
        ),
    )


class Gateway:
    """Pure ASGI layer: the access chain before any route under the API prefix."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        correlation_id = valid_correlation_id(headers.get(b"x-correlation-id"))
        send = _echoing(send, correlation_id)
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        attempt = Attempt(
            scope=scope,
            headers=headers,
            settings=state.settings,
            authority=state.authority,
            now=time.time(),
            correlation_id=correlation_id,
        )
        try:
            for check in CHAIN:
                await check(attempt)
        except EnsuError as error:
            logger.info("refused %s: %s", scope["path"], error.reason)
            await send_problem(send, error, correlation_id)
            return
        scope[SCOPE_KEY] = _caller(attempt)
        await self.app(scope, receive, send)


def _echoing(send: Send, correlation_id: str | None) -> Send:
    if correlation_id is None:
        return send
    echoed = (b"x-correlation-id", correlation_id.encode("ascii"))

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), echoed]
        await send(message)

    return send_with_id


async def send_problem(send: Send, error: EnsuError, correlation_id: str | None) -> None:
    """Answer with the problem document of ``error`` (the contract's error form)."""
    body = error.body(correlation_id=correlation_id)
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
    if error.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="ensudocuments"'))
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": error.status,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
