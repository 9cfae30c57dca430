"""The portal under httpx (in process, lifespan run), on the test's migrated SQLite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from ensu import db
from ensu.accounts import service as accounts
from ensu.accounts import totp
from ensu.accounts.principal import StaffRole
from ensu.config import Settings
from ensu.portal.app import create_portal_app

PASSWORD = "un mot de passe assez long"
BASE = "http://127.0.0.1:8080"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass(frozen=True)
class StaffLogin:
    email: str
    password: str
    secret: str

    def code(self, at: float) -> str:
        return totp.code_at(self.secret, at)


@pytest.fixture
def portal_settings(sqlite_settings: Settings) -> Settings:
    return sqlite_settings.model_copy(update={"mail_outbox": True})


@pytest.fixture
async def portal(portal_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_portal_app(portal_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        yield client


async def make_staff(settings: Settings, role: StaffRole, email: str = "") -> StaffLogin:
    """A staff account with ``role`` (``email`` default: ``<role>@dgfip.example``)."""
    engine = db.make_engine(settings.database_url)
    try:
        async with db.session_scope(db.make_sessionmaker(engine)) as session:
            created = await accounts.create_staff(
                session=session,
                name=f"Agent {role.value}",
                email=email or f"{role.value}@dgfip.example",
                role=role,
                password=PASSWORD,
                actor="test",
            )
    finally:
        await engine.dispose()
    return StaffLogin(email=created.person.email, password=PASSWORD, secret=created.totp_secret)


async def post_form(
    client: httpx.AsyncClient, form_page: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """GET the page holding the form (for its CSRF token), then POST the form."""
    page = await client.get(form_page)
    return await client.post(action, data={"csrf": csrf_of(page.text), **data})


async def sign_in_staff(client: httpx.AsyncClient, login: StaffLogin, at: float) -> httpx.Response:
    first = await post_form(
        client, "/connexion", "/connexion", {"email": login.email, "password": login.password}
    )
    assert first.status_code == 303
    assert first.headers["location"] == "/connexion/code"
    return await post_form(client, "/connexion/code", "/connexion/code", {"code": login.code(at)})


async def sign_up(client: httpx.AsyncClient, email: str = "camille@mairie.example") -> None:
    answer = await post_form(
        client,
        "/inscription",
        "/inscription",
        {
            "name": "Camille Martin",
            "email": email,
            "organisation_siret": "13000000000005",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 303, answer.text
