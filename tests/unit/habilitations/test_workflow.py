"""The workflow table, enforced by the service (R-HAB-2, R-HAB-3).

The matrix is generated from :data:`ensu.habilitations.workflow.TRANSITIONS`: every
action, from every reachable situation (state, with or without an active habilitation),
by an applicant of the organisation, an applicant of another one, a reporter, an
instructor and a manager. Who may act is this test's own policy (``MAY_FIRE``), not the
code's: a row that gave an action to the wrong party fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu import db
from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.config import Environment, Settings
from ensu.habilitations import service as habilitations
from ensu.habilitations import workflow as wf
from ensu.habilitations.errors import (
    ActionForbidden,
    HabilitationError,
    RequestNotFound,
    TransitionRefused,
)
from ensu.habilitations.workflow import Action, Party, State
from tests.support.habilitations import (
    APPLICANT,
    INSTRUCTOR,
    MANAGER,
    OTHER_APPLICANT,
    REPORTER,
    filled_request,
    staff,
)

pytestmark = pytest.mark.anyio

#: The policy, written independently of the code: who may fire each action.
_APPLICANTS, _INSTRUCTORS, _MANAGERS = {APPLICANT}, {INSTRUCTOR, MANAGER}, {MANAGER}
MAY_FIRE = {
    Action.SUBMIT: _APPLICANTS,
    Action.ARCHIVE: _APPLICANTS,
    Action.REOPEN: _APPLICANTS,
    Action.CANCEL_REOPENING: _APPLICANTS,
    Action.START_NEXT_STAGE: _APPLICANTS,
    Action.REQUEST_CHANGES: _INSTRUCTORS,
    Action.REFUSE: _INSTRUCTORS,
    Action.VALIDATE: _INSTRUCTORS,
    Action.REVOKE: _MANAGERS,
}
#: And where each action leads (R-HAB-2).
TARGETS = {
    Action.SUBMIT: State.SUBMITTED,
    Action.ARCHIVE: State.ARCHIVED,
    Action.REOPEN: State.DRAFT,
    Action.CANCEL_REOPENING: State.VALIDATED,
    Action.START_NEXT_STAGE: State.VALIDATED,
    Action.REQUEST_CHANGES: State.CHANGES_REQUESTED,
    Action.REFUSE: State.REFUSED,
    Action.VALIDATE: State.VALIDATED,
    Action.REVOKE: State.REVOKED,
}
ACTORS = (APPLICANT, OTHER_APPLICANT, REPORTER, INSTRUCTOR, MANAGER)
#: Every reachable situation of a sandbox request: (state, holds an active habilitation).
SITUATIONS = [
    (State.DRAFT, False),
    (State.SUBMITTED, False),
    (State.CHANGES_REQUESTED, False),
    (State.REFUSED, False),
    (State.ARCHIVED, False),
    (State.VALIDATED, True),
    (State.REVOKED, False),
    (State.DRAFT, True),
    (State.SUBMITTED, True),
    (State.CHANGES_REQUESTED, True),
]
REASON = "Motif de la décision."
ANALYSIS = "Analyse juridique."


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One migrated SQLite database for the matrix (each case makes its own request)."""
    var_dir: Path = tmp_path_factory.mktemp("workflow-var")
    settings = Settings(var_dir=var_dir)
    db.upgrade(settings.database_url)
    return settings


