"""Security commitments on the clock (R-SEC-1 to R-SEC-4, R-OPS-4): reminders on the
right days, once; suspension the day after the deadline; restoration by a validated new
attestation; critical risks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from sqlalchemy import select

from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.audit.models import Event
from ensu.compliance import commitments
from ensu.compliance import service as compliance
from ensu.compliance.models import CommitmentKind, CommitmentStatus
from ensu.config import Environment
from ensu.consumers import service as consumers
from tests.support.smtp import decoded
from tests.unit.compliance.conftest import DPO, RT, TECH, World, at

pytestmark = pytest.mark.anyio

D = dt.date
T0 = D(2026, 3, 2)
OPERATOR = Actor.system("cli:test")
MANAGER = Actor(kind=ActorKind.STAFF, label="staff:manager", role=StaffRole.MANAGER)


async def _homologation(world: World, id_teleservice: str, ends: dt.date, now: dt.datetime) -> int:
    async with world.sessionmaker() as session, session.begin():
        view = await compliance.record_commitment(
            session=session,
            id_teleservice=id_teleservice,
            kind=CommitmentKind.HOMOLOGATION,
            reference_date=ends,
            actor=OPERATOR,
            now=now,
        )
    return view.id


def test_deadlines_of_the_terms() -> None:
    assert compliance.deadline_of(CommitmentKind.HOMOLOGATION, D(2026, 9, 18)) == D(2026, 6, 18)
    assert compliance.deadline_of(CommitmentKind.QUESTIONNAIRE, D(2026, 3, 2)) == D(2029, 3, 2)
    assert [commitments.reminder_threshold(days) for days in (121, 120, 108, 90, 89, 7, 0)] == [
        None,
        120,
        120,
        90,
        90,
        7,
        7,
    ]


async def test_an_homologation_ending_in_200_days_runs_its_course(sqlite_world: World) -> None:
    """The brief's acceptance test: reminders on the right days to the technical contact
    and the responsable de traitement (never twice, though the clock runs twice a day),
    suspension the day after the deadline, restoration by a validated new attestation."""
    world = sqlite_world
    ts = await world.teleservice("alpha")
    ends = T0 + dt.timedelta(days=200)
    await _homologation(world, ts, ends, at(T0, 7))
    deadline = D(2026, 6, 18)  # three months before 2026-09-18
    received: dict[dt.date, list[tuple[str, str]]] = defaultdict(list)
    day = T0
    while day <= deadline + dt.timedelta(days=2):
        before = len(world.inbox.messages)
        for hour in (0, 20):  # the server's loop and cron, the same day
            results, _ = await world.run_due(day, hour)
            assert all(result.outcome != "failed" for result in results)
        for _sender, recipients, message in world.inbox.messages[before:]:
            received[day].extend((to, decoded(message["Subject"])) for to in recipients)
        if day == deadline:
            assert await world.status(ts) == "active"  # the deadline day itself still serves
        day += dt.timedelta(days=1)

    reminder_days = [T0] + [deadline - dt.timedelta(days=n) for n in (90, 60, 30, 14, 7)]
    assert sorted(received) == [*reminder_days, deadline + dt.timedelta(days=1)]
    for when in reminder_days:
        assert sorted(to for to, _ in received[when]) == [RT, TECH]
        assert all(subject.startswith("Rappel") for _, subject in received[when])
        assert all("18/06/2026" in subject for _, subject in received[when])
    suspended_on = deadline + dt.timedelta(days=1)
    assert sorted(received[suspended_on]) == [
        (RT, "Suspension de l'échange — Téléservice alpha"),
        (TECH, "Suspension de l'échange — Téléservice alpha"),
    ]
    assert all(DPO not in recipients for _, recipients, _m in world.inbox.messages)
    assert await world.status(ts) == "suspended"

    # A new attestation, submitted then validated: the exchange is restored and told so.
    async with world.sessionmaker() as session, session.begin():
        submitted = await compliance.record_commitment(
            session=session,
            id_teleservice=ts,
            kind=CommitmentKind.HOMOLOGATION,
            reference_date=D(2029, 6, 30),
            validated=False,
            actor=OPERATOR,
            now=at(suspended_on + dt.timedelta(days=3)),
        )
    assert await world.status(ts) == "suspended"  # not before its validation
    async with world.sessionmaker() as session, session.begin():
        await compliance.validate_commitment(
            session=session,
            commitment_id=submitted.id,
            actor=MANAGER,
            now=at(suspended_on + dt.timedelta(days=4)),
        )
        in_force = await compliance.commitment_in_force(session=session, id_teleservice=ts)
    assert await world.status(ts) == "active"
    assert in_force is not None
    assert in_force.deadline == D(2029, 3, 30)
    before = len(world.inbox.messages)
    await world.run_due(suspended_on + dt.timedelta(days=4), 9)
    assert (
        sorted(world.inbox.subjects()[before:])
        == ["Rétablissement de l'échange — Téléservice alpha"] * 2
    )
    async with world.sessionmaker() as session:
        listed = await compliance.notices_of(
            session=session, organisation_siret=in_force.organisation_siret
        )
    assert len(listed) == 2 * 6 + 2 + 2
    assert {notice.status for notice in listed} == {"sent"}


async def test_the_earlier_commitment_is_superseded(world: World) -> None:
    ts = await world.teleservice("beta")
    first = await _homologation(world, ts, D(2027, 1, 31), at(T0))
    second = await _homologation(world, ts, D(2028, 1, 31), at(T0))
    async with world.sessionmaker() as session:
        listed = await commitments.commitments(session=session, id_teleservice=ts)
    assert [(c.id, c.status) for c in listed] == [
        (first, CommitmentStatus.SUPERSEDED),
        (second, CommitmentStatus.VALIDATED),
    ]


@pytest.mark.parametrize(
    ("kind", "reference", "environment", "message"),
    [
        (CommitmentKind.HOMOLOGATION, D(2026, 5, 1), Environment.PRODUCTION, "était dû"),
        (CommitmentKind.QUESTIONNAIRE, D(2026, 3, 3), Environment.PRODUCTION, "futur"),
        (CommitmentKind.HOMOLOGATION, D(2028, 1, 1), Environment.SANDBOX, "production"),
    ],
)
async def test_refused_commitments(
    world: World,
    kind: CommitmentKind,
    reference: dt.date,
    environment: Environment,
    message: str,
) -> None:
    ts = await world.teleservice("gamma", environment=environment)
    async with world.sessionmaker() as session, session.begin():
        with pytest.raises(compliance.Refused, match=message):
            await compliance.record_commitment(
                session=session,
                id_teleservice=ts,
                kind=kind,
                reference_date=reference,
                actor=OPERATOR,
                now=at(T0),
            )


async def test_a_questionnaire_is_due_three_years_later(world: World) -> None:
    ts = await world.teleservice("delta")
    async with world.sessionmaker() as session, session.begin():
        view = await compliance.record_commitment(
            session=session,
            id_teleservice=ts,
            kind=CommitmentKind.QUESTIONNAIRE,
            reference_date=T0,
            actor=OPERATOR,
            now=at(T0),
        )
    assert view.deadline == D(2029, 3, 2)
    await world.run_due(D(2029, 3, 2))
    assert await world.status(ts) == "active"
    await world.run_due(D(2029, 3, 3))
    assert await world.status(ts) == "suspended"


async def test_the_clock_never_resumes_an_operator_s_suspension(world: World) -> None:
    """A téléservice an operator suspended (an incident, R-OPS-2) stays suspended when
    the clock's own cause is cured."""
    ts = await world.teleservice("epsilon")
    await _homologation(world, ts, D(2026, 7, 1), at(T0))  # due 2026-04-01
    async with world.sessionmaker() as session, session.begin():
        await consumers.suspend(
            session=session, id_teleservice=ts, actor="cli:op", reason="incident"
        )
    await world.run_due(D(2026, 4, 2))
    await _homologation(world, ts, D(2028, 7, 1), at(D(2026, 4, 3)))
    assert await world.status(ts) == "suspended"


