"""The error tree of the API, each class with its contract code, status and title.

Rendered as ``application/problem+json`` (RFC 9457) with the contract's members
(``code``, ``correlationId``, ``horodatage``); never a stack trace, SQL, path or secret
(R-GW-6)::

    EnsuError
    ├── CorrelationIdInvalid   400 910000
    ├── InvalidParameter       400 920400   (+ erreurs: [{parametre, message}])
    ├── CertificateInvalid     401 910001
    ├── TokenMissing           401 900902
    ├── TokenInvalid           401 900901
    ├── IPNotAllowed           403 910002
    ├── TeleserviceInvalid     403 910003
    ├── HabilitationInactive   403 910004
    ├── OutsidePerimeter       403 900910
    ├── NotFound               404 920404   (also "outside the perimeter" for one document)
    │   └── RouteNotFound      404 920404   (no such path under the API prefix)
    ├── MethodNotAllowed       405 920405   (+ Allow)
    ├── BodyTooLarge           413 920413   (a declared body beyond the bound)
    ├── UriTooLong             414 920414   (path and query beyond ENSU_MAX_URL_BYTES)
    ├── HeadersTooLarge        431 920431   (header fields beyond their count or size)
    ├── QuotaExceeded          429 900804
    ├── Maintenance            503 930001
    ├── JournalUnavailable     503 930002
    ├── CounterUnavailable     503 930003   (the quota counters cannot be reached)
    ├── ServiceCut             503 930006   (the whole service cut by an incident, R-OPS-2)
    └── InternalError          500 999999
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import orjson

from ensu import clock

PROBLEM_JSON = "application/problem+json"


class EnsuError(Exception):
    """Base of the API's errors: subclasses set ``status``, ``code`` and ``title``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "999999"
    title: ClassVar[str] = "Erreur interne"
    default_detail: ClassVar[str] = "Une erreur interne est survenue."

    def __init__(self, detail: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(detail or self.default_detail)
        self.detail = detail or self.default_detail
        #: The internal reason, for the journal only; never sent to the caller.
        self.reason = reason or type(self).__name__

    def extra_members(self) -> dict[str, Any]:
        return {}

    def headers(self) -> dict[str, str]:
        return {}

    def body(self, *, correlation_id: str | None, now: dt.datetime | None = None) -> bytes:
        """The problem document (RFC 9457 with the contract's members)."""
        moment = now or clock.now()
        document: dict[str, Any] = {
            "type": f"urn:ensu:erreur:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "correlationId": correlation_id,
            "horodatage": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        document.update(self.extra_members())
        return orjson.dumps(document)


class CorrelationIdInvalid(EnsuError):
    status, code, title = 400, "910000", "Identifiant de corrélation invalide"
    default_detail = "L'en-tête X-Correlation-ID est absent ou n'est pas un UUID."


class InvalidParameter(EnsuError):
    status, code, title = 400, "920400", "Paramètre invalide"
    default_detail = "Un ou plusieurs paramètres de la requête sont invalides."

    def __init__(self, erreurs: list[tuple[str, str]], detail: str | None = None) -> None:
        super().__init__(detail)
        self.erreurs = erreurs

    def extra_members(self) -> dict[str, Any]:
        return {"erreurs": [{"parametre": p, "message": m} for p, m in self.erreurs]}


class CertificateInvalid(EnsuError):
    status, code, title = 401, "910001", "Certificat client invalide"
    default_detail = "Le certificat client est absent, invalide, expiré, révoqué ou non enregistré."


class TokenMissing(EnsuError):
    status, code, title = 401, "900902", "Jeton absent"
    default_detail = "Aucun jeton d'accès n'a été fourni."


class TokenInvalid(EnsuError):
    status, code, title = 401, "900901", "Jeton invalide"
    default_detail = "Le jeton d'accès est invalide, expiré ou révoqué."


class IPNotAllowed(EnsuError):
    status, code, title = 403, "910002", "Adresse IP non autorisée"
    default_detail = "L'adresse IP de l'appelant n'est pas autorisée pour ce téléservice."


class TeleserviceInvalid(EnsuError):
    status, code, title = 403, "910003", "Identifiant de téléservice invalide"
    default_detail = "L'en-tête ID_Teleservice est absent, inconnu ou non conforme."


class HabilitationInactive(EnsuError):
    status, code, title = 403, "910004", "Habilitation inactive"
    default_detail = "L'habilitation est suspendue, révoquée, échue ou d'un autre environnement."


class OutsidePerimeter(EnsuError):
    status, code, title = 403, "900910", "Hors périmètre"
    default_detail = "Le code document ou la période demandés sont hors du périmètre autorisé."


class NotFound(EnsuError):
    status, code, title = 404, "920404", "Document introuvable"
    default_detail = "Aucun document ne correspond à la demande."


class RouteNotFound(NotFound):
    """A path under the API prefix that names no resource of the contract."""

    title = "Ressource introuvable"
    default_detail = "Aucune ressource de l'API ne correspond à ce chemin."


class MethodNotAllowed(EnsuError):
    """A method the path does not serve (RFC 9110 §15.5.6: with ``Allow``); our own
    code, in the family of the request errors (920400, 920404)."""

    status, code, title = 405, "920405", "Méthode non autorisée"
    default_detail = "Cette méthode n'est pas servie pour ce chemin."

    def __init__(self, allow: str | None = None) -> None:
        super().__init__()
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class BodyTooLarge(EnsuError):
    """A request body beyond what the route takes (RFC 9110 §15.5.14), refused before it
    is read (:mod:`ensu.bounds`; our own code, in the family of the request errors)."""

    status, code, title = 413, "920413", "Requête trop volumineuse"
    default_detail = "Le corps de la requête dépasse la taille admise."


class UriTooLong(EnsuError):
    """Path and query string beyond ``ENSU_MAX_URL_BYTES`` (RFC 9110 §15.5.15)."""

    status, code, title = 414, "920414", "URI trop longue"
    default_detail = "Le chemin et les paramètres de la requête dépassent la longueur admise."


class HeadersTooLarge(EnsuError):
    """Header fields beyond ``ENSU_MAX_HEADER_COUNT`` or ``ENSU_MAX_HEADER_BYTES``
    (RFC 6585 §5)."""

    status, code, title = 431, "920431", "En-têtes trop volumineux"
    default_detail = "Les en-têtes de la requête dépassent le nombre ou la taille admis."

    def __init__(self, detail: str | None = None, *, reason: str = "headers_too_large") -> None:
        super().__init__(detail, reason=reason)


class QuotaExceeded(EnsuError):
    status, code, title = 429, "900804", "Quota dépassé"
    default_detail = "Le nombre d'appels autorisés par minute est dépassé."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Maintenance(EnsuError):
    status, code, title = 503, "930001", "Maintenance en cours"
    default_detail = "Le service est en maintenance programmée."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class JournalUnavailable(EnsuError):
    status, code, title = 503, "930002", "Service indisponible"
    default_detail = "La traçabilité des échanges n'est pas assurée : aucune donnée n'est servie."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30"}


class CounterUnavailable(EnsuError):
    """R-Q-1 fails closed: without an exact count, no call is let through."""

    status, code, title = 503, "930003", "Service indisponible"
    default_detail = "Le décompte des quotas est momentanément indisponible."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "10"}


class StoreUnavailable(EnsuError):
    """The database did not answer in time or at all: a bounded, structured refusal
    instead of a hung request or an unstructured 500 (our own code, like 930003)."""

    status, code, title = 503, "930004", "Service indisponible"
    default_detail = "La base de données est momentanément indisponible."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class Overloaded(EnsuError):
    """More calls in flight than the instance serves well: shed at once, before any
    work, rather than answered late or timed out (our own code)."""

    status, code, title = 503, "930005", "Service surchargé"
    default_detail = "Le service reçoit plus d'appels qu'il ne peut en traiter ; réessayez."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ServiceCut(EnsuError):
    """The whole service is cut during a security incident (R-OPS-2, CGU §8 "isolation
    ou coupure du service"; our own code): no call is served until the cut ends."""

    status, code, title = 503, "930006", "Service interrompu"
    default_detail = "Le service est interrompu pour raison de sécurité."
    #: The end of a cut is not known in advance: ask again in a minute.
    RETRY_AFTER = 60

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER)}


class InternalError(EnsuError):
    pass
