"""The request form as a list of blocks, declared as data (R-HAB-1, R-HAB-3, R-SEC-1).

Each block is a pydantic model whose fields keep the French names of DataPass's DGFIP
blocks (``etalab/data_pass``: basic infos, personal data, legal framework, GDPR and
technical contacts, volumetry, safety certification, operational acceptance). A block is
validated whole when the applicant saves it (every message French, next to its field);
the submission checks that every block of the stage is there (:func:`missing_blocks`).
:data:`BLOCKS` is what the service, the pages and the tests read.

Attachments are named in a block by their SHA-256 (``document``); the service checks that
the request holds them. Certificates are checked by :mod:`ensu.habilitations.certificates`.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ensu.config import Environment
from ensu.consumers.credentials import is_valid_email, is_valid_siret
from ensu.consumers.models import AuthMethod
from ensu.consumers.schemas import FAMILIES
from ensu.documents.catalogue import CODES
from ensu.habilitations.errors import InvalidRequestData

#: The terms each stage's applicant accepts (R-SQ-6: the version is recorded). The
#: compliance clock owns the versions' history; these are the versions in force.
TERMS_VERSIONS = {
    Environment.SANDBOX: "CGU BAS ENSU DOC v.2023-11",
    Environment.PRODUCTION: "CGU PROD ENSU DOC v.2023-11",
}
#: DataPass asks a justification above three years of retention.
RETENTION_JUSTIFIED_ABOVE_MONTHS = 36
#: Above the production default (R-Q-1), R-Q-2's justification is part of the request.
VOLUMETRY_JUSTIFIED_ABOVE = 500
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
PHONE_PATTERN = re.compile(r"\+?[0-9][0-9 .-]{7,18}[0-9]")
URL_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?")


class _Block(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")


def _text(value: str | None, *, label: str, minimum: int = 1, maximum: int = 4000) -> str:
    if value is None or not value.strip():
        raise ValueError(f"{label} est obligatoire")
    if not minimum <= len(value) <= maximum:
        raise ValueError(f"{label} doit compter de {minimum} à {maximum} caractères")
    return value


def _required(value: bool, message: str) -> bool:
    """A box the applicant must tick (terms, formalities, recette)."""
    if not value:
        raise ValueError(message)
    return value


def _url(value: str | None) -> str | None:
    if value and URL_PATTERN.fullmatch(value) is None:
        raise ValueError("adresse web invalide (https://…)")
    return value or None


def _sha256(value: str | None) -> str | None:
    if value is not None and SHA256_PATTERN.fullmatch(value) is None:
        raise ValueError("pièce jointe inconnue (empreinte SHA-256 attendue)")
    return value


# -- the blocks of both stages --------------------------------------------------------


class BasicInfos(_Block):
    """The démarche and the use of the data (R-HAB-1)."""

    intitule: str
    description: str
    usage_donnees: str
    services_destinataires: str

    @field_validator("intitule")
    @classmethod
    def _intitule(cls, value: str) -> str:
        return _text(value, label="l'intitulé", minimum=3, maximum=200)

    @field_validator("description", "usage_donnees")
    @classmethod
    def _long(cls, value: str) -> str:
        return _text(value, label="ce champ", minimum=10)

    @field_validator("services_destinataires")
    @classmethod
    def _recipients(cls, value: str) -> str:
        return _text(value, label="les services destinataires", maximum=1000)


class Perimeter(_Block):
    """The documents and the data period asked for (R-HAB-1, R-GW-5, R-DATA-5)."""

    familles: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    periode_debut: dt.date
    periode_fin: dt.date

    @field_validator("familles")
    @classmethod
    def _families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - FAMILIES)
        if unknown:
            raise ValueError(f"familles inconnues : {', '.join(unknown)}")
        return tuple(sorted(set(value)))

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - CODES)
        if unknown:
            raise ValueError(f"codes absents du catalogue : {', '.join(unknown)}")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _consistent(self) -> Perimeter:
        if not self.familles and not self.codes:
            raise ValueError("choisissez au moins une famille ou un code de document")
        if self.periode_debut > self.periode_fin:
            raise ValueError("la période commence après sa fin")
        return self


class PersonalData(_Block):
    """The personal-data formalities (CGU §3.2): recipients and retention in months."""

    destinataires_donnees: str
    duree_conservation_mois: int = Field(ge=1, le=600)
    justification_duree: str | None = None
    formalites_accomplies: bool

    @field_validator("destinataires_donnees")
    @classmethod
    def _recipients(cls, value: str) -> str:
        return _text(value, label="les destinataires des données", maximum=1000)

    @field_validator("formalites_accomplies")
    @classmethod
    def _done(cls, value: bool) -> bool:
        return _required(value, "les formalités relatives aux données personnelles sont requises")

    @model_validator(mode="after")
    def _justified(self) -> PersonalData:
        long = self.duree_conservation_mois > RETENTION_JUSTIFIED_ABOVE_MONTHS
        if long and not (self.justification_duree or "").strip():
            raise ValueError(
                "une conservation de plus de 36 mois doit être justifiée "
                "(champ justification_duree)"
            )
        return self


class LegalFramework(_Block):
    """The legal basis of the démarche: its nature, and its text by URL or PDF."""

    nature: str
    url: str | None = None
    document: str | None = None

    @field_validator("nature")
    @classmethod
    def _nature(cls, value: str) -> str:
        return _text(value, label="la nature du cadre juridique", minimum=3, maximum=1000)

    _url = field_validator("url")(_url)

    _document = field_validator("document")(_sha256)

    @model_validator(mode="after")
    def _one(self) -> LegalFramework:
        if not self.url and not self.document:
            raise ValueError("donnez l'adresse du texte ou joignez-le en PDF")
        return self


class Person(_Block):
    """A contact of the request."""

    nom: str
    email: str
    telephone: str | None = None
    fonction: str | None = None

    @field_validator("nom")
    @classmethod
    def _name(cls, value: str) -> str:
        return _text(value, label="le nom", maximum=200)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not is_valid_email(value):
            raise ValueError("adresse électronique invalide")
        return value

    @field_validator("telephone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value and PHONE_PATTERN.fullmatch(value) is None:
            raise ValueError("numéro de téléphone invalide")
        return value or None


class Contacts(_Block):
    """Responsable de traitement, DPO and technical contact (R-HAB-1); the technical
    contact receives the means of access (R-HAB-4)."""

    responsable_traitement: Person
    delegue_protection_donnees: Person
    contact_technique: Person


class Volumetry(_Block):
    """Calls per minute expected; above 500, R-Q-2's justification."""

    appels_par_minute: int = Field(ge=1, le=1_000_000)
    pics_de_charge: str | None = None
    nombre_dossiers: int | None = Field(default=None, ge=1)
    periodicite: str | None = None

    @model_validator(mode="after")
    def _justified(self) -> Volumetry:
        if self.appels_par_minute <= VOLUMETRY_JUSTIFIED_ABOVE:
            return self
        if not (self.pics_de_charge and self.nombre_dossiers and self.periodicite):
            raise ValueError(
                "au-delà de 500 appels par minute, justifiez les pics de charge, le nombre "
                "de dossiers et la périodicité"
            )
        return self


