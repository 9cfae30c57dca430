"""The authorization server's service functions (R-GW-4): HTTP Basic as RFC 6749 §2.3.1
encodes it, scopes (RFC 6749 §3.3), revocations kept until expiry (RFC 7009)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.certificates import parse_pem
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.oauth import keys, service
from ensu.oauth.errors import InvalidClient, InvalidRequest, InvalidScope
from ensu.oauth.models import Revocation
from tests.support.certs import create_client, make_certificate

pytestmark = pytest.mark.anyio


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_credentials_are_form_urldecoded() -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding."""
    credentials = service.parse_basic(_basic("client%3A1", "p%2Bss+word"))
    assert credentials.client_id == "client:1"
    assert credentials.secret == "p+ss word"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ],
)
def test_malformed_basic_is_invalid_client(header: str) -> None:
    with pytest.raises(InvalidClient):
        service.parse_basic(header)


def test_scopes() -> None:
    assert service.parse_scope(None) == service.SCOPES
    assert service.parse_scope("  ") == service.SCOPES
    assert service.parse_scope("documents") == frozenset({"documents"})
    with pytest.raises(InvalidScope):
        service.parse_scope("documents admin")


async def test_missing_client_id_is_invalid_request(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(InvalidRequest):
            await service.authenticate_client(
                session=session, form={}, certificate=None, authorization=None, peer="127.0.0.1"
            )


async def test_unknown_client_with_basic_still_pays_for_scrypt(
    sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell which client ids exist: the secret is checked anyway."""
    checked: list[object] = []
    original = consumers.check_client_secret

    async def spy(view: object, secret: str) -> bool:
        checked.append(view)
        return await original(None, secret)

    monkeypatch.setattr(consumers, "check_client_secret", spy)
    certificate = parse_pem(make_certificate("x").pem)
    async with sessionmaker() as session:
        with pytest.raises(InvalidClient):
            await service.authenticate_client(
                session=session,
                form={"client_id": "nobody"},
                certificate=certificate,
                authorization=_basic("nobody", "secret"),
                peer="127.0.0.1",
            )
    assert checked == [None]


async def test_revocations_are_purged_after_expiry(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    cert = make_certificate("client-1")
    now = dt.datetime.now(dt.UTC)
    async with sessionmaker() as session, session.begin():
        await create_client(session, cert, client_id="client-1")
        view = await consumers.get_by_client_id(session=session, client_id="client-1")
        assert view is not None
        key = await keys.current(session=session, secret_key=settings.secret_key, now=now)
        issued = service.issue_token(
            key=key,
            settings=settings,
            client=view,
            thumbprint=cert.thumbprint,
            scopes=service.SCOPES,
            now=now,
        )
        assert await service.revoke(
            session=session, settings=settings, client=view, token_value=issued.token, now=now
        )
    async with sessionmaker() as session, session.begin():
        assert await service.is_revoked(session=session, jti=issued.claims.jwt_id)
        assert await service.purge_revocations(session=session, now=now) == 0
        after = dt.datetime.fromtimestamp(issued.claims.expires_at + 31, dt.UTC)
        assert await service.purge_revocations(session=session, now=after) == 1
    async with sessionmaker() as session:
        assert await session.scalar(select(Revocation)) is None
