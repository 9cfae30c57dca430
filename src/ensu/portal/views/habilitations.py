"""Habilitation requests in the portal (R-HAB-1 to R-HAB-4): the applicant's requests,
the form by blocks with its timeline, the instructors' queue, the review and decision.

Every page goes through :mod:`ensu.habilitations.service` with the signed-in
:class:`~ensu.accounts.principal.Actor`; the service decides who sees and does what (an
applicant asking for another organisation's request gets the same 404 as for an absent
one). The buttons of a request are the actions the workflow table allows the reader now
(``RequestView.actions``), so the page can never offer what the service would refuse.

Each block is a form whose fields are declared in :data:`FIELDS` with dotted names
(``contacts.contact_technique.email``): the names of the service's error messages, so
that each message lands next to its field. Lists are one item per line.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from ensu.accounts.principal import StaffRole
from ensu.config import Environment
from ensu.habilitations import service as habilitations
from ensu.habilitations.errors import HabilitationError, InvalidRequestData, RequestNotFound
from ensu.habilitations.schemas import GROUP_1, GROUP_2, TERMS_VERSIONS, RequestView, blocks_of
from ensu.habilitations.storage import MAX_ATTACHMENT_BYTES
from ensu.habilitations.workflow import STATE_LABELS, Action, State
from ensu.portal.web import CSRF_FIELD, Page, Refused


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a block: its dotted name, French label, kind and hint."""

    name: str
    label: str
    kind: str = "text"  # text, textarea, int, date, bool, lines, method, attachment, choice
    hint: str = ""
    required: bool = True


def _person(prefix: str, who: str) -> list[Field]:
    return [
        Field(f"{prefix}.nom", f"{who} : nom"),
        Field(f"{prefix}.email", f"{who} : adresse électronique", hint="nom@organisation.fr"),
        Field(f"{prefix}.telephone", f"{who} : téléphone", required=False),
        Field(f"{prefix}.fonction", f"{who} : fonction", required=False),
    ]


