"""The developers' page, the "Store": the API's documentation rendered from its own
OpenAPI document (no script, no external asset), the sandbox's test subjects, and
copy-paste ``curl`` examples against the development PKI.

The OpenAPI document is the API app's (:func:`ensu.app.create_app`, built once per
portal process without starting it), so the page documents exactly what is served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from ensu.config import Environment
from ensu.documents import service as documents
from ensu.portal.web import Page

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    where: str
    required: bool
    kind: str
    description: str


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    parameters: list[Parameter] = field(default_factory=list)
    responses: list[tuple[str, str]] = field(default_factory=list)


def _kind(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    options = schema.get("anyOf") or schema.get("oneOf") or []
    kinds = [str(option.get("type")) for option in options if option.get("type") != "null"]
    return " ou ".join(kinds) or "—"


def operations(document: dict[str, Any]) -> list[Operation]:
    """The document's operations, in its order, with what a developer needs to call them."""
    found = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            spec = item.get(method)
            if spec is None:
                continue
            parameters = [
                Parameter(
                    name=p["name"],
                    where=p.get("in", ""),
                    required=bool(p.get("required")),
                    kind=_kind(p.get("schema", {})),
                    description=p.get("description", ""),
                )
                for p in [*item.get("parameters", []), *spec.get("parameters", [])]
                if "name" in p
            ]
            responses = [
                (code, answer.get("description", ""))
                for code, answer in spec.get("responses", {}).items()
            ]
            anchor = f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=spec.get("summary", ""),
                    description=spec.get("description", ""),
                    anchor=anchor.strip("-"),
                    parameters=parameters,
                    responses=responses,
                )
            )
    return found


def _openapi(page: Page) -> dict[str, Any]:
    state = page.request.app.state
    cached: dict[str, Any] | None = getattr(state, "openapi", None)
    if cached is None:
        from ensu.app import create_app  # noqa: PLC0415 - built once, on first visit

        cached = create_app(page.settings).openapi()
        state.openapi = cached
    return cached


async def index(page: Page) -> Response:
    document = _openapi(page)
    sandbox = page.settings.environment is Environment.SANDBOX
    subjects = await documents.list_subjects(session=page.db, limit=12) if sandbox else []
    settings = page.settings
    return page.render(
        "store/index.html",
        info=document.get("info", {}),
        operations=operations(document),
        subjects=subjects,
        sandbox=sandbox,
        api=settings.issuer,
        pki=settings.pki_dir_path,
        example_siren=next((s.siren for s in subjects if s.siren), "598201531"),
    )
