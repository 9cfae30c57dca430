"""The home page: what the portal is for, and where to go."""

from __future__ import annotations

from starlette.responses import Response

from ensu.portal.web import Page


async def index(page: Page) -> Response:
    return page.render("home.html")
