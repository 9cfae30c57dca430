"""The habilitations feature's logic: requests, their workflow, stages, provisioning.

Keyword-only async functions over an ``AsyncSession`` that never commit (the caller owns
the transaction). Every function receives the :class:`~ensu.accounts.principal.Actor`
and decides from it alone: an applicant sees and acts only on their organisation's
requests (another's is :class:`RequestNotFound`, as if absent); staff read everything; a
reporter decides nothing; the table of :mod:`.workflow` says who fires what.

Every transition is a row of ``habilitation_request_events`` (the timeline) and an event
of the journal through ``audit.record_event`` (R-HAB-2, R-TR-1). :func:`validate`
provisions the stage's téléservice (R-HAB-4) and returns the notice to mail once the
transaction is committed (:func:`deliver_notice`): a mail is never sent for a validation
that did not happen.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.accounts.principal import Actor, ActorKind
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance import service as compliance
from ensu.config import Environment, Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod
from ensu.habilitations import certificates, provisioning
from ensu.habilitations import workflow as wf
from ensu.habilitations.errors import (
    ActionForbidden,
    AttachmentRefused,
    HabilitationError,
    InvalidRequestData,
    RequestNotFound,
    TransitionRefused,
)
from ensu.habilitations.models import (
    Attachment,
    Habilitation,
    HabilitationRequest,
    HabilitationStatus,
    RequestEvent,
    RequestMessage,
)
from ensu.habilitations.schemas import (
    TERMS_VERSIONS,
    ActionView,
    AttachmentView,
    Decision,
    HabilitationView,
    Homologation,
    Notice,
    RequestView,
    SecurityCommitment,
    TechnicalAccess,
    TimelineEntry,
    blocks_of,
    check_siret,
    missing_blocks,
    parse_block,
    validate_block,
)
from ensu.habilitations.storage import AttachmentStore
from ensu.habilitations.workflow import Action, State
from ensu.mail import MailError, SentMail, send_mail

__all__ = [
    "Action",
    "ActionForbidden",
    "AttachmentRefused",
    "Decision",
    "HabilitationError",
    "InvalidRequestData",
    "RequestNotFound",
    "State",
    "TransitionRefused",
    "archive",
    "attach",
    "cancel_reopening",
    "create_request",
    "current_notice",
    "deliver_notice",
    "get_request",
    "list_habilitations",
    "list_requests",
    "post_message",
    "read_attachment",
    "refuse",
    "reopen",
    "request_changes",
    "reveal_secret",
    "revoke",
    "save_block",
    "security_commitment",
    "start_next_stage",
    "submit",
    "timeline",
    "validate",
]

ATTACHMENT_KINDS = {
    "cadre_juridique": "texte du cadre juridique",
    "homologation": "attestation d'homologation de sécurité",
    "recette": "résultats de la recette",
    "textes_juridiques": "dérogation au secret professionnel",
}
_TAGS = {
    Action.SUBMIT: EventTag.HABILITATIONS_REQUEST_SUBMITTED,
    Action.REQUEST_CHANGES: EventTag.HABILITATIONS_REQUEST_CHANGES_REQUESTED,
    Action.VALIDATE: EventTag.HABILITATIONS_REQUEST_VALIDATED,
    Action.REFUSE: EventTag.HABILITATIONS_REQUEST_REFUSED,
    Action.ARCHIVE: EventTag.HABILITATIONS_REQUEST_ARCHIVED,
    Action.REVOKE: EventTag.HABILITATIONS_REQUEST_REVOKED,
    Action.REOPEN: EventTag.HABILITATIONS_REQUEST_REOPENED,
    Action.CANCEL_REOPENING: EventTag.HABILITATIONS_REQUEST_REOPENING_CANCELLED,
    Action.START_NEXT_STAGE: EventTag.HABILITATIONS_REQUEST_NEXT_STAGE_STARTED,
}
MAX_MESSAGE = 4000


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or clock.now()


# -- loading, with the reader's rights ---------------------------------------------------


async def _load(session: AsyncSession, actor: Actor, request_id: int) -> HabilitationRequest:
    """The request if ``actor`` may read it; otherwise absent (R-GW-6's rule, here too)."""
    row = await session.get(HabilitationRequest, request_id)
    if row is None or not wf.may_read(actor, siret=row.organisation_siret):
        raise RequestNotFound(f"demande n° {request_id} introuvable")
    return row


async def _active(session: AsyncSession, request_id: int) -> Habilitation | None:
    return await session.scalar(
        select(Habilitation).where(
            Habilitation.request_id == request_id,
            Habilitation.status == HabilitationStatus.ACTIVE,
        )
    )


async def _event(
    session: AsyncSession,
    row: HabilitationRequest,
    *,
    actor: Actor,
    action: str,
    tag: EventTag,
    before: State | None,
    now: dt.datetime,
    reason: str | None = None,
    legal_analysis: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """The timeline's row and the journal's event of one step of a request (R-HAB-2)."""
    extra = dict(details or {})
    session.add(
        RequestEvent(
            request_id=row.id,
            action=action,
            from_state=before,
            to_state=row.state,
            actor_kind=actor.kind.value,
            actor_label=actor.label,
            at=now,
            reason=reason,
            legal_analysis=legal_analysis,
            details=extra,
        )
    )
    await session.flush()
    journaled = {
        "request_id": row.id,
        "siret": row.organisation_siret,
        "stage": row.stage.value,
        "from": before.value if before else None,
        "to": row.state.value,
        "reason": reason,
        **extra,
    }
    await audit.record_event(session=session, tag=tag, actor=actor.label, details=journaled)


async def _fire(
    session: AsyncSession,
    row: HabilitationRequest,
    action: Action,
    *,
    actor: Actor,
    now: dt.datetime,
    reason: str | None = None,
    legal_analysis: str | None = None,
    details: Mapping[str, object] | None = None,
) -> wf.Transition:
    """Check ``action`` against the table, move the request, record the event."""
    has = await _active(session, row.id) is not None
    transition = wf.check(
        action,
        actor=actor,
        siret=row.organisation_siret,
        state=row.state,
        stage=row.stage,
        has_habilitation=has,
        reason=reason,
        legal_analysis=legal_analysis,
    )
    before = row.state
    row.state, row.updated_at = transition.target, now
    await _event(
        session,
        row,
        actor=actor,
        action=action.value,
        tag=_TAGS[action],
        before=before,
        now=now,
        reason=_clean(reason),
        legal_analysis=_clean(legal_analysis),
        details=details,
    )
    return transition


def _clean(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None


# -- views -------------------------------------------------------------------------------


async def _view(session: AsyncSession, actor: Actor, row: HabilitationRequest) -> RequestView:
    attachments = await session.scalars(
        select(Attachment).where(Attachment.request_id == row.id).order_by(Attachment.id)
    )
    has = await _active(session, row.id) is not None
    actions = wf.available(
        actor=actor,
        siret=row.organisation_siret,
        state=row.state,
        stage=row.stage,
        has_habilitation=has,
    )
    next_stage = await session.scalar(
        select(HabilitationRequest.id).where(HabilitationRequest.previous_stage_id == row.id)
    )
    if next_stage is not None:  # one production request per sandbox one
        actions = [a for a in actions if a.action is not Action.START_NEXT_STAGE]
    return RequestView(
        id=row.id,
        organisation_siret=row.organisation_siret,
        organisation_name=row.organisation_name,
        stage=row.stage,
        state=row.state.value,
        state_label=wf.STATE_LABELS[row.state],
        data=copy.deepcopy(row.data),
        missing_blocks=tuple(block.key for block in missing_blocks(row.stage, row.data)),
        attachments=tuple(
            AttachmentView(
                kind=a.kind,
                filename=a.filename,
                sha256=a.sha256,
                size=a.size,
                uploaded_by=a.uploaded_by,
                uploaded_at=clock.as_utc(a.uploaded_at),
            )
            for a in attachments
        ),
        actions=tuple(
            ActionView(
                action=t.action.value,
                label=t.label,
                needs_reason=t.needs_reason,
                needs_legal_analysis=t.needs_legal_analysis,
            )
            for t in actions
        ),
        previous_stage_id=row.previous_stage_id,
        next_stage_id=next_stage,
        id_teleservice=row.id_teleservice,
        has_active_habilitation=has,
        applicant_label=row.applicant_label,
        created_at=clock.as_utc(row.created_at),
        updated_at=clock.as_utc(row.updated_at),
        submitted_at=clock.as_utc(row.submitted_at) if row.submitted_at else None,
    )


def _habilitation_view(row: Habilitation) -> HabilitationView:
    return HabilitationView(
        id=row.id,
        request_id=row.request_id,
        organisation_siret=row.organisation_siret,
        stage=row.stage,
        status=row.status.value,
        id_teleservice=row.id_teleservice,
        client_id=row.client_id,
        validated_by=row.validated_by,
        validated_at=clock.as_utc(row.validated_at),
        ended_at=clock.as_utc(row.ended_at) if row.ended_at else None,
        legal_analysis=row.legal_analysis,
        data=copy.deepcopy(row.data),
        secret_pending=row.sealed_secret is not None,
    )


# -- requests: creation, blocks, attachments, messages -----------------------------------


async def create_request(
    *,
    session: AsyncSession,
    actor: Actor,
    organisation_name: str,
    now: dt.datetime | None = None,
) -> RequestView:
    """A new sandbox request (draft) of the applicant's organisation (R-HAB-1, R-HAB-3).

    The production request is never created directly: :func:`start_next_stage`.
    """
    if actor.kind is not ActorKind.APPLICANT or actor.organisation_siret is None:
        raise ActionForbidden("seul un demandeur d'une organisation crée une demande")
    siret = check_siret(actor.organisation_siret)
    name = organisation_name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidRequestData({"organisation": "le nom compte de 1 à 200 caractères"})
    moment = _now(now)
    row = HabilitationRequest(
        organisation_siret=siret,
        organisation_name=name,
        stage=Environment.SANDBOX,
        state=State.DRAFT,
        data={},
        applicant_label=actor.label,
        applicant_email=actor.email,
        created_at=moment,
        updated_at=moment,
    )
    session.add(row)
    await session.flush()
    await _event(
        session,
        row,
        actor=actor,
        action="create",
        tag=EventTag.HABILITATIONS_REQUEST_CREATED,
        before=None,
        now=moment,
    )
    return await _view(session, actor, row)


async def _editable(session: AsyncSession, actor: Actor, request_id: int) -> HabilitationRequest:
    row = await _load(session, actor, request_id)
    if not actor.acts_for(row.organisation_siret):
        raise ActionForbidden("seul un demandeur de l'organisation modifie la demande")
    if row.state not in wf.EDITABLE:
        raise TransitionRefused(
            f"la demande est {wf.STATE_LABELS[row.state]} : elle ne se modifie plus"
        )
    return row


async def save_block(
    *,
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    block: str,
    values: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> RequestView:
    """Validate and save one block of the form (draft or changes requested only)."""
    row = await _editable(session, actor, request_id)
    data = validate_block(row.stage, block, values)
    await _check_references(session, row, block, data)
    if block == "acces_technique":
        _check_technical_access(row.stage, data, _now(now))
    row.data = {**row.data, block: data}
    row.updated_at = _now(now)
    await _event(
        session,
        row,
        actor=actor,
        action="update",
        tag=EventTag.HABILITATIONS_REQUEST_BLOCK_SAVED,
        before=row.state,
        now=_now(now),
        details={"block": block},
    )
    return await _view(session, actor, row)


def _documents(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every attachment a block names, as (field, sha256)."""
    found: list[tuple[str, str]] = []
    for key, value in data.items():
        if key == "document" and isinstance(value, str):
            found.append((key, value))
        elif isinstance(value, Mapping):
            found += [(f"{key}.{f}", sha) for f, sha in _documents(value)]
    return found


async def _check_references(
    session: AsyncSession, row: HabilitationRequest, block: str, data: Mapping[str, Any]
) -> None:
    held = set(
        await session.scalars(select(Attachment.sha256).where(Attachment.request_id == row.id))
    )
    unknown = {f"{block}.{f}": "joignez d'abord ce PDF" for f, sha in _documents(data)}
    for field, sha in _documents(data):
        if sha in held:
            unknown.pop(f"{block}.{field}")
    if unknown:
        raise InvalidRequestData(unknown)


def _check_technical_access(stage: Environment, data: Mapping[str, Any], now: dt.datetime) -> None:
    access = parse_block("acces_technique", data)
    assert isinstance(access, TechnicalAccess)
    if access.certificat_pem is not None:
        certificates.check_certificate(access.certificat_pem, now=now)
    elif stage is Environment.PRODUCTION:
        raise InvalidRequestData(
            {"acces_technique.csr_pem": "en production, joignez un certificat (PEM)"}
        )
    elif access.csr_pem is not None:
        certificates.check_csr(access.csr_pem)


async def attach(
    *,
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    request_id: int,
    kind: str,
    filename: str,
    content: bytes,
    now: dt.datetime | None = None,
) -> AttachmentView:
    """Store a PDF for the request (R-HAB-1, R-SEC-1); blocks then name it by SHA-256."""
    row = await _editable(session, actor, request_id)
    if kind not in ATTACHMENT_KINDS:
        raise AttachmentRefused(f"type de pièce jointe inconnu : {kind}")
    name = (filename.replace("/", "_").replace("\\", "_").strip() or "document.pdf")[:200]
    sha256 = await AttachmentStore.for_settings(settings).put(content)
    moment = _now(now)
    record = Attachment(
        request_id=row.id,
        kind=kind,
        filename=name,
        sha256=sha256,
        size=len(content),
        uploaded_by=actor.label,
        uploaded_at=moment,
    )
    session.add(record)
    await _event(
        session,
        row,
        actor=actor,
        action="attach",
        tag=EventTag.HABILITATIONS_REQUEST_ATTACHMENT_ADDED,
        before=row.state,
        now=moment,
        details={"kind": kind, "sha256": sha256, "size": len(content)},
    )
    return AttachmentView(kind, name, sha256, len(content), actor.label, moment)


async def read_attachment(
    *, session: AsyncSession, settings: Settings, actor: Actor, request_id: int, sha256: str
) -> tuple[AttachmentView, bytes]:
    """An attachment of a request the actor may read, verified against its SHA-256."""
    row = await _load(session, actor, request_id)
    record = await session.scalar(
        select(Attachment).where(Attachment.request_id == row.id, Attachment.sha256 == sha256)
    )
    if record is None:
        raise RequestNotFound("pièce jointe introuvable")
    content = await AttachmentStore.for_settings(settings).get(sha256)
    view = AttachmentView(
        record.kind,
        record.filename,
        record.sha256,
        record.size,
        record.uploaded_by,
        clock.as_utc(record.uploaded_at),
    )
    return view, content


async def post_message(
    *,
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    body: str,
    now: dt.datetime | None = None,
) -> TimelineEntry:
    """A message between the applicants and the instructors, on the request."""
    row = await _load(session, actor, request_id)
    if not wf.may_write_message(actor, siret=row.organisation_siret):
        raise ActionForbidden("seuls le demandeur et l'instructeur échangent sur la demande")
    text = body.strip()
    if not 1 <= len(text) <= MAX_MESSAGE:
        raise InvalidRequestData({"message": f"le message compte de 1 à {MAX_MESSAGE} caractères"})
    moment = _now(now)
    session.add(
        RequestMessage(
            request_id=row.id,
            author_kind=actor.kind.value,
            author_label=actor.label,
            body=text,
            at=moment,
        )
    )
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.HABILITATIONS_REQUEST_MESSAGE_POSTED,
        actor=actor.label,
        details={"request_id": row.id, "siret": row.organisation_siret, "length": len(text)},
    )
    return TimelineEntry(moment, "message", "message", actor.label, actor.kind.value, body=text)


# -- reading -----------------------------------------------------------------------------


async def get_request(*, session: AsyncSession, actor: Actor, request_id: int) -> RequestView:
    """The request, if the actor may read it."""
    return await _view(session, actor, await _load(session, actor, request_id))


async def list_requests(
    *,
    session: AsyncSession,
    actor: Actor,
    state: State | None = None,
    stage: Environment | None = None,
    siret: str | None = None,
    text: str | None = None,
) -> list[RequestView]:
    """Requests the actor may read, newest first: an applicant's organisation's only;
    staff filter by state, stage, organisation or a text in the name (the queue)."""
    conditions: list[ColumnElement[bool]] = []
    if actor.kind is ActorKind.APPLICANT:
        conditions.append(HabilitationRequest.organisation_siret == actor.organisation_siret)
    elif not (actor.is_staff() or actor.kind is ActorKind.SYSTEM):
        return []
    if state is not None:
        conditions.append(HabilitationRequest.state == state)
    if stage is not None:
        conditions.append(HabilitationRequest.stage == stage)
    if siret is not None:
        conditions.append(HabilitationRequest.organisation_siret == siret)
    if text:
        pattern = f"%{text.strip()}%"
        conditions.append(
            or_(
                HabilitationRequest.organisation_name.ilike(pattern),
                HabilitationRequest.organisation_siret.like(pattern),
            )
        )
    rows = await session.scalars(
        select(HabilitationRequest).where(*conditions).order_by(HabilitationRequest.id.desc())
    )
    return [await _view(session, actor, row) for row in rows]


async def timeline(*, session: AsyncSession, actor: Actor, request_id: int) -> list[TimelineEntry]:
    """The request's events and messages, oldest first (R-HAB-2)."""
    row = await _load(session, actor, request_id)
    events = await session.scalars(
        select(RequestEvent).where(RequestEvent.request_id == row.id).order_by(RequestEvent.id)
    )
    entries = [
        TimelineEntry(
            at=clock.as_utc(e.at),
            kind="event",
            action=e.action,
            actor_label=e.actor_label,
            actor_kind=e.actor_kind,
            from_state=e.from_state.value if e.from_state else None,
            to_state=e.to_state.value,
            reason=e.reason,
            legal_analysis=e.legal_analysis,
        )
        for e in events
    ]
    messages = await session.scalars(
        select(RequestMessage)
        .where(RequestMessage.request_id == row.id)
        .order_by(RequestMessage.id)
    )
    entries += [
        TimelineEntry(
            clock.as_utc(m.at), "message", "message", m.author_label, m.author_kind, body=m.body
        )
        for m in messages
    ]
    return sorted(entries, key=lambda entry: entry.at)


async def list_habilitations(
    *, session: AsyncSession, actor: Actor, request_id: int | None = None
) -> list[HabilitationView]:
    """The snapshots the actor may read (of one request, or all), newest first."""
    conditions: list[ColumnElement[bool]] = []
    if request_id is not None:
        conditions.append(Habilitation.request_id == (await _load(session, actor, request_id)).id)
    if actor.kind is ActorKind.APPLICANT:
        conditions.append(Habilitation.organisation_siret == actor.organisation_siret)
    elif not (actor.is_staff() or actor.kind is ActorKind.SYSTEM):
        return []
    rows = await session.scalars(
        select(Habilitation).where(*conditions).order_by(Habilitation.id.desc())
    )
    return [_habilitation_view(row) for row in rows]


# -- the transitions ---------------------------------------------------------------------


async def submit(
    *,
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    request_id: int,
    now: dt.datetime | None = None,
) -> RequestView:
    """Submit (or resubmit after changes) a complete request (R-HAB-1)."""
    row = await _load(session, actor, request_id)
    moment = _now(now)
    if actor.acts_for(row.organisation_siret) and row.state in wf.EDITABLE:
        _check_complete(settings, row, moment)
    await _fire(session, row, Action.SUBMIT, actor=actor, now=moment)
    row.submitted_at = moment
    return await _view(session, actor, row)


def _check_complete(settings: Settings, row: HabilitationRequest, now: dt.datetime) -> None:
    """Every block of the stage, the terms of the stage, dates still ahead, the
    certificate acceptable for the stage (production: a trusted CA)."""
    errors = {
        block.key: f"bloc « {block.title} » à remplir"
        for block in missing_blocks(row.stage, row.data)
    }
    if errors:
        raise InvalidRequestData(errors)
    if row.data["cgu"]["version"] != TERMS_VERSIONS[row.stage]:
        errors["cgu.version"] = f"acceptez la version en vigueur : {TERMS_VERSIONS[row.stage]}"
    today = clock.legal_date(now)
    if row.stage is Environment.PRODUCTION:
        errors.update(_production_dates(row, today))
    if errors:
        raise InvalidRequestData(errors)
    provisioning.check_stage_certificate(settings, row, now=now)


def _production_dates(row: HabilitationRequest, today: dt.date) -> dict[str, str]:
    errors: dict[str, str] = {}
    start = dt.date.fromisoformat(row.data["mise_en_production"]["date_mise_en_production"])
    if start < today:
        errors["mise_en_production.date_mise_en_production"] = "la date est passée"
    commitment = parse_block("engagement_securite", row.data["engagement_securite"])
    assert isinstance(commitment, SecurityCommitment)
    homologation = commitment.homologation
    if isinstance(homologation, Homologation) and homologation.date_fin <= today:
        errors["engagement_securite.homologation.date_fin"] = "l'homologation a expiré"
    return errors


async def request_changes(
    *,
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    reason: str,
    now: dt.datetime | None = None,
) -> RequestView:
    """Send the request back to its applicant, with the reason (R-HAB-2)."""
    row = await _load(session, actor, request_id)
    await _fire(session, row, Action.REQUEST_CHANGES, actor=actor, now=_now(now), reason=reason)
    return await _view(session, actor, row)


async def refuse(
    *,
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    reason: str,
    legal_analysis: str,
    now: dt.datetime | None = None,
) -> RequestView:
    """Refuse the request, with the reason and the legal analysis (R-HAB-2)."""
    row = await _load(session, actor, request_id)
    await _fire(
        session,
        row,
        Action.REFUSE,
        actor=actor,
        now=_now(now),
        reason=reason,
        legal_analysis=legal_analysis,
    )
    return await _view(session, actor, row)


async def archive(
    *, session: AsyncSession, actor: Actor, request_id: int, now: dt.datetime | None = None
) -> RequestView:
    """The applicant gives up a draft (never one that holds an habilitation)."""
    row = await _load(session, actor, request_id)
    await _fire(session, row, Action.ARCHIVE, actor=actor, now=_now(now))
    return await _view(session, actor, row)


async def reopen(
    *, session: AsyncSession, actor: Actor, request_id: int, now: dt.datetime | None = None
) -> RequestView:
    """Edit a validated request again; its habilitation stays active meanwhile."""
    row = await _load(session, actor, request_id)
    await _fire(session, row, Action.REOPEN, actor=actor, now=_now(now))
    return await _view(session, actor, row)


async def cancel_reopening(
    *, session: AsyncSession, actor: Actor, request_id: int, now: dt.datetime | None = None
) -> RequestView:
    """Give up the update: the request is back to the data of its active habilitation."""
    row = await _load(session, actor, request_id)
    active = await _active(session, row.id)
    await _fire(session, row, Action.CANCEL_REOPENING, actor=actor, now=_now(now))
    assert active is not None  # the table's condition
    row.data = copy.deepcopy(active.data)
    return await _view(session, actor, row)


async def _watch_commitment(
    session: AsyncSession, row: HabilitationRequest, *, actor: Actor, now: dt.datetime
) -> None:
    """Hand the validated security commitment (R-SEC-1) to the compliance clock, which
    watches its renewal and suspends the exchange when it lapses (R-SEC-2, R-SEC-3): the
    homologation's end of validity, or the questionnaire answered on this day. An
    attestation whose renewal is already due is refused, and the validation with it."""
    assert row.id_teleservice is not None
    commitment = parse_block("engagement_securite", row.data["engagement_securite"])
    assert isinstance(commitment, SecurityCommitment)
    homologation = commitment.homologation
    try:
        await compliance.record_commitment(
            session=session,
            id_teleservice=row.id_teleservice,
            kind=(
                compliance.CommitmentKind.HOMOLOGATION
                if homologation is not None
                else compliance.CommitmentKind.QUESTIONNAIRE
            ),
            reference_date=(
                homologation.date_fin if homologation is not None else clock.legal_date(now)
            ),
            actor=actor,
            validated=True,
            reservations=homologation.reserves if homologation is not None else None,
            provisional=homologation.provisoire if homologation is not None else False,
            document_reference=homologation.document if homologation is not None else None,
            now=now,
        )
    except compliance.ComplianceError as error:
        raise TransitionRefused(f"engagement de sécurité : {error}") from error


async def validate(
    *,
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    request_id: int,
    legal_analysis: str,
    now: dt.datetime | None = None,
) -> Decision:
    """Validate: provision the stage's téléservice, freeze the habilitation (R-HAB-2,
    R-HAB-4). The previous snapshot of a reopened request becomes obsolete. The caller
    commits, then mails :attr:`Decision.notice` with :func:`deliver_notice`."""
    row = await _load(session, actor, request_id)
    moment = _now(now)
    await _fire(
        session, row, Action.VALIDATE, actor=actor, now=moment, legal_analysis=legal_analysis
    )
    provisioned = await provisioning.provision(
        session=session,
        settings=settings,
        request=row,
        decided_by=actor.label,
        actor=actor.label,
        now=moment,
    )
    row.id_teleservice = provisioned.id_teleservice
    if row.stage is Environment.PRODUCTION:
        await _watch_commitment(session, row, actor=actor, now=moment)
    previous = await _active(session, row.id)
    if previous is not None:
        previous.status, previous.ended_at = HabilitationStatus.OBSOLETE, moment
    snapshot = Habilitation(
        request_id=row.id,
        organisation_siret=row.organisation_siret,
        stage=row.stage,
        status=HabilitationStatus.ACTIVE,
        data=copy.deepcopy(row.data),
        attachments=[
            {"kind": a.kind, "filename": a.filename, "sha256": a.sha256}
            for a in await session.scalars(
                select(Attachment).where(Attachment.request_id == row.id)
            )
        ],
        id_teleservice=provisioned.id_teleservice,
        client_id=provisioned.client_id,
        validated_by=actor.label,
        legal_analysis=legal_analysis.strip(),
        validated_at=moment,
        sealed_secret=(
            provisioning.seal(settings, provisioned.client_secret)
            if provisioned.client_secret is not None
            else None
        ),
    )
    session.add(snapshot)
    await session.flush()
    access = row.data["acces_technique"]
    notice = provisioning.notice(
        settings,
        row,
        id_teleservice=provisioned.id_teleservice,
        client_id=provisioned.client_id,
        thumbprint=provisioned.thumbprint,
        auth_method=AuthMethod(access["methode_authentification"]),
        secret_pending=provisioned.client_secret is not None,
        issued_certificate_pem=provisioned.issued_certificate_pem,
    )
    return Decision(
        habilitation=_habilitation_view(snapshot),
        notice=notice,
        issued_certificate_pem=provisioned.issued_certificate_pem,
    )


async def revoke(
    *,
    session: AsyncSession,
    actor: Actor,
    request_id: int,
    reason: str,
    now: dt.datetime | None = None,
) -> RequestView:
    """Revoke the habilitation: its téléservice is revoked at once (R-HAB-2, R-SEC-4)."""
    row = await _load(session, actor, request_id)
    moment = _now(now)
    await _fire(session, row, Action.REVOKE, actor=actor, now=moment, reason=reason)
    active = await _active(session, row.id)
    assert active is not None  # the table's condition
    active.status, active.ended_at, active.sealed_secret = (
        HabilitationStatus.REVOKED,
        moment,
        None,
    )
    await provisioning.end_teleservice(
        session=session,
        id_teleservice=active.id_teleservice,
        actor=actor.label,
        reason=reason.strip(),
        now=moment,
    )
    return await _view(session, actor, row)


async def start_next_stage(
    *, session: AsyncSession, actor: Actor, request_id: int, now: dt.datetime | None = None
) -> RequestView:
    """The production request, from the validated sandbox one: its data and attachments
    are kept, the production blocks and terms are to fill (R-HAB-3)."""
    row = await _load(session, actor, request_id)
    taken = await session.scalar(
        select(HabilitationRequest.id).where(HabilitationRequest.previous_stage_id == row.id)
    )
    if taken is not None:
        raise TransitionRefused(f"la demande de production n° {taken} existe déjà")
    moment = _now(now)
    await _fire(session, row, Action.START_NEXT_STAGE, actor=actor, now=moment)
    kept = {key: value for key, value in row.data.items() if key != "cgu"}
    following = HabilitationRequest(
        organisation_siret=row.organisation_siret,
        organisation_name=row.organisation_name,
        stage=Environment.PRODUCTION,
        state=State.DRAFT,
        data=copy.deepcopy(kept),
        previous_stage_id=row.id,
        applicant_label=actor.label,
        applicant_email=actor.email,
        created_at=moment,
        updated_at=moment,
    )
    session.add(following)
    await session.flush()
    for attachment in await session.scalars(
        select(Attachment).where(Attachment.request_id == row.id)
    ):
        session.add(
            Attachment(
                request_id=following.id,
                kind=attachment.kind,
                filename=attachment.filename,
                sha256=attachment.sha256,
                size=attachment.size,
                uploaded_by=attachment.uploaded_by,
                uploaded_at=attachment.uploaded_at,
            )
        )
    await _event(
        session,
        following,
        actor=actor,
        action="create",
        tag=EventTag.HABILITATIONS_REQUEST_CREATED,
        before=None,
        now=moment,
        details={"previous_stage_id": row.id},
    )
    return await _view(session, actor, following)


# -- after the commit: the notice, the secret --------------------------------------------


async def deliver_notice(
    *, session: AsyncSession, settings: Settings, notice: Notice, actor: Actor
) -> SentMail | None:
    """Mail the means of access to the technical contact (R-HAB-4), once the validation
    is committed; the outcome is journaled. ``None`` when the mail could not be sent
    (the journal says why; the operator sends it again with the CLI)."""
    details: dict[str, object] = {"request_id": notice.request_id, "to": list(notice.to)}
    try:
        sent = await send_mail(settings, to=notice.to, subject=notice.subject, body=notice.body)
    except MailError as error:
        details["error"] = str(error)
        await audit.record_event(
            session=session,
            tag=EventTag.HABILITATIONS_NOTICE_FAILED,
            actor=actor.label,
            details=details,
        )
        return None
    details["message_id"] = sent.message_id
    await audit.record_event(
        session=session, tag=EventTag.HABILITATIONS_NOTICE_SENT, actor=actor.label, details=details
    )
    return sent


async def current_notice(
    *, session: AsyncSession, settings: Settings, actor: Actor, request_id: int
) -> Notice:
    """The notice of the request's active habilitation, to mail again (staff only)."""
    row = await _load(session, actor, request_id)
    if not wf.is_party(actor, wf.Party.INSTRUCTOR, siret=row.organisation_siret):
        raise ActionForbidden("seul un instructeur renvoie les moyens d'accès")
    active = await _active(session, row.id)
    if active is None:
        raise TransitionRefused("la demande n'a pas d'habilitation active")
    view = await consumers.get_by_id_teleservice(
        session=session, id_teleservice=active.id_teleservice
    )
    assert view is not None  # provisioned with the snapshot
    return provisioning.notice(
        settings,
        row,
        id_teleservice=active.id_teleservice,
        client_id=active.client_id,
        thumbprint=sorted(view.thumbprints)[0],
        auth_method=view.auth_method,
        secret_pending=active.sealed_secret is not None,
        issued_certificate_pem=None,
    )


async def reveal_secret(
    *, session: AsyncSession, settings: Settings, actor: Actor, habilitation_id: int
) -> str:
    """The client secret of an habilitation, to its applicant, once (R-HAB-4)."""
    row = await session.get(Habilitation, habilitation_id)
    if row is None or not actor.acts_for(row.organisation_siret):
        raise RequestNotFound(f"habilitation n° {habilitation_id} introuvable")
    if row.sealed_secret is None:
        raise TransitionRefused("le secret a déjà été lu, ou il n'y en a pas")
    secret = provisioning.unseal(settings, row.sealed_secret)
    row.sealed_secret = None
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.HABILITATIONS_CREDENTIAL_REVEALED,
        actor=actor.label,
        details={"habilitation_id": row.id, "id_teleservice": row.id_teleservice},
    )
    return secret


async def security_commitment(
    *, session: AsyncSession, id_teleservice: str
) -> SecurityCommitment | None:
    """The security commitment (R-SEC-1) of the téléservice's active production
    habilitation, as validated: what the compliance clock records and watches (R-SEC-2,
    R-SEC-3). ``None`` for a sandbox téléservice or one without an active habilitation."""
    snapshot = await session.scalar(
        select(Habilitation).where(
            Habilitation.id_teleservice == id_teleservice,
            Habilitation.status == HabilitationStatus.ACTIVE,
            Habilitation.stage == Environment.PRODUCTION,
        )
    )
    if snapshot is None:
        return None
    commitment = parse_block("engagement_securite", snapshot.data["engagement_securite"])
    assert isinstance(commitment, SecurityCommitment)
    return commitment


def block_titles(stage: Environment) -> list[tuple[str, str]]:
    """(key, title) of the stage's blocks, in the form's order (for the pages)."""
    return [(block.key, block.title) for block in blocks_of(stage)]
