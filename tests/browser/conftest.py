"""Browser tests: the portal served by ``ensu portal serve`` on a free port, with a
temporary ``var/``, driven by Playwright through Debian's ``/usr/bin/chromium`` (never a
browser download).

Each test's last screen is kept as a PNG under ``var/test-artifacts/browser/`` (or
``$ENSU_TEST_ARTIFACTS``), the failing ones included: what a reviewer opens first.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from ensu import db
from ensu.accounts import totp
from ensu.accounts.principal import StaffRole
from ensu.config import Settings
from tests.conftest import IN_CI
from tests.support.smtp import free_port
from tests.unit.portal.conftest import PASSWORD, make_staff

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ENSU_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts" / "browser"))
T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a sync test: in its own thread, away from Playwright's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@dataclass(frozen=True)
class Portal:
    url: str
    settings: Settings

    def staff(self, role: StaffRole, name: str) -> StaffAccount:
        """A new staff account ``<name>@dgfip.example`` (unique per portal)."""
        login = run_async(make_staff(self.settings, role, f"{name}@dgfip.example"))
        return StaffAccount(email=login.email, secret=login.secret)


@dataclass(frozen=True)
class StaffAccount:
    email: str
    secret: str

    def code(self, at: float | None = None) -> str:
        return totp.code_at(self.secret, time.time() if at is None else at)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """``ensu portal serve`` in a subprocess, on a free port, with its own ``var/``."""
    var_dir = tmp_path_factory.mktemp("portal") / "var"
    var_dir.mkdir()
    settings = Settings(var_dir=var_dir, mail_outbox=True)
    db.upgrade(settings.database_url)
    port = free_port()
    env = {
        **os.environ,
        "ENSU_VAR_DIR": str(var_dir),
        "ENSU_MAIL_OUTBOX": "true",
        "ENSU_PORTAL_PORT": str(port),
    }
    log = (var_dir / "portal.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("ensu")), "portal", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, var_dir / "portal.log")
        yield Portal(url=url, settings=settings)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the portal exited: {log.read_text()}")
        try:
            httpx.get(f"{url}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"the portal did not answer within 30 s: {log.read_text()}")


# Module scope, not session: Playwright's sync API keeps its event loop running while it
# is open, and the tests after these (asyncio.run, anyio) would find it running.
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: make system-deps installs Debian's chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="fr-FR")
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page (its own cookies); its last screen is kept as a PNG artifact."""
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    if not page.is_closed():
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def browser_pages(browser: Browser) -> Iterator[tuple[Page, Page]]:
    """Two people at once: two contexts (two cookie jars), both screenshotted."""
    contexts = [browser.new_context(locale="fr-FR") for _ in range(2)]
    pages = (contexts[0].new_page(), contexts[1].new_page())
    yield pages
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for index, page in enumerate(pages):
        page.screenshot(path=str(ARTIFACTS / f"two_people_{index}.png"), full_page=True)
    for context in contexts:
        context.close()


def sign_in(page: Page, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/connexion")
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()


def sign_up(page: Page, url: str, name: str, email: str, siret: str) -> None:
    page.goto(f"{url}/inscription")
    page.get_by_label("Nom et prénom").fill(name)
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("SIRET de l'organisation").fill(siret)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
