"""Webhooks (a general feature, R-OPS-1's alert circuit): signed deliveries to a real
HTTP receiver, retries with back-off, disabled after 5 failures in a row, attempts kept
and replayable. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.config import Settings
from ensu.webhooks import service as webhooks
from ensu.webhooks import signature
from ensu.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.support.webhook_receiver import Receiver, receiver

SECRET = "s3cret-for-the-tests-0123456789"


@pytest.fixture
def settings(var_dir: Path, database_url: str) -> Settings:
    return Settings(var_dir=var_dir, database_url=database_url, webhook_allow_http=True)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


async def _subscribe(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    url: str,
    types: tuple[str, ...] = ("security.*",),
) -> int:
    async with sessionmaker() as session, session.begin():
        subscription, _ = await webhooks.add(
            session=session,
            settings=settings,
            url=url,
            event_types=types,
            secret=SECRET,
            actor="test",
        )
    return subscription.id


async def _emit(
    sessionmaker: async_sessionmaker[AsyncSession], kind: str = "security.event"
) -> list[str]:
    async with sessionmaker() as session, session.begin():
        return await webhooks.emit(
            session=session, event_type=kind, payload={"rule": "enumeration", "siren": 3}
        )


async def _deliver(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, later: float = 0
) -> int:
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=later)
    return await webhooks.deliver_due(sessionmaker=sessionmaker, settings=settings, now=now)


@pytest.mark.anyio
async def test_an_emitted_event_arrives_signed(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url)
    [uid] = await _emit(sessionmaker)
    assert await _deliver(sessionmaker, settings) == 1
    [got] = hook.received
    assert got.headers["x-ensu-event"] == "security.event"
    assert got.headers["x-ensu-delivery"] == uid
    signed_at = signature.verify(SECRET, got.headers["x-ensu-signature"], got.body, now=time.time())
    assert str(signed_at) == got.headers["x-ensu-timestamp"]
    document = json.loads(got.body)
    assert document["id"] == uid
    assert document["type"] == "security.event"
    assert document["data"] == {"rule": "enumeration", "siren": 3}
    assert await _deliver(sessionmaker, settings) == 0  # delivered: never sent again
    async with sessionmaker() as session:
        [attempt] = await webhooks.attempts(session=session)
    assert attempt.ok
    assert attempt.status_code == 204
    assert attempt.delivery_status == "delivered"


@pytest.mark.anyio
async def test_only_matching_active_subscriptions_get_a_delivery(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url, ("habilitation.validated",))
    assert await _emit(sessionmaker) == []
    assert len(await _emit(sessionmaker, "habilitation.validated")) == 1


def test_a_signature_refuses_another_body_another_secret_and_an_old_timestamp() -> None:
    body = b'{"a": 1}'
    now = 1_765_000_000
    header = signature.sign(SECRET, now, body)
    assert signature.verify(SECRET, header, body, now=now + 10) == now
    with pytest.raises(signature.SignatureError, match="mismatch"):
        signature.verify(SECRET, header, b'{"a": 2}', now=now)
    with pytest.raises(signature.SignatureError, match="mismatch"):
        signature.verify("another-secret-of-some-length", header, body, now=now)
    with pytest.raises(signature.SignatureError, match="replay"):
        signature.verify(SECRET, header, body, now=now + signature.TOLERANCE_SECONDS + 1)
    with pytest.raises(signature.SignatureError, match="malformed"):
        signature.verify(SECRET, "v1=abc", body, now=now)


@pytest.mark.anyio
async def test_the_secret_is_stored_sealed(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url)
    async with sessionmaker() as session:
        row = await session.scalar(select(WebhookSubscription))
    assert row is not None
    assert SECRET.encode() not in row.sealed_secret
    assert signature.unseal(row.sealed_secret, secret_key=settings.secret_key) == SECRET
    with pytest.raises(signature.SignatureError, match="does not open"):
        signature.unseal(row.sealed_secret, secret_key=SecretStr("another secret key"))


@pytest.mark.anyio
async def test_a_failed_attempt_is_retried_after_a_back_off(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url)
    hook.statuses += [500]
    [uid] = await _emit(sessionmaker)
    assert await _deliver(sessionmaker, settings) == 1
    assert await _deliver(sessionmaker, settings) == 0  # not before its back-off
    assert await _deliver(sessionmaker, settings, later=webhooks.BACKOFF[0] + 1) == 1
    assert [r.headers["x-ensu-delivery"] for r in hook.received] == [uid, uid]
    async with sessionmaker() as session:
        attempts = await webhooks.attempts(session=session, delivery=uid)
    assert [(a.ok, a.status_code) for a in attempts] == [(True, 204), (False, 500)]


@pytest.mark.anyio
async def test_five_failures_in_a_row_disable_the_subscription_and_enable_resumes(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    subscription_id = await _subscribe(sessionmaker, settings, hook.url)
    hook.statuses += [503] * 5
    for _ in range(5):
        await _emit(sessionmaker)
    assert await _deliver(sessionmaker, settings) == 5
    async with sessionmaker() as session:
        [row] = await webhooks.subscriptions(session=session)
        disabled = await session.scalar(
            select(Event).where(Event.tag == "webhooks:subscription:disabled")
        )
    assert not row.active
    assert row.consecutive_failures == 5
    assert disabled is not None
    assert disabled.details["consecutive_failures"] == 5
    assert await _deliver(sessionmaker, settings, later=4000) == 0  # disabled: nothing sent
    assert await _emit(sessionmaker) == []  # nor queued
    async with sessionmaker() as session, session.begin():
        await webhooks.set_active(
            session=session, subscription_id=subscription_id, active=True, actor="test"
        )
    assert await _deliver(sessionmaker, settings, later=4000) == 5
    assert len(hook.received) == 10


@pytest.mark.anyio
async def test_a_delivery_fails_for_good_after_its_last_retry(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url)
    [uid] = await _emit(sessionmaker)
    hook.statuses += [500] * webhooks.MAX_ATTEMPTS
    later = 0.0
    for _ in range(webhooks.MAX_ATTEMPTS):
        async with sessionmaker() as session, session.begin():  # successes elsewhere
            row = await session.scalar(select(WebhookSubscription))
            assert row is not None
            row.consecutive_failures = 0
        later += 4000
        assert await _deliver(sessionmaker, settings, later=later) == 1
    async with sessionmaker() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.uid == uid))
    assert delivery is not None
    assert delivery.status is DeliveryStatus.FAILED
    assert await _deliver(sessionmaker, settings, later=later + 4000) == 0


@pytest.mark.anyio
async def test_replay_sends_the_same_delivery_freshly_signed(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, hook: Receiver
) -> None:
    await _subscribe(sessionmaker, settings, hook.url)
    [uid] = await _emit(sessionmaker)
    await _deliver(sessionmaker, settings)
    attempt = await webhooks.replay(
        sessionmaker=sessionmaker, settings=settings, delivery=uid, actor="test"
    )
    assert attempt.ok
    assert attempt.trigger == "replay"
    first, second = hook.received
    assert first.body == second.body
    assert second.headers["x-ensu-delivery"] == uid
    signature.verify(SECRET, second.headers["x-ensu-signature"], second.body, now=time.time())
    async with sessionmaker() as session:
        replayed = await session.scalar(
            select(Event).where(Event.tag == "webhooks:delivery:replayed")
        )
    assert replayed is not None
    with pytest.raises(webhooks.NotFound):
        await webhooks.replay(
            sessionmaker=sessionmaker, settings=settings, delivery="nope", actor="test"
        )


def test_an_http_url_needs_the_setting() -> None:
    with pytest.raises(webhooks.WebhookError, match="https"):
        webhooks.check_url("http://example.org/hook", allow_http=False)
    assert webhooks.check_url("https://example.org/hook", allow_http=False)
