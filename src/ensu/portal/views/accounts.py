"""Sign-up, sign-in (password, then TOTP for staff), sign-out, the account page.

R-HAB-1 (the applicant and their organisation), R-HAB-2 (who acts). Every step goes
through :mod:`ensu.accounts.service`, which throttles and journals; the session is
rotated at each step (:meth:`~ensu.portal.web.Page.rotate`).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.responses import Response

from ensu import mail
from ensu.accounts import service as accounts
from ensu.accounts.errors import InvalidAccountData
from ensu.accounts.models import SessionStage
from ensu.accounts.principal import ActorKind
from ensu.accounts.schemas import PersonView
from ensu.portal.web import Page, safe_next

logger = logging.getLogger("ensu.portal")

SIGN_UP_LABELS = {
    "name": "Nom et prénom",
    "email": "Adresse électronique",
    "organisation_siret": "SIRET de l'organisation",
    "password": "Mot de passe",
}
SIGN_IN_LABELS = {"email": "Adresse électronique", "password": "Mot de passe"}
CODE_LABELS = {"code": "Code de vérification"}
PASSWORD_LABELS = {
    "current_password": "Mot de passe actuel",
    "new_password": "Nouveau mot de passe",
}


def _home_of(person: PersonView) -> str:
    return "/admin/teleservices" if person.kind is ActorKind.STAFF else "/compte"


# -- sign-up -----------------------------------------------------------------------------


async def sign_up_form(page: Page) -> Response:
    if page.person is not None:
        return page.redirect(_home_of(page.person))
    await page.ensure_visit()
    return page.render("accounts/sign_up.html", errors={}, values={}, labels=SIGN_UP_LABELS)


async def sign_up(page: Page) -> Response:
    form = await page.form()
    try:
        person = await accounts.sign_up(
            session=page.db,
            name=form.get("name"),
            email=form.get("email"),
            password=form.get("password"),
            organisation_siret=form.get("organisation_siret"),
        )
    except InvalidAccountData as invalid:
        return page.render(
            "accounts/sign_up.html",
            status=400,
            errors=invalid.fields,
            values=form.kept("password"),
            labels=SIGN_UP_LABELS,
        )
    await page.rotate(stage=SessionStage.SIGNED_IN, person=person)
    await page.db.commit()  # the account exists before its welcome mail leaves
    await _welcome(page, person)
    return page.redirect("/compte?bienvenue=1")


async def _welcome(page: Page, person: PersonView) -> None:
    """Best effort: a mail that does not leave does not undo the account (logged)."""
    try:
        await mail.send_mail(
            page.settings,
            to=[person.email],
            subject="Votre compte ENSU Documents est créé",
            body=(
                f"Bonjour {person.name},\n\n"
                "Votre compte sur le portail ENSU Documents est créé pour l'organisation "
                f"de SIRET {person.organisation_siret}.\n"
                "Vous pouvez maintenant déposer une demande d'habilitation.\n\n"
                "Si vous n'êtes pas à l'origine de cette inscription, ignorez ce message.\n"
            ),
        )
    except mail.MailError as error:
        logger.warning("welcome mail to person %s not sent: %s", person.id, error)


# -- sign-in -----------------------------------------------------------------------------


async def sign_in_form(page: Page) -> Response:
    if page.person is not None:
        return page.redirect(_home_of(page.person))
    await page.ensure_visit()
    return page.render(
        "accounts/sign_in.html",
        errors={},
        values={},
        labels=SIGN_IN_LABELS,
        next=safe_next(page.request.query_params.get("suivant"), ""),
    )


async def sign_in(page: Page) -> Response:
    form = await page.form()
    target = safe_next(form.get("suivant"), "")
    result = await accounts.check_password(
        session=page.db,
        email=form.get("email"),
        password=form.get("password"),
        address=page.address,
    )
    if result.person is None:
        assert result.message is not None
        return page.render(
            "accounts/sign_in.html",
            status=429 if result.retry_after else 400,
            errors={"email": result.message},
            values=form.kept("password"),
            labels=SIGN_IN_LABELS,
            next=target,
        )
    if result.needs_second_factor:
        await page.rotate(stage=SessionStage.SECOND_FACTOR, person=result.person)
        suffix = f"?suivant={quote(target, safe='/')}" if target else ""
        return page.redirect(f"/connexion/code{suffix}")
    await page.rotate(stage=SessionStage.SIGNED_IN, person=result.person)
    return page.redirect(target or _home_of(result.person))


async def code_form(page: Page) -> Response:
    if page.visit is None or page.visit.stage is not SessionStage.SECOND_FACTOR:
        return page.redirect("/connexion")
    return page.render(
        "accounts/code.html",
        errors={},
        values={},
        labels=CODE_LABELS,
        next=safe_next(page.request.query_params.get("suivant"), ""),
    )


async def code(page: Page) -> Response:
    form = await page.form()
    visit = page.visit
    if visit is None or visit.stage is not SessionStage.SECOND_FACTOR or visit.person is None:
        return page.redirect("/connexion")
    target = safe_next(form.get("suivant"), "")
    result = await accounts.check_second_factor(
        session=page.db, person_id=visit.person.id, code=form.get("code"), address=page.address
    )
    if result.person is None:
        assert result.message is not None
        return page.render(
            "accounts/code.html",
            status=429 if result.retry_after else 400,
            errors={"code": result.message},
            values=form.kept(),
            labels=CODE_LABELS,
            next=target,
        )
    await page.rotate(stage=SessionStage.SIGNED_IN, person=result.person)
    return page.redirect(target or _home_of(result.person))


async def sign_out(page: Page) -> Response:
    await page.form()
    await page.sign_out()
    return page.redirect("/connexion?deconnecte=1")


# -- the account -------------------------------------------------------------------------


async def account(page: Page) -> Response:
    return page.render(
        "accounts/account.html",
        errors={},
        values={},
        labels=PASSWORD_LABELS,
        welcome=page.request.query_params.get("bienvenue") == "1",
        changed=page.request.query_params.get("modifie") == "1",
    )


async def change_password(page: Page) -> Response:
    form = await page.form()
    person = page.person
    assert person is not None  # Access.SIGNED_IN
    try:
        await accounts.change_password(
            session=page.db,
            person_id=person.id,
            current=form.get("current_password"),
            new=form.get("new_password"),
        )
    except InvalidAccountData as invalid:
        return page.render(
            "accounts/account.html",
            status=400,
            errors=invalid.fields,
            values={},
            labels=PASSWORD_LABELS,
            welcome=False,
            changed=False,
        )
    # The password changed: every other session of the person is now worth nothing.
    await page.rotate(stage=SessionStage.SIGNED_IN, person=person)
    return page.redirect("/compte?modifie=1")
