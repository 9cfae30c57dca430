"""The documentation pages load nothing from another host; off in production.

``/docs`` and ``/redoc`` are read as a browser would start: every ``src`` and ``href``
of the page, and every absolute URL anywhere in its HTML or inline script, must be the
app's own; each asset the page names is then fetched from the app. Swagger UI's online
validator (which would send the document's URL to validator.swagger.io) is off.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ensu import db, docs
from ensu.app import create_app
from ensu.config import Environment, Settings

BASE = "http://ensu.test"
ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")
PAGES = ("/docs", "/redoc")
REAL_SECRET = SecretStr("4c1d9a7e2b8f0e6d3a5c9b1f7e2d8a4c6b0f3e9d1a7c5b2e8f4d0a6c3b9e1f7d")


async def fetch(settings: Settings, *paths: str) -> dict[str, httpx.Response]:
    """``paths`` through the app as it serves: migrated, its lifespan run."""
    db.upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return {path: await client.get(path) for path in paths}


def external_urls(html: str) -> list[str]:
    found = [url for url in ATTRIBUTE.findall(html) if ABSOLUTE.match(url)]
    found += [url for url in ABSOLUTE.findall(html) if not url.startswith(BASE)]
    return found


@pytest.mark.anyio
@pytest.mark.parametrize("page", PAGES)
async def test_the_pages_load_only_the_apps_own_assets(var_dir: Path, page: str) -> None:
    settings = Settings(var_dir=var_dir)
    html = (await fetch(settings, page))[page]
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    policy = html.headers["content-security-policy"]
    assert policy == docs.CSP
    assert "default-src 'self'" in policy
    assert "http" not in policy  # no other host is ever allowed
    assert external_urls(html.text) == []
    assets = [url for url in ATTRIBUTE.findall(html.text) if url.startswith("/")]
    assert assets, "the page names no asset: the test would prove nothing"
    fetched = await fetch(settings, *assets, "/openapi.json")
    for url, response in fetched.items():
        assert response.status_code == 200, url
        assert len(response.content) > 100, url
    assert fetched["/openapi.json"].json()["info"]["title"] == "API ENSU Documents"


@pytest.mark.anyio
async def test_swagger_ui_calls_no_online_validator(var_dir: Path) -> None:
    html = (await fetch(Settings(var_dir=var_dir), "/docs"))["/docs"].text
    assert '"validatorUrl": null' in html


def test_the_check_sees_a_cdn() -> None:
    """The control: FastAPI's own default page, with its CDN, is caught."""
    cdn = '<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js">'
    assert external_urls(cdn) == [
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
        "https://cdn.jsdelivr.net",
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("setting", "status"), [(None, 404), (True, 200), (False, 404)])
async def test_production_serves_the_docs_only_when_a_setting_says_so(
    var_dir: Path, setting: bool | None, status: int
) -> None:
    settings = Settings(
        var_dir=var_dir,
        environment=Environment.PRODUCTION,
        secret_key=REAL_SECRET,
        api_docs=setting,
    )
    answers = await fetch(
        settings, "/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css"
    )
    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(
        answers, status
    )


@pytest.mark.anyio
async def test_the_sandbox_can_turn_them_off(var_dir: Path) -> None:
    answers = await fetch(Settings(var_dir=var_dir, api_docs=False), "/docs", "/openapi.json")
    assert [answer.status_code for answer in answers.values()] == [404, 404]
