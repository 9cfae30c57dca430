"""The clients: :class:`Client` (sync) and :class:`AsyncClient`, one téléservice each (R-CON-1).

A client presents the certificate on every connection (mutual TLS), fetches its access
token at ``POST /token`` when it needs one, keeps it, and renews it before it expires:
one renewal at a time, however many calls wait for it (a lock, checked twice). Each call
sends a fresh ``X-Correlation-ID`` and the ``ID_Teleservice``, and returns them in a
:class:`~ensu_client.Result` with the quota state of the answer. A 429 or a 503 is
retried after its ``Retry-After`` within the policy's time budget; nothing else is.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx

from ensu_client import _core as core
from ensu_client._config import ClientConfig, RetryPolicy
from ensu_client._exceptions import (
    ConfigurationError,
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
    MentionInformation,
    Quota,
    Result,
    parsed,
)

T = TypeVar("T")
#: ``received, total`` (total: None when the answer gives no length).
Progress = Callable[[int, int | None], None]
Target = Document | DocumentRef | str
#: The largest page: iterators walk a list in as few calls as the contract allows.
MAX_PAGE = 100


@contextmanager
def _transport_errors() -> Iterator[None]:
    """httpx's failures to get an answer as :class:`TransportError`."""
    try:
        yield
    except httpx.TransportError as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error


class _Base:
    """Settings and state shared by both clients."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client_id: str | None = None,
        teleservice: str | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        cacert: str | os.PathLike[str] | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        if config is None:
            if not (url and client_id and teleservice):
                raise ConfigurationError("url, client_id and teleservice are required")
            config = ClientConfig(
                url=url.rstrip("/"),
                client_id=client_id,
                teleservice=teleservice,
                cert=Path(cert) if cert else None,
                key=Path(key) if key else None,
                cacert=Path(cacert) if cacert else None,
                client_secret=client_secret,
                timeout=timeout,
            )
        self.config = config
        self.retry = retry or RetryPolicy()
        self._token: core.Token | None = None
        #: The quota state of the last answer that carried one.
        self.last_quota: Quota | None = None

    def _verify(self, transport: object) -> ssl.SSLContext | bool:
        if transport is not None:
            return True  # a test transport: no TLS at all
        config = self.config
        if config.cert is None:
            raise ConfigurationError("a client certificate is required: every call is mutual TLS")
        for option, path in (("cert", config.cert), ("key", config.key), ("cacert", config.cacert)):
            if path is not None and not path.is_file():
                raise ConfigurationError(f"--{option} {path}: no such file")
        try:
            return self.config.ssl_context()
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"cannot load the TLS files: {error}") from error

    def _current_token(self) -> str | None:
        token = self._token
        return token.value if token is not None and core.monotonic() < token.renew_at else None

    def _observe(self, response: httpx.Response, token: str | None) -> None:
        self.last_quota = Quota.from_headers(response.headers) or self.last_quota
        current = self._token
        if response.status_code == 401 and current is not None and current.value == token:
            self._token = None  # refused: the next call fetches another (no retry: a 4xx)

    def _headers(self, token: str | None, correlation_id: str) -> dict[str, str]:
        if token is None:
            return {"X-Correlation-ID": correlation_id}
        return core.api_headers(
            token=token, teleservice=self.config.teleservice, correlation_id=correlation_id
        )

    def _result(
        self, response: httpx.Response, correlation_id: str, parse: Callable[[Any], T], what: str
    ) -> Result[T]:
        data = core.answer_json(response, correlation_id=correlation_id)
        value = parsed(parse, data, status=200, correlation_id=correlation_id, what=what)
        return Result(value, correlation_id, Quota.from_headers(response.headers))

    def _refused(self, response: httpx.Response, correlation_id: str) -> Exception:
        return core.api_error(response, correlation_id=correlation_id)


def _part_of(path: Path) -> Path:
    """Where a download is written until its digest is checked (same folder: one rename)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")


def _no_quota(correlation_id: str) -> UnexpectedResponse:
    return UnexpectedResponse(
        "the answer carries no RateLimit-* headers", status=200, correlation_id=correlation_id
    )


