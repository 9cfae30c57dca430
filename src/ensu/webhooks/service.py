"""Webhooks, a general feature: any feature :func:`emit` s an event, every active
subscription whose types match gets a signed JSON delivery (R-OPS-1's alert circuit,
the habilitation workflow's events later).

- :func:`emit` (keyword-only, in the caller's transaction, like ``audit.record_event``):
  one ``pending`` delivery per matching subscription; nothing is sent in the caller's
  transaction, so an event exists for the receivers only if its change was committed.
- :func:`deliver_due` sends the deliveries whose time has come: the server's
  :class:`Dispatcher` runs it every second, ``ensu webhooks deliver`` once. Each
  delivery is *claimed* first (its next attempt moved :data:`LEASE` ahead, only if it
  was due), so several instances never send one delivery twice at once.
- A failed attempt (no answer, or not 2xx) is retried after :data:`BACKOFF` (10 s,
  30 s, 2 min, 10 min, 30 min, 1 h), then the delivery is ``failed``. Every attempt is
  kept (:func:`attempts`). After :data:`MAX_CONSECUTIVE_FAILURES` failed attempts in a
  row the subscription is disabled (journaled); ``ensu webhooks enable`` turns it back
  on and its pending deliveries resume.
- :func:`replay` sends one delivery again now, whatever its state (an operator's).

The body is ``{"id", "type", "created_at", "data"}``; the headers and the signature are
in :mod:`ensu.webhooks.signature`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.background import Periodic
from ensu.config import Settings
from ensu.webhooks import signature
from ensu.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger("ensu.webhooks")

MAX_CONSECUTIVE_FAILURES = 5
#: Seconds before the retry that follows the n-th failed attempt.
BACKOFF = (10, 30, 120, 600, 1800, 3600)
MAX_ATTEMPTS = len(BACKOFF) + 1
#: How long a claimed delivery is hidden from the other senders (past any timeout).
LEASE = dt.timedelta(seconds=120)


class WebhookError(Exception):
    """An operator's request that cannot be done; the message says why."""


class NotFound(WebhookError):
    pass


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    url: str
    event_types: tuple[str, ...]
    description: str
    active: bool
    consecutive_failures: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery: str
    subscription_id: int
    event_type: str
    at: dt.datetime
    status_code: int | None
    ok: bool
    error: str | None
    duration_ms: int
    trigger: str
    delivery_status: str


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _view(row: WebhookSubscription) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        event_types=tuple(row.event_types),
        description=row.description,
        active=row.active,
        consecutive_failures=row.consecutive_failures,
        created_at=_utc(row.created_at),
    )


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """``security.event`` matches ``security.event``, ``security.*`` and ``*``."""
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def check_url(url: str, *, allow_http: bool) -> str:
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise WebhookError(
            f"{url!r}: an https:// URL is required (http:// only with ENSU_WEBHOOK_ALLOW_HTTP)"
        )
    return url


# -- subscriptions ---------------------------------------------------------------------


async def add(
    *,
    session: AsyncSession,
    settings: Settings,
    url: str,
    event_types: Sequence[str],
    actor: str,
    description: str = "",
    secret: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Subscription, str]:
    """Subscribe ``url`` to ``event_types``; the subscription and its secret (shown
    once: only its sealed form is stored)."""
    check_url(url, allow_http=settings.webhook_allow_http)
    types = sorted({kind.strip() for kind in event_types if kind.strip()})
    if not types:
        raise WebhookError("at least one event type (or a pattern such as security.*)")
    secret = secret or signature.new_secret()
    if len(secret) < 16:
        raise WebhookError("a secret of at least 16 characters")
    row = WebhookSubscription(
        url=url,
        event_types=types,
        sealed_secret=signature.seal(secret, secret_key=settings.secret_key),
        description=description[:200],
        active=True,
        consecutive_failures=0,
        created_by=actor,
        created_at=_now(now),
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.WEBHOOKS_SUBSCRIPTION_CREATED,
        actor=actor,
        details={"subscription": row.id, "url": url, "event_types": types},
    )
    return _view(row), secret


async def subscriptions(*, session: AsyncSession) -> list[Subscription]:
    rows = await session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    return [_view(row) for row in rows]


async def _subscription(session: AsyncSession, subscription_id: int) -> WebhookSubscription:
    row = await session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    return row


