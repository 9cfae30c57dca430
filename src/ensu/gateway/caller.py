"""The one typed result of the access chain: who is calling, and what it may read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ensu.consumers.schemas import TeleserviceView
from ensu.documents.service import Perimeter
from ensu.gateway.mtls import ClientCertificate
from ensu.oauth.tokens import AccessClaims

SCOPE_KEY = "ensu.caller"


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


def _current_caller(request: Request) -> Caller:
    return caller_of(request.scope)


CallerDep = Annotated[Caller, Depends(_current_caller)]