class TechnicalAccess(_Block):
    """How the téléservice authenticates (R-GW-1, R-GW-2, R-GW-4): certificate (PEM) or
    a certificate signing request (CSR, sandbox only), IP allowlist, token method."""

    methode_authentification: AuthMethod = AuthMethod.TLS_CLIENT_AUTH
    certificat_pem: str | None = None
    csr_pem: str | None = None
    reseaux: tuple[str, ...]

    @field_validator("reseaux")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("indiquez au moins une adresse IP ou un réseau (CIDR)")
        for item in value:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError:
                raise ValueError(f"réseau invalide : {item} (notation CIDR attendue)") from None
        return value

    @model_validator(mode="after")
    def _one(self) -> TechnicalAccess:
        if (self.certificat_pem is None) == (self.csr_pem is None):
            raise ValueError("donnez soit un certificat (PEM), soit une demande de certificat")
        return self


class Terms(_Block):
    """The terms accepted, with their version (R-HAB-1, R-SQ-6)."""

    acceptees: bool
    version: str

    @field_validator("acceptees")
    @classmethod
    def _accepted(cls, value: bool) -> bool:
        return _required(value, "l'acceptation des conditions générales d'utilisation est requise")

    @field_validator("version")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TERMS_VERSIONS.values():
            raise ValueError("version des conditions générales d'utilisation inconnue")
        return value


