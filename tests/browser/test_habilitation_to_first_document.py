"""The acceptance journey of onboarding (R-HAB-1 to R-HAB-4, R-SEC-1, R-GW-5), in a real
browser (Debian's chromium), against real servers:

an applicant signs up and submits a sandbox request; an instructor signs in with TOTP and
asks for a change; the applicant amends; the instructor validates; a real SMTP server
(aiosmtpd) receives the credentials mail; with those credentials and the uploaded
certificate a real mutual-TLS call gets a sandbox document; the applicant starts the
production stage, attaches the homologation, confirms the recette; the instructor
validates; a production call works, and a sandbox token is refused by production (403
``910004``).

The portal runs as ``ensu portal serve`` (a subprocess); the sandbox and production APIs
are two instances of the app (uvicorn, mutual TLS) on the same database, like two
instances scaled out, one with ``ENSU_ENVIRONMENT=production`` and a PKI directory
without the development marker. A screenshot of each step is kept under
``var/test-artifacts/browser/journey-NN-*.png``.
"""

from __future__ import annotations

import datetime as dt
import email.header
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr

from ensu import clock, db
from ensu.accounts import totp
from ensu.accounts.principal import StaffRole
from ensu.config import Environment, Settings
from ensu.pki import service as pki
from tests.browser.conftest import ARTIFACTS, _wait_until_up, run_async
from tests.browser.test_accessibility import scan
from tests.functional.conftest import app_server
from tests.support.smtp import Inbox, body_of, free_port, smtp_server
from tests.unit.portal.conftest import PASSWORD, make_staff

SIRET = "13000000000005"
REHEARSAL_CA = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC de recette ENSU")])
SECRET = SecretStr("4c1d9a7e2b8f0e6d3a5c9b1f7e2d8a4c6b0f3e9d1a7c5b2e8f4d0a6c3b9e1f7d")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass(frozen=True)
class World:
    portal: str
    sandbox_api: str
    production_api: str
    inbox: Inbox
    settings: Settings
    certificate: Path
    key: Path
    ca: Path
    siren: str


