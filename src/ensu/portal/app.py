"""``create_portal_app()``: the portal's own ASGI app (Starlette), on its own listener.

It shares the database with the API but nothing of its process path: no gateway, no
journal writer (events go to the ``audit_events`` outbox in the view's transaction and
the API's relay journals them), no client certificate. ``ensu serve`` runs it beside
the API (:mod:`ensu.cli.serve`); ``ensu portal serve`` runs it alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ensu import db
from ensu.config import Settings, get_settings, is_loopback
from ensu.portal import filters
from ensu.portal.routes import ROUTES
from ensu.portal.security import SecurityHeaders

HERE = Path(__file__).parent


def templates() -> Environment:
    """Jinja2, autoescaped; a name missing from a page's context is an error, not blank."""
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters.install(environment)
    return environment


def create_portal_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url, timeout=settings.store_timeout_seconds)
        app.state.engine = engine
        app.state.sessionmaker = db.make_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = Starlette(
        routes=[*ROUTES, Mount("/static", StaticFiles(directory=HERE / "static"), name="static")],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed, 500: _internal},
    )
    app.state.settings = settings
    app.state.templates = templates()
    # Outside the loopback the portal is behind TLS: the cookie is Secure (and __Host-).
    app.state.secure_cookie = not is_loopback(settings.portal_host)
    app.add_middleware(SecurityHeaders, https=app.state.secure_cookie)
    return app


def create_served_portal() -> Starlette:
    """The uvicorn factory of ``ensu portal serve``."""
    return create_portal_app()


def _plain(request: Request, status: int, message: str) -> Response:
    page = request.app.state.templates.get_template("errors/refused.html")
    body = page.render(page=None, person=None, csrf_token="", request=request, message=message)
    return HTMLResponse(body, status_code=status)


async def _not_found(request: Request, _error: Exception) -> Response:
    return _plain(request, 404, "Cette page n'existe pas. Vérifiez l'adresse saisie.")


async def _not_allowed(request: Request, _error: Exception) -> Response:
    return _plain(request, 405, "Cette action n'est pas possible sur cette page.")


async def _internal(request: Request, _error: Exception) -> Response:
    return _plain(request, 500, "Une erreur est survenue. Réessayez dans quelques instants.")