async def set_active(
    *, session: AsyncSession, subscription_id: int, active: bool, actor: str
) -> Subscription:
    """Enable (failures counted from zero again) or disable a subscription."""
    row = await _subscription(session, subscription_id)
    row.active = active
    row.consecutive_failures = 0 if active else row.consecutive_failures
    row.disabled_at = None if active else _now(None)
    tag = (
        EventTag.WEBHOOKS_SUBSCRIPTION_ENABLED
        if active
        else EventTag.WEBHOOKS_SUBSCRIPTION_DISABLED
    )
    await audit.record_event(
        session=session, tag=tag, actor=actor, details={"subscription": row.id, "url": row.url}
    )
    return _view(row)


# -- emitting --------------------------------------------------------------------------


def body_of(uid: str, event_type: str, payload: Mapping[str, object], at: dt.datetime) -> str:
    document = {"id": uid, "type": event_type, "created_at": at.isoformat(), "data": payload}
    return json.dumps(document, ensure_ascii=False, sort_keys=True, default=str)


async def emit(
    *,
    session: AsyncSession,
    event_type: str,
    payload: Mapping[str, object],
    now: dt.datetime | None = None,
) -> list[str]:
    """Queue ``event_type`` with ``payload`` (JSON) for every active subscription that
    wants it, in the caller's transaction; the deliveries' ids."""
    moment = _now(now)
    rows = await session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
    )
    uids = []
    for row in rows:
        if not matches(row.event_types, event_type):
            continue
        uid = str(uuid.uuid4())
        session.add(
            WebhookDelivery(
                uid=uid,
                subscription_id=row.id,
                event_type=event_type,
                body=body_of(uid, event_type, payload, moment),
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=moment,
                created_at=moment,
            )
        )
        uids.append(uid)
    await session.flush()
    return uids


# -- sending ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _post(
    client: httpx.AsyncClient, url: str, secret: str, delivery: WebhookDelivery
) -> _Outcome:
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ensu-webhooks/1",
        signature.EVENT_HEADER: delivery.event_type,
        signature.DELIVERY_HEADER: delivery.uid,
        signature.TIMESTAMP_HEADER: str(timestamp),
        signature.SIGNATURE_HEADER: signature.sign(secret, timestamp, body),
    }
    started = time.perf_counter()
    try:
        answer = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        elapsed = round((time.perf_counter() - started) * 1000)
        return _Outcome(None, f"{type(exc).__name__}: {exc}"[:500], elapsed)
    elapsed = round((time.perf_counter() - started) * 1000)
    error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
    return _Outcome(answer.status_code, error, elapsed)


def _client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)


@asynccontextmanager
async def _sender(
    settings: Settings, client: httpx.AsyncClient | None
) -> AsyncIterator[httpx.AsyncClient]:
    """``client`` when the caller gives one (it closes it), else one closed after use."""
    if client is not None:
        yield client
        return
    async with _client(settings) as owned:
        yield owned


async def _claim(session: AsyncSession, delivery_id: int, now: dt.datetime) -> bool:
    claimed = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + LEASE)
    )
    return bool(getattr(claimed, "rowcount", 0) == 1)


