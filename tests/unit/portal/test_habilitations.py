"""The habilitation pages over httpx: the applicant's form by blocks, attachments, the
instructor's queue, review and decision; another organisation's applicant gets 404 on
every route of a request, a reporter decides nothing (R-HAB-1 to R-HAB-4)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from ensu import clock, db
from ensu.accounts.principal import StaffRole
from ensu.config import Settings
from ensu.habilitations import service as habilitations
from ensu.portal.app import create_portal_app
from tests.support.habilitations import APPLICANT, PDF, sandbox_blocks, validated_request
from tests.unit.portal.conftest import (
    BASE,
    PASSWORD,
    csrf_of,
    make_staff,
    post_form,
    sign_in_staff,
    sign_up,
)

pytestmark = pytest.mark.anyio


def _form_of(block: str, values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A block's values as the page's dotted form fields."""
    form: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            form.update(_form_of(block, value, f"{name}."))
        elif isinstance(value, list):
            form[name] = "\n".join(value)
        elif isinstance(value, bool):
            if value:
                form[name] = "on"
        else:
            form[name] = str(value)
    return form


async def _new_request(client: httpx.AsyncClient) -> str:
    created = await post_form(client, "/demandes", "/demandes", {"organisation_name": "Région"})
    assert created.status_code == 303, created.text
    return str(created.headers["location"])


async def _fill(client: httpx.AsyncClient, path: str) -> None:
    for block, values in sandbox_blocks().items():
        saved = await post_form(client, path, f"{path}/blocs/{block}", _form_of(block, values))
        assert saved.status_code == 303, (block, saved.text)


async def _act(client: httpx.AsyncClient, path: str, action: str, **fields: str) -> httpx.Response:
    return await post_form(client, path, f"{path}/actions/{action}", fields)


