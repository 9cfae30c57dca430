"""An axe-core scan (axe-playwright-python, which ships axe's JavaScript) of every portal
page, as each kind of visitor sees it, with and without form errors: any serious or
critical violation fails (RGAA 4.1 / WCAG 2.1 AA)."""

from __future__ import annotations

import json
import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from ensu.accounts.principal import StaffRole
from tests.browser.conftest import ARTIFACTS, Portal, sign_in, sign_up
from tests.browser.test_journeys import _teleservice

BLOCKING = {"serious", "critical"}
#: WCAG 2.0/2.1 A and AA, plus axe's best practices (landmarks, headings, regions).
OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
AXE = Axe()


def scan(page: Page, label: str) -> list[str]:
    """The blocking violations on the page as it is now (the report is kept)."""
    results = AXE.run(page, options=OPTIONS)
    violations = results.response["violations"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    (ARTIFACTS / f"axe_{name}.json").write_text(json.dumps(violations, indent=2))
    page.screenshot(path=str(ARTIFACTS / f"axe_{name}.png"), full_page=True)
    return [
        f"{label}: {v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in violations
        if v.get("impact") in BLOCKING
    ]


def test_public_pages(portal: Portal, page: Page) -> None:
    found: list[str] = []
    for path in ("/", "/connexion", "/inscription", "/developpeurs", "/dev/courriels", "/absente"):
        page.goto(f"{portal.url}{path}")
        found += scan(page, path)
    assert found == []


def test_forms_with_their_errors(portal: Portal, page: Page) -> None:
    found: list[str] = []
    page.goto(f"{portal.url}/inscription")
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page.locator(".error-summary")).to_be_visible()
    found += scan(page, "inscription-errors")
    sign_in(page, portal.url, "personne@mairie.example", "mauvais mot de passe")
    expect(page.locator(".error-summary")).to_be_visible()
    found += scan(page, "connexion-errors")
    assert found == []


def test_applicant_pages(portal: Portal, page: Page) -> None:
    sign_up(page, portal.url, "Alex Durand", "alex@mairie.example", "13000000000005")
    found = scan(page, "compte")
    page.get_by_label("Mot de passe actuel").fill("faux")
    page.get_by_role("button", name="Changer le mot de passe").click()
    found += scan(page, "compte-errors")
    page.goto(f"{portal.url}/admin/teleservices")
    found += scan(page, "refused")
    assert found == []


@pytest.mark.parametrize("role", [StaffRole.REPORTER, StaffRole.MANAGER, StaffRole.ADMIN])
def test_staff_pages(portal: Portal, page: Page, role: StaffRole) -> None:
    identifier = _teleservice(portal)
    agent = portal.staff(role, f"axe-{role.value}")
    sign_in(page, portal.url, agent.email)
    found = scan(page, f"code-{role.value}")
    page.get_by_label("Code de vérification").fill(agent.code())
    page.get_by_role("button", name="Valider").click()
    found += scan(page, f"teleservices-{role.value}")
    page.goto(f"{portal.url}/admin/teleservices/{identifier}")
    found += scan(page, f"teleservice-{role.value}")
    if role is StaffRole.ADMIN:
        page.goto(f"{portal.url}/admin/comptes")
        found += scan(page, "comptes")
    if role is StaffRole.MANAGER:
        page.get_by_label("Nouveau quota").fill("500")
        page.get_by_role("button", name="Enregistrer la décision").click()
        expect(page.locator(".error-summary")).to_be_visible()
        found += scan(page, "teleservice-quota-errors")
    assert found == []
