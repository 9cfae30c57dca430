"""Signing keys (R-GW-4): created on first use, private parts sealed at rest under a key
derived from ENSU_SECRET_KEY, rotation keeping old tokens verifiable until they expire,
then dropping the old key from the JWKS and from verification."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.cli import app as cli
from ensu.config import Environment, Settings, get_settings
from ensu.oauth import keys, tokens
from ensu.oauth.keys import ActiveKey
from ensu.oauth.models import SigningKey

pytestmark = pytest.mark.anyio
SECRET = SecretStr("a-test-secret-of-reasonable-length")
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ISSUER, AUDIENCE = "https://ensu.test", "https://ensu.test/ensudocuments/v1"


def _issue(key: ActiveKey, at: dt.datetime, ttl: int = 3600) -> tokens.IssuedToken:
    return tokens.issue(
        key=key,
        issuer=ISSUER,
        audience=AUDIENCE,
        client_id="client-1",
        id_teleservice="TS-1",
        environment=Environment.SANDBOX,
        thumbprint="A" * 43,
        scopes=frozenset({"documents"}),
        now=at.timestamp(),
        ttl_seconds=ttl,
    )


async def _verify(session: AsyncSession, token: str, at: dt.datetime) -> tokens.AccessClaims:
    published = await keys.verification_keys(session=session, now=at)
    return tokens.verify(
        token, keys=published, issuer=ISSUER, audience=AUDIENCE, now=at.timestamp()
    )


async def test_first_key_is_created_once(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        first = await keys.current(session=session, secret_key=SECRET, now=T0)
        again = await keys.current(session=session, secret_key=SECRET, now=T0)
    assert first.kid == again.kid
    assert first.key.as_dict(private=False) == again.key.as_dict(private=False)
    async with sessionmaker() as session:
        tags = list(await session.scalars(select(Event.tag)))
    assert tags == [str(EventTag.OAUTH_KEY_CREATED)]


async def test_private_key_is_sealed_at_rest(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        active = await keys.current(session=session, secret_key=SECRET, now=T0)
    async with sessionmaker() as session:
        row = await session.get(SigningKey, active.kid)
    assert row is not None
    assert active.key.as_der(private=True) not in row.private_key
    assert "d" not in row.public_jwk
    with pytest.raises(keys.KeyDecryptionError):
        keys.unseal(row.private_key, kid=row.kid, wrapping=keys.wrapping_key(SecretStr("other")))
    with pytest.raises(keys.KeyDecryptionError):  # the kid is bound as associated data
        keys.unseal(row.private_key, kid="another-kid", wrapping=keys.wrapping_key(SECRET))
    async with sessionmaker() as session:
        with pytest.raises(keys.KeyDecryptionError):
            await keys.current(session=session, secret_key=SecretStr("wrong"), now=T0)


async def test_rotation_keeps_old_tokens_until_expiry_then_drops_the_key(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The previous key stays in the JWKS and verifies its tokens until they expire
    (plus the leeway); then it is gone from both."""
    async with sessionmaker() as session, session.begin():
        old = await keys.current(session=session, secret_key=SECRET, now=T0)
        old_token = _issue(old, T0).token  # lives the longest allowed: 3600 s
        rotated_at = T0 + dt.timedelta(seconds=10)
        new = await keys.rotate(session=session, secret_key=SECRET, now=rotated_at, actor="t")
    assert new.kid != old.kid
    last_moment = T0 + dt.timedelta(seconds=3600 + keys.LEEWAY_SECONDS - 1)
    async with sessionmaker() as session, session.begin():
        assert (
            await keys.current(session=session, secret_key=SECRET, now=rotated_at)
        ).kid == new.kid
        new_token = _issue(new, rotated_at).token
        published = [
            key["kid"] for key in (await keys.jwks(session=session, now=last_moment))["keys"]
        ]
        assert set(published) == {old.kid, new.kid}
        assert (await _verify(session, old_token, last_moment)).kid == old.kid
        assert (await _verify(session, new_token, last_moment)).kid == new.kid

        retired_at = rotated_at + keys.RETENTION
        published = [
            key["kid"] for key in (await keys.jwks(session=session, now=retired_at))["keys"]
        ]
        assert published == [new.kid]
        with pytest.raises(tokens.TokenError, match="unknown_kid"):
            await _verify(session, old_token, retired_at)
        rows = await keys.all_keys(session=session)
    assert {keys.status(row, retired_at) for row in rows} == {"current", "retired"}
    assert keys.RETENTION.total_seconds() >= keys.MAX_TOKEN_TTL_SECONDS + keys.LEEWAY_SECONDS


async def test_rotation_is_journaled(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        old = await keys.current(session=session, secret_key=SECRET, now=T0)
        new = await keys.rotate(session=session, secret_key=SECRET, now=T0, actor="ops")
    async with sessionmaker() as session:
        event = await session.scalar(
            select(Event).where(Event.tag == str(EventTag.OAUTH_KEY_ROTATED))
        )
    assert event is not None
    assert event.actor == "ops"
    assert event.details["kid"] == new.kid
    assert event.details["previous"] == [old.kid]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_key_ring_caches_and_refreshes_on_demand(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A rotation made elsewhere is learnt on refresh, at most once per min_interval."""
    clock = FakeClock()
    ring = keys.KeyRing(max_age=60.0, min_interval=1.0, clock=clock)
    async with sessionmaker() as session, session.begin():
        first = await keys.current(session=session, secret_key=SECRET, now=T0)
    assert set(await ring.keys(sessionmaker=sessionmaker, now=T0)) == {first.kid}
    async with sessionmaker() as session, session.begin():
        second = await keys.rotate(session=session, secret_key=SECRET, now=T0, actor="t")
    assert set(await ring.keys(sessionmaker=sessionmaker, now=T0)) == {first.kid}  # cached
    assert set(await ring.keys(sessionmaker=sessionmaker, now=T0, refresh=True)) == {first.kid}
    clock.now = 1.0
    refreshed = await ring.keys(sessionmaker=sessionmaker, now=T0, refresh=True)
    assert set(refreshed) == {first.kid, second.kid}
    async with sessionmaker() as session, session.begin():
        await session.execute(update(SigningKey).values(retire_after=T0))
    clock.now = 61.0  # aged out: reloaded without being asked
    assert set(await ring.keys(sessionmaker=sessionmaker, now=T0)) == set()


def test_keys_cli_rotate_and_list(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENSU_VAR_DIR", str(sqlite_settings.var_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(cli, ["keys", "rotate"])
        assert first.exit_code == 0, first.output
        second = runner.invoke(cli, ["keys", "rotate"])
        assert second.exit_code == 0, second.output
        listing = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert listing.exit_code == 0, listing.output
    assert listing.output.count("current") == 1
    assert listing.output.count("published") == 2
    assert "3 signing key(s)" in listing.output
