"""An applicant never sees nor acts on another organisation's request: every service
function answers as if it did not exist (R-HAB-1, R-DATA-5's spirit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.config import Settings
from ensu.habilitations import service as habilitations
from ensu.habilitations.errors import RequestNotFound
from tests.support.habilitations import (
    APPLICANT,
    OTHER_APPLICANT,
    PDF,
    REPORTER,
    validated_request,
)

pytestmark = pytest.mark.anyio

Call = Callable[[AsyncSession, Settings, int, Any], Awaitable[object]]
SHA = "0" * 64
MINE = {"session", "actor", "request_id"}
CALLS: dict[str, Call] = {
    "get_request": lambda s, st, i, a: habilitations.get_request(session=s, actor=a, request_id=i),
    "timeline": lambda s, st, i, a: habilitations.timeline(session=s, actor=a, request_id=i),
    "list_habilitations": lambda s, st, i, a: habilitations.list_habilitations(
        session=s, actor=a, request_id=i
    ),
    "save_block": lambda s, st, i, a: habilitations.save_block(
        session=s, actor=a, request_id=i, block="volumetrie", values={"appels_par_minute": 1}
    ),
    "attach": lambda s, st, i, a: habilitations.attach(
        session=s,
        settings=st,
        actor=a,
        request_id=i,
        kind="recette",
        filename="r.pdf",
        content=PDF,
    ),
    "read_attachment": lambda s, st, i, a: habilitations.read_attachment(
        session=s, settings=st, actor=a, request_id=i, sha256=SHA
    ),
    "post_message": lambda s, st, i, a: habilitations.post_message(
        session=s, actor=a, request_id=i, body="bonjour"
    ),
    "submit": lambda s, st, i, a: habilitations.submit(
        session=s, settings=st, actor=a, request_id=i
    ),
    "request_changes": lambda s, st, i, a: habilitations.request_changes(
        session=s, actor=a, request_id=i, reason="r"
    ),
    "refuse": lambda s, st, i, a: habilitations.refuse(
        session=s, actor=a, request_id=i, reason="r", legal_analysis="a"
    ),
    "validate": lambda s, st, i, a: habilitations.validate(
        session=s, settings=st, actor=a, request_id=i, legal_analysis="a"
    ),
    "revoke": lambda s, st, i, a: habilitations.revoke(
        session=s, actor=a, request_id=i, reason="r"
    ),
    "archive": lambda s, st, i, a: habilitations.archive(session=s, actor=a, request_id=i),
    "reopen": lambda s, st, i, a: habilitations.reopen(session=s, actor=a, request_id=i),
    "cancel_reopening": lambda s, st, i, a: habilitations.cancel_reopening(
        session=s, actor=a, request_id=i
    ),
    "start_next_stage": lambda s, st, i, a: habilitations.start_next_stage(
        session=s, actor=a, request_id=i
    ),
    "current_notice": lambda s, st, i, a: habilitations.current_notice(
        session=s, settings=st, actor=a, request_id=i
    ),
}


def test_every_function_of_a_request_is_covered() -> None:
    """A new service function taking a request is added to CALLS (or this fails)."""
    import inspect  # noqa: PLC0415

    taking_a_request = {
        name
        for name in habilitations.__all__
        if inspect.iscoroutinefunction(getattr(habilitations, name))
        and "request_id" in inspect.signature(getattr(habilitations, name)).parameters
    }
    assert taking_a_request == set(CALLS)


async def test_another_organisation_s_request_is_absent_to_every_function(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        request_id = (await validated_request(session, settings)).id
    for name, call in CALLS.items():
        async with sessionmaker() as session:
            with pytest.raises(RequestNotFound):
                await call(session, settings, request_id, OTHER_APPLICANT)
            assert name
    async with sessionmaker() as session:
        assert await habilitations.list_requests(session=session, actor=OTHER_APPLICANT) == []
        assert await habilitations.list_habilitations(session=session, actor=OTHER_APPLICANT) == []
        (snapshot,) = await habilitations.list_habilitations(session=session, actor=APPLICANT)
        with pytest.raises(RequestNotFound):
            await habilitations.reveal_secret(
                session=session,
                settings=settings,
                actor=OTHER_APPLICANT,
                habilitation_id=snapshot.id,
            )
        # A reporter reads everything and writes nothing.
        assert [
            v.id for v in await habilitations.list_requests(session=session, actor=REPORTER)
        ] == [request_id]
        view = await habilitations.get_request(
            session=session, actor=REPORTER, request_id=request_id
        )
        assert view.actions == ()
        with pytest.raises(habilitations.ActionForbidden):
            await habilitations.post_message(
                session=session, actor=REPORTER, request_id=request_id, body="avis"
            )
