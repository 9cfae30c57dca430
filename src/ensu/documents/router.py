"""The document routes of the contract, behind the gateway (R-DATA-3..5, R-CON-1).

Thin: parse, call the service through the caller's perimeter, render with orjson. A
document outside the perimeter is answered exactly as an absent one (R-GW-6).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ensu.documents import queries
from ensu.documents import service as documents
from ensu.documents.catalogue import CatalogueEntry
from ensu.documents.schemas import (
    CodesDocuments,
    DocumentOut,
    DocumentsPage,
    MentionInformation,
    Problem,
)
from ensu.documents.storage import FilesystemBlobStore
from ensu.errors import PROBLEM_JSON, NotFound
from ensu.gateway.caller import Caller, CallerDep, trace_of
from ensu.gateway.direct import Call, DirectRoute, DirectRoutes, Handler, Reply
from ensu.gateway.stamps import OPENAPI_HEADERS

PREFIX = "/ensudocuments/v1"
#: nginx's internal location of the blobs (deploy/nginx/ensu.conf.template).
ACCEL_PREFIX = "/_blobs/"
JSON = "application/json"

_HEADERS = [
    {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": "Identifiant de corrélation (UUID), renvoyé dans la réponse.",
    },
    {
        "name": "ID_Teleservice",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        "description": "Identifiant technique du téléservice, lié aux accès.",
    },
]


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by the definition it names."""
    if isinstance(node, dict):
        reference = node.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema, self-contained.

    Inline rather than FastAPI's ``model=``, which files the schema under
    ``application/json``, a media type the errors never have: documented that way, the
    problem documents actually sent were described by no schema at all.
    """
    schema = model.model_json_schema(mode="serialization")
    inlined: dict[str, Any] = _inlined(schema, schema.pop("$defs", {}))
    return inlined


def _header(description: str, *, required: bool, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


#: On every answer, refusals included (CONTRACT.md; ensu.gateway.stamps says the values).
_ECHOED = OPENAPI_HEADERS
_RETRY_AFTER = _header("Secondes avant de réessayer", required=True, pattern=r"^[0-9]+$")
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    400: _ECHOED,
    401: {**_ECHOED, "WWW-Authenticate": _header("Défi Bearer (RFC 6750)", required=True)},
    403: _ECHOED,
    404: _ECHOED,
    413: _ECHOED,
    414: _ECHOED,
    429: {**_ECHOED, "Retry-After": _RETRY_AFTER},
    431: _ECHOED,
    503: {**_ECHOED, "Retry-After": _RETRY_AFTER},
}
_PROBLEM = {PROBLEM_JSON: {"schema": _schema_of(Problem)}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"content": _PROBLEM, "headers": _ERROR_HEADERS[status], "description": text}
    for status, text in {
        400: "Requête invalide (910000, 920400)",
        401: "Certificat ou jeton absent ou invalide (910001, 900901, 900902)",
        403: "Accès refusé (910002, 910003, 910004, 900910)",
        404: "Document introuvable (920404)",
        413: "Corps de requête trop volumineux (920413)",
        414: "Chemin et paramètres trop longs (920414)",
        431: "En-têtes trop nombreux ou trop volumineux (920431)",
        429: "Quota dépassé (900804)",
        503: (
            "Maintenance (930001), traçabilité (930002), décompte des quotas (930003) ou"
            " base de données (930004) indisponible, ou service surchargé (930005)"
        ),
    }.items()
}
_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"headers": _ECHOED}, **_ERRORS}
#: The contract's headers and answers, shared by the other routes under the prefix (the
#: journal's witness routes, :mod:`ensu.documents.witness_router`).
OPENAPI_PARAMETERS = _HEADERS
OPENAPI_RESPONSES = _RESPONSES


def _string(
    name: str, pattern: str, description: str, example: str | None = None, **extra: Any
) -> dict[str, Any]:
    schema = {"type": "string", "pattern": pattern, **extra}
    parameter = {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
    return parameter if example is None else {**parameter, "example": example}


def _integer(name: str, top: int, default: int, description: str) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": top, "default": default}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_LIST_PARAMETERS = [
    # The examples make one valid query together (a fictive SIREN), so no idsp example.
    _string("siren", r"^[0-9]{9}$", "SIREN (9 chiffres, Luhn) ; exclusif de idsp", "732829320"),
    _string("idsp", r"^[A-Z0-9]{6,16}$", "Identifiant de substitution ; exclusif de siren"),
    {
        "name": "codeDocument",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {
            "type": "array",
            "maxItems": queries.MAX_CODES,
            "items": {"type": "string", "pattern": r"^[A-Z0-9-]{1,16}$"},
        },
        "description": "Codes documents (répétable)",
        "example": ["TVA-CA3"],
    },
    _string("dateDebut", _DATE, "Début de période", "2023-01-01", format="date"),
    _string("dateFin", _DATE, "Fin de période", "2023-12-31", format="date"),
    _integer("page", queries.MAX_PAGE, 1, "Numéro de page, à partir de 1"),
    _integer("taille", queries.MAX_TAILLE, queries.DEFAULT_TAILLE, "Taille de page"),
    _string(
        "referenceDemande",
        r"^[\w .:/-]{1,64}$",
        "Référence du dossier du consommateur (64 caractères au plus), conservée dans la"
        " trace de l'appel",
        "DOSSIER-2024-0042",
        maxLength=64,
    ),
]
_IDENTIFIER_PARAMETERS = [
    {
        "name": "typeIdentifiant",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [kind.value for kind in documents.IdentifierKind]},
    },
    {
        "name": "identifiant",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,128}$"},
    },
]

router = APIRouter(prefix=PREFIX, tags=["documents"])


def _json(payload: Any) -> Reply:
    return Reply(orjson.dumps(payload), JSON)


def _render(record: documents.DocumentRecord, entry: CatalogueEntry) -> dict[str, Any]:
    document = record.document
    rendered: dict[str, Any] = {
        "identifiants": {
            "IDENSUA": document.idensua,
            "DOCDISTRIB": document.docdistrib,
            "DOCCFS": document.doccfs,
        },
        "codeDocument": document.code,
        "libelle": entry.libelle,
        "famille": entry.famille.value,
    }
    if record.siren is not None:
        rendered["siren"] = record.siren
    else:
        rendered["idsp"] = record.idsp
    rendered.update(
        periodeDebut=document.periode_debut.isoformat(),
        periodeFin=document.periode_fin.isoformat(),
        dateEmission=document.date_emission.isoformat(),
        empreinteSha256=document.sha256.hex(),
        taille=document.taille,
        contenu=f"{PREFIX}/documents/IDENSUA/{document.idensua}/contenu",
    )
    return rendered


# --- The handlers: one implementation per route, served by the gateway directly
# (ensu.gateway.direct) and by the FastAPI adapters below.


async def codes_handler(call: Call) -> Reply:
    queries.refuse_unknown(call.query_params, frozenset())
    catalogue: dict[str, CatalogueEntry] = call.state.catalogue
    entries = [
        {
            "code": e.code,
            "libelle": e.libelle,
            "famille": e.famille.value,
            "periodicite": e.periodicite.value,
        }
        for code, e in sorted(catalogue.items())
        if code in call.caller.perimeter.codes
    ]
    return _json({"codesDocuments": entries})


async def list_handler(call: Call) -> Reply:
    catalogue: dict[str, CatalogueEntry] = call.state.catalogue
    trace = call.trace
    # The case reference goes to the call's record, refusals of the query included.
    trace.reference = queries.reference_of(call.query_params)
    query = queries.parse_list(
        call.query_params, perimeter=call.caller.perimeter, catalogue=frozenset(catalogue)
    )
    trace.siren, trace.idsp = query.siren, query.idsp
    records, total = await documents.list_documents(reader=call.state.document_reader, query=query)
    trace.document_codes = tuple(r.document.code for r in records)
    trace.document_ids = tuple(r.document.idensua for r in records)
    return _json(
        {
            "documents": [_render(r, catalogue[r.document.code]) for r in records],
            "page": query.page,
            "taille": query.taille,
            "total": total,
        }
    )


async def _one(call: Call) -> documents.DocumentRecord:
    """The document named by the path, within the perimeter, or 404 (R-GW-6)."""
    queries.refuse_unknown(call.query_params, frozenset())
    identifier = call.path_params["identifiant"]
    parsed = queries.parse_identifier(call.path_params["typeIdentifiant"], identifier)
    record = await documents.get_document(
        reader=call.state.document_reader,
        kind=parsed,
        identifier=identifier,
        perimeter=call.caller.perimeter,
    )
    if record is None:
        raise NotFound(reason="absent_or_outside_perimeter")
    trace = call.trace
    trace.siren, trace.idsp = record.siren, record.idsp
    trace.document_codes, trace.document_ids = (record.document.code,), (record.document.idensua,)
    return record


async def metadata_handler(call: Call) -> Reply:
    record = await _one(call)
    catalogue: dict[str, CatalogueEntry] = call.state.catalogue
    return _json(_render(record, catalogue[record.document.code]))


async def content_handler(call: Call) -> Reply:
    record = await _one(call)
    document = record.document
    digest = base64.b64encode(document.sha256).decode()
    headers: tuple[tuple[str, str], ...] = (
        ("Repr-Digest", f"sha-256=:{digest}:"),
        ("ETag", f'"{document.sha256.hex()}"'),
        ("Content-Disposition", f'inline; filename="{document.idensua}.pdf"'),
        ("Cache-Control", "private, no-store"),
    )
    store = call.state.blob_store
    actor = call.caller.teleservice.id_teleservice
    if call.state.settings.accel_redirect and isinstance(store, FilesystemBlobStore):
        # nginx serves the verified file itself (deploy/nginx/ensu.conf.template): the
        # bytes are neither read nor copied here.
        name = await documents.accel_name(
            sessionmaker=call.state.sessionmaker, store=store, document=document, actor=actor
        )
        return Reply(
            b"",
            "application/pdf",
            headers=(*headers, ("X-Accel-Redirect", f"{ACCEL_PREFIX}{name}")),
        )
    content = await documents.read_content(
        sessionmaker=call.state.sessionmaker, store=store, document=document, actor=actor
    )
    return Reply(content, "application/pdf", headers=headers)


async def mention_handler(call: Call) -> Reply:
    queries.refuse_unknown(call.query_params, frozenset())
    return _json(
        {
            "idTeleservice": call.caller.teleservice.id_teleservice,
            "mentionInformation": call.caller.teleservice.mention_information,
        }
    )


#: What the gateway serves itself once the chain has passed (ensu.gateway.direct).
DIRECT_ROUTES = DirectRoutes(
    [
        DirectRoute(
            "GET", f"{PREFIX}/documents/{{typeIdentifiant}}/{{identifiant}}", metadata_handler
        ),
        DirectRoute(
            "GET",
            f"{PREFIX}/documents/{{typeIdentifiant}}/{{identifiant}}/contenu",
            content_handler,
        ),
        DirectRoute("GET", f"{PREFIX}/documents", list_handler),
        DirectRoute("GET", f"{PREFIX}/codesDocuments", codes_handler),
        DirectRoute("GET", f"{PREFIX}/mentionInformation", mention_handler),
    ]
)


# --- The FastAPI routes: the OpenAPI description of the same paths, adapters to the
# handlers above.


async def _adapted(handler: Handler, request: Request, caller: Caller) -> Response:
    call = Call(
        state=request.app.state,
        caller=caller,
        trace=trace_of(request.scope),
        path_params=request.path_params,
        query_string=request.scope.get("query_string", b""),
    )
    reply = await handler(call)
    return Response(
        reply.body,
        status_code=reply.status,
        media_type=reply.media_type,
        headers=dict(reply.headers),
    )


@router.get(
    "/codesDocuments",
    summary="Codes documents du périmètre de l'appelant",
    response_model=CodesDocuments,
    responses=_RESPONSES,
    openapi_extra={"parameters": _HEADERS},
)
async def codes_documents(request: Request, caller: CallerDep) -> Response:
    return await _adapted(codes_handler, request, caller)


@router.get(
    "/documents",
    summary="Documents d'un usager professionnel",
    response_model=DocumentsPage,
    responses=_RESPONSES,
    openapi_extra={"parameters": _HEADERS + _LIST_PARAMETERS},
)
async def list_documents(request: Request, caller: CallerDep) -> Response:
    return await _adapted(list_handler, request, caller)


@router.get(
    "/documents/{typeIdentifiant}/{identifiant}",
    summary="Métadonnées d'un document",
    response_model=DocumentOut,
    responses=_RESPONSES,
    openapi_extra={"parameters": _HEADERS + _IDENTIFIER_PARAMETERS},
)
async def get_document(request: Request, caller: CallerDep) -> Response:
    # The path parameters are read from the request rather than declared, so that their
    # OpenAPI description is the one above (enum and pattern) and their errors the contract's.
    return await _adapted(metadata_handler, request, caller)


@router.get(
    "/documents/{typeIdentifiant}/{identifiant}/contenu",
    summary="Contenu PDF d'un document",
    response_class=Response,
    responses={
        200: {
            "description": "Le PDF",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                **_ECHOED,
                "Repr-Digest": _header(
                    "SHA-256 du contenu (RFC 9530)",
                    required=True,
                    pattern=r"^sha-256=:[A-Za-z0-9+/]{43}=:$",
                ),
                "ETag": _header("Étiquette du contenu", required=True, pattern=r'^"[0-9a-f]{64}"$'),
            },
        },
        **_ERRORS,
    },
    openapi_extra={"parameters": _HEADERS + _IDENTIFIER_PARAMETERS},
)
async def get_content(request: Request, caller: CallerDep) -> Response:
    return await _adapted(content_handler, request, caller)


@router.get(
    "/mentionInformation",
    summary="Mention d'information à présenter aux usagers",
    response_model=MentionInformation,
    responses=_RESPONSES,
    openapi_extra={"parameters": _HEADERS},
)
async def mention_information(request: Request, caller: CallerDep) -> Response:
    return await _adapted(mention_handler, request, caller)
