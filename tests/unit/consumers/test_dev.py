"""``ensure_dev``: the development consumers of ``make run``, idempotent, following the
PKI when it is regenerated."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.consumers import dev
from ensu.consumers import service as consumers
from ensu.consumers.dev import Outcome
from ensu.consumers.schemas import FAMILIES
from tests.support.certs import make_certificate

pytestmark = pytest.mark.anyio


def _write(pki: Path, stem: str) -> str:
    certificate = make_certificate(stem)
    (pki / f"{stem}.pem").write_text(certificate.pem)
    return certificate.thumbprint


async def _ensure(sessionmaker: async_sessionmaker[AsyncSession], pki: Path) -> list[Outcome]:
    async with sessionmaker() as session, session.begin():
        results = await dev.ensure_dev(session=session, pki_dir=pki, actor="test")
    return [outcome for _, outcome in results]


async def test_ensure_dev_is_idempotent_and_follows_the_pki(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    assert await _ensure(sessionmaker, pki) == [Outcome.NO_CERTIFICATE] * 2
    thumbprint_a = _write(pki, "consumer-a")
    _write(pki, "consumer-b")
    assert await _ensure(sessionmaker, pki) == [Outcome.CREATED, Outcome.CREATED]
    assert await _ensure(sessionmaker, pki) == [Outcome.UNCHANGED, Outcome.UNCHANGED]
    renewed_b = _write(pki, "consumer-b")
    assert await _ensure(sessionmaker, pki) == [Outcome.UNCHANGED, Outcome.CERTIFICATE_UPDATED]
    async with sessionmaker() as session:
        a = await consumers.get_by_id_teleservice(
            session=session, id_teleservice="TS-DEV-CONSUMER-A"
        )
        b = await consumers.get_by_client_id(session=session, client_id="dev-consumer-b")
    assert a is not None
    assert b is not None
    assert a.client_id == "dev-consumer-a"
    assert a.thumbprints == {thumbprint_a}
    assert a.families == FAMILIES
    assert b.thumbprints == {renewed_b}
    assert b.families == {"declaratives", "paiements"}
    assert b.period_end - b.period_start < a.period_end - a.period_start
    assert a.organisation_siret != b.organisation_siret
