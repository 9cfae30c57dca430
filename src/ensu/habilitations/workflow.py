"""The habilitation request's workflow as one table (R-HAB-2, R-HAB-3).

:data:`TRANSITIONS` is the only place that says which action moves a request from which
state to which, who may fire it and what it needs; the service enforces it, the tests are
generated from it (every action from every state, by every kind of actor) and the pages
offer exactly the buttons it allows. The states and events follow DataPass v2
(``etalab/data_pass``: draft, submitted, changes_requested, validated, refused, archived,
revoked; submit, request_changes, approve, refuse, archive, revoke, reopen,
start_next_stage, cancel_reopening), with two differences: validating *provisions* the
stage's téléservice (R-HAB-4), and the producer's legal analysis is required with the
decision (R-HAB-2).

Who fires an action (:class:`Party`):

- ``applicant``: a person acting for the request's organisation (``Actor.acts_for``);
- ``instructor``: staff whose role includes ``instructor`` (instructor, manager, admin);
- ``manager``: staff whose role includes ``manager``.

A reporter reads and decides nothing. The system actor (an operator's shell command,
``ensu habilitations``) acts with a manager's rights on the staff's actions and never on
an applicant's: the operator has the database anyway, and the journal names them.

A *reopened* request is a validated one that its applicant edits again: its habilitation
stays active until the new version is validated (then the old snapshot is obsolete) or
the reopening is cancelled. ``habilitation`` in a row says whether the action needs the
request to hold an active habilitation (True), to hold none (False), or does not care.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.config import Environment
from ensu.habilitations.errors import ActionForbidden, TransitionRefused


class State(enum.StrEnum):
    """A request's states (R-HAB-2)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    CHANGES_REQUESTED = "changes_requested"
    VALIDATED = "validated"
    REFUSED = "refused"
    ARCHIVED = "archived"
    REVOKED = "revoked"


class Action(enum.StrEnum):
    """The events that move a request (R-HAB-2)."""

    SUBMIT = "submit"
    REQUEST_CHANGES = "request_changes"
    VALIDATE = "validate"
    REFUSE = "refuse"
    ARCHIVE = "archive"
    REVOKE = "revoke"
    REOPEN = "reopen"
    CANCEL_REOPENING = "cancel_reopening"
    START_NEXT_STAGE = "start_next_stage"


class Party(enum.StrEnum):
    """Who may fire an action; see the module docstring."""

    APPLICANT = "applicant"
    INSTRUCTOR = "instructor"
    MANAGER = "manager"


#: French labels, for the pages and the messages.
STATE_LABELS = {
    State.DRAFT: "brouillon",
    State.SUBMITTED: "soumise",
    State.CHANGES_REQUESTED: "modifications demandées",
    State.VALIDATED: "validée",
    State.REFUSED: "refusée",
    State.ARCHIVED: "archivée",
    State.REVOKED: "révoquée",
}
PARTY_LABELS = {
    Party.APPLICANT: "demandeur de l'organisation",
    Party.INSTRUCTOR: "instructeur",
    Party.MANAGER: "responsable (manager)",
}

