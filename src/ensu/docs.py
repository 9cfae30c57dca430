"""The API's documentation pages, with every asset served by the app itself.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their scripts, styles and icon from
``/docs-assets/``, the files of the ``fastapi-offline`` distribution (Swagger UI's and
ReDoc's own bundles), never from a CDN: a consumer reading the documentation tells no
third party, and the pages work where the Internet is not reachable. Swagger UI's online
validator (a call to validator.swagger.io with the document's URL) is off, and ReDoc is
served without Google Fonts. ReDoc's bundle still names one image on its CDN (the
"API docs by Redocly" logo, drawn unconditionally): the pages' Content-Security-Policy
(:data:`CSP`) lets the browser fetch nothing but the app's own URLs, so that image is
never requested (ReDoc hides it when it fails).

The pages and ``/openapi.json`` are on in the sandbox and off in production unless
``ENSU_API_DOCS=true`` (:attr:`ensu.config.Settings.api_docs_enabled`).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ensu.config import Settings

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
OPENAPI_URL = "/openapi.json"
SWAGGER_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
#: What the documentation pages may load: the app's own URLs only (inline scripts and
#: styles: Swagger UI's start-up script, ReDoc's styled components; blob: its worker).
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def openapi_url(settings: Settings) -> str | None:
    """FastAPI's ``openapi_url``: None turns the document off."""
    return OPENAPI_URL if settings.api_docs_enabled else None


def mount(app: FastAPI, *, settings: Settings) -> None:
    """Add the pages and their assets to ``app`` when the settings allow them."""
    if not settings.api_docs_enabled:
        return
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    title = app.title

    @app.get(SWAGGER_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url=OPENAPI_URL,
                title=f"{title} — Swagger UI",
                oauth2_redirect_url=OAUTH2_REDIRECT_URL,
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _confined(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url=OPENAPI_URL,
                title=f"{title} — ReDoc",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
