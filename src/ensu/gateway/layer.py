"""The gateway: one pure ASGI layer in front of the document routes (R-GW-1..6).

It runs :data:`ensu.gateway.checks.CHAIN` in order, stops at the first failure with the
contract's problem document, and otherwise hands the route one typed
:class:`~ensu.gateway.caller.Caller` in ``scope``. Every response under the API prefix
carries ``X-Correlation-ID``, ``Date`` and the ``RateLimit-*`` fields, refusals included
(:mod:`ensu.gateway.stamps` says which values); every other response of the app carries
``Date``. It is the hot path, so it is plain ASGI (no
``BaseHTTPMiddleware``), and what it reads from the stores is cached: certificate → views
for one second (so a suspension elsewhere is enforced within a second), verified token
claims until their expiry, the signing keys by the :class:`~ensu.oauth.keys.KeyRing`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ensu import clock, logs
from ensu.audit.records import CallRecord, Decision
from ensu.audit.service import Journal
from ensu.bounds import head_refusal
from ensu.certificates import (
    CRL_NAME,
    ClientCertificate,
    RevocationList,
    client_ip,
    parse_address,
    presented_certificate,
)
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.perimeter import Perimeter
from ensu.consumers.schemas import TeleserviceView
from ensu.db import store_failures
from ensu.errors import (
    PROBLEM_JSON,
    CounterUnavailable,
    EnsuError,
    InternalError,
    JournalUnavailable,
    Maintenance,
    Overloaded,
    ServiceCut,
    StoreUnavailable,
)
from ensu.gateway.cache import RefreshingCache
from ensu.gateway.caller import CORRELATION_KEY, SCOPE_KEY, TRACE_KEY, Caller, Trace
from ensu.gateway.checks import CHAIN, Attempt, valid_correlation_id
from ensu.gateway.direct import Call, DirectRoutes, Handler
from ensu.gateway.quota import counter as quota
from ensu.gateway.quota.backends import make_counter
from ensu.gateway.quota.counter import QuotaCounter, ratelimit_headers
from ensu.gateway.revocations import RevocationWatch
from ensu.gateway.stamps import CORRELATION_ID, NO_STORE, SECURITY, Stamps, missing_fields
from ensu.logs import RequestLine
from ensu.oauth import tokens
from ensu.oauth.keys import KeyRing
from ensu.operations import metrics
from ensu.operations import service as operations
from ensu.operations.isolation import CutWatch
from ensu.operations.maintenance import MaintenanceWatch

logger = logging.getLogger("ensu.gateway")

API_PREFIX = "/ensudocuments/v1"
#: The scope key of the call's :class:`Attempt` (the request line reads its téléservice).
ATTEMPT_KEY = "ensu.attempt"
#: Served without the chain (health, CONTRACT.md); the correlation id is still echoed.
OPEN_PATHS = frozenset({f"{API_PREFIX}/etatSante"})
VIEW_TTL_SECONDS = 1.0


class StoreAuthority:
    """The stores the checks read, behind in-process caches (see the module docstring).

    Every read is bounded by ``settings.store_timeout_seconds``; a database that fails or
    does not answer in time refuses the call with 503 930004, never a 500 or a hang.
    """

    def __init__(
        self, *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.keyring = KeyRing()
        self.views: RefreshingCache[str, tuple[TeleserviceView, ...]] = RefreshingCache(
            self._load_views, ttl=VIEW_TTL_SECONDS
        )
        self.claims: dict[str, tokens.AccessClaims] = {}
        self.revocations = RevocationWatch(sessionmaker)
        self.crl = RevocationList(settings.pki_dir_path / CRL_NAME)
        self.quota_counter: QuotaCounter = make_counter(settings)

    async def start(self) -> None:
        await self.revocations.start()

    async def close(self) -> None:
        await self.revocations.close()
        await self.quota_counter.aclose()

    async def teleservices_for(self, thumbprint: str) -> tuple[TeleserviceView, ...]:
        return await self.views.get(thumbprint)

    async def _load_views(self, thumbprint: str) -> tuple[TeleserviceView, ...]:
        try:
            async with asyncio.timeout(self.settings.store_timeout_seconds):
                async with self.sessionmaker() as session:
                    return await consumers.find_by_thumbprint(
                        session=session, thumbprint=thumbprint
                    )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(reason="database_unavailable") from exc

    async def verify_token(self, token: str, now: float) -> tokens.AccessClaims:
        cached = self.claims.get(token)
        if cached is not None and cached.expires_at > now:
            return cached
        try:
            async with asyncio.timeout(self.settings.store_timeout_seconds):
                claims = await self._verify(token, now)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(reason="database_unavailable") from exc
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

    async def is_revoked(self, claims: tokens.AccessClaims) -> bool:
        # The watch's set: this process's revocations at once, others' within a second;
        # a set that cannot be refreshed refuses every token (503 930004).
        return self.revocations.is_revoked(
            claims.jwt_id, client_id=claims.client_id, issued_at=claims.issued_at
        )

    def certificate_revoked(self, certificate: ClientCertificate, now: float) -> bool:
        """R-GW-1: in the CA's CRL, as the file is now (checked every half second)."""
        return self.crl.is_revoked(certificate, now)

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
    """Pure ASGI layer: the access chain before any route under the API prefix, and the
    journal record of every call written durably before its response leaves (R-TR-1,
    R-TR-2): refusals included; if the record cannot be written, the answer is 503
    930002 instead, and no data byte leaves."""

    def __init__(self, app: ASGIApp, routes: DirectRoutes | None = None) -> None:
        self.app = app
        #: The data routes served here, without the framework (ensu.gateway.direct).
        self.routes = routes
        #: Calls between the chain's start and their response's record, in this process.
        self.in_flight = 0
        self._last_shed_log = 0.0
        self.stamps = Stamps()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request line (ensu.logs): one per request, when its answer is complete.
        line = RequestLine(scope, _described) if logs.access_enabled() else None
        watched = line.watch(send) if line is not None else send
        try:
            if not scope["path"].startswith(API_PREFIX):
                refusal = head_refusal(scope, scope["app"].state.settings.head_limits)
                if refusal is not None:  # outside the prefix nothing is journaled
                    await send_problem(self._dated(watched), refusal, None)
                    return
                await self.app(scope, receive, self._dated(watched))
            else:
                await self._api(scope, receive, watched)
        finally:
            if line is not None:
                line.emit()  # no answer completed (a disconnect, an error): still a line

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request under the API prefix: the chain, then the route."""
        headers = dict(scope["headers"])
        sent = valid_correlation_id(headers.get(b"x-correlation-id"))
        # R-GW-6: echoed when valid, else a fresh one, so that every answer has one.
        correlation_id = scope[CORRELATION_KEY] = sent or str(uuid.uuid4())
        state = scope["app"].state
        settings: Settings = state.settings
        send = self._stamped(send, correlation_id, settings)
        if scope["path"] in OPEN_PATHS:
            refusal = head_refusal(scope, settings.head_limits, api=True)
            if refusal is not None:  # etatSante's calls are not journaled, nor this
                await send_problem(send, refusal, correlation_id)
                return
            await self.app(scope, receive, send)
            return
        journal: Journal = state.journal
        attempt = Attempt(
            scope=scope,
            headers=headers,
            settings=settings,
            authority=state.authority,
            now=clock.time(),
            correlation_id=correlation_id,
            correlation_id_valid=sent is not None,
        )
        scope[ATTEMPT_KEY] = attempt  # for the request line: the téléservice, once known
        try:
            journal.ensure_serving()
        except EnsuError as error:  # integrity stop or store down: nothing is served
            operations.observe_call(
                state=state,
                path=scope["path"],
                status=error.status,
                code=error.code,
                at=attempt.now,
            )
            await self._unserved(journal, attempt, error, send)
            return
        if self.in_flight >= settings.max_in_flight:
            await self._shed(journal, attempt, send)
            return
        self.in_flight += 1
        try:
            try:
                _refuse_out_of_bounds(attempt)
                _refuse_in_maintenance(state.maintenance, attempt.now)
                _refuse_when_cut(state.cuts)
                for check in CHAIN:
                    await check(attempt)
            except EnsuError as error:
                state = await _quota_state(attempt, error)
                await _refuse(journal, attempt, error, send, state)
                return
            trace = scope[TRACE_KEY] = Trace()
            caller = scope[SCOPE_KEY] = _caller(attempt)
            send = _journaling(send, journal, attempt, trace)
            matched = self.routes.match(scope["method"], scope["path"]) if self.routes else None
            if matched is None:
                await self.app(scope, receive, send)
                return
            handler, params = matched
            call = Call(state, caller, trace, params, scope.get("query_string", b""))
            await _serve(handler, call, send)
        finally:
            self.in_flight -= 1

    def _dated(self, send: Send) -> Send:
        """``Date`` (RFC 9110 §6.6.1) and the security headers on an answer outside the
        API prefix."""

        async def send_dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                date = self.stamps.date(clock.time())
                message["headers"] = [*message.get("headers", ()), date, *SECURITY]
            await send(message)

        return send_dated

    def _stamped(self, send: Send, correlation_id: str, settings: Settings) -> Send:
        """The headers of every answer under the prefix (:mod:`ensu.gateway.stamps`):
        the correlation id, ``Date``, the security headers, ``Cache-Control: no-store``
        and the default ``RateLimit-*`` fields when the answer has none of its own."""
        echoed = (CORRELATION_ID, correlation_id.encode("ascii"))
        stamps = self.stamps

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                now = clock.time()
                headers = [*message.get("headers", ()), echoed, stamps.date(now), *SECURITY]
                no_ratelimit, no_cache_control = missing_fields(headers)
                if no_ratelimit:
                    headers += stamps.default_window(settings.environment, now)
                if no_cache_control:
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        return send_stamped

    async def _unserved(
        self, journal: Journal, attempt: Attempt, error: EnsuError, send: Send
    ) -> None:
        """Integrity stop or journal store down (R-TR-2): 503 930002 before any check.
        The refusal is still journaled when the writer can take it (an integrity stop
        leaves the writer running), queued but not waited for, as the answer carries no
        data; else the journal counts and logs it (:meth:`Journal.enqueue_refusal`)."""
        trace = Trace(reason=error.reason[:64], error_code=error.code)
        journal.enqueue_refusal(_record(attempt, trace, error.status))
        await send_problem(send, error, attempt.correlation_id)

    async def _shed(self, journal: Journal, attempt: Attempt, send: Send) -> None:
        """Overload: answer 503 930005 at once, before any check; the record is queued
        for the next commit but not waited for (the answer carries no data)."""
        error = Overloaded(reason="overloaded")
        trace = Trace(reason=error.reason, error_code=error.code)
        journal.enqueue_refusal(_record(attempt, trace, error.status))
        if attempt.now - self._last_shed_log >= 1.0:  # a line a second, not one per call
            self._last_shed_log = attempt.now
            logger.warning("overload: calls shed beyond %d in flight", self.in_flight)
        await send_problem(send, error, attempt.correlation_id)


def _refuse_out_of_bounds(attempt: Attempt) -> None:
    """R-GW-6, OWASP API4:2023: a head past its bounds (:mod:`ensu.bounds`), or marked so
    by the edge that stopped reading it, is refused before any check, with 414, 431 or
    413. What can be known of its sender without trusting the head is kept for the
    journal record (R-TR-1): the certificate of the connection, the peer's address."""
    scope, settings = attempt.scope, attempt.settings
    refusal = head_refusal(scope, settings.head_limits, api=True)
    if refusal is None:
        return
    attempt.certificate = presented_certificate(scope, settings)
    raw = client_ip(scope, settings)
    address = parse_address(raw) if raw else None
    attempt.ip = str(address) if address is not None else None
    raise refusal


