"""The documentation pages in a real browser load nothing from another host.

Debian's chromium (through playwright) opens ``/docs`` and ``/redoc`` of a running app
and records every request the pages make: scripts, styles, fonts, the OpenAPI document,
anything the scripts fetch at run time (Swagger UI's online validator, ReDoc's fonts).
Each page must render the API's title (its scripts ran and read the document, under the
pages' Content-Security-Policy), and every request that leaves the page (routed through
playwright, which sees what the browser would send on the network) must go to the app
itself. ``tests/unit/test_docs.py`` reads the same pages without a browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ensu import db
from ensu.config import Settings, TLSMode
from tests.conftest import IN_CI
from tests.functional.conftest import app_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TITLE = "API ENSU Documents"
RENDER_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        message = "chromium is not installed (make system-deps installs it)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: chromium is required")
        pytest.skip(message)
    var = tmp_path_factory.mktemp("docs") / "var"
    settings = Settings(var_dir=var, tls_mode=TLSMode.PROXY)
    db.upgrade(settings.database_url)
    with app_server(settings) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("page", "rendered"),
    [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")],
)
def test_the_page_renders_from_the_apps_own_assets_only(
    base_url: str, page: str, rendered: str
) -> None:
    from playwright.sync_api import Route, sync_playwright  # noqa: PLC0415 - test-only

    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            browser_page = browser.new_page()

            def sent(route: Route) -> None:
                requested.append(route.request.url)
                route.continue_()

            browser_page.route("**/*", sent)
            browser_page.goto(f"{base_url}{page}")
            title = browser_page.wait_for_selector(rendered, timeout=RENDER_TIMEOUT_MS)
            assert title is not None
            assert TITLE in title.inner_text()
            browser_page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    assert f"{base_url}/openapi.json" in requested
    own = (f"{base_url}/", f"blob:{base_url}/", "data:")  # blob: and data: are in memory
    assert [url for url in requested if not url.startswith(own)] == [], requested
