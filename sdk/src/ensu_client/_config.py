"""How a client reaches the API: the URL, the certificate files, the téléservice's
identifiers; the mutual-TLS context made from them; the retry rules.

The command line reads the same settings from its options, from ``ENSU_CLIENT_*``
variables, or from a TOML file (``[connection]`` table), in that order of precedence.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: The settings a connection needs, each with its ``ENSU_CLIENT_*`` variable.
ENV_PREFIX = "ENSU_CLIENT_"
#: Where the command line looks for its configuration file when none is named.
DEFAULT_CONFIG = Path("~/.config/ensu-client/config.toml")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries only where safe: a 429 or a 503, after its ``Retry-After``, while the
    whole call stays within ``budget`` seconds; never a 4xx other than 429, never a
    failed connection (CONTRACT.md: 429 and 503 carry ``Retry-After``)."""

    #: Seconds a call may take in all, waits included.
    budget: float = 30.0
    #: Attempts in all, the first included.
    max_attempts: int = 4
    #: The wait when a 429 or 503 comes without ``Retry-After``.
    default_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.budget < 0 or self.max_attempts < 1 or self.default_delay < 0:
            raise ValueError("budget and default_delay >= 0, max_attempts >= 1")


NO_RETRY = RetryPolicy(budget=0.0, max_attempts=1)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One téléservice's connection (CONTRACT.md, "Transport" and "OAuth 2.0")."""

    url: str
    client_id: str
    teleservice: str
    cert: Path | None = None
    key: Path | None = None
    #: The CA that signed the server's certificate; the system's trust store when unset.
    cacert: Path | None = None
    #: For a ``client_secret_basic`` client only (the certificate is presented as well).
    client_secret: str | None = None
    timeout: float = 30.0

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later, the server's name checked, our certificate presented."""
        context = ssl.create_default_context(cafile=str(self.cacert) if self.cacert else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None:
            key = str(self.key) if self.key else None
            context.load_cert_chain(str(self.cert), key)
        return context


#: The names of the settings, as options, variables (upper case) and TOML keys.
SETTINGS = ("url", "cert", "key", "cacert", "client_id", "teleservice", "client_secret", "timeout")
#: What the command line also reads from the file and the environment: the silo.
SILO_SETTINGS = ("silo", "silo_key_file")
_PATHS = frozenset({"cert", "key", "cacert", *SILO_SETTINGS})


def read_file(path: Path) -> dict[str, Any]:
    """The ``[connection]`` table of a TOML file (or its top level when it has none)."""
    with path.expanduser().open("rb") as stream:
        document = tomllib.load(stream)
    table = document.get("connection", document)
    known = (*SETTINGS, *SILO_SETTINGS)
    unknown = set(table) - set(known)
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}; known: {list(known)}")
    base = path.expanduser().resolve().parent
    values: dict[str, Any] = {}
    for name in known:
        if name in table:
            value = table[name]
            # A relative path in the file is relative to the file, not to the shell.
            values[name] = base / Path(value).expanduser() if name in _PATHS else value
    return values


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``ENSU_CLIENT_*`` variables that are set (and not empty)."""
    environ = os.environ if environ is None else environ
    found = {name: environ.get(ENV_PREFIX + name.upper()) for name in (*SETTINGS, *SILO_SETTINGS)}
    return {name: value for name, value in found.items() if value}


def merged(*layers: Mapping[str, Any]) -> ClientConfig:
    """A config from layers in order of precedence (first wins); :class:`ValueError`
    naming what is missing."""
    values: dict[str, Any] = {}
    for layer in reversed(layers):
        values.update({name: value for name, value in layer.items() if value is not None})
    missing = [name for name in ("url", "client_id", "teleservice") if not values.get(name)]
    if missing:
        options = ", ".join("--" + name.replace("_", "-") for name in missing)
        variables = ", ".join(ENV_PREFIX + name.upper() for name in missing)
        raise ValueError(f"missing {options} (or {variables}, or the config file)")
    for name in _PATHS & values.keys():
        values[name] = Path(values[name]).expanduser()
    if "timeout" in values:
        values["timeout"] = float(values["timeout"])
    known = {item.name for item in fields(ClientConfig)}
    config = ClientConfig(**{name: values[name] for name in known if name in values})
    return replace(config, url=config.url.rstrip("/"))