def _described(scope: Scope) -> tuple[str | None, str | None]:
    """The request line's correlation id and téléservice (``ensu.logs``)."""
    attempt: Attempt | None = scope.get(ATTEMPT_KEY)
    view = attempt.teleservice if attempt is not None else None
    return scope.get(CORRELATION_KEY), view.id_teleservice if view is not None else None


def _refuse_in_maintenance(watch: MaintenanceWatch, now: float) -> None:
    """R-SQ-1: during a planned window, 503 930001 with ``Retry-After`` (the seconds to
    its end), before any check; decided on the windows in memory, no I/O."""
    window = watch.current(now)
    if window is not None:
        raise Maintenance(window.retry_after(now))


def _refuse_when_cut(cuts: CutWatch) -> None:
    """R-OPS-2: the whole service cut by an incident, 503 930006 before any check;
    decided on the state in memory (ensu.operations.isolation), no I/O."""
    if cuts.current() is not None:
        raise ServiceCut(reason="service_cut")


async def _serve(handler: Handler, call: Call, send: Send) -> None:
    """Run a direct route's handler; its errors answered as the app's handlers would."""
    name = getattr(handler, "__name__", handler)
    problem: EnsuError
    try:
        reply = await handler(call)
    except EnsuError as error:
        problem = error
    except store_failures() as failure:  # the database down or slow: 503, not 500
        logger.warning("store unavailable in %s: %r", name, failure)
        problem = StoreUnavailable(reason=f"store_{type(failure).__name__}"[:64])
    except Exception:  # never a stack trace to the caller (R-GW-6); the log keeps it
        logger.exception("unhandled error in %s", name)
        problem = InternalError()
    else:
        await send(reply.start_message())
        await send({"type": "http.response.body", "body": reply.body})
        return
    call.trace.reason, call.trace.error_code = problem.reason[:64], problem.code
    await send_problem(send, problem, call.caller.correlation_id)