class Client(_Base):
    """The synchronous client. Thread-safe; use it as a context manager::

    with Client(url, cert=..., key=..., cacert=..., client_id=..., teleservice=...) as c:
        page = c.list_documents(siren="732829320").value
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client_id: str | None = None,
        teleservice: str | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        cacert: str | os.PathLike[str] | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            client_id=client_id,
            teleservice=teleservice,
            cert=cert,
            key=key,
            cacert=cacert,
            client_secret=client_secret,
            timeout=timeout,
            retry=retry,
            config=config,
        )
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.config.url,
            verify=self._verify(transport),
            timeout=self.config.timeout,
            transport=transport,
            headers={"User-Agent": core.USER_AGENT},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the token ------------------------------------------------------------------

    def access_token(self) -> str:
        """The cached token, or a new one; one fetch at a time (R-GW-4, RFC 8705)."""
        if (value := self._current_token()) is not None:
            return value
        with self._lock:
            if (value := self._current_token()) is not None:
                return value
            self._token = self._fetch_token()
            return self._token.value

    def _fetch_token(self) -> core.Token:
        form, auth = core.token_request(
            client_id=self.config.client_id, client_secret=self.config.client_secret
        )
        started, attempt = core.monotonic(), 1
        while True:
            requested = core.monotonic()
            with _transport_errors():
                response = self._http.post(
                    "/token", data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
            delay = core.retry_delay(self.retry, response, attempt=attempt, started=started)
            if delay is None:
                return core.read_token(response, requested_at=requested)
            core.sleep(delay)
            attempt += 1

    # -- one call -------------------------------------------------------------------

    def _call(
        self,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        authenticated: bool = True,
        stream: bool = False,
    ) -> tuple[httpx.Response, str]:
        """A 200 and the call's correlation id, after the retries the policy allows;
        the refusal's error otherwise."""
        correlation_id = core.new_correlation_id()
        started, attempt = core.monotonic(), 1
        while True:
            token = self.access_token() if authenticated else None
            request = self._http.build_request(
                "GET", path, params=list(params), headers=self._headers(token, correlation_id)
            )
            with _transport_errors():
                response = self._http.send(request, stream=stream)
            self._observe(response, token)
            if response.status_code == 200:
                return response, correlation_id
            with _transport_errors():
                response.read()
            response.close()
            delay = core.retry_delay(self.retry, response, attempt=attempt, started=started)
            if delay is None:
                raise self._refused(response, correlation_id)
            core.sleep(delay)
            attempt += 1

    def _get(
        self, path: str, parse: Callable[[Any], T], *, params: Sequence[tuple[str, str]] = ()
    ) -> Result[T]:
        response, correlation_id = self._call(path, params=params)
        return self._result(response, correlation_id, parse, path)

    # -- the contract's routes ------------------------------------------------------

    def health(self) -> Result[Health]:
        """``GET etatSante`` (no token needed)."""
        response, correlation_id = self._call(f"{core.API}/etatSante", authenticated=False)
        return self._result(response, correlation_id, Health.from_json, "etatSante")

    def mention_information(self) -> Result[MentionInformation]:
        """The text to show the users before the exchange (R-CON-1)."""
        return self._get(f"{core.API}/mentionInformation", MentionInformation.from_json)

    def quota(self) -> Result[Quota]:
        """The quota state now, from the ``RateLimit-*`` of one light call (which counts)."""
        result = self.mention_information()
        if result.quota is None:
            raise _no_quota(result.correlation_id)
        return Result(result.quota, result.correlation_id, result.quota)

    def codes_documents(self) -> Result[tuple[CodeDocument, ...]]:
        return self._get(
            f"{core.API}/codesDocuments",
            lambda data: tuple(CodeDocument.from_json(item) for item in data["codesDocuments"]),
        )

    def list_documents(
        self,
        *,
        siren: str | None = None,
        idsp: str | None = None,
        code_document: Sequence[str] = (),
        date_debut: dt.date | str | None = None,
        date_fin: dt.date | str | None = None,
        page: int = 1,
        taille: int | None = None,
        reference_demande: str | None = None,
    ) -> Result[DocumentsPage]:
        """One page of a company's (``siren``) or a person's (``idsp``) documents."""
        params = core.list_params(
            siren=siren,
            idsp=idsp,
            code_document=code_document,
            date_debut=date_debut,
            date_fin=date_fin,
            page=page,
            taille=taille,
            reference_demande=reference_demande,
        )
        return self._get(f"{core.API}/documents", DocumentsPage.from_json, params=params)

    def iter_pages(
        self, *, taille: int = MAX_PAGE, **query: Any
    ) -> Iterator[Result[DocumentsPage]]:
        """Every page of :meth:`list_documents`, one call each, until the last."""
        number = 1
        while True:
            result = self.list_documents(page=number, taille=taille, **query)
            yield result
            if result.value.last:
                return
            number += 1

    def iter_documents(self, *, taille: int = MAX_PAGE, **query: Any) -> Iterator[Document]:
        """Every document of the list, page after page."""
        for result in self.iter_pages(taille=taille, **query):
            yield from result.value.documents

    def get_document(self, target: Target) -> Result[Document]:
        """One document's metadata, by ``IDENSUA:…`` (or a :class:`DocumentRef`)."""
        return self._get(core.document_path(target), Document.from_json)

    def content(self, target: Target, *, on_progress: Progress | None = None) -> Result[bytes]:
        """A document's PDF in memory, its ``Repr-Digest`` checked (as :meth:`download`)."""
        expected = target.empreinte_sha256 if isinstance(target, Document) else None
        response, correlation_id = self._call(core.document_path(target, content=True), stream=True)
        received = bytearray()
        try:
            check = core.DigestCheck(response, correlation_id=correlation_id, expected=expected)
            with _transport_errors():
                for chunk in response.iter_bytes():
                    received += chunk
                    check.update(chunk)
                    if on_progress is not None:
                        on_progress(check.size, check.total)
            check.verify()
        finally:
            response.close()
        return Result(bytes(received), check.correlation_id, Quota.from_headers(response.headers))

    def download(
        self, target: Target, path: str | os.PathLike[str], *, on_progress: Progress | None = None
    ) -> Result[Download]:
        """A document's PDF streamed to ``path``; kept only once its SHA-256 matches
        ``Repr-Digest`` (RFC 9530) and, for a :class:`Document`, ``empreinteSha256``;
        :class:`~ensu_client.DigestMismatch` otherwise, and no file."""
        expected = target.empreinte_sha256 if isinstance(target, Document) else None
        destination = Path(path)
        response, correlation_id = self._call(core.document_path(target, content=True), stream=True)
        part = _part_of(destination)
        try:
            check = core.DigestCheck(response, correlation_id=correlation_id, expected=expected)
            with part.open("wb") as output, _transport_errors():
                for chunk in response.iter_bytes():
                    output.write(chunk)
                    check.update(chunk)
                    if on_progress is not None:
                        on_progress(check.size, check.total)
            sha256 = check.verify()
            part.replace(destination)
        finally:
            response.close()
            part.unlink(missing_ok=True)
        download = Download(destination, check.size, sha256)
        return Result(download, check.correlation_id, Quota.from_headers(response.headers))


