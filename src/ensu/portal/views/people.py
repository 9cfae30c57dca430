"""Admins: the accounts of the portal, staff and applicants (R-HAB-2: "an admin manages
people"). Roles and closing an account go through :mod:`ensu.accounts.service`, which
checks the actor's role again and journals the change."""

from __future__ import annotations

from starlette.responses import Response

from ensu.accounts import service as accounts
from ensu.accounts.errors import NotAllowed, UnknownPerson
from ensu.accounts.principal import ActorKind, StaffRole
from ensu.portal.web import Page, Refused


async def index(page: Page) -> Response:
    return page.render(
        "people/index.html",
        staff=await accounts.list_people(session=page.db, kind=ActorKind.STAFF),
        applicants=await accounts.list_people(session=page.db, kind=ActorKind.APPLICANT),
        roles=list(StaffRole),
        done=page.request.query_params.get("fait", ""),
    )


def _person_id(page: Page) -> int:
    raw = page.request.path_params["person_id"]
    if not raw.isdigit():
        raise Refused(404, "Ce compte n'existe pas.")
    return int(raw)


async def role(page: Page) -> Response:
    form = await page.form()
    try:
        chosen = StaffRole(form.get("role"))
    except ValueError:
        raise Refused(400, "Ce rôle n'existe pas.") from None
    try:
        await accounts.set_role(
            session=page.db, person_id=_person_id(page), role=chosen, actor=page.actor
        )
    except (NotAllowed, UnknownPerson) as refused:
        raise Refused(403, f"Modification refusée : {refused}.") from None
    return page.redirect("/admin/comptes?fait=role")


async def status(page: Page) -> Response:
    form = await page.form()
    try:
        await accounts.set_active(
            session=page.db,
            person_id=_person_id(page),
            active=form.get("active") == "1",
            actor=page.actor,
        )
    except (NotAllowed, UnknownPerson) as refused:
        raise Refused(403, f"Modification refusée : {refused}.") from None
    return page.redirect("/admin/comptes?fait=statut")
