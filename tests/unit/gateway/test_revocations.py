"""The gateway's revoked tokens (RFC 7009, R-GW-4) and an incident's cut of every token of
one client (R-OPS-2): one revocation row, applied by client and issue time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.config import Settings
from ensu.gateway.revocations import RevocationWatch
from ensu.oauth import service as oauth

pytestmark = pytest.mark.anyio
NOW = dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
async def sessions(sqlite_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(sqlite_settings.database_url)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_a_client_cut_revokes_its_tokens_issued_until_then_and_no_other(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    watch = RevocationWatch(sessions, clock=NOW.timestamp)
    async with sessions() as session, session.begin():
        await oauth.revoke_client_tokens(
            session=session, client_id="client-a", actor="incident:1", reason="r", now=NOW
        )
    await watch.refresh()
    cut = NOW.timestamp()
    assert watch.is_revoked("jti-1", client_id="client-a", issued_at=cut - 600)
    assert watch.is_revoked("jti-2", client_id="client-a", issued_at=cut)
    assert not watch.is_revoked("jti-3", client_id="client-a", issued_at=cut + 1)  # after
    assert not watch.is_revoked("jti-4", client_id="client-b", issued_at=cut - 600)
    assert not watch.is_revoked("jti-5")  # a token named by its id alone is not concerned

    later = NOW + dt.timedelta(minutes=5)  # cut again: the cut-off moves
    async with sessions() as session, session.begin():
        await oauth.revoke_client_tokens(
            session=session, client_id="client-a", actor="incident:1", reason="r", now=later
        )
    await watch.refresh()
    assert watch.is_revoked("jti-3", client_id="client-a", issued_at=cut + 1)


async def test_a_cut_is_forgotten_once_its_last_token_has_expired(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    moments = iter([NOW.timestamp(), (NOW + dt.timedelta(hours=2)).timestamp()])
    watch = RevocationWatch(sessions, clock=lambda: next(moments))
    async with sessions() as session, session.begin():
        await oauth.revoke_client_tokens(
            session=session, client_id="client-a", actor="t", reason="r", now=NOW
        )
    await watch.refresh()
    assert watch.is_revoked("j", client_id="client-a", issued_at=NOW.timestamp())
    await watch.refresh()  # two hours later: every token it cut has expired
    assert not watch._cutoffs
