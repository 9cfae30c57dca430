"""The arms of the bench: three references and the API's endpoints, and what each sends.

Every GET arm sends the same headers (certificate and client address as the TLS proxy
forwards them, bearer token, ``ID_Teleservice``, a fresh ``X-Correlation-ID``) and
rotates over the same kind of paths, so the references parse what the API parses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.load import Load
from bench.settings import CLIENT_IP
from bench.world import CLIENT_ID, ID_TELESERVICE, World

API = "/ensudocuments/v1"
FORM = "application/x-www-form-urlencoded"
TOKEN_BODY = f"grant_type=client_credentials&client_id={CLIENT_ID}".encode()

#: Server names.
NGINX, ASGI, STARLETTE, ENSU_SQLITE, ENSU_REDIS = "nginx", "asgi", "starlette", "sqlite", "redis"


@dataclass(frozen=True, slots=True)
class Arm:
    key: str
    label: str
    server: str
    #: Where the quota is counted; "—" where no quota applies.
    quota: str
    reference: bool
    #: metadata, list, content or token: which :class:`Load` to send.
    endpoint: str


ARMS = (
    Arm("C0", "C0 nginx static file", NGINX, "—", True, "metadata"),
    Arm("C1", "C1 bare ASGI", ASGI, "—", True, "metadata"),
    Arm("C2", "C2 bare Starlette", STARLETTE, "—", True, "metadata"),
    Arm("metadata/sqlite", "metadata GET", ENSU_SQLITE, "SQLite", False, "metadata"),
    Arm("list/sqlite", "list GET", ENSU_SQLITE, "SQLite", False, "list"),
    Arm("content/sqlite", "content GET (PDF, X-Accel)", ENSU_SQLITE, "SQLite", False, "content"),
    # The token endpoint is outside the gateway: no quota, so one arm is enough.
    Arm("token", "token POST", ENSU_SQLITE, "—", False, "token"),
    Arm("metadata/redis", "metadata GET", ENSU_REDIS, "Redis", False, "metadata"),
    Arm("list/redis", "list GET", ENSU_REDIS, "Redis", False, "list"),
    Arm("content/redis", "content GET (PDF, X-Accel)", ENSU_REDIS, "Redis", False, "content"),
)
REFERENCES = tuple(arm for arm in ARMS if arm.reference)


def proxy_headers(world: World) -> dict[str, str]:
    """What nginx forwards after verifying the client certificate (R-GW-1, R-GW-2)."""
    return {"X-SSL-Client-Cert": world.certificate_header(), "X-Forwarded-For": CLIENT_IP}


def api_headers(world: World, token: str) -> dict[str, str]:
    """Every header of an API call but the correlation id (added per request)."""
    return proxy_headers(world) | {
        "Authorization": f"Bearer {token}",
        "ID_Teleservice": ID_TELESERVICE,
    }


def metadata_path(idensua: str) -> str:
    return f"{API}/documents/IDENSUA/{idensua}"


def load_for(endpoint: str, world: World, token: str, *, reference: bool = False) -> Load:
    """What an arm of ``endpoint`` sends; ``token`` is a valid one of the arm's server.

    The API's arms count their failed answers by status; the references do not (it
    would slow the load generator where it is the limit)."""
    identifiers = list(world.idensua)
    random.Random(5).shuffle(identifiers)  # no accidental locality in the rotation
    if endpoint == "token":
        headers = proxy_headers(world) | {"Content-Type": FORM}
        return Load(
            "POST", ("/token",), headers, TOKEN_BODY, correlation_id=False, count_failures=True
        )
    if endpoint == "list":
        paths = tuple(f"{API}/documents?siren={siren}" for siren in world.sirens)
    elif endpoint == "content":
        paths = tuple(f"{metadata_path(i)}/contenu" for i in identifiers)
    else:
        paths = tuple(metadata_path(i) for i in identifiers)
    return Load("GET", paths, api_headers(world, token), count_failures=not reference)