FIELDS: dict[str, list[Field]] = {
    "informations": [
        Field("intitule", "Intitulé de la démarche"),
        Field("description", "Description de la démarche", "textarea"),
        Field("usage_donnees", "Usage des données", "textarea"),
        Field("services_destinataires", "Services destinataires"),
    ],
    "perimetre": [
        Field(
            "familles",
            "Familles de documents",
            "lines",
            "Une par ligne : declaratives, "
            "bancaires, creances, paiements, remboursements, obligations_fiscales, "
            "habilitations.",
            required=False,
        ),
        Field("codes", "Codes de documents", "lines", "Un par ligne.", required=False),
        Field("periode_debut", "Début de la période des données", "date", "AAAA-MM-JJ"),
        Field("periode_fin", "Fin de la période des données", "date", "AAAA-MM-JJ"),
    ],
    "donnees_personnelles": [
        Field("destinataires_donnees", "Destinataires des données"),
        Field("duree_conservation_mois", "Durée de conservation (mois)", "int"),
        Field(
            "justification_duree",
            "Justification d'une durée de plus de 36 mois",
            "textarea",
            required=False,
        ),
        Field(
            "formalites_accomplies",
            "Les formalités relatives aux données personnelles "
            "sont accomplies (registre, analyse d'impact le cas échéant)",
            "bool",
        ),
    ],
    "cadre_juridique": [
        Field("nature", "Nature et référence du cadre juridique"),
        Field("url", "Adresse du texte", hint="https://…", required=False),
        Field("document", "Ou le texte joint (PDF)", "attachment", required=False),
    ],
    "contacts": [
        *_person("responsable_traitement", "Responsable de traitement"),
        *_person("delegue_protection_donnees", "Délégué à la protection des données"),
        *_person("contact_technique", "Contact technique"),
    ],
    "volumetrie": [
        Field("appels_par_minute", "Appels par minute attendus", "int"),
        Field("pics_de_charge", "Pics de charge (au-delà de 500 par minute)", required=False),
        Field(
            "nombre_dossiers",
            "Nombre de dossiers (au-delà de 500 par minute)",
            "int",
            required=False,
        ),
        Field("periodicite", "Périodicité (au-delà de 500 par minute)", required=False),
    ],
    "acces_technique": [
        Field("methode_authentification", "Authentification au point /token", "method"),
        Field(
            "certificat_pem",
            "Certificat client (PEM)",
            "textarea",
            "RSA de 2048 bits au moins ou EC P-256/P-384.",
            required=False,
        ),
        Field(
            "csr_pem",
            "Ou demande de certificat (CSR, bac à sable seulement)",
            "textarea",
            required=False,
        ),
        Field("reseaux", "Adresses IP autorisées (CIDR)", "lines", "Une par ligne."),
    ],
    "cgu": [
        Field("acceptees", "J'accepte les conditions générales d'utilisation", "bool"),
        Field("version", "Version des conditions acceptées", "terms"),
    ],
    "recette": [
        Field("confirmee", "La recette fonctionnelle est terminée et concluante", "bool"),
        Field("date_fin", "Date de fin de la recette", "date", "AAAA-MM-JJ"),
        Field("resultats", "Résultats de la recette", "textarea"),
        Field("document", "Compte rendu (PDF)", "attachment", required=False),
    ],
    "engagement_securite": [
        Field("type", "Engagement", "choice"),
        Field("homologation.autorite_nom", "Autorité d'homologation : nom", required=False),
        Field(
            "homologation.autorite_fonction", "Autorité d'homologation : fonction", required=False
        ),
        Field("homologation.date_debut", "Début de l'homologation", "date", required=False),
        Field("homologation.date_fin", "Fin de l'homologation", "date", required=False),
        Field("homologation.reserves", "Réserves", "textarea", required=False),
        Field("homologation.provisoire", "Autorisation provisoire", "bool", required=False),
        Field(
            "homologation.document",
            "Attestation d'homologation (PDF)",
            "attachment",
            required=False,
        ),
        *[
            Field(f"questionnaire.groupe_1.{q.value}", text, "bool", required=False)
            for q, text in GROUP_1.items()
        ],
        *[
            Field(f"questionnaire.groupe_2.{q.value}", text, "bool", required=False)
            for q, (text, _) in GROUP_2.items()
        ],
    ],
    "textes_juridiques": [
        Field("derogation_secret_professionnel", "Dérogation au secret professionnel"),
        Field("url", "Adresse du texte", required=False),
        Field("document", "Ou le texte joint (PDF)", "attachment", required=False),
    ],
    "mise_en_production": [
        Field("date_mise_en_production", "Date de mise en production", "date", "AAAA-MM-JJ"),
    ],
}
ACTION_PATHS = {action.value: action for action in Action}
ATTACHMENT_LABELS = habilitations.ATTACHMENT_KINDS


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A block's stored data as the form's values (dotted names, lists one per line)."""
    values: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            values.update(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            values[name] = "\n".join(str(item) for item in value)
        elif isinstance(value, bool):
            values[name] = "on" if value else ""
        elif value is not None:
            values[name] = str(value)
    return values


def _unflatten(block: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The form's values as the block's data: nested by dots, lists split by lines,
    checkboxes as booleans, empty optional fields left out."""
    data: dict[str, Any] = {}
    for field in FIELDS[block]:
        raw = form.get(field.name, "").strip()
        value: Any
        if field.kind == "bool":
            value = raw == "on"
        elif field.kind == "lines":
            value = [line.strip() for line in raw.splitlines() if line.strip()]
            if not value and not field.required:
                continue
        elif not raw:
            continue
        else:
            value = raw
        target = data
        *parents, leaf = field.name.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return _prune(block, data)


def _prune(block: str, data: dict[str, Any]) -> dict[str, Any]:
    """The security commitment keeps only the part its type chose (R-SEC-1)."""
    if block == "engagement_securite":
        chosen = data.get("type")
        for other in ("homologation", "questionnaire"):
            if other != chosen:
                data.pop(other, None)
    return data


def _labels(stage: Environment) -> dict[str, str]:
    labels = {}
    for block in blocks_of(stage):
        labels[block.key] = block.title
        for field in FIELDS[block.key]:
            labels[f"{block.key}.{field.name}"] = f"{block.title} — {field.label}"
    return labels


# -- the applicant's requests -----------------------------------------------------------


async def index(page: Page) -> Response:
    """The requests of the applicant's organisation, and a new one."""
    views = await habilitations.list_requests(session=page.db, actor=page.actor)
    return page.render("habilitations/index.html", requests=views, errors={}, values={})


async def create(page: Page) -> Response:
    form = await page.form()
    try:
        view = await habilitations.create_request(
            session=page.db, actor=page.actor, organisation_name=form.get("organisation_name")
        )
    except InvalidRequestData as invalid:
        views = await habilitations.list_requests(session=page.db, actor=page.actor)
        errors = {"organisation_name": "; ".join(invalid.errors.values())}
        return page.render(
            "habilitations/index.html",
            status=400,
            requests=views,
            errors=errors,
            values=form.kept(),
            labels={"organisation_name": "Nom de l'organisation"},
        )
    return page.redirect(f"/demandes/{view.id}")