@pytest.fixture
async def maker(module_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(module_settings.database_url)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()


Step = Callable[[AsyncSession, Settings, int], Awaitable[object]]


def _step(action: Action, actor: Actor) -> Step:
    """``action`` fired by ``actor`` through the service, with what the table may need."""

    async def fire(session: AsyncSession, settings: Settings, request_id: int) -> object:
        common = {"session": session, "actor": actor, "request_id": request_id}
        match action:
            case Action.SUBMIT:
                return await habilitations.submit(settings=settings, **common)  # type: ignore[arg-type]
            case Action.REQUEST_CHANGES:
                return await habilitations.request_changes(reason=REASON, **common)  # type: ignore[arg-type]
            case Action.REFUSE:
                return await habilitations.refuse(reason=REASON, legal_analysis=ANALYSIS, **common)  # type: ignore[arg-type]
            case Action.VALIDATE:
                return await habilitations.validate(
                    settings=settings,
                    legal_analysis=ANALYSIS,
                    **common,  # type: ignore[arg-type]
                )
            case Action.REVOKE:
                return await habilitations.revoke(reason=REASON, **common)  # type: ignore[arg-type]
            case _:
                function = getattr(habilitations, action.value)
                return await function(**common)

    return fire


PATHS: dict[tuple[State, bool], list[tuple[Action, Actor]]] = {
    (State.DRAFT, False): [],
    (State.SUBMITTED, False): [(Action.SUBMIT, APPLICANT)],
    (State.CHANGES_REQUESTED, False): [
        (Action.SUBMIT, APPLICANT),
        (Action.REQUEST_CHANGES, INSTRUCTOR),
    ],
    (State.REFUSED, False): [(Action.SUBMIT, APPLICANT), (Action.REFUSE, INSTRUCTOR)],
    (State.ARCHIVED, False): [(Action.ARCHIVE, APPLICANT)],
    (State.VALIDATED, True): [(Action.SUBMIT, APPLICANT), (Action.VALIDATE, INSTRUCTOR)],
    (State.REVOKED, False): [
        (Action.SUBMIT, APPLICANT),
        (Action.VALIDATE, INSTRUCTOR),
        (Action.REVOKE, MANAGER),
    ],
    (State.DRAFT, True): [
        (Action.SUBMIT, APPLICANT),
        (Action.VALIDATE, INSTRUCTOR),
        (Action.REOPEN, APPLICANT),
    ],
    (State.SUBMITTED, True): [
        (Action.SUBMIT, APPLICANT),
        (Action.VALIDATE, INSTRUCTOR),
        (Action.REOPEN, APPLICANT),
        (Action.SUBMIT, APPLICANT),
    ],
    (State.CHANGES_REQUESTED, True): [
        (Action.SUBMIT, APPLICANT),
        (Action.VALIDATE, INSTRUCTOR),
        (Action.REOPEN, APPLICANT),
        (Action.SUBMIT, APPLICANT),
        (Action.REQUEST_CHANGES, INSTRUCTOR),
    ],
}


async def _reach(
    maker: async_sessionmaker[AsyncSession], settings: Settings, situation: tuple[State, bool]
) -> int:
    async with maker() as session, session.begin():
        request_id = (await filled_request(session)).id
        for action, actor in PATHS[situation]:
            await _step(action, actor)(session, settings, request_id)
        view = await habilitations.get_request(
            session=session, actor=MANAGER, request_id=request_id
        )
    assert (view.state, view.has_active_habilitation) == (situation[0].value, situation[1])
    return request_id


def _expected(row: wf.Transition, actor: Actor, situation: tuple[State, bool]) -> str:
    if actor is OTHER_APPLICANT:
        return "absent"
    if actor not in MAY_FIRE[row.action]:
        return "forbidden"
    state, has = situation
    if state in row.sources and row.habilitation in (None, has):
        return TARGETS[row.action].value
    return "refused"


async def _outcome(
    maker: async_sessionmaker[AsyncSession], settings: Settings, request_id: int, step: Step
) -> str:
    try:
        async with maker() as session, session.begin():
            await step(session, settings, request_id)
            view = await habilitations.get_request(
                session=session, actor=MANAGER, request_id=request_id
            )
            return view.state
    except RequestNotFound:
        return "absent"
    except ActionForbidden:
        return "forbidden"
    except TransitionRefused:
        return "refused"


@pytest.mark.parametrize("situation", SITUATIONS, ids=lambda s: f"{s[0].value}-{s[1]}")
async def test_every_action_by_every_actor(
    maker: async_sessionmaker[AsyncSession],
    module_settings: Settings,
    situation: tuple[State, bool],
) -> None:
    """Generated from the table: allowed rows move to their target, others are refused
    (wrong state or condition), forbidden (wrong party) or absent (other organisation).
    The request is made again after each move, so that each case starts from
    ``situation``."""
    mismatches = []
    for row in wf.TRANSITIONS:
        request_id = await _reach(maker, module_settings, situation)
        # Those whom the outcome must not move first, then the one allowed (if any).
        ordered = sorted(
            ACTORS,
            key=lambda a: _expected(row, a, situation) not in {"absent", "forbidden", "refused"},
        )
        for actor in ordered:
            expected = _expected(row, actor, situation)
            if (
                expected not in {"absent", "forbidden", "refused"}
                and actor is MANAGER
                and row.by is Party.INSTRUCTOR
            ):
                continue  # the instructor already moved it; the manager's right is below
            got = await _outcome(maker, module_settings, request_id, _step(row.action, actor))
            if got != expected:
                mismatches.append(f"{row.action} by {actor.label}: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("action", [Action.REQUEST_CHANGES, Action.REFUSE])
async def test_the_manager_decides_what_the_instructor_decides(
    maker: async_sessionmaker[AsyncSession], module_settings: Settings, action: Action
) -> None:
    request_id = await _reach(maker, module_settings, (State.SUBMITTED, False))
    got = await _outcome(maker, module_settings, request_id, _step(action, MANAGER))
    assert got == wf.BY_ACTION[action].target.value


@pytest.mark.parametrize(
    ("action", "reason", "analysis", "message"),
    [
        (Action.REFUSE, "", ANALYSIS, "motif"),
        (Action.REFUSE, "  ", ANALYSIS, "motif"),
        (Action.REFUSE, REASON, "", "analyse juridique"),
        (Action.REQUEST_CHANGES, "", "", "motif"),
        (Action.VALIDATE, "", " ", "analyse juridique"),
    ],
)
async def test_a_decision_without_its_reason_or_analysis_is_refused(
    *,
    maker: async_sessionmaker[AsyncSession],
    module_settings: Settings,
    action: Action,
    reason: str,
    analysis: str,
    message: str,
) -> None:
    request_id = await _reach(maker, module_settings, (State.SUBMITTED, False))
    common: dict[str, Any] = {"actor": INSTRUCTOR, "request_id": request_id}
    call: Callable[..., Awaitable[object]]
    match action:
        case Action.REFUSE:
            call = partial(habilitations.refuse, reason=reason, legal_analysis=analysis, **common)
        case Action.REQUEST_CHANGES:
            call = partial(habilitations.request_changes, reason=reason, **common)
        case _:
            call = partial(
                habilitations.validate, settings=module_settings, legal_analysis=analysis, **common
            )
    async with maker() as session, session.begin():
        with pytest.raises(TransitionRefused, match=message):
            await call(session=session)
        view = await habilitations.get_request(
            session=session, actor=INSTRUCTOR, request_id=request_id
        )
    assert view.state == "submitted"


def test_reporters_decide_nothing_and_applicants_nothing_of_the_staff() -> None:
    """Pinned by hand: whatever the table says, these must hold."""
    admin = staff(StaffRole.ADMIN)
    for row in wf.TRANSITIONS:
        assert not wf.is_party(REPORTER, row.by, siret=APPLICANT.organisation_siret or "")
        if row.by is not Party.APPLICANT:
            assert not wf.is_party(APPLICANT, row.by, siret=APPLICANT.organisation_siret or "")
            assert wf.is_party(admin, row.by, siret="x")
        else:
            assert not wf.is_party(INSTRUCTOR, row.by, siret=APPLICANT.organisation_siret or "")
            assert not wf.is_party(Actor.system("cli:op"), row.by, siret="x")
    for action in (Action.VALIDATE, Action.REFUSE, Action.REQUEST_CHANGES, Action.REVOKE):
        with pytest.raises(ActionForbidden):
            wf.check(
                action,
                actor=REPORTER,
                siret="13000000000005",
                state=State.SUBMITTED,
                stage=Environment.SANDBOX,
                has_habilitation=False,
                reason="r",
                legal_analysis="a",
            )


def test_refusals_change_requests_and_revocations_need_a_reason() -> None:
    needing = {row.action for row in wf.TRANSITIONS if row.needs_reason}
    assert needing == {Action.REFUSE, Action.REQUEST_CHANGES, Action.REVOKE}
    decisions = {row.action for row in wf.TRANSITIONS if row.needs_legal_analysis}
    assert decisions == {Action.VALIDATE, Action.REFUSE}


def test_the_production_stage_starts_only_from_a_validated_sandbox_request() -> None:
    for stage in Environment:
        allowed = [
            t.action
            for t in wf.available(
                actor=APPLICANT,
                siret=APPLICANT.organisation_siret or "",
                state=State.VALIDATED,
                stage=stage,
                has_habilitation=True,
            )
        ]
        assert (Action.START_NEXT_STAGE in allowed) is (stage is Environment.SANDBOX)


def test_every_state_but_the_final_ones_has_a_way_out() -> None:
    leaving = {state for row in wf.TRANSITIONS for state in row.sources if row.target is not state}
    assert set(State) - leaving == {State.REFUSED, State.ARCHIVED, State.REVOKED}
    assert ActorKind.SYSTEM  # the operator's shell is covered by is_party above


def test_errors_are_habilitation_errors() -> None:
    for error in (ActionForbidden, TransitionRefused, RequestNotFound):
        assert issubclass(error, HabilitationError)