# -- the production stage's blocks (R-HAB-3) ------------------------------------------


class Recette(_Block):
    """The confirmation of the *recette fonctionnelle* done in the sandbox (CGU BAS)."""

    confirmee: bool
    date_fin: dt.date
    resultats: str
    document: str | None = None

    _document = field_validator("document")(_sha256)

    @field_validator("confirmee")
    @classmethod
    def _confirmed(cls, value: bool) -> bool:
        return _required(value, "confirmez la recette fonctionnelle")

    @field_validator("resultats")
    @classmethod
    def _results(cls, value: str) -> str:
        return _text(value, label="les résultats de la recette", minimum=3)


class Question(enum.StrEnum):
    """The security questionnaire (R-SEC-1): group 1 decides, group 2 recommends."""

    # group 1: a "no" means production cannot be granted on the questionnaire
    CLE_PROTEGEE = "cle_protegee"
    ACCES_JOURNALISES = "acces_journalises"
    POSTES_MAITRISES = "postes_maitrises"
    # group 2: a "no" yields a recommendation and a plan
    ANALYSE_RISQUES = "analyse_risques"
    SENSIBILISATION = "sensibilisation"
    SAUVEGARDES_CHIFFREES = "sauvegardes_chiffrees"
    CORRECTIFS = "correctifs"


GROUP_1 = {
    Question.CLE_PROTEGEE: "La clé privée du certificat est protégée (droits, coffre, HSM).",
    Question.ACCES_JOURNALISES: "Les accès aux données reçues sont nominatifs et journalisés.",
    Question.POSTES_MAITRISES: "Les données ne sont traitées que sur des postes maîtrisés.",
}
GROUP_2 = {
    Question.ANALYSE_RISQUES: (
        "Une analyse de risques a été menée.",
        "Mener une analyse de risques (méthode EBIOS RM) avant un an.",
    ),
    Question.SENSIBILISATION: (
        "Les agents sont sensibilisés au secret professionnel.",
        "Sensibiliser les agents au secret professionnel et le tracer.",
    ),
    Question.SAUVEGARDES_CHIFFREES: (
        "Les sauvegardes sont chiffrées.",
        "Chiffrer les sauvegardes contenant des données reçues.",
    ),
    Question.CORRECTIFS: (
        "Les correctifs de sécurité sont appliqués sous 30 jours.",
        "Appliquer les correctifs de sécurité sous 30 jours.",
    ),
}


class Homologation(_Block):
    """A security homologation attestation (PDF) with its authority and dates (R-SEC-1)."""

    autorite_nom: str
    autorite_fonction: str
    date_debut: dt.date
    date_fin: dt.date
    reserves: str | None = None
    provisoire: bool = False
    document: str

    _document = field_validator("document")(_sha256)

    @field_validator("autorite_nom", "autorite_fonction")
    @classmethod
    def _authority(cls, value: str) -> str:
        return _text(value, label="l'autorité d'homologation", maximum=200)

    @model_validator(mode="after")
    def _dates(self) -> Homologation:
        if self.date_debut >= self.date_fin:
            raise ValueError("la fin de l'homologation doit suivre son début")
        return self


