"""A fake API for ``httpx.MockTransport``: the token endpoint and the documents routes as
the contract describes them (CONTRACT.md), with answers a test can queue per path."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

API = "/ensudocuments/v1"
TELESERVICE = "TS-A"
CLIENT_ID = "client-a"
SIREN = "732829320"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
IDENSUA = "a" * 64


def problem(code: str, status: int, *, correlation_id: str | None, **extra: Any) -> httpx.Response:
    """A problem document (RFC 9457) with the contract's members."""
    body: dict[str, Any] = {
        "type": f"urn:ensu:erreur:{code}",
        "title": "Titre",
        "status": status,
        "detail": f"détail {code}",
        "code": code,
        "correlationId": correlation_id,
        "horodatage": "2026-01-01T00:00:00.000Z",
    }
    headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
    if status in (429, 503):
        headers["Retry-After"] = str(extra.pop("retry_after", 0))
    body.update(extra)
    return httpx.Response(
        status, json=body, headers={**headers, "Content-Type": "application/problem+json"}
    )


def document_json(index: int, content: bytes = PDF) -> dict[str, Any]:
    idensua = f"{index:064d}"
    return {
        "identifiants": {"IDENSUA": idensua, "DOCDISTRIB": f"DD{index:04d}", "DOCCFS": None},
        "codeDocument": "TVA-CA3",
        "libelle": "Déclaration de TVA",
        "famille": "declaratives",
        "siren": SIREN,
        "periodeDebut": "2024-01-01",
        "periodeFin": "2024-01-31",
        "dateEmission": "2024-02-15",
        "empreinteSha256": hashlib.sha256(content).hexdigest(),
        "taille": len(content),
        "contenu": f"{API}/documents/IDENSUA/{idensua}/contenu",
    }


def repr_digest(content: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"


Answer = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeApi:
    """Counts what it is sent; answers as the contract says unless told otherwise."""

    documents: int = 3
    token_ttl: int = 600
    #: Seconds the token endpoint takes (async handler only): calls pile up meanwhile.
    token_delay: float = 0.0
    content: bytes = PDF
    #: Overrides the digest header of a content answer.
    digest: str | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0
    queued: dict[str, deque[Answer]] = field(default_factory=dict)

    def queue(self, path: str, *answers: Answer) -> None:
        """Answer the next calls to ``path`` (``/token`` or a path under the API) so."""
        self.queued.setdefault(path, deque()).extend(answers)

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token" and self.token_delay:
                await anyio.sleep(self.token_delay)
            return self.handle(request)

        return httpx.MockTransport(handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.queued.get(path):
            return self.queued[path].popleft()(request)
        if path == "/token":
            return self.token(request)
        if path == f"{API}/etatSante":
            return httpx.Response(
                200, json={"statut": "ok", "descriptif": "Le service fonctionne."}
            )
        return self.documents_route(request)

    def token(self, request: httpx.Request) -> httpx.Response:
        self.tokens_issued += 1
        body = {
            "access_token": f"token-{self.tokens_issued}",
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": "documents",
        }
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    def documents_route(self, request: httpx.Request) -> httpx.Response:
        correlation_id = request.headers.get("x-correlation-id")
        try:
            uuid.UUID(correlation_id or "")
        except ValueError:
            return problem("910000", 400, correlation_id=None)
        if request.headers.get("id_teleservice") != TELESERVICE:
            return problem("910003", 403, correlation_id=correlation_id)
        if not request.headers.get("authorization", "").startswith("Bearer token-"):
            return problem("900902", 401, correlation_id=correlation_id)
        headers = {
            "X-Correlation-ID": correlation_id or "",
            "RateLimit-Limit": "50",
            "RateLimit-Remaining": str(50 - len(self.requests) % 50),
            "RateLimit-Reset": "42",
            "Date": dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        return self.route(request, headers)

    def route(self, request: httpx.Request, headers: dict[str, str]) -> httpx.Response:
        path = request.url.path
        body: dict[str, Any]
        if path == f"{API}/mentionInformation":
            body = {"idTeleservice": TELESERVICE, "mentionInformation": "Données de la DGFiP."}
            return httpx.Response(200, json=body, headers=headers)
        if path == f"{API}/codesDocuments":
            entry = {"code": "TVA-CA3", "libelle": "TVA", "famille": "declaratives"}
            body = {"codesDocuments": [{**entry, "periodicite": "mensuelle"}]}
            return httpx.Response(200, json=body, headers=headers)
        if path == f"{API}/documents":
            page = int(request.url.params.get("page", "1"))
            size = int(request.url.params.get("taille", "20"))
            everything = [document_json(index, self.content) for index in range(self.documents)]
            chunk = everything[(page - 1) * size : page * size]
            body = {"documents": chunk, "page": page, "taille": size, "total": len(everything)}
            return httpx.Response(200, json=body, headers=headers)
        if path.endswith("/contenu"):
            digest = self.digest if self.digest is not None else repr_digest(self.content)
            content_headers = {**headers, "Content-Type": "application/pdf"}
            if digest:
                content_headers["Repr-Digest"] = digest
            return httpx.Response(200, content=self.content, headers=content_headers)
        if path.startswith(f"{API}/documents/IDENSUA/"):
            index = int(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=document_json(index, self.content), headers=headers)
        return problem("920404", 404, correlation_id=request.headers.get("x-correlation-id"))
