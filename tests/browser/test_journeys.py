"""What people do in the portal, in a real browser (R-HAB-1, R-HAB-2, R-Q-2)."""

from __future__ import annotations

import time
import uuid

from playwright.sync_api import BrowserContext, Page, expect

from ensu import db
from ensu.accounts.principal import StaffRole
from tests.browser.conftest import Portal, run_async, sign_in, sign_up
from tests.support.certs import SIRET, create_client, make_certificate
from tests.unit.portal.conftest import PASSWORD

CERT = make_certificate("browser")


def _teleservice(portal: Portal) -> str:
    async def work() -> str:
        engine = db.make_engine(portal.settings.database_url)
        try:
            async with db.session_scope(db.make_sessionmaker(engine)) as session:
                client_id = f"browser-{uuid.uuid4().hex[:8]}"
                created = await create_client(session, CERT, client_id=client_id)
                return created.id_teleservice
        finally:
            await engine.dispose()

    return run_async(work())


def test_an_applicant_signs_up_after_correcting_the_siret(portal: Portal, page: Page) -> None:
    sign_up(page, portal.url, "Camille Martin", "camille@mairie.example", "13000000000006")
    expect(page).to_have_title("Erreur : Créer un compte — ENSU Documents")
    # The summary has the focus and links to the field; the field says why, value kept.
    assert page.evaluate("document.activeElement.className") == "error-summary"
    siret = page.get_by_label("SIRET de l'organisation")
    expect(siret).to_have_value("13000000000006")
    expect(siret).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-organisation_siret-error")).to_contain_text("clé de contrôle")
    expect(page.get_by_label("Nom et prénom")).to_have_value("Camille Martin")
    page.get_by_role("link", name="SIRET de l'organisation").click()
    assert page.evaluate("document.activeElement.id") == "f-organisation_siret"
    siret.fill("13000000000005")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page).to_have_url(f"{portal.url}/compte?bienvenue=1")
    expect(page.get_by_role("status")).to_contain_text("Votre compte est créé")
    page.get_by_role("link", name="Courriels envoyés").click()
    expect(page.get_by_role("heading", name="Votre compte ENSU Documents est créé")).to_be_visible()


def test_staff_sign_in_with_a_code_which_then_cannot_be_replayed(
    portal: Portal, page: Page, context: BrowserContext
) -> None:
    agent = portal.staff(StaffRole.INSTRUCTOR, "instructor")
    now = time.time()
    sign_in(page, portal.url, agent.email)
    expect(page).to_have_url(f"{portal.url}/connexion/code")
    page.get_by_label("Code de vérification").fill(agent.code(now))
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(f"{portal.url}/admin/teleservices")
    expect(page.get_by_role("heading", level=1)).to_have_text("Téléservices")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
    sign_in(page, portal.url, agent.email)
    page.get_by_label("Code de vérification").fill(agent.code(now))
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#f-code-error")).to_contain_text("déjà été utilisé")
    page.goto(f"{portal.url}/admin/teleservices")
    expect(page).to_have_url(f"{portal.url}/connexion?suivant=/admin/teleservices")


def test_a_forged_csrf_token_is_refused(portal: Portal, page: Page) -> None:
    page.goto(f"{portal.url}/connexion")
    page.locator("input[name=csrf]").evaluate("field => { field.value = 'forged-token' }")
    page.get_by_label("Adresse électronique").fill("camille@mairie.example")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    with page.expect_response(f"{portal.url}/connexion") as answer:
        page.get_by_role("button", name="Se connecter").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Accès impossible")


def test_sign_in_is_throttled_after_five_failures(portal: Portal, page: Page) -> None:
    agent = portal.staff(StaffRole.REPORTER, "reporter")
    for _ in range(5):
        sign_in(page, portal.url, agent.email, "mauvais mot de passe")
        expect(page.locator("#f-email-error")).to_contain_text("incorrect")
        expect(page.get_by_label("Adresse électronique")).to_have_value(agent.email)
    sign_in(page, portal.url, agent.email)
    expect(page.locator("#f-email-error")).to_contain_text("Trop de tentatives")
    expect(page).to_have_url(f"{portal.url}/connexion")


def test_a_reporter_cannot_suspend_where_a_manager_can(
    portal: Portal, browser_pages: tuple[Page, Page]
) -> None:
    identifier = _teleservice(portal)
    reporter_page, manager_page = browser_pages
    reporter = portal.staff(StaffRole.REPORTER, "reporter2")
    manager = portal.staff(StaffRole.MANAGER, "manager")
    address = f"{portal.url}/admin/teleservices/{identifier}"
    for page, agent in ((reporter_page, reporter), (manager_page, manager)):
        sign_in(page, portal.url, agent.email)
        page.get_by_label("Code de vérification").fill(agent.code())
        page.get_by_role("button", name="Valider").click()
        page.goto(address)
    expect(reporter_page.get_by_role("button", name="Suspendre le téléservice")).to_have_count(0)
    token = reporter_page.locator("input[name=csrf]").first.get_attribute("value") or ""
    refused = reporter_page.request.post(
        f"{address}/suspendre", form={"csrf": token, "reason": "essai"}, max_redirects=0
    )
    assert refused.status == 403
    manager_page.get_by_label("Motif").fill("incident de sécurité")
    manager_page.get_by_role("button", name="Suspendre le téléservice").click()
    expect(manager_page.get_by_role("status")).to_contain_text("Le téléservice est suspendu.")
    expect(manager_page.get_by_role("button", name="Réactiver le téléservice")).to_be_visible()


def test_consumer_credentials_open_no_portal_page(portal: Portal, page: Page) -> None:
    page.set_extra_http_headers(
        {"Authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZWxlc2VydmljZSJ9.c2ln"}
    )
    for path in ("/admin/teleservices", "/compte"):
        page.goto(f"{portal.url}{path}")
        expect(page).to_have_url(f"{portal.url}/connexion?suivant={path}")


def test_an_applicant_cannot_see_staff_pages(portal: Portal, page: Page) -> None:
    sign_up(page, portal.url, "Dominique Petit", "dominique@mairie.example", SIRET)
    expect(page).to_have_url(f"{portal.url}/compte?bienvenue=1")
    expect(page.get_by_role("link", name="Téléservices")).to_have_count(0)
    with page.expect_response(f"{portal.url}/admin/teleservices") as answer:
        page.goto(f"{portal.url}/admin/teleservices")
    assert answer.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Accès impossible")
