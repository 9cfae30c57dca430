"""Validation of the document routes' query parameters (CONTRACT.md, R-DATA-2, R-GW-5).

Parsed by hand rather than by FastAPI's dependency injection: the errors must be the
contract's (920400 with every bad parameter listed, 900910 outside the perimeter),
unknown parameters are refused, and this is the hot path.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from starlette.datastructures import QueryParams

from ensu.bounds import digits_within
from ensu.consumers.perimeter import Perimeter
from ensu.documents.identifiers import IDSP_PATTERN, SIREN_PATTERN, luhn_valid
from ensu.documents.service import IdentifierKind, ListQuery
from ensu.errors import InvalidParameter, OutsidePerimeter

LIST_PARAMETERS = frozenset(
    {"siren", "idsp", "codeDocument", "dateDebut", "dateFin", "page", "taille", "referenceDemande"}
)
MAX_PAGE = 10_000
MAX_TAILLE = 100
DEFAULT_TAILLE = 20
MAX_CODES = 50
CODE_PATTERN = re.compile(r"[A-Z0-9-]{1,16}")
REFERENCE_PATTERN = re.compile(r"[\w .:/-]{1,64}")
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
Errors = list[tuple[str, str]]


def refuse_unknown(params: QueryParams, allowed: frozenset[str]) -> None:
    """An unknown or repeated single-valued parameter is an error, not silently ignored."""
    if not params:
        return
    errors = [(name, "paramètre inconnu") for name in params if name not in allowed]
    errors += [
        (name, "paramètre répété")
        for name in allowed - {"codeDocument"}
        if len(params.getlist(name)) > 1
    ]
    if errors:
        raise InvalidParameter(sorted(set(errors)))


def _subject(params: Mapping[str, str], errors: Errors) -> tuple[str | None, str | None]:
    siren, idsp = params.get("siren"), params.get("idsp")
    if (siren is None) == (idsp is None):
        errors.append(("siren", "exactement un des paramètres siren et idsp est attendu"))
        return None, None
    if siren is not None and not (SIREN_PATTERN.fullmatch(siren) and luhn_valid(siren)):
        errors.append(("siren", "le SIREN doit compter 9 chiffres et être valide (Luhn)"))
    if idsp is not None and not IDSP_PATTERN.fullmatch(idsp):
        errors.append(("idsp", "l'IDSP doit compter 6 à 16 lettres majuscules ou chiffres"))
    return siren, idsp


def _date(params: Mapping[str, str], name: str, errors: Errors) -> dt.date | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if not DATE_PATTERN.fullmatch(raw):
            raise ValueError(raw)  # fromisoformat also takes week dates: not ours
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors.append((name, "date attendue au format AAAA-MM-JJ"))
        return None


def _integer(params: Mapping[str, str], name: str, default: int, top: int, errors: Errors) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    value = digits_within(raw, top)  # by length first: int() of 5,000 digits raises
    if value is None:
        errors.append((name, f"entier attendu entre 1 et {top}"))
        return default
    return value


def _codes(requested: Sequence[str], known: frozenset[str], errors: Errors) -> frozenset[str]:
    if len(requested) > MAX_CODES:
        errors.append(("codeDocument", f"au plus {MAX_CODES} codes"))
    bad = [code for code in requested if not CODE_PATTERN.fullmatch(code) or code not in known]
    if bad:
        errors.append(("codeDocument", "code document inconnu"))
    return frozenset(requested)


def parse_list(
    params: QueryParams, *, perimeter: Perimeter, catalogue: frozenset[str]
) -> ListQuery:
    """The validated list query, restricted to the perimeter (R-DATA-5, R-GW-5)."""
    refuse_unknown(params, LIST_PARAMETERS)
    errors: Errors = []
    siren, idsp = _subject(params, errors)
    codes = _codes(params.getlist("codeDocument"), catalogue, errors)
    debut, fin = _date(params, "dateDebut", errors), _date(params, "dateFin", errors)
    if debut and fin and debut > fin:
        errors.append(("dateDebut", "dateDebut est postérieure à dateFin"))
    page = _integer(params, "page", 1, MAX_PAGE, errors)
    taille = _integer(params, "taille", DEFAULT_TAILLE, MAX_TAILLE, errors)
    reference = params.get("referenceDemande")
    if reference is not None and not REFERENCE_PATTERN.fullmatch(reference):
        errors.append(("referenceDemande", "64 caractères au plus, lettres, chiffres, . : / -"))
    if errors:
        raise InvalidParameter(errors)
    if not codes <= perimeter.codes:
        raise OutsidePerimeter(reason="code_outside_perimeter")
    debut = debut or perimeter.period_start
    fin = fin or perimeter.period_end
    if debut < perimeter.period_start or fin > perimeter.period_end or debut > fin:
        raise OutsidePerimeter(reason="period_outside_perimeter")
    return ListQuery(
        perimeter=perimeter,
        siren=siren,
        idsp=idsp,
        codes=codes or perimeter.codes,
        date_debut=debut,
        date_fin=fin,
        page=page,
        taille=taille,
    )


def reference_of(params: QueryParams) -> str | None:
    """``referenceDemande`` when given once and well formed, else None: what the call's
    journal record keeps (R-TR-1), whether or not the rest of the query is valid."""
    references = params.getlist("referenceDemande") if params else []
    if len(references) == 1 and REFERENCE_PATTERN.fullmatch(references[0]):
        return references[0]
    return None


def parse_identifier(kind: str, identifier: str) -> IdentifierKind:
    """``typeIdentifiant`` and ``identifiant`` of the one-document routes (R-DATA-3)."""
    errors: Errors = []
    try:
        parsed = IdentifierKind(kind)
    except ValueError:
        errors.append(("typeIdentifiant", "IDENSUA, DOCDISTRIB ou DOCCFS attendu"))
    if not IDENTIFIER_PATTERN.fullmatch(identifier):
        errors.append(("identifiant", "1 à 128 caractères parmi A-Z a-z 0-9 _ . -"))
    if errors:
        raise InvalidParameter(errors)
    return parsed
