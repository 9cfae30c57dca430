"""The public API of ensu-client, pinned: a name added or removed is a decision, made
here (as httpx's tests/test_exported_members.py does)."""

from __future__ import annotations

import ast
from pathlib import Path

import ensu_client

PUBLIC = {
    "NO_RETRY",
    "AccessDenied",
    "ApiError",
    "AsyncClient",
    "AuthenticationFailed",
    "Client",
    "ClientConfig",
    "CodeDocument",
    "ConfigurationError",
    "DigestMismatch",
    "Document",
    "DocumentNotFound",
    "DocumentRef",
    "DocumentsPage",
    "Download",
    "EnsuClientError",
    "Health",
    "IdentifierType",
    "Identifiants",
    "KdfParams",
    "MentionInformation",
    "Quota",
    "QuotaExceeded",
    "RequestInvalid",
    "Result",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Silo",
    "SiloDocumentNotFound",
    "SiloEntry",
    "SiloError",
    "SiloIntegrityError",
    "SiloKeyError",
    "StoredDocument",
    "TokenError",
    "TraceEntry",
    "TransportError",
    "UnexpectedResponse",
    "__version__",
    "new_key_file",
}
PACKAGE = Path(ensu_client.__file__).parent


def test_all_is_exactly_the_public_api() -> None:
    assert set(ensu_client.__all__) == PUBLIC
    assert len(ensu_client.__all__) == len(PUBLIC)
    for name in ensu_client.__all__:
        assert hasattr(ensu_client, name), name


def test_every_module_behind_it_is_private() -> None:
    modules = [path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"]
    assert modules
    assert all(name.startswith("_") for name in modules), modules


def test_the_sdk_never_imports_the_server_package() -> None:
    """ensu-client is its own distribution: a consumer installs it without ``ensu``."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [name for name in names if name == "ensu" or name.startswith("ensu.")]


def test_the_errors_carry_what_the_contract_gives() -> None:
    error = ensu_client.AccessDenied(
        "refusé", code="910003", status=403, correlation_id="c-1", problem={"code": "910003"}
    )
    assert isinstance(error, ensu_client.ApiError)
    assert isinstance(error, ensu_client.EnsuClientError)
    assert (error.code, error.status, error.correlation_id) == ("910003", 403, "c-1")
    assert "--teleservice" in error.hint
    assert str(error) == "910003 (403): refusé"