def _record(attempt: Attempt, trace: Trace, status: int) -> CallRecord:
    """The journal record of ``attempt`` (R-TR-1): what the chain established, never a
    token or a secret."""
    view, scope = attempt.teleservice, attempt.scope
    operations.observe_call(
        state=scope["app"].state,
        path=scope["path"],
        status=status,
        code=trace.error_code,
        at=attempt.now,
    )
    return CallRecord.from_request(
        at=dt.datetime.fromtimestamp(attempt.now, dt.UTC),
        consumer=view.organisation_siret if view else None,
        id_teleservice=view.id_teleservice if view else None,
        client_id=view.client_id if view else None,
        thumbprint=attempt.certificate.thumbprint if attempt.certificate else None,
        jti=attempt.claims.jwt_id if attempt.claims else None,
        ip=attempt.ip,
        correlation_id=attempt.correlation_id,
        siren=trace.siren,
        idsp=trace.idsp,
        document_codes=trace.document_codes,
        document_ids=trace.document_ids,
        reference_demande=trace.reference,
        method=scope["method"],
        route=_route(scope),
        decision=Decision.ALLOWED if status < 400 else Decision.REFUSED,
        reason=trace.reason if status < 400 or trace.reason != "ok" else f"http_{status}",
        status=status,
        error_code=trace.error_code,
    )