def _request_id(page: Page) -> int:
    try:
        return int(page.request.path_params["id"])
    except ValueError:
        raise Refused(404, "Cette demande n'existe pas.") from None


async def _load(page: Page) -> RequestView:
    try:
        return await habilitations.get_request(
            session=page.db, actor=page.actor, request_id=_request_id(page)
        )
    except RequestNotFound:
        raise Refused(404, "Cette demande n'existe pas ou ne vous est pas accessible.") from None


async def _show(
    page: Page,
    view: RequestView,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    block: str = "",
    done: str = "",
    secret: str | None = None,
) -> Response:
    entries = await habilitations.timeline(session=page.db, actor=page.actor, request_id=view.id)
    granted = await habilitations.list_habilitations(
        session=page.db, actor=page.actor, request_id=view.id
    )
    editable = page.actor.acts_for(view.organisation_siret) and view.state in {
        State.DRAFT.value,
        State.CHANGES_REQUESTED.value,
    }
    forms = {b.key: _flatten(view.data.get(b.key, {})) for b in blocks_of(view.stage)}
    if block and values is not None:
        forms[block] = dict(values)
    return page.render(
        "habilitations/show.html",
        status=status,
        req=view,
        blocks=blocks_of(view.stage),
        fields=FIELDS,
        block_values=forms,
        editable=editable,
        errors=dict(errors or {}),
        block_errors=_block_errors(errors or {}),
        labels=_labels(view.stage),
        current_block=block,
        timeline=entries,
        granted=granted,
        done=done,
        secret=secret,
        states=STATE_LABELS,
        attachment_kinds=ATTACHMENT_LABELS,
        max_mb=MAX_ATTACHMENT_BYTES // (1024 * 1024),
        can_message=page.actor.acts_for(view.organisation_siret)
        or page.actor.is_staff(StaffRole.INSTRUCTOR),
        terms_version=TERMS_VERSIONS[view.stage],
        values=dict(values or {}),
    )


