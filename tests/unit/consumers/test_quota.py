"""Quota decisions (R-Q-2): a higher quota only with a recorded justification and the
producer's decider; every decision kept, journaled, and enforced by the gateway's view."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import Environment
from ensu.consumers import quota as quotas
from ensu.consumers import service as consumers
from tests.support.certs import SIRET, make_certificate
from tests.support.cli import Invoke

CERT = make_certificate("quota")
FULL = quotas.QuotaJustification(
    load_peaks="campagne de mai : 3 000 appels/min de 9 h à 11 h",
    files_count=120_000,
    periodicity="quotidienne, pic annuel en mai",
)


async def _create(session: AsyncSession, environment: Environment) -> str:
    await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
    created = await consumers.create_teleservice(
        session=session,
        organisation_siret=SIRET,
        name="Service",
        environment=environment,
        certificates=[CERT.ref],
        families=["declaratives"],
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2024, 12, 31),
        actor="t",
    )
    return created.id_teleservice


async def _quota(session: AsyncSession, id_teleservice: str) -> int:
    view = await consumers.get_by_id_teleservice(session=session, id_teleservice=id_teleservice)
    assert view is not None
    return view.quota_per_minute


@pytest.mark.anyio
async def test_higher_quota_needs_the_full_justification(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """R-Q-2: above the default (500 in production) each missing field is named and the
    quota stays; with all three, the decision is recorded and the quota raised."""
    async with sessionmaker() as session, session.begin():
        ident = await _create(session, Environment.PRODUCTION)
    partial = quotas.QuotaJustification(load_peaks="  ", files_count=10)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(quotas.JustificationMissing) as caught:
            await quotas.decide_quota(
                session=session,
                id_teleservice=ident,
                per_minute=501,
                decided_by="Mme Martin, DGFIP",
                justification=partial,
                actor="t",
            )
    assert caught.value.missing == ["load_peaks", "periodicity"]
    assert "pics de charge, périodicité" in str(caught.value)
    assert "(500/min)" in str(caught.value)
    async with sessionmaker() as session, session.begin():
        assert await _quota(session, ident) == 500
        decision = await quotas.decide_quota(
            session=session,
            id_teleservice=ident,
            per_minute=3000,
            decided_by=" Mme Martin, DGFIP ",
            justification=FULL,
            actor="cli:operator",
        )
    assert (decision.previous_per_minute, decision.per_minute) == (500, 3000)
    assert (decision.default_per_minute, decision.above_default) == (500, True)
    assert decision.decided_by == "Mme Martin, DGFIP"
    async with sessionmaker() as session:
        assert await _quota(session, ident) == 3000
        events = list(await session.scalars(select(Event).order_by(Event.id)))
    decided = [e for e in events if e.tag == EventTag.CONSUMERS_TELESERVICE_QUOTA_DECIDED]
    assert len(decided) == 1
    assert decided[0].actor == "cli:operator"
    assert decided[0].details["to"] == 3000
    assert decided[0].details["files_count"] == 120_000


@pytest.mark.anyio
async def test_lower_or_default_quota_needs_a_decider_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Up to the default no justification is needed, but the decider always is; every
    decision is kept in order (the history)."""
    async with sessionmaker() as session, session.begin():
        ident = await _create(session, Environment.SANDBOX)
        await quotas.decide_quota(
            session=session, id_teleservice=ident, per_minute=10, decided_by="M. Duval", actor="t"
        )
        await quotas.decide_quota(
            session=session, id_teleservice=ident, per_minute=50, decided_by="M. Duval", actor="t"
        )
        with pytest.raises(consumers.InvalidConsumerData, match="auteur"):
            await quotas.decide_quota(
                session=session, id_teleservice=ident, per_minute=20, decided_by="  ", actor="t"
            )
        with pytest.raises(quotas.JustificationMissing):  # 51 > the sandbox's 50
            await quotas.decide_quota(
                session=session, id_teleservice=ident, per_minute=51, decided_by="M. D", actor="t"
            )
    async with sessionmaker() as session:
        history = await quotas.quota_history(session=session, id_teleservice=ident)
        assert await _quota(session, ident) == 50
    assert [(d.previous_per_minute, d.per_minute) for d in history] == [(50, 10), (10, 50)]
    assert not any(d.above_default for d in history)


@pytest.mark.anyio
async def test_refusals(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        ident = await _create(session, Environment.SANDBOX)
        with pytest.raises(consumers.NotFoundError):
            await quotas.decide_quota(
                session=session, id_teleservice="TS-NONE", per_minute=5, decided_by="x", actor="t"
            )
        with pytest.raises(consumers.InvalidConsumerData, match="entre 1 et"):
            await quotas.decide_quota(
                session=session, id_teleservice=ident, per_minute=0, decided_by="x", actor="t"
            )
        with pytest.raises(consumers.InvalidConsumerData, match="dossiers"):
            await quotas.decide_quota(
                session=session,
                id_teleservice=ident,
                per_minute=5,
                decided_by="x",
                justification=quotas.QuotaJustification(files_count=0),
                actor="t",
            )
        await consumers.revoke(session=session, id_teleservice=ident, actor="t")
        with pytest.raises(consumers.InvalidConsumerData, match="révoqué"):
            await quotas.decide_quota(
                session=session, id_teleservice=ident, per_minute=5, decided_by="x", actor="t"
            )


# -- the command -------------------------------------------------------------------------


def test_cli_decides_refuses_and_lists(run: Invoke, tmp_path: Path) -> None:
    """``ensu consumers quota``: the refusal names the missing options; the history shows
    each decision with its justification."""
    pem = tmp_path / "client.pem"
    pem.write_text(CERT.pem)
    created = run(
        "consumers", "create",
        "--organisation-siret", SIRET, "--organisation-name", "Cabinet",
        "--name", "Aides", "--certificate", str(pem), "--family", "declaratives",
        "--period-start", "2020-01-01", "--period-end", "2030-12-31",
        "--client-id", "quota-client",
    )  # fmt: skip
    assert created.exit_code == 0, created.output

    refused = run(
        "consumers", "quota", "quota-client", "--per-minute", "200", "--decided-by", "Mme M",
        "--peaks", "lundi matin",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "--files --periodicity" in refused.output
    no_decider = run("consumers", "quota", "quota-client", "--per-minute", "20")
    assert no_decider.exit_code == 2
    assert "--decided-by" in no_decider.output

    decided = run(
        "consumers", "quota", "quota-client", "--per-minute", "200",
        "--decided-by", "Mme Martin", "--peaks", "lundi matin", "--files", "8000",
        "--periodicity", "hebdomadaire",
    )  # fmt: skip
    assert decided.exit_code == 0, decided.output
    assert "50 → 200" in decided.output

    history = run("consumers", "quota", "quota-client", "--history")
    assert history.exit_code == 0, history.output
    for expected in ("200 calls/minute, 1 decision(s)", "Mme Martin", "8000", "hebdomadaire"):
        assert expected in history.output
    assert "200" in run("consumers", "show", "quota-client").output
    both = run("consumers", "quota", "quota-client", "--history", "--per-minute", "5")
    assert both.exit_code == 2