_PRINTABLE = re.compile(rb"[!-~]*")


def _route(scope: Mapping[str, Any]) -> str:
    """The request target's path as the journal takes it: printable ASCII, 200 at most;
    other bytes percent-encoded, so that no path, however odd, loses its record."""
    raw = bytes(scope.get("raw_path") or scope["path"].encode())[:200]
    if _PRINTABLE.fullmatch(raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 0x21 <= b <= 0x7E else f"%{b:02X}" for b in raw)[:200]


async def _quota_state(attempt: Attempt, error: EnsuError) -> quota.QuotaDecision | None:
    """The quota state for a refusal's ``RateLimit-*`` fields: the call's decision, else
    its téléservice's counter peeked (not counted), else None (not known: the stamps'
    defaults). A counter that cannot be read in time gives an empty window; one that the
    quota check itself found failing (930003) is not asked again, so that the refusal
    stays within the check's bound (R-Q-1 fails closed, and fast)."""
    if attempt.quota is not None:
        return attempt.quota
    view = attempt.teleservice
    if view is None:
        return None
    key, limit, now = view.id_teleservice, view.quota_per_minute, attempt.now
    if isinstance(error, CounterUnavailable):
        return quota.decide(count=0, limit=limit, now=now)
    peeked = await quota.peek(attempt.authority.quota_counter, key=key, limit=limit, now=now)
    return peeked or quota.decide(count=0, limit=limit, now=now)


async def _refuse(
    journal: Journal,
    attempt: Attempt,
    error: EnsuError,
    send: Send,
    state: quota.QuotaDecision | None,
) -> None:
    """Journal the refusal, then answer it (or 503 930002 if it cannot be journaled)."""
    trace = Trace(reason=error.reason[:64], error_code=error.code)
    try:
        with metrics.JOURNAL_WAIT.time():
            await journal.append(_record(attempt, trace, error.status))
    except JournalUnavailable as unavailable:
        error = unavailable
    logger.info("refused %s: %s", attempt.scope["path"], error.reason)
    extra = ratelimit_headers(state) if state is not None else []
    await send_problem(send, error, attempt.correlation_id, extra)


def _journaling(send: Send, journal: Journal, attempt: Attempt, trace: Trace) -> Send:
    """Hold the response start until the call's record is durably written."""
    held: list[Message] = []
    failed = False
    extra = ratelimit_headers(attempt.quota) if attempt.quota else []

    async def send_after_record(message: Message) -> None:
        nonlocal failed
        if failed:
            return  # the 503 was sent instead: swallow the rest of the original body
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
            held.append(message)
            return
        if held:
            start = held.pop()
            try:
                with metrics.JOURNAL_WAIT.time():
                    await journal.append(_record(attempt, trace, start["status"]))
            except JournalUnavailable as error:
                failed = True
                await send_problem(send, error, attempt.correlation_id)
                return
            await send(start)
        await send(message)

    return send_after_record


async def send_problem(
    send: Send,
    error: EnsuError,
    correlation_id: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with the problem document of ``error`` (the contract's error form)."""
    body = error.body(correlation_id=correlation_id)
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or ()),
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
