"""What every portal view uses: the request's :class:`Page`, forms with CSRF, guards.

A view is ``async def view(page: Page) -> Response``, wrapped in routes.py by
:func:`view` which decides who may see it (:class:`Access`), opens the database
transaction (committed when the view returns, rolled back when it raises), loads the
visitor's session from the cookie, and sets or clears the cookie on the way out.

Sessions (R-HAB-1): the cookie holds a random token, the row its hash
(:mod:`ensu.accounts.service`). ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` with the
``__Host-`` prefix whenever the portal listens beyond the loopback (then behind TLS).

CSRF: every form carries the session's synchroniser token (``{{ csrf_field() }}``); a
POST whose token is absent or differs from the session's, or whose ``Origin`` is another
site's, is refused with 403 before the view runs (:meth:`Page.form`).
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ensu.accounts import service as accounts
from ensu.accounts.models import SessionStage
from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.accounts.schemas import PersonView, SessionView
from ensu.config import Settings

COOKIE = "ensu_portal"
SECURE_COOKIE = "__Host-ensu_portal"
#: Forms are small; a larger body is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "csrf"


class Refused(Exception):
    """Stop the view and answer ``status`` with the page ``errors/<status>.html``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Access(enum.Enum):
    """Who may open a page."""

    ANYONE = "anyone"
    SIGNED_IN = "signed_in"
    APPLICANT = "applicant"
    STAFF = "staff"


@dataclass
class Form:
    """A submitted ``application/x-www-form-urlencoded`` form: ``get`` the first value of
    a name, ``all`` every value (checkboxes)."""

    values: dict[str, str]
    lists: dict[str, list[str]] = field(default_factory=dict)

    def all(self, name: str) -> list[str]:
        return list(self.lists.get(name, []))

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def kept(self, *secret: str) -> dict[str, str]:
        """The values to write back into the page: all but the ``secret`` ones (a
        password is never written into a page)."""
        return {key: value for key, value in self.values.items() if key not in secret}


@dataclass
class Page:
    """One request to one view: its database session, its visitor, its answer."""

    request: Request
    db: AsyncSession
    settings: Settings
    visit: SessionView | None
    cookie_name: str
    secure: bool
    _new_token: str | None = None
    _clear: bool = False
    _form: Form | None = field(default=None, repr=False)

    # -- who --------------------------------------------------------------------------

    @property
    def address(self) -> str:
        client = self.request.client
        return client.host if client else "unknown"

    @property
    def person(self) -> PersonView | None:
        """The person signed in (both factors for staff), else ``None``."""
        return self.visit.signed_in if self.visit else None

    @property
    def actor(self) -> Actor:
        """The signed-in person as the workflows see them (views with an Access other
        than ANYONE are only reached signed in)."""
        if self.person is None:
            raise Refused(401, "Connectez-vous pour accéder à cette page.")
        return self.person.actor

    # -- sessions -----------------------------------------------------------------------

    async def ensure_visit(self) -> SessionView:
        """The visitor's session, an anonymous one opened if there is none (a form needs
        its CSRF token)."""
        if self.visit is None:
            opened = await accounts.open_session(
                session=self.db, stage=SessionStage.ANONYMOUS, address=self.address
            )
            self.visit, self._new_token = opened.view, opened.token
        return self.visit

    async def rotate(self, *, stage: SessionStage, person: PersonView | None) -> SessionView:
        """A new session replacing the current one (new token, new CSRF token): at each
        step of sign-in, so that a token known before it is worth nothing after."""
        opened = await accounts.open_session(
            session=self.db,
            stage=stage,
            person=person,
            address=self.address,
            replaces=self.visit.id if self.visit else None,
        )
        self.visit, self._new_token = opened.view, opened.token
        return opened.view

    async def sign_out(self) -> None:
        if self.visit is not None:
            await accounts.close_session(session=self.db, view=self.visit, address=self.address)
        self.visit, self._clear = None, True

    # -- forms ----------------------------------------------------------------------------

    async def form(self) -> Form:
        """The posted form, once its CSRF token and origin are checked (else 403)."""
        if self._form is not None:
            return self._form
        body = await _body(self.request)
        values: dict[str, str] = {}
        lists: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            values.setdefault(key, value)
            lists.setdefault(key, []).append(value)
        self._check_origin()
        sent = values.pop(CSRF_FIELD, "")
        expected = self.visit.csrf_token if self.visit else ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Refused(
                403,
                "Le formulaire a expiré ou ne vient pas de ce site : rechargez la page et "
                "recommencez.",
            )
        self._form = Form(values, lists)
        return self._form

    def form_values(self, name: str) -> list[str]:
        """Every value of ``name`` in the form read by :meth:`form` (checkboxes)."""
        return self._form.all(name) if self._form is not None else []

    def _check_origin(self) -> None:
        if self.request.headers.get("sec-fetch-site") == "cross-site":
            raise Refused(403, "Un autre site ne peut pas envoyer de formulaire au portail.")
        origin = self.request.headers.get("origin")
        if origin and origin != "null":
            host = urlsplit(origin).netloc
            if host != self.request.headers.get("host", ""):
                raise Refused(403, "Un autre site ne peut pas envoyer de formulaire au portail.")

    # -- answers --------------------------------------------------------------------------

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        templates = self.request.app.state.templates
        body = templates.get_template(template).render(
            page=self,
            person=self.person,
            csrf_token=self.visit.csrf_token if self.visit else "",
            request=self.request,
            **context,
        )
        return HTMLResponse(body, status_code=status)

    def redirect(self, path: str) -> RedirectResponse:
        """303 See Other: after a POST, the browser GETs ``path``."""
        return RedirectResponse(path, status_code=303)

    def finish(self, response: Response) -> Response:
        if self._new_token is not None:
            response.set_cookie(
                self.cookie_name,
                self._new_token,
                path="/",
                httponly=True,
                samesite="lax",
                secure=self.secure,
            )
        elif self._clear:
            response.delete_cookie(
                self.cookie_name, path="/", httponly=True, samesite="lax", secure=self.secure
            )
        return response


