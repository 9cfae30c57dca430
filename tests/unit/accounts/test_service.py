"""People, sign-in, second factor, throttling, sessions (R-HAB-1, R-HAB-2)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.accounts import service as accounts
from ensu.accounts import throttle, totp
from ensu.accounts.errors import InvalidAccountData, NotAllowed
from ensu.accounts.models import Person, SessionStage
from ensu.accounts.principal import ActorKind, StaffRole
from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.db import session_scope
from tests.support.certs import SIRET

PASSWORD = "un mot de passe assez long"
T0 = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)

Maker = async_sessionmaker[AsyncSession]


async def _tags(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Event.tag).order_by(Event.id))).all())


async def _staff(maker: Maker, role: StaffRole = StaffRole.INSTRUCTOR) -> tuple[int, str]:
    async with session_scope(maker) as session:
        created = await accounts.create_staff(
            session=session,
            name="Agent",
            email=f"{role.value}@dgfip.example",
            role=role,
            password=PASSWORD,
            actor="test",
        )
    return created.person.id, created.totp_secret


@pytest.mark.anyio
async def test_sign_up_checks_each_field_in_french(sessionmaker: Maker) -> None:
    async with session_scope(sessionmaker) as session:
        with pytest.raises(InvalidAccountData) as refused:
            await accounts.sign_up(
                session=session,
                name=" ",
                email="pas-une-adresse",
                password="court",
                organisation_siret="13000000000006",  # Luhn key wrong
            )
    assert set(refused.value.fields) == {"name", "email", "password", "organisation_siret"}
    assert "Luhn" in refused.value.fields["organisation_siret"]
    assert "12 caractères" in refused.value.fields["password"]


@pytest.mark.anyio
async def test_an_applicant_signs_up_once_per_address_and_is_journaled(
    sessionmaker: Maker,
) -> None:
    async with session_scope(sessionmaker) as session:
        person = await accounts.sign_up(
            session=session,
            name="Camille Martin",
            email="Camille.Martin@Mairie.example",
            password=PASSWORD,
            organisation_siret="130 000 000 000 05",
        )
    assert person.email == "camille.martin@mairie.example"
    assert person.organisation_siret == SIRET
    assert person.actor.acts_for(SIRET)
    async with session_scope(sessionmaker) as session:
        with pytest.raises(InvalidAccountData) as refused:
            await accounts.sign_up(
                session=session,
                name="Autre",
                email="camille.martin@mairie.example",
                password=PASSWORD,
                organisation_siret=SIRET,
            )
        assert "existe déjà" in refused.value.fields["email"]
        assert await _tags(session) == [EventTag.ACCOUNTS_APPLICANT_SIGNED_UP]
        stored = await session.scalar(select(Person.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")


@pytest.mark.anyio
async def test_staff_need_the_second_factor_and_a_code_is_never_accepted_twice(
    sessionmaker: Maker,
) -> None:
    person_id, secret = await _staff(sessionmaker)
    async with session_scope(sessionmaker) as session:
        first = await accounts.check_password(
            session=session,
            email="instructor@dgfip.example",
            password=PASSWORD,
            address="192.0.2.1",
            now=T0,
        )
        assert first.person is not None
        assert first.needs_second_factor
        code = totp.code_at(secret, T0.timestamp())
        passed = await accounts.check_second_factor(
            session=session, person_id=person_id, code=code, address="192.0.2.1", now=T0
        )
        assert passed.person is not None
        assert passed.person.actor.is_staff(StaffRole.INSTRUCTOR)
        replayed = await accounts.check_second_factor(
            session=session,
            person_id=person_id,
            code=code,
            address="192.0.2.1",
            now=T0 + dt.timedelta(seconds=20),
        )
        assert replayed.person is None
        assert replayed.message == accounts.REPLAYED_CODE
        # An older code (the previous step, still inside the drift window) is refused too.
        older = totp.code_at(secret, T0.timestamp() - 30)
        stale = await accounts.check_second_factor(
            session=session, person_id=person_id, code=older, address="192.0.2.1", now=T0
        )
        assert stale.person is None
        later = totp.code_at(secret, T0.timestamp() + 30)
        next_step = await accounts.check_second_factor(
            session=session,
            person_id=person_id,
            code=later,
            address="192.0.2.1",
            now=T0 + dt.timedelta(seconds=30),
        )
        assert next_step.person is not None
        tags = await _tags(session)
    assert tags.count(EventTag.ACCOUNTS_SIGN_IN_SUCCEEDED) == 2
    assert tags.count(EventTag.ACCOUNTS_SIGN_IN_FAILED) == 2


@pytest.mark.anyio
async def test_wrong_password_and_unknown_account_read_the_same(sessionmaker: Maker) -> None:
    await _staff(sessionmaker)
    async with session_scope(sessionmaker) as session:
        wrong = await accounts.check_password(
            session=session, email="instructor@dgfip.example", password="x" * 12, address="a"
        )
        unknown = await accounts.check_password(
            session=session, email="nobody@dgfip.example", password=PASSWORD, address="a"
        )
        details = (await session.scalars(select(Event.details).order_by(Event.id))).all()
    assert wrong.person is None
    assert unknown.person is None
    assert wrong.message == unknown.message == accounts.REFUSED
    assert [d["reason"] for d in details[1:]] == ["bad_password", "unknown_account"]
    assert all("password" not in d for d in details)


@pytest.mark.anyio
async def test_five_failures_close_the_account_even_to_the_right_password(
    sessionmaker: Maker,
) -> None:
    await _staff(sessionmaker)
    email = "instructor@dgfip.example"
    async with session_scope(sessionmaker) as session:
        for attempt in range(throttle.ACCOUNT_LIMIT):
            result = await accounts.check_password(
                session=session,
                email=email,
                password="mauvais mot de passe",
                address=f"198.51.100.{attempt}",  # another address each time
                now=T0 + dt.timedelta(seconds=attempt),
            )
            assert result.retry_after == 0
        closed = await accounts.check_password(
            session=session, email=email, password=PASSWORD, address="203.0.113.9", now=T0
        )
        assert closed.person is None
        assert closed.retry_after > 0
        assert "Trop de tentatives" in (closed.message or "")
        # Once the oldest failure leaves the window, the right password passes again.
        reopened = await accounts.check_password(
            session=session,
            email=email,
            password=PASSWORD,
            address="203.0.113.9",
            now=T0 + throttle.WINDOW + dt.timedelta(seconds=1),
        )
        assert reopened.person is not None
        assert EventTag.ACCOUNTS_SIGN_IN_THROTTLED in await _tags(session)


@pytest.mark.anyio
async def test_an_address_guessing_many_accounts_is_closed(sessionmaker: Maker) -> None:
    await _staff(sessionmaker)
    async with session_scope(sessionmaker) as session:
        for attempt in range(throttle.ADDRESS_LIMIT):
            await accounts.check_password(
                session=session,
                email=f"guess{attempt}@dgfip.example",
                password="mauvais mot de passe",
                address="198.51.100.7",
                now=T0,
            )
        closed = await accounts.check_password(
            session=session,
            email="instructor@dgfip.example",
            password=PASSWORD,
            address="198.51.100.7",
            now=T0,
        )
        other = await accounts.check_password(
            session=session,
            email="instructor@dgfip.example",
            password=PASSWORD,
            address="198.51.100.8",
            now=T0,
        )
    assert closed.person is None
    assert closed.retry_after > 0
    assert other.person is not None


@pytest.mark.anyio
async def test_sessions_rotate_expire_and_end(sessionmaker: Maker) -> None:
    person_id, _secret = await _staff(sessionmaker)
    async with session_scope(sessionmaker) as session:
        person = await accounts.find_person(session=session, email="instructor@dgfip.example")
        assert person is not None
        assert person.id == person_id
        visitor = await accounts.open_session(
            session=session, stage=SessionStage.ANONYMOUS, address="a", now=T0
        )
        signed = await accounts.open_session(
            session=session,
            stage=SessionStage.SIGNED_IN,
            person=person,
            address="a",
            replaces=visitor.view.id,
            now=T0,
        )
        assert signed.token != visitor.token
        assert signed.view.csrf_token != visitor.view.csrf_token
        assert await accounts.load_session(session=session, token=visitor.token, now=T0) is None
        loaded = await accounts.load_session(session=session, token=signed.token, now=T0)
        assert loaded is not None
        assert loaded.signed_in == person
        # Idle for longer than IDLE: gone.
        idle = T0 + accounts.IDLE + dt.timedelta(seconds=1)
        assert await accounts.load_session(session=session, token=signed.token, now=idle) is None
        # Active, but beyond the lifetime: gone.
        moment = T0
        while moment < T0 + accounts.LIFETIME - accounts.IDLE:
            moment += accounts.IDLE / 2
            assert await accounts.load_session(session=session, token=signed.token, now=moment)
        late = T0 + accounts.LIFETIME
        assert await accounts.load_session(session=session, token=signed.token, now=late) is None


@pytest.mark.anyio
async def test_a_password_change_ends_every_session_and_is_journaled(sessionmaker: Maker) -> None:
    async with session_scope(sessionmaker) as session:
        person = await accounts.sign_up(
            session=session,
            name="Camille Martin",
            email="camille@mairie.example",
            password=PASSWORD,
            organisation_siret=SIRET,
        )
        other = await accounts.open_session(
            session=session, stage=SessionStage.SIGNED_IN, person=person, address="a"
        )
        with pytest.raises(InvalidAccountData) as refused:
            await accounts.change_password(
                session=session, person_id=person.id, current="faux", new="x"
            )
        assert set(refused.value.fields) == {"current_password", "new_password"}
        await accounts.change_password(
            session=session, person_id=person.id, current=PASSWORD, new="un autre mot de passe"
        )
        assert await accounts.load_session(session=session, token=other.token) is None
        assert EventTag.ACCOUNTS_PASSWORD_CHANGED in await _tags(session)
        again = await accounts.check_password(
            session=session, email=person.email, password="un autre mot de passe", address="a"
        )
    assert again.person is not None
    assert again.person.kind is ActorKind.APPLICANT


@pytest.mark.anyio
async def test_only_an_admin_manages_people_and_never_their_own_account(
    sessionmaker: Maker,
) -> None:
    person_id, _secret = await _staff(sessionmaker, StaffRole.INSTRUCTOR)
    admin_id, _ = await _staff(sessionmaker, StaffRole.ADMIN)
    async with session_scope(sessionmaker) as session:
        admin = await accounts.find_person(session=session, email="admin@dgfip.example")
        instructor = await accounts.find_person(session=session, email="instructor@dgfip.example")
        assert admin is not None
        assert instructor is not None
        with pytest.raises(NotAllowed):
            await accounts.set_role(
                session=session, person_id=admin_id, role=StaffRole.REPORTER, actor=instructor.actor
            )
        with pytest.raises(NotAllowed):
            await accounts.set_active(
                session=session, person_id=admin_id, active=False, actor=admin.actor
            )
        changed = await accounts.set_role(
            session=session, person_id=person_id, role=StaffRole.MANAGER, actor=admin.actor
        )
        assert changed.role is StaffRole.MANAGER
        opened = await accounts.open_session(
            session=session, stage=SessionStage.SIGNED_IN, person=changed, address="a"
        )
        await accounts.set_active(
            session=session, person_id=person_id, active=False, actor=admin.actor
        )
        assert await accounts.load_session(session=session, token=opened.token) is None
        closed = await accounts.check_password(
            session=session, email="instructor@dgfip.example", password=PASSWORD, address="a"
        )
        assert closed.person is None
        tags = await _tags(session)
    assert EventTag.ACCOUNTS_STAFF_ROLE_CHANGED in tags
    assert EventTag.ACCOUNTS_PERSON_DEACTIVATED in tags