def _block_errors(errors: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Errors per block, keyed by the field's dotted name inside the block."""
    grouped: dict[str, dict[str, str]] = {}
    for name, message in errors.items():
        block, _, field = name.partition(".")
        grouped.setdefault(block, {})[field or block] = message
    return grouped


async def show(page: Page) -> Response:
    return await _show(page, await _load(page), done=page.request.query_params.get("fait", ""))


async def save_block(page: Page) -> Response:
    form = await page.form()
    view = await _load(page)
    block = page.request.path_params["block"]
    if block not in FIELDS:
        raise Refused(404, "Ce bloc n'existe pas.")
    try:
        await habilitations.save_block(
            session=page.db,
            actor=page.actor,
            request_id=view.id,
            block=block,
            values=_unflatten(block, form.values),
        )
    except InvalidRequestData as invalid:
        return await _show(
            page, view, status=400, errors=invalid.errors, values=form.kept(), block=block
        )
    except HabilitationError as refused:
        return await _show(page, view, status=409, errors={block: str(refused)}, block=block)
    return page.redirect(f"/demandes/{view.id}?fait=bloc#bloc-{block}")


async def attach(page: Page) -> Response:
    """A PDF for the request (multipart; the CSRF token is checked as for every form)."""
    page._check_origin()
    view = await _load(page)
    async with page.request.form(
        max_files=1, max_fields=4, max_part_size=MAX_ATTACHMENT_BYTES + 1024
    ) as form:
        token = str(form.get(CSRF_FIELD, ""))
        if not page.visit or not _same(token, page.visit.csrf_token):
            raise Refused(
                403, "Le formulaire a expiré ou ne vient pas de ce site : rechargez la page."
            )
        upload = form.get("fichier")
        kind = str(form.get("type", ""))
        if not isinstance(upload, UploadFile):
            return await _show(
                page, view, status=400, errors={"fichier": "choisissez un fichier PDF"}
            )
        content = await upload.read(MAX_ATTACHMENT_BYTES + 1)
        name = upload.filename or "document.pdf"
    try:
        await habilitations.attach(
            session=page.db,
            settings=page.settings,
            actor=page.actor,
            request_id=view.id,
            kind=kind,
            filename=name,
            content=content,
        )
    except HabilitationError as refused:
        return await _show(page, view, status=400, errors={"fichier": str(refused)})
    return page.redirect(f"/demandes/{view.id}?fait=piece#pieces")


def _same(sent: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


async def attachment(page: Page) -> Response:
    view = await _load(page)
    try:
        found, content = await habilitations.read_attachment(
            session=page.db,
            settings=page.settings,
            actor=page.actor,
            request_id=view.id,
            sha256=page.request.path_params["sha256"],
        )
    except HabilitationError:
        raise Refused(404, "Cette pièce jointe n'existe pas.") from None
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{found.sha256[:16]}.pdf"'},
    )


async def act(page: Page) -> Response:
    """One action of the workflow table, with its reason and legal analysis."""
    form = await page.form()
    view = await _load(page)
    action = ACTION_PATHS.get(page.request.path_params["action"])
    if action is None:
        raise Refused(404, "Cette action n'existe pas.")
    reason, analysis = form.get("motif").strip(), form.get("analyse").strip()
    common: dict[str, Any] = {"session": page.db, "actor": page.actor, "request_id": view.id}
    try:
        target = await _fire(page, action, common, reason, analysis)
    except HabilitationError as refused:
        # Nothing of a refused action is kept: a validation whose provisioning failed
        # leaves the request submitted (the view would otherwise commit the state).
        await page.db.rollback()
        view = await _load(page)
        if isinstance(refused, InvalidRequestData):
            return await _show(page, view, status=400, errors=refused.errors, values=form.kept())
        return await _show(
            page, view, status=409, errors={"action": str(refused)}, values=form.kept()
        )
    return page.redirect(f"/demandes/{target}?fait={action.value}")


async def _fire(
    page: Page, action: Action, common: dict[str, Any], reason: str, analysis: str
) -> int:
    settings = page.settings
    match action:
        case Action.SUBMIT:
            await habilitations.submit(settings=settings, **common)
        case Action.REQUEST_CHANGES:
            await habilitations.request_changes(reason=reason, **common)
        case Action.REFUSE:
            await habilitations.refuse(reason=reason, legal_analysis=analysis, **common)
        case Action.REVOKE:
            await habilitations.revoke(reason=reason, **common)
        case Action.VALIDATE:
            decision = await habilitations.validate(
                settings=settings, legal_analysis=analysis, **common
            )
            # The mail leaves once the validation is committed, never before (R-HAB-4);
            # its outcome is journaled in the transaction the view commits on return.
            await page.db.commit()
            await habilitations.deliver_notice(
                session=page.db, settings=settings, notice=decision.notice, actor=page.actor
            )
        case Action.START_NEXT_STAGE:
            following = await habilitations.start_next_stage(**common)
            return following.id
        case Action.ARCHIVE:
            await habilitations.archive(**common)
        case Action.REOPEN:
            await habilitations.reopen(**common)
        case Action.CANCEL_REOPENING:
            await habilitations.cancel_reopening(**common)
    return int(common["request_id"])


async def message(page: Page) -> Response:
    form = await page.form()
    view = await _load(page)
    try:
        await habilitations.post_message(
            session=page.db, actor=page.actor, request_id=view.id, body=form.get("message")
        )
    except InvalidRequestData as invalid:
        return await _show(page, view, status=400, errors=invalid.errors, values=form.kept())
    except HabilitationError as refused:
        return await _show(page, view, status=403, errors={"message": str(refused)})
    return page.redirect(f"/demandes/{view.id}?fait=message#echanges")


async def reveal(page: Page) -> Response:
    """The client secret, shown once to the applicant (R-HAB-4)."""
    await page.form()
    view = await _load(page)
    try:
        secret = await habilitations.reveal_secret(
            session=page.db,
            settings=page.settings,
            actor=page.actor,
            habilitation_id=int(page.request.path_params["habilitation"]),
        )
    except HabilitationError as refused:
        return await _show(page, view, status=409, errors={"secret": str(refused)})
    return await _show(page, view, secret=secret)


# -- the instructors' queue -------------------------------------------------------------


async def queue(page: Page) -> Response:
    """The requests, filtered by state (default: submitted), stage and organisation."""
    query = page.request.query_params
    state_text = query.get("etat", State.SUBMITTED.value)
    stage_text = query.get("etape", "")
    state = State(state_text) if state_text in State._value2member_map_ else None
    stage = Environment(stage_text) if stage_text in Environment._value2member_map_ else None
    views = await habilitations.list_requests(
        session=page.db,
        actor=page.actor,
        state=state,
        stage=stage,
        text=query.get("recherche", "").strip() or None,
    )
    return page.render(
        "habilitations/queue.html",
        requests=views,
        states=STATE_LABELS,
        state=state.value if state else "",
        stage=stage.value if stage else "",
        text=query.get("recherche", ""),
    )