async def test_from_the_form_to_the_validated_request(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    await sign_up(portal)
    path = await _new_request(portal)
    page = await portal.get(path)
    assert "Soumettre la demande" in page.text
    refused = await post_form(
        portal, path, f"{path}/blocs/donnees_personnelles",
        {"destinataires_donnees": "Agents", "duree_conservation_mois": "48",
         "formalites_accomplies": "on"},
    )  # fmt: skip
    assert refused.status_code == 400
    assert "une conservation de plus de 36 mois doit être justifiée" in refused.text
    assert 'value="48"' in refused.text  # the typed value is kept
    form_page = await portal.get(path)
    uploaded = await portal.post(
        f"{path}/pieces",
        data={"csrf": csrf_of(form_page.text), "type": "cadre_juridique"},
        files={"fichier": ("loi.pdf", PDF, "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    not_pdf = await portal.post(
        f"{path}/pieces",
        data={"csrf": csrf_of(form_page.text), "type": "cadre_juridique"},
        files={"fichier": ("loi.pdf", b"MZ....", "application/pdf")},
    )
    assert not_pdf.status_code == 400
    assert "seuls les fichiers PDF" in not_pdf.text
    forged = await portal.post(
        f"{path}/pieces", data={"csrf": "x"}, files={"fichier": ("a.pdf", PDF, "application/pdf")}
    )
    assert forged.status_code == 403
    await _fill(portal, path)
    assert (await _act(portal, path, "submit")).status_code == 303
    assert "soumise" in (await portal.get(path)).text

    async with httpx.AsyncClient(
        transport=portal._transport,
        base_url=BASE,  # the same app, another visitor
    ) as staff_client:
        instructor = await make_staff(portal_settings, StaffRole.INSTRUCTOR)
        await sign_in_staff(staff_client, instructor, clock.time())
        queue = await staff_client.get("/instruction")
        assert f'href="{path}"' in queue.text
        assert "Aides aux entreprises" in queue.text
        review = await staff_client.get(path)
        assert "Valider la demande" in review.text
        assert "Soumettre la demande" not in review.text
        no_reason = await _act(staff_client, path, "request_changes", motif=" ")
        assert no_reason.status_code == 409
        assert "exige un motif" in no_reason.text
        asked = await _act(staff_client, path, "request_changes", motif="Précisez l'usage.")
        assert asked.status_code == 303
    amended = await post_form(portal, path, f"{path}/blocs/volumetrie", {"appels_par_minute": "45"})
    assert amended.status_code == 303
    assert (await _act(portal, path, "submit")).status_code == 303
    async with httpx.AsyncClient(transport=portal._transport, base_url=BASE) as staff_client:
        await sign_in_staff(staff_client, instructor, clock.time() + 30)
        validated = await _act(staff_client, path, "validate", analyse="CRPA L.114-8")
        assert validated.status_code == 303, validated.text
        page = await staff_client.get(path)
    assert "ID_Teleservice" in page.text
    history = (await portal.get(path)).text
    assert "Précisez l&#39;usage." in history or "Précisez l'usage." in history
    assert "Demander l&#39;accès à la production" in history or "Demander l'accès" in history
    mails = await portal.get("/dev/courriels")
    assert "tess@example.fr" in mails.text


async def test_another_organisation_gets_404_on_every_route_and_a_reporter_decides_nothing(
    portal_settings: Settings,
) -> None:
    app = create_portal_app(portal_settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as owner:
            await sign_up(owner)
            path = await _new_request(owner)
            await _fill(owner, path)
            assert (await _act(owner, path, "submit")).status_code == 303
            csrf_page = await owner.get(path)
            sha = re.search(r"/pieces/([0-9a-f]{64})", csrf_page.text)
            assert sha is None  # no attachment in this one; a made-up digest below
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as other:
            answer = await post_form(
                other, "/inscription", "/inscription",
                {"name": "Mallory", "email": "mallory@ailleurs.example",
                 "organisation_siret": "21750001600019", "password": PASSWORD},
            )  # fmt: skip
            assert answer.status_code == 303
            assert path not in (await other.get("/demandes")).text
            assert (await other.get(path)).status_code == 404
            assert (await other.get(f"{path}/pieces/{'0' * 64}")).status_code == 404
            token = csrf_of((await other.get("/demandes")).text)
            for suffix in ("/blocs/volumetrie", "/actions/submit", "/actions/archive",
                           "/messages", "/habilitations/1/secret"):  # fmt: skip
                posted = await other.post(
                    f"{path}{suffix}", data={"csrf": token, "appels_par_minute": "1"}
                )
                assert posted.status_code == 404, suffix
            uploaded = await other.post(
                f"{path}/pieces", data={"csrf": token, "type": "recette"},
                files={"fichier": ("a.pdf", PDF, "application/pdf")},
            )  # fmt: skip
            assert uploaded.status_code == 404
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as reporter_client:
            reporter = await make_staff(portal_settings, StaffRole.REPORTER)
            await sign_in_staff(reporter_client, reporter, clock.time())
            page = await reporter_client.get(path)
            assert page.status_code == 200
            assert "Valider la demande" not in page.text
            forced = await _act(reporter_client, path, "validate", analyse="a")
            assert forced.status_code == 409
            assert "réservé" in forced.text
            assert (await reporter_client.get(path)).text.count("soumise") >= 1


async def test_a_validation_whose_provisioning_fails_keeps_nothing(
    portal: httpx.AsyncClient, portal_settings: Settings
) -> None:
    """The reopened request asks another token method: provisioning refuses it after the
    state moved; the page says why and the request is still submitted (R-HAB-4)."""
    engine = db.make_engine(portal_settings.database_url)
    try:
        async with db.session_scope(db.make_sessionmaker(engine)) as session:
            view = await validated_request(session, portal_settings)
            await habilitations.reopen(session=session, actor=APPLICANT, request_id=view.id)
            access = dict(
                view.data["acces_technique"], methode_authentification="client_secret_basic"
            )
            await habilitations.save_block(
                session=session, actor=APPLICANT, request_id=view.id, block="acces_technique",
                values=access,
            )  # fmt: skip
            await habilitations.submit(
                session=session, settings=portal_settings, actor=APPLICANT, request_id=view.id
            )
    finally:
        await engine.dispose()
    instructor = await make_staff(portal_settings, StaffRole.INSTRUCTOR)
    await sign_in_staff(portal, instructor, clock.time())
    path = f"/demandes/{view.id}"
    refused = await _act(portal, path, "validate", analyse="CRPA")
    assert refused.status_code == 409
    assert (
        "méthode d&#39;authentification" in refused.text
        or "méthode d'authentification" in refused.text
    )
    assert "soumise" in refused.text
    again = await portal.get(path)
    assert "Valider la demande" in again.text
    (snapshot,) = [
        line for line in again.text.splitlines() if "obsolète" in line or ">active<" in line
    ]
    assert ">active<" in snapshot
