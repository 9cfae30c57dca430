"""Staff: the téléservices (APIM accounts), all through :mod:`ensu.consumers.service`.

Reading is open to every staff role; suspending, resuming and deciding a quota (R-Q-2,
with its justification) need a manager, replacing the certificates an instructor
(R-HAB-2's ordered roles, :class:`~ensu.accounts.principal.StaffRole`). The service
journals every change with the signed-in person as its actor.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ensu.accounts.principal import StaffRole
from ensu.consumers import service as consumers
from ensu.consumers.schemas import FAMILIES, CertificateRef, TeleserviceView
from ensu.portal.web import Form, Page, Refused

QUOTA_LABELS = {
    "per_minute": "Nouveau quota (appels par minute)",
    "decided_by": "Auteur de la décision",
    "load_peaks": "Pics de charge",
    "files_count": "Nombre de dossiers",
    "periodicity": "Périodicité des appels",
}
CERTIFICATE_LABELS = {"certificates": "Certificats (PEM)"}
PERIMETER_LABELS = {
    "families": "Familles de documents",
    "codes": "Codes de documents",
    "period_start": "Début de la période des données",
    "period_end": "Fin de la période des données",
}
STATUS_LABELS = {"reason": "Motif"}
#: Which form field a message of the quota service is about (JustificationMissing.missing).
_MISSING = {
    "decided_by": "Indiquez qui a pris la décision.",
    "load_peaks": "Décrivez les pics de charge qui justifient ce quota.",
    "files_count": "Indiquez le nombre de dossiers traités.",
    "periodicity": "Indiquez la périodicité des appels.",
}


async def index(page: Page) -> Response:
    rows = await consumers.list_teleservices(session=page.db)
    return page.render("teleservices/index.html", teleservices=rows)


async def _load(page: Page) -> TeleserviceView:
    identifier = page.request.path_params["id_teleservice"]
    found = await consumers.load_view(session=page.db, id_teleservice=identifier)
    if found is None:
        raise Refused(404, "Ce téléservice n'existe pas.")
    return found


async def _show(
    page: Page,
    view: TeleserviceView,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    form: str = "",
    done: str = "",
) -> Response:
    history = await consumers.quota_history(session=page.db, id_teleservice=view.id_teleservice)
    contacts = await consumers.contacts_of(session=page.db, id_teleservice=view.id_teleservice)
    actor = page.actor
    return page.render(
        "teleservices/show.html",
        status=status,
        ts=view,
        history=history,
        contacts=contacts,
        can_manage=actor.is_staff(StaffRole.MANAGER),
        can_instruct=actor.is_staff(StaffRole.INSTRUCTOR),
        errors=errors or {},
        values=values or {},
        form_name=form,
        done=done,
        labels={**QUOTA_LABELS, **CERTIFICATE_LABELS, **STATUS_LABELS, **PERIMETER_LABELS},
        all_families=sorted(FAMILIES),
    )


async def show(page: Page) -> Response:
    done = page.request.query_params.get("fait", "")
    return await _show(page, await _load(page), done=done)


async def _transition(page: Page, action: str) -> Response:
    form = await page.form()
    view = await _load(page)
    reason = form.get("reason").strip()
    if len(reason) > 500:
        return await _show(
            page,
            view,
            status=400,
            errors={"reason": "Le motif doit contenir au plus 500 caractères."},
            values=form.kept(),
            form=action,
        )
    change = consumers.suspend if action == "suspend" else consumers.resume
    try:
        await change(
            session=page.db,
            id_teleservice=view.id_teleservice,
            actor=page.actor.label,
            reason=reason or None,
        )
    except consumers.InvalidTransition as refused:
        return await _show(
            page, view, status=409, errors={"reason": str(refused)}, values=form.kept(), form=action
        )
    return page.redirect(f"/admin/teleservices/{view.id_teleservice}?fait={action}")


async def suspend(page: Page) -> Response:
    return await _transition(page, "suspend")


async def resume(page: Page) -> Response:
    return await _transition(page, "resume")


def _quota_input(form: Form) -> tuple[dict[str, str], int | None, int | None]:
    errors: dict[str, str] = {}
    per_minute = _integer(form.get("per_minute"))
    if per_minute is None or per_minute < 1:
        errors["per_minute"] = "Indiquez un nombre entier d'appels par minute, au moins 1."
    if not form.get("decided_by").strip():
        errors["decided_by"] = _MISSING["decided_by"]
    files_count = None
    if form.get("files_count").strip():
        files_count = _integer(form.get("files_count"))
        if files_count is None or files_count < 1:
            errors["files_count"] = "Indiquez un nombre entier de dossiers, au moins 1."
    return errors, per_minute, files_count


def _integer(text: str) -> int | None:
    text = text.strip().replace(" ", "")
    return int(text) if text.isdigit() and len(text) <= 9 else None


async def quota(page: Page) -> Response:
    """A quota decision (R-Q-2): above the environment's default, the service refuses it
    without its decider and its three justifications, field by field here."""
    form = await page.form()
    view = await _load(page)
    errors, per_minute, files_count = _quota_input(form)
    if not errors and per_minute is not None:
        try:
            await consumers.decide_quota(
                session=page.db,
                id_teleservice=view.id_teleservice,
                per_minute=per_minute,
                decided_by=form.get("decided_by"),
                justification=consumers.QuotaJustification(
                    load_peaks=form.get("load_peaks"),
                    files_count=files_count,
                    periodicity=form.get("periodicity"),
                ),
                actor=page.actor.label,
            )
        except consumers.JustificationMissing as missing:
            errors = {name: _MISSING[name] for name in missing.missing if name in _MISSING}
            errors = errors or {"per_minute": str(missing)}
        except consumers.InvalidConsumerData as invalid:
            errors = {"per_minute": str(invalid)}
    if errors:
        return await _show(page, view, status=400, errors=errors, values=form.kept(), form="quota")
    return page.redirect(f"/admin/teleservices/{view.id_teleservice}?fait=quota")


def _certificates(text: str) -> list[CertificateRef] | str:
    """Every certificate of the pasted PEM text, or why it cannot be read."""
    blocks = [
        "-----BEGIN CERTIFICATE-----" + block
        for block in text.split("-----BEGIN CERTIFICATE-----")[1:]
    ]
    if not blocks:
        return "Collez au moins un certificat au format PEM (-----BEGIN CERTIFICATE-----)."
    try:
        return [CertificateRef.from_pem(block) for block in blocks]
    except ValueError:
        return "Un des certificats collés n'est pas un certificat PEM valide."


async def certificates(page: Page) -> Response:
    """Replace the registered certificates (renewal, R-GW-1); tokens bound to a removed
    one stop working at the gateway."""
    form = await page.form()
    view = await _load(page)
    parsed = _certificates(form.get("certificates"))
    if isinstance(parsed, str):
        return await _show(
            page,
            view,
            status=400,
            errors={"certificates": parsed},
            values=form.kept(),
            form="certificates",
        )
    await consumers.replace_certificates(
        session=page.db,
        id_teleservice=view.id_teleservice,
        certificates=parsed,
        actor=page.actor.label,
    )
    return page.redirect(f"/admin/teleservices/{view.id_teleservice}?fait=certificates")


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def _perimeter_input(
    form: Form, families: list[str]
) -> tuple[dict[str, str], list[str], dt.date | None, dt.date | None]:
    errors: dict[str, str] = {}
    codes = [code for code in form.get("codes").replace(",", " ").split() if code]
    start, end = _date(form.get("period_start")), _date(form.get("period_end"))
    for name, value in (("period_start", start), ("period_end", end)):
        if value is None:
            errors[name] = "Indiquez une date au format AAAA-MM-JJ, par exemple 2024-12-31."
    if not families and not codes:
        errors["families"] = "Cochez au moins une famille ou indiquez au moins un code."
    return errors, codes, start, end


async def perimeter(page: Page) -> Response:
    """Set the perimeter: families, codes, the data period (R-GW-5), through
    consumers.service, which checks them against the catalogue."""
    form = await page.form()
    view = await _load(page)
    families = page.form_values("families")
    errors, codes, start, end = _perimeter_input(form, families)
    if not errors and start is not None and end is not None:
        try:
            await consumers.set_perimeter(
                session=page.db,
                id_teleservice=view.id_teleservice,
                families=families,
                codes=codes,
                period_start=start,
                period_end=end,
                actor=page.actor.label,
            )
        except consumers.InvalidConsumerData as invalid:
            field = "period_end" if "période" in str(invalid) else "codes"
            errors = {field: str(invalid).capitalize() + "."}
    if errors:
        values = {**form.kept(), "families": " ".join(families)}
        return await _show(page, view, status=400, errors=errors, values=values, form="perimeter")
    return page.redirect(f"/admin/teleservices/{view.id_teleservice}?fait=perimeter")