def _api(stack: ExitStack, settings: Settings) -> str:
    return f"https://127.0.0.1:{stack.enter_context(app_server(settings))}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    var_dir = tmp_path_factory.mktemp("journey") / "var"
    var_dir.mkdir()
    settings = Settings(var_dir=var_dir, secret_key=SECRET, probe_enabled=False, metrics_port=0)
    db.upgrade(settings.database_url)
    # Production refuses the development CA (by its name and fingerprints): both APIs run
    # on a rehearsal of production's own PKI, a CA of another name (R-GW-1).
    pki.init(directory=settings.pki_dir_path, ca_name=REHEARSAL_CA)
    certificate = pki.issue_client(directory=settings.pki_dir_path, name="mairie")
    key = pki.PkiLayout(settings.pki_dir_path).client_key("mairie")
    env = {**os.environ, "ENSU_VAR_DIR": str(var_dir), "ENSU_SECRET_KEY": SECRET.get_secret_value()}
    ensu = str(Path(sys.executable).with_name("ensu"))
    subprocess.run(
        [ensu, "sandbox", "generate", "--subjects", "3", "--years", "1"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    with sqlite3.connect(var_dir / "ensu.db") as connection:
        (siren,) = connection.execute(
            "SELECT siren FROM subjects WHERE siren IS NOT NULL ORDER BY id LIMIT 1"
        ).fetchone()
    with ExitStack() as stack:
        inbox, smtp_port = stack.enter_context(smtp_server())
        sandbox_api = _api(stack, settings)
        production = settings.model_copy(update={"environment": Environment.PRODUCTION})
        production_api = _api(stack, production)
        portal_port = free_port()
        log_path = var_dir / "portal.log"
        log = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen(
            [ensu, "portal", "serve"],
            env={
                **env,
                "ENSU_PORTAL_PORT": str(portal_port),
                "ENSU_SMTP_HOST": "127.0.0.1",
                "ENSU_SMTP_PORT": str(smtp_port),
                "ENSU_MAIL_SENDER": "habilitations@dgfip.example",
                "ENSU_PUBLIC_URL": sandbox_api,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(process.wait, 10)
        stack.callback(process.terminate)
        portal_url = f"http://127.0.0.1:{portal_port}"
        _wait_until_up(portal_url, process, log_path)
        yield World(
            portal=portal_url,
            sandbox_api=sandbox_api,
            production_api=production_api,
            inbox=inbox,
            settings=settings,
            certificate=certificate,
            key=key,
            ca=settings.pki_dir_path / "ca.pem",
            siren=str(siren),
        )


# -- the browser's hands ------------------------------------------------------------------


class Shots:
    """Numbered screenshots of the journey's steps."""

    def __init__(self) -> None:
        self.count = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, name: str) -> None:
        self.count += 1
        path = ARTIFACTS / f"journey-{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)


def _fill_block(page: Page, block: str, title: str, values: dict[str, str | bool]) -> None:
    for name, value in values.items():
        locator = page.locator(f'[id="f-{block}.{name}"]')
        if isinstance(value, bool):
            locator.set_checked(value)
        elif locator.evaluate("element => element.tagName") == "SELECT":
            locator.select_option(value)
        else:
            locator.fill(value)
    page.get_by_role("button", name=f"Enregistrer « {title} »").click()
    expect(page.get_by_role("status")).to_contain_text("Le bloc est enregistré.")


def _sandbox_form(page: Page, certificate_pem: str) -> None:
    _fill_block(page, "informations", "Informations générales", {
        "intitule": "Aides aux entreprises du territoire",
        "description": "Instruction des demandes d'aides économiques des entreprises.",
        "usage_donnees": "Vérifier la régularité fiscale de l'entreprise qui demande l'aide.",
        "services_destinataires": "Direction du développement économique",
    })  # fmt: skip
    _fill_block(page, "perimetre", "Données demandées", {
        "familles": "declaratives\nobligations_fiscales\npaiements",
        "periode_debut": "2015-01-01", "periode_fin": "2035-12-31",
    })  # fmt: skip
    _fill_block(page, "donnees_personnelles", "Données personnelles", {
        "destinataires_donnees": "Les instructeurs du service des aides",
        "duree_conservation_mois": "24", "formalites_accomplies": True,
    })  # fmt: skip
    _fill_block(page, "cadre_juridique", "Cadre juridique", {
        "nature": "Code des relations entre le public et l'administration, L.114-8",
        "url": "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031367358",
    })  # fmt: skip
    people: dict[str, str | bool] = {}
    roles = {"responsable_traitement": "rose", "delegue_protection_donnees": "denis"}
    for prefix, name in {**roles, "contact_technique": "tess"}.items():
        people[f"{prefix}.nom"] = name.capitalize() + " Martin"
        people[f"{prefix}.email"] = f"{name}@region.example"
    _fill_block(page, "contacts", "Contacts", people)
    _fill_block(page, "volumetrie", "Volumétrie", {"appels_par_minute": "30"})
    _fill_block(page, "acces_technique", "Accès technique", {
        "certificat_pem": certificate_pem, "reseaux": "127.0.0.0/8\n::1/128",
    })  # fmt: skip
    _fill_block(page, "cgu", "Conditions générales d'utilisation", {"acceptees": True})


def _staff_sign_in(page: Page, world: World, email: str, secret: str, at: float) -> None:
    page.goto(f"{world.portal}/connexion")
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_label("Code de vérification").fill(totp.code_at(secret, at))
    page.get_by_role("button", name="Valider").click()


def _act(page: Page, label: str, *, motif: str = "", analyse: str = "", action: str = "") -> None:
    if motif:
        page.locator(f'[id="f-{action}-motif"]').fill(motif)
    if analyse:
        page.locator(f'[id="f-{action}-analyse"]').fill(analyse)
    page.get_by_role("button", name=label, exact=True).click()


# -- the consumer's calls -----------------------------------------------------------------


def _client(world: World) -> httpx.Client:
    context = ssl.create_default_context(cafile=world.ca)
    context.load_cert_chain(world.certificate, world.key)
    return httpx.Client(verify=context, timeout=10)


def _mails_to(world: World, address: str) -> list[Message]:
    return [message for _, to, message in world.inbox.messages if to == [address]]


def _credentials(body: str) -> tuple[str, str]:
    id_teleservice = re.search(r"ID_Teleservice : (\S+)", body)
    client_id = re.search(r"client_id\s+: (\S+)", body)
    assert id_teleservice, body
    assert client_id, body
    return id_teleservice.group(1), client_id.group(1)


def _token(client: httpx.Client, api: str, client_id: str) -> str:
    answer = client.post(
        f"{api}/token", data={"grant_type": "client_credentials", "client_id": client_id}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _get(client: httpx.Client, url: str, token: str, id_teleservice: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "ID_Teleservice": id_teleservice,
        "X-Correlation-ID": str(uuid.uuid4()),
    }
    return client.get(url, headers=headers)


# -- the journey -----------------------------------------------------------------------------


def test_from_sign_up_to_a_production_document(world: World, browser: Browser) -> None:
    import time  # noqa: PLC0415

    shots = Shots()
    instructor = run_async(make_staff(world.settings, StaffRole.INSTRUCTOR, "ines@dgfip.example"))
    applicant_context = browser.new_context(locale="fr-FR")
    staff_context = browser.new_context(locale="fr-FR")
    applicant, agent = applicant_context.new_page(), staff_context.new_page()
    try:
        # 1. The applicant signs up and submits a sandbox request.
        applicant.goto(f"{world.portal}/inscription")
        applicant.get_by_label("Nom et prénom").fill("Camille Martin")
        applicant.get_by_label("Adresse électronique").fill("camille@region.example")
        applicant.get_by_label("SIRET de l'organisation").fill(SIRET)
        applicant.get_by_label("Mot de passe").fill(PASSWORD)
        applicant.get_by_role("button", name="Créer mon compte").click()
        applicant.get_by_role("link", name="Mes demandes").click()
        applicant.get_by_label("Nom de l'organisation").fill("Région Fictive")
        applicant.get_by_role("button", name="Commencer une demande").click()
        expect(applicant.get_by_role("heading", level=1)).to_contain_text("Demande n°")
        request_url = applicant.url
        # A block refused: the message next to its field, the typed value kept.
        applicant.locator('[id="f-donnees_personnelles.duree_conservation_mois"]').fill("48")
        applicant.get_by_role("button", name="Enregistrer « Données personnelles »").click()
        expect(applicant.locator(".error-summary")).to_contain_text(
            "Destinataires des données : champ obligatoire"
        )
        field = applicant.locator('[id="f-donnees_personnelles.duree_conservation_mois"]')
        expect(field).to_have_value("48")
        blocking = scan(applicant, "demande-erreurs")
        _sandbox_form(applicant, world.certificate.read_text())
        shots(applicant, "sandbox-form-filled")
        _act(applicant, "Soumettre la demande")
        expect(applicant.get_by_role("status")).to_contain_text("soumise à l'instruction")
        shots(applicant, "sandbox-submitted")

        # 2. The instructor signs in with TOTP and asks for a change.
        now = time.time()
        _staff_sign_in(agent, world, instructor.email, instructor.secret, now)
        agent.get_by_role("link", name="Instruction").click()
        blocking += scan(agent, "instruction-file")
        agent.get_by_role("link", name=re.compile(r"Demande n° \d+")).first.click()
        blocking += scan(agent, "instruction-demande")
        shots(agent, "instructor-review")
        _act(agent, "Demander des modifications", motif="Précisez le volume attendu en pointe.",
             action="request_changes")  # fmt: skip
        expect(agent.get_by_role("status")).to_contain_text("modifications sont demandées")
        shots(agent, "changes-requested")

        # 3. The applicant amends and resubmits.
        applicant.goto(request_url)
        expect(applicant.get_by_text("Précisez le volume attendu en pointe.")).to_be_visible()
        _fill_block(applicant, "volumetrie", "Volumétrie", {"appels_par_minute": "45"})
        _act(applicant, "Soumettre la demande")
        shots(applicant, "amended-and-resubmitted")

        # 4. The instructor validates; the SMTP server receives the credentials mail.
        agent.goto(request_url)
        _act(agent, "Valider la demande", analyse="CRPA L.114-8 : échange autorisé.",
             action="validate")  # fmt: skip
        expect(agent.get_by_role("status")).to_contain_text("La demande est validée")
        shots(agent, "sandbox-validated")
        (mail,) = _mails_to(world, "tess@region.example")
        sandbox_ts, sandbox_client = _credentials(body_of(mail))

        # 5. With those credentials and the certificate: a sandbox document, over mTLS.
        with _client(world) as client:
            sandbox_token = _token(client, world.sandbox_api, sandbox_client)
            listing = _get(
                client, f"{world.sandbox_api}/ensudocuments/v1/documents?siren={world.siren}",
                sandbox_token, sandbox_ts,
            )  # fmt: skip
            assert listing.status_code == 200, listing.text
            first = listing.json()["documents"][0]
            content = _get(
                client, f"{world.sandbox_api}{first['contenu']}", sandbox_token, sandbox_ts
            )
            assert content.status_code == 200
            assert content.content.startswith(b"%PDF-")

        # 6. The applicant starts the production stage, attaches the homologation,
        #    confirms the recette.
        applicant.goto(request_url)
        _act(applicant, "Demander l'accès à la production")
        expect(applicant.get_by_role("status")).to_contain_text("demande de production est créée")
        production_url = applicant.url
        homologation = world.settings.var_dir / "homologation.pdf"
        homologation.write_bytes(PDF)
        applicant.get_by_label("Nature de la pièce").select_option("homologation")
        applicant.get_by_label("Fichier PDF").set_input_files(str(homologation))
        applicant.get_by_role("button", name="Joindre").click()
        expect(applicant.get_by_role("status")).to_contain_text("pièce jointe est enregistrée")
        today = clock.today_paris()
        _fill_block(applicant, "recette", "Recette fonctionnelle", {
            "confirmee": True, "date_fin": today.isoformat(),
            "resultats": "Recette conforme : les 12 cas de test passent.",
        })  # fmt: skip
        sha = applicant.locator('[id="f-engagement_securite.homologation.document"] option').nth(1)
        _fill_block(applicant, "engagement_securite", "Engagement de sécurité", {
            "type": "homologation",
            "homologation.autorite_nom": "Claire Dupont",
            "homologation.autorite_fonction": "Directrice générale des services",
            "homologation.date_debut": (today - dt.timedelta(days=10)).isoformat(),
            "homologation.date_fin": (today + dt.timedelta(days=3 * 365)).isoformat(),
            "homologation.reserves": "Aucune",
            "homologation.document": sha.get_attribute("value") or "",
        })  # fmt: skip
        _fill_block(applicant, "textes_juridiques", "Textes juridiques", {
            "derogation_secret_professionnel": "CRPA L.114-8 et R.114-9-4",
        })  # fmt: skip
        _fill_block(applicant, "mise_en_production", "Mise en production", {
            "date_mise_en_production": today.isoformat(),
        })  # fmt: skip
        _fill_block(applicant, "cgu", "Conditions générales d'utilisation", {"acceptees": True})
        _act(applicant, "Soumettre la demande")
        expect(applicant.get_by_role("status")).to_contain_text("soumise à l'instruction")
        shots(applicant, "production-submitted")

        # 7. The instructor validates the production request.
        agent.goto(production_url)
        _act(agent, "Valider la demande", analyse="Homologation valide, dérogation CRPA.",
             action="validate")  # fmt: skip
        expect(agent.get_by_role("status")).to_contain_text("La demande est validée")
        shots(agent, "production-validated")
        _, production_mail = _mails_to(world, "tess@region.example")
        subject = email.header.make_header(email.header.decode_header(production_mail["Subject"]))
        assert "accès production ouvert" in str(subject)
        production_ts, production_client = _credentials(body_of(production_mail))
        assert production_ts != sandbox_ts

        # 8. A production call works; a sandbox token is refused by production.
        with _client(world) as client:
            token = _token(client, world.production_api, production_client)
            codes = _get(client, f"{world.production_api}/ensudocuments/v1/codesDocuments",
                         token, production_ts)  # fmt: skip
            assert codes.status_code == 200, codes.text
            assert codes.json()
            refused = _get(client, f"{world.production_api}/ensudocuments/v1/codesDocuments",
                           sandbox_token, sandbox_ts)  # fmt: skip
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "910004"
            wrong_door = client.post(
                f"{world.production_api}/token",
                data={"grant_type": "client_credentials", "client_id": sandbox_client},
            )
            assert wrong_door.status_code != 200
        applicant.goto(production_url)
        blocking += scan(applicant, "demande-production-validee")
        shots(applicant, "production-habilitation")
        assert blocking == []
    finally:
        applicant_context.close()
        staff_context.close()