class Questionnaire(_Block):
    """The security questionnaire's answers; recommendations follow from group 2."""

    groupe_1: dict[Question, bool]
    groupe_2: dict[Question, bool]

    @model_validator(mode="after")
    def _complete(self) -> Questionnaire:
        if set(self.groupe_1) != set(GROUP_1) or set(self.groupe_2) != set(GROUP_2):
            raise ValueError("répondez à toutes les questions des deux groupes")
        return self

    @property
    def blocking(self) -> list[str]:
        """Group 1 answered "no": the questionnaire does not allow production."""
        return [GROUP_1[q] for q, yes in self.groupe_1.items() if not yes]

    @property
    def recommendations(self) -> list[str]:
        """Group 2 answered "no": what the consumer must plan."""
        return [GROUP_2[q][1] for q, yes in self.groupe_2.items() if not yes]


class SecurityCommitment(_Block):
    """R-SEC-1: a homologation attestation, or the security questionnaire."""

    type: Literal["homologation", "questionnaire"]
    homologation: Homologation | None = None
    questionnaire: Questionnaire | None = None

    @model_validator(mode="after")
    def _matching(self) -> SecurityCommitment:
        if self.type == "homologation" and self.homologation is None:
            raise ValueError("joignez l'attestation d'homologation et ses informations")
        if self.type == "questionnaire" and self.questionnaire is None:
            raise ValueError("remplissez le questionnaire de sécurité")
        if self.questionnaire is not None and self.questionnaire.blocking:
            raise ValueError(
                "une réponse négative du groupe 1 ne permet pas la production : "
                + " ".join(self.questionnaire.blocking)
            )
        return self


class LegalTexts(_Block):
    """The derogation to professional secrecy that allows the exchange in production
    (e.g. CRPA L.114-8 and R.114-9-4)."""

    derogation_secret_professionnel: str
    url: str | None = None
    document: str | None = None

    _document = field_validator("document")(_sha256)

    @field_validator("derogation_secret_professionnel")
    @classmethod
    def _derogation(cls, value: str) -> str:
        return _text(value, label="la dérogation au secret professionnel", minimum=3)

    _url = field_validator("url")(_url)


class ProductionDate(_Block):
    """The date the téléservice goes live (its validity starts then)."""

    date_mise_en_production: dt.date


# -- the form ------------------------------------------------------------------------

SANDBOX_ONLY = frozenset({Environment.SANDBOX})
PRODUCTION_ONLY = frozenset({Environment.PRODUCTION})
BOTH = frozenset(Environment)


@dataclass(frozen=True, slots=True)
class Block:
    """One block of the form: its key, French title, model and stages."""

    key: str
    title: str
    model: type[_Block]
    stages: frozenset[Environment] = BOTH


#: The form, in order (R-HAB-1; the last four are the production stage's, R-HAB-3).
BLOCKS: tuple[Block, ...] = (
    Block("informations", "Informations générales", BasicInfos),
    Block("perimetre", "Données demandées", Perimeter),
    Block("donnees_personnelles", "Données personnelles", PersonalData),
    Block("cadre_juridique", "Cadre juridique", LegalFramework),
    Block("contacts", "Contacts", Contacts),
    Block("volumetrie", "Volumétrie", Volumetry),
    Block("acces_technique", "Accès technique", TechnicalAccess),
    Block("cgu", "Conditions générales d'utilisation", Terms),
    Block("recette", "Recette fonctionnelle", Recette, PRODUCTION_ONLY),
    Block("engagement_securite", "Engagement de sécurité", SecurityCommitment, PRODUCTION_ONLY),
    Block("textes_juridiques", "Textes juridiques", LegalTexts, PRODUCTION_ONLY),
    Block("mise_en_production", "Mise en production", ProductionDate, PRODUCTION_ONLY),
)
BY_KEY = {block.key: block for block in BLOCKS}


def blocks_of(stage: Environment) -> tuple[Block, ...]:
    """The blocks a request of ``stage`` has, in order."""
    return tuple(block for block in BLOCKS if stage in block.stages)


def missing_blocks(stage: Environment, data: Mapping[str, object]) -> list[Block]:
    """The blocks of ``stage`` that ``data`` does not hold yet."""
    return [block for block in blocks_of(stage) if block.key not in data]