BOTH_STAGES = frozenset(Environment)
#: The states in which the applicant edits the blocks and the attachments.
EDITABLE = frozenset({State.DRAFT, State.CHANGES_REQUESTED})


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: ``action`` moves a request from any of ``sources`` to
    ``target``; ``by`` may fire it; ``needs_reason`` and ``needs_legal_analysis`` are
    required texts; ``habilitation`` is the condition on the request's active
    habilitation (None: none); ``stages`` the stages where it applies."""

    action: Action
    sources: frozenset[State]
    target: State
    by: Party
    label: str
    needs_reason: bool = False
    needs_legal_analysis: bool = False
    habilitation: bool | None = None
    stages: frozenset[Environment] = BOTH_STAGES


def _row(
    action: Action, sources: Iterable[State], target: State, by: Party, label: str, **rest: object
) -> Transition:
    return Transition(action, frozenset(sources), target, by, label, **rest)  # type: ignore[arg-type]


_S = State
#: The table (R-HAB-2, R-HAB-3). Read it top to bottom: this is the whole workflow.
TRANSITIONS: tuple[Transition, ...] = (
    _row(Action.SUBMIT, {_S.DRAFT, _S.CHANGES_REQUESTED}, _S.SUBMITTED, Party.APPLICANT,
         "Soumettre la demande"),
    _row(Action.ARCHIVE, {_S.DRAFT, _S.CHANGES_REQUESTED}, _S.ARCHIVED, Party.APPLICANT,
         "Archiver la demande", habilitation=False),
    _row(Action.REQUEST_CHANGES, {_S.SUBMITTED}, _S.CHANGES_REQUESTED, Party.INSTRUCTOR,
         "Demander des modifications", needs_reason=True),
    _row(Action.REFUSE, {_S.SUBMITTED}, _S.REFUSED, Party.INSTRUCTOR,
         "Refuser la demande", needs_reason=True, needs_legal_analysis=True),
    _row(Action.VALIDATE, {_S.SUBMITTED}, _S.VALIDATED, Party.INSTRUCTOR,
         "Valider la demande", needs_legal_analysis=True),
    _row(Action.REOPEN, {_S.VALIDATED}, _S.DRAFT, Party.APPLICANT,
         "Mettre à jour la demande validée", habilitation=True),
    _row(Action.CANCEL_REOPENING, {_S.DRAFT, _S.CHANGES_REQUESTED}, _S.VALIDATED,
         Party.APPLICANT, "Annuler la mise à jour", habilitation=True),
    _row(Action.REVOKE, {_S.VALIDATED, _S.DRAFT, _S.SUBMITTED, _S.CHANGES_REQUESTED},
         _S.REVOKED, Party.MANAGER, "Révoquer l'habilitation", needs_reason=True,
         habilitation=True),
    _row(Action.START_NEXT_STAGE, {_S.VALIDATED}, _S.VALIDATED, Party.APPLICANT,
         "Demander l'accès à la production", habilitation=True,
         stages=frozenset({Environment.SANDBOX})),
)  # fmt: skip

BY_ACTION = {row.action: row for row in TRANSITIONS}


def is_party(actor: Actor, party: Party, *, siret: str) -> bool:
    """True when ``actor`` is ``party`` for a request of the organisation ``siret``."""
    if party is Party.APPLICANT:
        return actor.acts_for(siret)
    if actor.kind is ActorKind.SYSTEM:
        return True  # the operator's shell: a manager's rights on staff actions
    needed = StaffRole.INSTRUCTOR if party is Party.INSTRUCTOR else StaffRole.MANAGER
    return actor.is_staff(needed)


def may_read(actor: Actor, *, siret: str) -> bool:
    """Applicants see their organisation's requests; staff (reporters too) and the
    operator see every request."""
    return actor.acts_for(siret) or actor.is_staff() or actor.kind is ActorKind.SYSTEM


def may_write_message(actor: Actor, *, siret: str) -> bool:
    """The exchange on a request: its applicants and the instructors (not reporters)."""
    return actor.acts_for(siret) or is_party(actor, Party.INSTRUCTOR, siret=siret)


def applies(row: Transition, *, state: State, stage: Environment, has_habilitation: bool) -> bool:
    """True when ``row`` starts from ``state`` and its conditions hold (actor aside)."""
    if state not in row.sources or stage not in row.stages:
        return False
    return row.habilitation is None or row.habilitation == has_habilitation


def available(
    *, actor: Actor, siret: str, state: State, stage: Environment, has_habilitation: bool
) -> list[Transition]:
    """The actions ``actor`` may fire on such a request now, in the table's order."""
    return [
        row
        for row in TRANSITIONS
        if applies(row, state=state, stage=stage, has_habilitation=has_habilitation)
        and is_party(actor, row.by, siret=siret)
    ]


def check(
    action: Action,
    *,
    actor: Actor,
    siret: str,
    state: State,
    stage: Environment,
    has_habilitation: bool,
    reason: str | None = None,
    legal_analysis: str | None = None,
) -> Transition:
    """The row of ``action`` if ``actor`` may fire it now; otherwise
    :class:`ActionForbidden` (who) or :class:`TransitionRefused` (state, conditions)."""
    row = BY_ACTION[action]
    if not is_party(actor, row.by, siret=siret):
        raise ActionForbidden(f"« {row.label} » est réservé au {PARTY_LABELS[row.by]}")
    if not applies(row, state=state, stage=stage, has_habilitation=has_habilitation):
        raise TransitionRefused(
            f"« {row.label} » est impossible : la demande est {STATE_LABELS[state]}"
        )
    if row.needs_reason and not (reason or "").strip():
        raise TransitionRefused(f"« {row.label} » exige un motif")
    if row.needs_legal_analysis and not (legal_analysis or "").strip():
        raise TransitionRefused(f"« {row.label} » exige l'analyse juridique de l'instructeur")
    return row