class AsyncClient(_Base):
    """The asynchronous client (asyncio or trio through anyio); the same calls as
    :class:`Client`, awaited. One instance serves any number of concurrent calls."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client_id: str | None = None,
        teleservice: str | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        cacert: str | os.PathLike[str] | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            client_id=client_id,
            teleservice=teleservice,
            cert=cert,
            key=key,
            cacert=cacert,
            client_secret=client_secret,
            timeout=timeout,
            retry=retry,
            config=config,
        )
        self._lock = anyio.Lock()
        self._http = httpx.AsyncClient(
            base_url=self.config.url,
            verify=self._verify(transport),
            timeout=self.config.timeout,
            transport=transport,
            headers={"User-Agent": core.USER_AGENT},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def access_token(self) -> str:
        """The cached token, or a new one; one fetch at a time however many calls wait."""
        if (value := self._current_token()) is not None:
            return value
        async with self._lock:
            if (value := self._current_token()) is not None:
                return value
            self._token = await self._fetch_token()
            return self._token.value

    async def _fetch_token(self) -> core.Token:
        form, auth = core.token_request(
            client_id=self.config.client_id, client_secret=self.config.client_secret
        )
        started, attempt = core.monotonic(), 1
        while True:
            requested = core.monotonic()
            with _transport_errors():
                response = await self._http.post(
                    "/token", data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
            delay = core.retry_delay(self.retry, response, attempt=attempt, started=started)
            if delay is None:
                return core.read_token(response, requested_at=requested)
            await core.async_sleep(delay)
            attempt += 1

    async def _call(
        self,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        authenticated: bool = True,
        stream: bool = False,
    ) -> tuple[httpx.Response, str]:
        correlation_id = core.new_correlation_id()
        started, attempt = core.monotonic(), 1
        while True:
            token = await self.access_token() if authenticated else None
            request = self._http.build_request(
                "GET", path, params=list(params), headers=self._headers(token, correlation_id)
            )
            with _transport_errors():
                response = await self._http.send(request, stream=stream)
            self._observe(response, token)
            if response.status_code == 200:
                return response, correlation_id
            with _transport_errors():
                await response.aread()
            await response.aclose()
            delay = core.retry_delay(self.retry, response, attempt=attempt, started=started)
            if delay is None:
                raise self._refused(response, correlation_id)
            await core.async_sleep(delay)
            attempt += 1

    async def _get(
        self, path: str, parse: Callable[[Any], T], *, params: Sequence[tuple[str, str]] = ()
    ) -> Result[T]:
        response, correlation_id = await self._call(path, params=params)
        return self._result(response, correlation_id, parse, path)

    async def health(self) -> Result[Health]:
        response, correlation_id = await self._call(f"{core.API}/etatSante", authenticated=False)
        return self._result(response, correlation_id, Health.from_json, "etatSante")

    async def mention_information(self) -> Result[MentionInformation]:
        return await self._get(f"{core.API}/mentionInformation", MentionInformation.from_json)

    async def quota(self) -> Result[Quota]:
        result = await self.mention_information()
        if result.quota is None:
            raise _no_quota(result.correlation_id)
        return Result(result.quota, result.correlation_id, result.quota)

    async def codes_documents(self) -> Result[tuple[CodeDocument, ...]]:
        return await self._get(
            f"{core.API}/codesDocuments",
            lambda data: tuple(CodeDocument.from_json(item) for item in data["codesDocuments"]),
        )

    async def list_documents(
        self,
        *,
        siren: str | None = None,
        idsp: str | None = None,
        code_document: Sequence[str] = (),
        date_debut: dt.date | str | None = None,
        date_fin: dt.date | str | None = None,
        page: int = 1,
        taille: int | None = None,
        reference_demande: str | None = None,
    ) -> Result[DocumentsPage]:
        params = core.list_params(
            siren=siren,
            idsp=idsp,
            code_document=code_document,
            date_debut=date_debut,
            date_fin=date_fin,
            page=page,
            taille=taille,
            reference_demande=reference_demande,
        )
        return await self._get(f"{core.API}/documents", DocumentsPage.from_json, params=params)

    async def iter_pages(
        self, *, taille: int = MAX_PAGE, **query: Any
    ) -> AsyncIterator[Result[DocumentsPage]]:
        number = 1
        while True:
            result = await self.list_documents(page=number, taille=taille, **query)
            yield result
            if result.value.last:
                return
            number += 1

    async def iter_documents(
        self, *, taille: int = MAX_PAGE, **query: Any
    ) -> AsyncIterator[Document]:
        async for result in self.iter_pages(taille=taille, **query):
            for document in result.value.documents:
                yield document

    async def get_document(self, target: Target) -> Result[Document]:
        return await self._get(core.document_path(target), Document.from_json)

    async def content(
        self, target: Target, *, on_progress: Progress | None = None
    ) -> Result[bytes]:
        expected = target.empreinte_sha256 if isinstance(target, Document) else None
        response, correlation_id = await self._call(
            core.document_path(target, content=True), stream=True
        )
        received = bytearray()
        try:
            check = core.DigestCheck(response, correlation_id=correlation_id, expected=expected)
            with _transport_errors():
                async for chunk in response.aiter_bytes():
                    received += chunk
                    check.update(chunk)
                    if on_progress is not None:
                        on_progress(check.size, check.total)
            check.verify()
        finally:
            await response.aclose()
        return Result(bytes(received), check.correlation_id, Quota.from_headers(response.headers))

    async def download(
        self, target: Target, path: str | os.PathLike[str], *, on_progress: Progress | None = None
    ) -> Result[Download]:
        expected = target.empreinte_sha256 if isinstance(target, Document) else None
        destination = Path(path)
        response, correlation_id = await self._call(
            core.document_path(target, content=True), stream=True
        )
        part = _part_of(destination)
        try:
            check = core.DigestCheck(response, correlation_id=correlation_id, expected=expected)
            async with _async_file(part) as output:
                with _transport_errors():
                    async for chunk in response.aiter_bytes():
                        await output.write(chunk)
                        check.update(chunk)
                        if on_progress is not None:
                            on_progress(check.size, check.total)
            sha256 = check.verify()
            await anyio.Path(part).replace(destination)
        finally:
            await response.aclose()
            await anyio.Path(part).unlink(missing_ok=True)
        download = Download(destination, check.size, sha256)
        return Result(download, check.correlation_id, Quota.from_headers(response.headers))


@asynccontextmanager
async def _async_file(path: Path) -> AsyncIterator[anyio.AsyncFile[bytes]]:
    output = await anyio.open_file(path, "wb")
    try:
        yield output
    finally:
        await output.aclose()