async def test_a_critical_risk_with_a_deadline_then_resolved(world: World) -> None:
    ts = await world.teleservice("zeta")
    async with world.sessionmaker() as session, session.begin():
        risk = await compliance.record_risk(
            session=session,
            id_teleservice=ts,
            description="Mots de passe des comptes de service en clair.",
            resolution_deadline=D(2026, 3, 16),
            actor=MANAGER,
            now=at(T0),
        )
    await world.run_due(T0)
    assert world.inbox.subjects(TECH) == [
        "Risque critique : résolution demandée — Téléservice zeta"
    ]
    await world.run_due(D(2026, 3, 16))
    assert await world.status(ts) == "active"
    await world.run_due(D(2026, 3, 17))
    assert await world.status(ts) == "suspended"
    assert (
        world.inbox.subjects(RT)[-1]
        == "Suspension de l'échange : risque critique — Téléservice zeta"
    )
    async with world.sessionmaker() as session, session.begin():
        await compliance.resolve_risk(
            session=session, risk_id=risk.id, actor=MANAGER, now=at(D(2026, 3, 18))
        )
    assert await world.status(ts) == "active"


async def test_a_critical_risk_cuts_at_once(world: World) -> None:
    ts = await world.teleservice("eta")
    async with world.sessionmaker() as session, session.begin():
        await compliance.record_risk(
            session=session,
            id_teleservice=ts,
            description="Fuite de données constatée.",
            actor=MANAGER,
            now=at(T0),
        )
    assert await world.status(ts) == "suspended"
    await world.run_due(T0)
    assert world.inbox.subjects(TECH) == [
        "Suspension de l'échange : risque critique — Téléservice eta"
    ]
    async with world.sessionmaker() as session:
        tags = list(await session.scalars(select(Event.tag).order_by(Event.id)))
    assert "compliance:risk:recorded" in tags
    assert "compliance:teleservice:suspended" in tags


async def test_only_a_manager_records_a_critical_risk(world: World) -> None:
    ts = await world.teleservice("theta")
    instructor = Actor(kind=ActorKind.STAFF, label="staff:i", role=StaffRole.INSTRUCTOR)
    async with world.sessionmaker() as session, session.begin():
        with pytest.raises(compliance.Refused, match="manager"):
            await compliance.record_risk(
                session=session,
                id_teleservice=ts,
                description="x",
                actor=instructor,
                now=at(T0),
            )
