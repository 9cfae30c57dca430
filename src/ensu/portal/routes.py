"""Every URL of the portal, in one place (as warehouse's ``admin/routes.py``).

Each line names the path, the view, who may open it (:class:`~ensu.portal.web.Access`,
and the lowest staff role for staff pages) and the methods. A POST view reads its form
with ``await page.form()``, which checks the CSRF token first.
"""

from __future__ import annotations

from starlette.routing import Route

from ensu.accounts.principal import StaffRole
from ensu.portal.views import accounts, habilitations, home, mails, people, store, teleservices
from ensu.portal.web import Access, view

GET, POST = ["GET"], ["POST"]
REPORTER, INSTRUCTOR, MANAGER = StaffRole.REPORTER, StaffRole.INSTRUCTOR, StaffRole.MANAGER
ADMIN = StaffRole.ADMIN
TELESERVICE = "/admin/teleservices/{id_teleservice}"
REQUEST = "/demandes/{id:int}"

ROUTES = [
    Route("/", view(home.index), methods=GET),
    # people: sign-up, sign-in, account (R-HAB-1)
    Route("/inscription", view(accounts.sign_up_form), methods=GET),
    Route("/inscription", view(accounts.sign_up), methods=POST),
    Route("/connexion", view(accounts.sign_in_form), methods=GET),
    Route("/connexion", view(accounts.sign_in), methods=POST),
    Route("/connexion/code", view(accounts.code_form), methods=GET),
    Route("/connexion/code", view(accounts.code), methods=POST),
    Route("/deconnexion", view(accounts.sign_out, Access.SIGNED_IN), methods=POST),
    Route("/compte", view(accounts.account, Access.SIGNED_IN), methods=GET),
    Route("/compte/mot-de-passe", view(accounts.change_password, Access.SIGNED_IN), methods=POST),
    # staff: the téléservices (APIM accounts) through consumers.service (R-HAB-4, R-Q-2)
    Route("/admin/teleservices", view(teleservices.index, Access.STAFF, REPORTER), methods=GET),
    Route(TELESERVICE, view(teleservices.show, Access.STAFF, REPORTER), methods=GET),
    Route(
        f"{TELESERVICE}/suspendre",
        view(teleservices.suspend, Access.STAFF, MANAGER),
        methods=POST,
    ),
    Route(
        f"{TELESERVICE}/reactiver",
        view(teleservices.resume, Access.STAFF, MANAGER),
        methods=POST,
    ),
    Route(f"{TELESERVICE}/quota", view(teleservices.quota, Access.STAFF, MANAGER), methods=POST),
    Route(
        f"{TELESERVICE}/perimetre",
        view(teleservices.perimeter, Access.STAFF, INSTRUCTOR),
        methods=POST,
    ),
    Route(
        f"{TELESERVICE}/certificats",
        view(teleservices.certificates, Access.STAFF, INSTRUCTOR),
        methods=POST,
    ),
    # habilitation requests (R-HAB-1 to R-HAB-4): the service decides who sees and does
    # what on a request (its organisation's applicants, staff by role)
    Route("/demandes", view(habilitations.index, Access.APPLICANT), methods=GET),
    Route("/demandes", view(habilitations.create, Access.APPLICANT), methods=POST),
    Route(REQUEST, view(habilitations.show, Access.SIGNED_IN), methods=GET),
    Route(
        f"{REQUEST}/blocs/{{block}}", view(habilitations.save_block, Access.APPLICANT), methods=POST
    ),
    Route(f"{REQUEST}/pieces", view(habilitations.attach, Access.APPLICANT), methods=POST),
    Route(
        f"{REQUEST}/pieces/{{sha256}}",
        view(habilitations.attachment, Access.SIGNED_IN),
        methods=GET,
    ),
    Route(f"{REQUEST}/actions/{{action}}", view(habilitations.act, Access.SIGNED_IN), methods=POST),
    Route(f"{REQUEST}/messages", view(habilitations.message, Access.SIGNED_IN), methods=POST),
    Route(
        f"{REQUEST}/habilitations/{{habilitation:int}}/secret",
        view(habilitations.reveal, Access.APPLICANT),
        methods=POST,
    ),
    Route("/instruction", view(habilitations.queue, Access.STAFF, REPORTER), methods=GET),
    # admins: the accounts (R-HAB-2)
    Route("/admin/comptes", view(people.index, Access.STAFF, ADMIN), methods=GET),
    Route("/admin/comptes/{person_id}/role", view(people.role, Access.STAFF, ADMIN), methods=POST),
    Route(
        "/admin/comptes/{person_id}/statut", view(people.status, Access.STAFF, ADMIN), methods=POST
    ),
    # developers: the Store (API documentation, sandbox subjects, curl examples)
    Route("/developpeurs", view(store.index), methods=GET),
    # development only: the mails ensu.mail recorded in the outbox
    Route("/dev/courriels", view(mails.index), methods=GET),
]