async def _body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise Refused(415, "Ce formulaire n'a pas été envoyé dans le format attendu.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise Refused(413, "Le formulaire envoyé est trop volumineux.")
        chunks.append(chunk)
    return b"".join(chunks)


View = Callable[[Page], Awaitable[Response]]


def _check_access(page: Page, access: Access, role: StaffRole | None, path: str) -> Response | None:
    """A redirect to sign-in for a visitor, a 403 for a person without the rights."""
    if access is Access.ANYONE:
        return None
    person = page.person
    if person is None:
        return page.redirect(f"/connexion?suivant={path}")
    if access is Access.APPLICANT and person.kind is not ActorKind.APPLICANT:
        raise Refused(403, "Cette page est réservée aux demandeurs.")
    if access is Access.STAFF and not person.actor.is_staff(role or StaffRole.REPORTER):
        raise Refused(403, "Votre rôle ne vous permet pas d'accéder à cette page ou action.")
    return None


def view(
    handler: View, access: Access = Access.ANYONE, role: StaffRole | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``handler``: transaction, session, access, cookie."""

    async def endpoint(request: Request) -> Response:
        state = request.app.state
        maker: async_sessionmaker[AsyncSession] = state.sessionmaker
        async with maker() as db:
            page = await _open_page(request, db, state.settings, state.secure_cookie)
            try:
                refusal = _check_access(page, access, role, _local_path(request))
                response = refusal or await handler(page)
            except Refused as refused:
                await db.rollback()  # nothing of a refused request is kept, its cookie neither
                page._new_token = None
                response = page.render(
                    "errors/refused.html", status=refused.status, message=refused.message
                )
            await db.commit()
            return page.finish(response)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _local_path(request: Request) -> str:
    path = request.url.path
    return path if path.startswith("/") and not path.startswith("//") else "/"


async def _open_page(request: Request, db: AsyncSession, settings: Settings, secure: bool) -> Page:
    name = SECURE_COOKIE if secure else COOKIE
    token = request.cookies.get(name, "")
    visit = await accounts.load_session(session=db, token=token) if token else None
    return Page(
        request=request,
        db=db,
        settings=settings,
        visit=visit,
        cookie_name=name,
        secure=secure,
        _clear=bool(token) and visit is None,
    )


#: A local path and query, nothing a browser could read as another host (``//``, ``\\``,
#: control characters, a scheme).
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%=&?+-]*")


def safe_next(target: str | None, default: str) -> str:
    """A local path to go to after sign-in, never another site (open redirect)."""
    if not target or _LOCAL_PATH.fullmatch(target) is None:
        return default
    return target
