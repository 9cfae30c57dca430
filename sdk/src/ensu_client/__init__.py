"""ensu-client: the consumer's side of API ENSU DOCUMENTS (R-CON-1, R-CON-2).

A client that calls the API correctly (mutual TLS, the token, the headers, the quota,
the retries that are safe), a command line (``ensu-client``), and a secure silo for what
was received. Everything public is here; the modules behind it are private::

    from ensu_client import Client

    with Client("https://127.0.0.1:8443", cert="consumer.pem", key="consumer.key",
                cacert="ca.pem", client_id="…", teleservice="…") as client:
        for document in client.iter_documents(siren="732829320"):
            client.download(document, f"{document.identifiants.idensua}.pdf")
"""

from ensu_client._client import AsyncClient, Client
from ensu_client._config import NO_RETRY, ClientConfig, RetryPolicy
from ensu_client._exceptions import (
    AccessDenied,
    ApiError,
    AuthenticationFailed,
    ConfigurationError,
    DigestMismatch,
    DocumentNotFound,
    EnsuClientError,
    QuotaExceeded,
    RequestInvalid,
    ServerError,
    ServiceUnavailable,
    SiloDocumentNotFound,
    SiloError,
    SiloIntegrityError,
    SiloKeyError,
    TokenError,
    TransportError,
    UnexpectedResponse,
)
from ensu_client._models import (
    CodeDocument,
    Document,
    DocumentRef,
    DocumentsPage,
    Download,
    Health,
    Identifiants,
    IdentifierType,
    MentionInformation,
    Quota,
    Result,
)
from ensu_client._silo import KdfParams, Silo, SiloEntry, StoredDocument, TraceEntry, new_key_file
from ensu_client._version import __version__

__all__ = [
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
    "Identifiants",
    "IdentifierType",
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
]