_TYPE_MESSAGES = {
    "missing": "champ obligatoire",
    "int_parsing": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "bool_parsing": "oui ou non attendu",
    "bool_type": "oui ou non attendu",
    "date_from_datetime_parsing": "date invalide (AAAA-MM-JJ)",
    "date_parsing": "date invalide (AAAA-MM-JJ)",
    "date_type": "date invalide (AAAA-MM-JJ)",
    "greater_than_equal": "valeur trop petite",
    "less_than_equal": "valeur trop grande",
    "extra_forbidden": "champ inconnu",
    "string_type": "texte attendu",
    "enum": "valeur non proposée",
    "literal_error": "valeur non proposée",
    "model_type": "bloc attendu",
    "dict_type": "réponses attendues",
    "tuple_type": "liste attendue",
}


def french_errors(block: str, error: ValidationError) -> dict[str, str]:
    """pydantic's errors as ``{"block.field": "message en français"}``."""
    found: dict[str, str] = {}
    for item in error.errors():
        where = ".".join(str(part) for part in (block, *item["loc"]))
        if item["type"] == "value_error":
            message = str(item["ctx"]["error"]) if "ctx" in item else item["msg"]
        else:
            message = _TYPE_MESSAGES.get(item["type"], "valeur invalide")
        found.setdefault(where, message)
    return found


def validate_block(stage: Environment, key: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The block ``key`` validated whole, as JSON-ready data; :class:`InvalidRequestData`
    with the French message of each refused field otherwise."""
    block = BY_KEY.get(key)
    if block is None or stage not in block.stages:
        raise InvalidRequestData({key: "bloc inconnu pour cette étape"})
    try:
        model = block.model.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidRequestData(french_errors(key, error)) from None
    return model.model_dump(mode="json")


def parse_block(key: str, data: Mapping[str, Any]) -> Any:
    """A stored block back as its model (stored data was validated when saved)."""
    return BY_KEY[key].model.model_validate(dict(data))


def check_siret(siret: str) -> str:
    """A SIRET: 14 digits, Luhn key (R-HAB-1)."""
    if not is_valid_siret(siret):
        raise InvalidRequestData({"siret": "SIRET invalide (14 chiffres, clé de Luhn)"})
    return siret


# -- what the service returns ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachmentView:
    kind: str
    filename: str
    sha256: str
    size: int
    uploaded_by: str
    uploaded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ActionView:
    """An action the reader may fire now (the buttons of the page)."""

    action: str
    label: str
    needs_reason: bool
    needs_legal_analysis: bool


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as its reader sees it, with the actions they may fire now."""

    id: int
    organisation_siret: str
    organisation_name: str
    stage: Environment
    state: str
    state_label: str
    data: Mapping[str, Any]
    missing_blocks: tuple[str, ...]
    attachments: tuple[AttachmentView, ...]
    actions: tuple[ActionView, ...]
    previous_stage_id: int | None
    next_stage_id: int | None
    id_teleservice: str | None
    has_active_habilitation: bool
    applicant_label: str
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a request's history: a transition, a save, an attachment or a message."""

    at: dt.datetime
    kind: Literal["event", "message"]
    action: str
    actor_label: str
    actor_kind: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    legal_analysis: str | None = None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class HabilitationView:
    """An immutable snapshot of what a validation granted (R-HAB-2)."""

    id: int
    request_id: int
    organisation_siret: str
    stage: Environment
    status: str
    id_teleservice: str
    client_id: str
    validated_by: str
    validated_at: dt.datetime
    ended_at: dt.datetime | None
    legal_analysis: str
    data: Mapping[str, Any]
    secret_pending: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """The mail telling the technical contact the means of access (R-HAB-4)."""

    request_id: int
    to: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What a validation returns: the snapshot, the mail to send once committed, and the
    certificate the development CA issued from a CSR (sandbox), if any."""

    habilitation: HabilitationView
    notice: Notice
    issued_certificate_pem: str | None
