"""The portal's pages: headers, forms (CSRF, errors kept next to fields), sign-in with
TOTP, roles, what consumer credentials open (R-HAB-1, R-HAB-2, R-Q-2)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from ensu import clock, db
from ensu.accounts.principal import StaffRole
from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus
from ensu.portal.app import create_portal_app
from tests.support.certs import SIRET, create_client, make_certificate
from tests.unit.portal.conftest import (
    PASSWORD,
    csrf_of,
    make_staff,
    post_form,
    sign_in_staff,
    sign_up,
)

PUBLIC_PAGES = ["/", "/connexion", "/inscription", "/developpeurs", "/dev/courriels"]
CERT = make_certificate("portal")


async def _events(settings: Settings) -> list[Event]:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            return list((await session.scalars(select(Event).order_by(Event.id))).all())
    finally:
        await engine.dispose()


async def _teleservice(settings: Settings) -> str:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.session_scope(db.make_sessionmaker(engine)) as session:
            created = await create_client(session, CERT, client_id="portal-test")
            return created.id_teleservice
    finally:
        await engine.dispose()


async def _status(settings: Settings, id_teleservice: str) -> TeleserviceStatus:
    engine = db.make_engine(settings.database_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            view = await consumers.load_view(session=session, id_teleservice=id_teleservice)
            assert view is not None
            return view.status
    finally:
        await engine.dispose()


@pytest.mark.anyio
@pytest.mark.parametrize("path", [*PUBLIC_PAGES, "/nulle-part"])
async def test_every_answer_carries_the_security_headers(
    portal: httpx.AsyncClient, path: str
) -> None:
    answer = await portal.get(path)
    assert answer.status_code == (404 if path == "/nulle-part" else 200)
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in answer.headers  # plain HTTP on the loopback
    assert '<html lang="fr">' in answer.text
    assert "style=" not in answer.text
    assert "<script" not in answer.text


@pytest.mark.anyio
async def test_the_stylesheet_is_served_locally_and_may_be_cached(
    portal: httpx.AsyncClient,
) -> None:
    answer = await portal.get("/static/portal.css")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert answer.headers["cache-control"].startswith("public")


@pytest.mark.anyio
async def test_a_refused_sign_up_keeps_what_was_typed_and_says_why_next_to_the_field(
    portal: httpx.AsyncClient,
) -> None:
    answer = await post_form(
        portal,
        "/inscription",
        "/inscription",
        {
            "name": "Camille Martin",
            "email": "camille@mairie.example",
            "organisation_siret": "13000000000006",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 400
    html = answer.text
    assert "<title>Erreur : " in html
    assert 'href="#f-organisation_siret"' in html  # the summary links to the field
    field = re.search(r'<div class="field field--error">.*?</div>', html, re.S)
    assert field is not None
    assert 'id="f-organisation_siret-error"' in field.group(0)
    assert "clé de contrôle (Luhn)" in field.group(0)
    assert 'aria-invalid="true"' in field.group(0)
    assert 'value="13000000000006"' in field.group(0)
    assert 'value="Camille Martin"' in html
    assert 'value="camille@mairie.example"' in html
    assert PASSWORD not in html  # a password is never written back


@pytest.mark.anyio
async def test_an_applicant_signs_up_reads_the_welcome_mail_and_signs_out(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    await sign_up(portal)
    account = await portal.get("/compte")
    assert account.status_code == 200
    assert "camille@mairie.example" in account.text
    assert SIRET in account.text
    mails = await portal.get("/dev/courriels")
    assert "Votre compte ENSU Documents est créé" in mails.text
    assert "camille@mairie.example" in mails.text
    out = await portal.post("/deconnexion", data={"csrf": csrf_of(account.text)})
    assert out.status_code == 303
    again = await portal.get("/compte")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/connexion")
    tags = [event.tag for event in await _events(portal_settings)]
    assert EventTag.ACCOUNTS_APPLICANT_SIGNED_UP in tags
    assert EventTag.ACCOUNTS_SESSION_CLOSED in tags


@pytest.mark.anyio
async def test_a_forged_or_missing_csrf_token_is_refused(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    await portal.get("/inscription")  # a session exists, with its own token
    fields = {
        "name": "Camille Martin",
        "email": "camille@mairie.example",
        "organisation_siret": SIRET,
        "password": PASSWORD,
    }
    forged = await portal.post("/inscription", data={"csrf": "x" * 43, **fields})
    missing = await portal.post("/inscription", data=fields)
    assert forged.status_code == missing.status_code == 403
    assert "Le formulaire a expiré" in forged.text
    # The right token from another site is refused too.
    page = await portal.get("/inscription")
    cross = await portal.post(
        "/inscription",
        data={"csrf": csrf_of(page.text), **fields},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert EventTag.ACCOUNTS_APPLICANT_SIGNED_UP not in [
        e.tag for e in await _events(portal_settings)
    ]


@pytest.mark.anyio
async def test_the_token_of_another_session_is_refused(portal_settings: Settings) -> None:
    app = create_portal_app(portal_settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as victim,
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as attacker,
    ):
        token = csrf_of((await attacker.get("/connexion")).text)
        await victim.get("/connexion")
        answer = await victim.post(
            "/connexion", data={"csrf": token, "email": "a@b.fr", "password": "x"}
        )
    assert answer.status_code == 403


@pytest.mark.anyio
async def test_staff_sign_in_with_totp_and_a_replayed_code_is_refused(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    login = await make_staff(portal_settings, StaffRole.INSTRUCTOR)
    before = portal.cookies.get("ensu_portal")
    now = clock.time()
    done = await sign_in_staff(portal, login, now)
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/teleservices"
    assert portal.cookies.get("ensu_portal") != before  # rotated
    listing = await portal.get("/admin/teleservices")
    assert listing.status_code == 200
    assert "Téléservices" in listing.text
    await portal.post("/deconnexion", data={"csrf": csrf_of(listing.text)})
    # The same code, a second time: refused.
    first = await post_form(
        portal, "/connexion", "/connexion", {"email": login.email, "password": PASSWORD}
    )
    assert first.headers["location"] == "/connexion/code"
    replay = await post_form(
        portal, "/connexion/code", "/connexion/code", {"code": login.code(now)}
    )
    assert replay.status_code == 400
    assert "déjà été utilisé" in replay.text
    assert (await portal.get("/admin/teleservices")).status_code == 303
    reasons = [
        e.details.get("reason")
        for e in await _events(portal_settings)
        if e.tag == EventTag.ACCOUNTS_SIGN_IN_FAILED
    ]
    assert reasons == ["replayed_code"]


@pytest.mark.anyio
async def test_the_password_step_alone_opens_no_staff_page(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    login = await make_staff(portal_settings, StaffRole.MANAGER)
    await post_form(
        portal, "/connexion", "/connexion", {"email": login.email, "password": PASSWORD}
    )
    for path in ("/admin/teleservices", "/compte"):
        answer = await portal.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/connexion")


@pytest.mark.anyio
async def test_throttling_after_five_failures_in_the_page(portal: httpx.AsyncClient) -> None:
    await sign_up(portal, "dominique@mairie.example")
    page = await portal.get("/compte")
    await portal.post("/deconnexion", data={"csrf": csrf_of(page.text)})
    for _ in range(5):
        wrong = await post_form(
            portal,
            "/connexion",
            "/connexion",
            {"email": "dominique@mairie.example", "password": "mauvais mot de passe"},
        )
        assert wrong.status_code == 400
        assert "incorrect" in wrong.text
        assert 'value="dominique@mairie.example"' in wrong.text
    closed = await post_form(
        portal,
        "/connexion",
        "/connexion",
        {"email": "dominique@mairie.example", "password": PASSWORD},
    )
    assert closed.status_code == 429
    assert "Trop de tentatives" in closed.text


@pytest.mark.anyio
async def test_a_reporter_cannot_suspend_where_a_manager_can(portal_settings: Settings) -> None:
    identifier = await _teleservice(portal_settings)
    reporter = await make_staff(portal_settings, StaffRole.REPORTER)
    manager = await make_staff(portal_settings, StaffRole.MANAGER)
    app = create_portal_app(portal_settings)
    page = f"/admin/teleservices/{identifier}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await sign_in_staff(client, reporter, clock.time())
            shown = await client.get(page)
            assert shown.status_code == 200
            assert "Suspendre le téléservice" not in shown.text
            refused = await client.post(
                f"{page}/suspendre", data={"csrf": csrf_of(shown.text), "reason": "essai"}
            )
            assert refused.status_code == 403
        assert await _status(portal_settings, identifier) is TeleserviceStatus.ACTIVE
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await sign_in_staff(client, manager, clock.time())
            shown = await client.get(page)
            assert "Suspendre le téléservice" in shown.text
            done = await client.post(
                f"{page}/suspendre", data={"csrf": csrf_of(shown.text), "reason": "incident"}
            )
            assert done.status_code == 303
            assert (
                "Le téléservice est suspendu." in (await client.get(done.headers["location"])).text
            )
    assert await _status(portal_settings, identifier) is TeleserviceStatus.SUSPENDED
    suspended = [
        e
        for e in await _events(portal_settings)
        if e.tag == EventTag.CONSUMERS_TELESERVICE_SUSPENDED
    ]
    assert [(e.actor, e.details["reason"]) for e in suspended] == [
        ("staff:manager@dgfip.example", "incident")
    ]


@pytest.mark.anyio
async def test_a_quota_above_the_default_needs_its_justification_field_by_field(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    identifier = await _teleservice(portal_settings)
    manager = await make_staff(portal_settings, StaffRole.MANAGER)
    await sign_in_staff(portal, manager, clock.time())
    page = f"/admin/teleservices/{identifier}"
    refused = await post_form(
        portal, page, f"{page}/quota", {"per_minute": "200", "decided_by": "Mme la directrice"}
    )
    assert refused.status_code == 400
    for field in ("load_peaks", "files_count", "periodicity"):
        assert f'href="#f-{field}"' in refused.text
    assert 'value="200"' in refused.text
    assert 'value="Mme la directrice"' in refused.text
    granted = await post_form(
        portal,
        page,
        f"{page}/quota",
        {
            "per_minute": "200",
            "decided_by": "Mme la directrice",
            "load_peaks": "campagne de mai",
            "files_count": "12000",
            "periodicity": "quotidienne",
        },
    )
    assert granted.status_code == 303
    shown = await portal.get(granted.headers["location"])
    assert "200 appels par minute" in shown.text
    assert "enregistré par staff:manager@dgfip.example" in shown.text


@pytest.mark.anyio
async def test_an_applicant_cannot_see_staff_pages(portal: httpx.AsyncClient) -> None:
    await sign_up(portal)
    for path in ("/admin/teleservices", "/admin/teleservices/TS-ANY"):
        answer = await portal.get(path)
        assert answer.status_code == 403
        assert "Votre rôle ne vous permet pas" in answer.text


@pytest.mark.anyio
async def test_consumer_credentials_open_no_portal_page(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    """A bearer token or a client certificate is not a person: the portal knows only its
    own session cookie."""
    bearer = {"authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}
    for path in ("/compte", "/admin/teleservices"):
        answer = await portal.get(path, headers=bearer)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/connexion")
    app = create_portal_app(portal_settings)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/admin/teleservices",
        "raw_path": b"/admin/teleservices",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
        "extensions": {"tls": {"client_cert_chain": [CERT.pem]}},
        "state": {},
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 303


@pytest.mark.anyio
async def test_the_cookie_is_secure_and_host_only_beyond_the_loopback(
    portal_settings: Settings,
) -> None:
    remote = portal_settings.model_copy(update={"portal_host": "portal.dgfip.example"})
    for app, name, secure in (
        (create_portal_app(portal_settings), "ensu_portal", False),
        (create_portal_app(remote), "__Host-ensu_portal", True),
    ):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="https://portal.example"
            ) as client,
        ):
            answer = await client.get("/connexion")
        cookie = answer.headers["set-cookie"]
        assert ("strict-transport-security" in answer.headers) is secure
        assert cookie.startswith(f"{name}=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/" in cookie
        assert ("Secure" in cookie) is secure


@pytest.mark.anyio
async def test_sign_in_never_redirects_to_another_site(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    await sign_up(portal)
    page = await portal.get("/compte")
    await portal.post("/deconnexion", data={"csrf": csrf_of(page.text)})
    answer = await post_form(
        portal,
        "/connexion?suivant=//evil.example/",
        "/connexion",
        {"email": "camille@mairie.example", "password": PASSWORD, "suivant": "//evil.example/"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/compte"


@pytest.mark.anyio
async def test_the_store_documents_the_api_from_its_openapi(portal: httpx.AsyncClient) -> None:
    answer = await portal.get("/developpeurs")
    assert answer.status_code == 200
    assert "/ensudocuments/v1/documents" in answer.text
    assert "/token" in answer.text
    assert "curl" in answer.text
    assert "ID_Teleservice" in answer.text
    assert "Sujets de test du bac à sable" in answer.text


@pytest.mark.anyio
async def test_an_instructor_sets_the_perimeter_and_bad_dates_are_kept_with_their_message(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    identifier = await _teleservice(portal_settings)
    instructor = await make_staff(portal_settings, StaffRole.INSTRUCTOR)
    await sign_in_staff(portal, instructor, clock.time())
    page = f"/admin/teleservices/{identifier}"
    shown = await portal.get(page)
    assert 'id="f-family-declaratives" name="families" value="declaratives" checked' in shown.text
    refused = await portal.post(
        f"{page}/perimetre",
        data={
            "csrf": csrf_of(shown.text),
            "families": ["paiements", "bancaires"],
            "codes": "",
            "period_start": "2023-01-01",
            "period_end": "31/12/2025",
        },
    )
    assert refused.status_code == 400
    assert 'href="#f-period_end"' in refused.text
    assert 'value="31/12/2025"' in refused.text
    assert 'value="paiements" checked' in refused.text
    assert 'value="bancaires" checked' in refused.text
    assert 'value="declaratives" checked' not in refused.text
    done = await portal.post(
        f"{page}/perimetre",
        data={
            "csrf": csrf_of(refused.text),
            "families": ["paiements"],
            "codes": "",
            "period_start": "2023-01-01",
            "period_end": "2025-12-31",
        },
    )
    assert done.status_code == 303
    assert "Le périmètre est modifié." in (await portal.get(done.headers["location"])).text


@pytest.mark.anyio
async def test_an_admin_changes_a_role_where_a_manager_cannot(portal_settings: Settings) -> None:
    manager = await make_staff(portal_settings, StaffRole.MANAGER)
    admin = await make_staff(portal_settings, StaffRole.ADMIN)
    app = create_portal_app(portal_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await sign_in_staff(client, manager, clock.time())
            assert (await client.get("/admin/comptes")).status_code == 403
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await sign_in_staff(client, admin, clock.time())
            listing = await client.get("/admin/comptes")
            assert listing.status_code == 200
            found = re.search(r'action="/admin/comptes/(\d+)/role"', listing.text)
            assert found is not None
            done = await client.post(
                f"/admin/comptes/{found.group(1)}/role",
                data={"csrf": csrf_of(listing.text), "role": "reporter"},
            )
            assert done.status_code == 303
            after = await client.get(done.headers["location"])
            assert "Le rôle est modifié." in after.text
            assert '<option value="reporter" selected>' in after.text
    changed = [e for e in await _events(portal_settings) if e.tag == "accounts:staff:role_changed"]
    assert [(e.actor, e.details["to"]) for e in changed] == [
        ("staff:admin@dgfip.example", "reporter")
    ]
