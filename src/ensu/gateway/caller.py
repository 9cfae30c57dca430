"""The one typed result of the access chain: who is calling, and what it may read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ensu.certificates import ClientCertificate
from ensu.consumers.perimeter import Perimeter
from ensu.consumers.schemas import TeleserviceView
from ensu.oauth.tokens import AccessClaims

SCOPE_KEY = "ensu.caller"
TRACE_KEY = "ensu.trace"
#: The correlation id every answer under the prefix carries (the request's or a fresh one).
CORRELATION_KEY = "ensu.correlation_id"


@dataclass(slots=True)
class Trace:
    """What the journal record of a call says beyond the caller (R-TR-1): the routes
    fill in the subject and the documents they served, the error handler the reason."""

    siren: str | None = None
    idsp: str | None = None
    document_codes: tuple[str, ...] = ()
    document_ids: tuple[str, ...] = ()
    #: ``referenceDemande`` when the request carries a valid one (CONTRACT.md).
    reference: str | None = None
    reason: str = "ok"
    error_code: str | None = None


def trace_of(scope: Mapping[str, Any]) -> Trace:
    """The call's trace; a throwaway one outside the gateway (nothing journals it)."""
    trace = scope.get(TRACE_KEY)
    return trace if isinstance(trace, Trace) else Trace()


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller that passed every check of the chain (R-GW-1 to R-GW-5)."""

    teleservice: TeleserviceView
    certificate: ClientCertificate
    ip: str
    claims: AccessClaims
    correlation_id: str
    perimeter: Perimeter


def caller_of(scope: Mapping[str, Any]) -> Caller:
    """The caller the gateway put in ``scope``; a route behind the gateway always has one."""
    caller = scope.get(SCOPE_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError("route reached without passing the gateway")
    return caller


async def _current_caller(request: Request) -> Caller:
    # async: a plain def dependency would cost a thread-pool hop on every request
    return caller_of(request.scope)


CallerDep = Annotated[Caller, Depends(_current_caller)]