async def deliver_due(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: dt.datetime | None = None,
    client: httpx.AsyncClient | None = None,
    limit: int = 50,
) -> int:
    """Send the pending deliveries that are due (active subscriptions only); how many
    attempts were made."""
    moment = _now(now)
    async with sessionmaker() as session, session.begin():
        due = list(
            await session.scalars(
                select(WebhookDelivery.id)
                .join(WebhookSubscription)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= moment,
                    WebhookSubscription.active.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
        )
    if not due:
        return 0
    made = 0
    async with _sender(settings, client) as sender:
        for delivery_id in due:
            async with sessionmaker() as session, session.begin():
                if not await _claim(session, delivery_id, moment):
                    continue  # another sender took it
            await _attempt(sessionmaker, settings, sender, delivery_id, trigger="retry")
            made += 1
    return made


async def _attempt(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: httpx.AsyncClient,
    delivery_id: int,
    *,
    trigger: str,
) -> Attempt:
    async with sessionmaker() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        subscription = await _subscription(session, delivery.subscription_id)
        secret = signature.unseal(subscription.sealed_secret, secret_key=settings.secret_key)
        url = subscription.url
    outcome = await _post(client, url, secret, delivery)
    async with sessionmaker() as session, session.begin():
        return await _note(session, delivery_id, outcome, trigger=trigger)


async def _note(
    session: AsyncSession, delivery_id: int, outcome: _Outcome, *, trigger: str
) -> Attempt:
    """Record an attempt: the delivery's next state, the subscription's failure count."""
    moment = _now(None)
    delivery = await session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    subscription = await _subscription(session, delivery.subscription_id)
    attempt = WebhookAttempt(
        delivery_id=delivery.id,
        at=moment,
        status_code=outcome.status_code,
        ok=outcome.ok,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        trigger=trigger,
    )
    session.add(attempt)
    delivery.attempts += 1
    if outcome.ok:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, moment
        subscription.consecutive_failures = 0
    else:
        _schedule_retry(delivery, moment)
        await _count_failure(session, subscription, moment)
    return _attempt_view(attempt, delivery)


def _attempt_view(attempt: WebhookAttempt, delivery: WebhookDelivery) -> Attempt:
    return Attempt(
        delivery=delivery.uid,
        subscription_id=delivery.subscription_id,
        event_type=delivery.event_type,
        at=_utc(attempt.at),
        status_code=attempt.status_code,
        ok=attempt.ok,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
        trigger=attempt.trigger,
        delivery_status=delivery.status.value,
    )


def _schedule_retry(delivery: WebhookDelivery, moment: dt.datetime) -> None:
    if delivery.status is DeliveryStatus.DELIVERED:
        return  # a replay of a delivered one that failed: it was delivered once
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        return
    delivery.status = DeliveryStatus.PENDING
    delay = BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    delivery.next_attempt_at = moment + dt.timedelta(seconds=delay)


async def _count_failure(
    session: AsyncSession, subscription: WebhookSubscription, moment: dt.datetime
) -> None:
    subscription.consecutive_failures += 1
    if subscription.active and subscription.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
        subscription.active, subscription.disabled_at = False, moment
        logger.warning(
            "webhook subscription %s disabled after %d consecutive failures",
            subscription.id,
            subscription.consecutive_failures,
        )
        await audit.record_event(
            session=session,
            tag=EventTag.WEBHOOKS_SUBSCRIPTION_DISABLED,
            actor="system:webhooks",
            details={
                "subscription": subscription.id,
                "url": subscription.url,
                "consecutive_failures": subscription.consecutive_failures,
            },
        )


async def replay(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    delivery: str,
    actor: str,
    client: httpx.AsyncClient | None = None,
) -> Attempt:
    """Send the delivery ``delivery`` (its id or number) again now, with a fresh
    timestamp and signature, the same body and id; journaled."""
    async with sessionmaker() as session, session.begin():
        row = await _delivery(session, delivery)
        subscription = await _subscription(session, row.subscription_id)
        if not subscription.active:
            raise WebhookError(
                f"subscription {subscription.id} is disabled: `ensu webhooks enable"
                f" {subscription.id}` first"
            )
        await audit.record_event(
            session=session,
            tag=EventTag.WEBHOOKS_DELIVERY_REPLAYED,
            actor=actor,
            details={"delivery": row.uid, "subscription": subscription.id},
        )
        delivery_id = row.id
    async with _sender(settings, client) as sender:
        return await _attempt(sessionmaker, settings, sender, delivery_id, trigger="replay")


async def _delivery(session: AsyncSession, key: str) -> WebhookDelivery:
    condition = (
        WebhookDelivery.id == int(key) if key.isdigit() else WebhookDelivery.uid == key.strip()
    )
    row = await session.scalar(select(WebhookDelivery).where(condition))
    if row is None:
        raise NotFound(f"no webhook delivery {key}")
    return row


async def attempts(
    *,
    session: AsyncSession,
    subscription_id: int | None = None,
    delivery: str | None = None,
    limit: int = 50,
) -> list[Attempt]:
    """The latest attempts, newest first (of one subscription or one delivery)."""
    query = (
        select(WebhookAttempt, WebhookDelivery)
        .join(WebhookDelivery, WebhookAttempt.delivery_id == WebhookDelivery.id)
        .order_by(WebhookAttempt.id.desc())
        .limit(limit)
    )
    if subscription_id is not None:
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    if delivery is not None:
        query = query.where(WebhookDelivery.id == (await _delivery(session, delivery)).id)
    rows = (await session.execute(query)).all()
    return [_attempt_view(row.WebhookAttempt, row.WebhookDelivery) for row in rows]


# -- the server's job ------------------------------------------------------------------


class Dispatcher(Periodic):
    """Runs :func:`deliver_due` every ``interval`` seconds in the server."""

    job = "webhooks"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        interval: float = 1.0,
    ) -> None:
        super().__init__(interval=interval, logger=logger)
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._client = _client(settings)

    async def tick(self) -> None:
        await deliver_due(
            sessionmaker=self.sessionmaker, settings=self.settings, client=self._client
        )

    async def close(self) -> None:
        await super().close()
        await self._client.aclose()
