"""The sync client against httpx's mock transport: every error code of the contract,
the retry rules, the token's life, the headers, pages and checked downloads (R-CON-1)."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import ensu_client
from ensu_client import (
    AccessDenied,
    ApiError,
    AuthenticationFailed,
    Client,
    DigestMismatch,
    DocumentNotFound,
    DocumentRef,
    QuotaExceeded,
    RequestInvalid,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    TokenError,
    TransportError,
    UnexpectedResponse,
)
from ensu_client import _core as core
from tests.sdk.fake import API, CLIENT_ID, PDF, SIREN, TELESERVICE, Answer, FakeApi, problem

#: The contract's table (CONTRACT.md "Errors", and the three codes of our own).
CONTRACT_CODES = [
    ("910000", 400, RequestInvalid),
    ("920400", 400, RequestInvalid),
    ("920413", 413, RequestInvalid),  # the bounds on a request (README)
    ("920414", 414, RequestInvalid),
    ("920431", 431, RequestInvalid),
    ("910001", 401, AuthenticationFailed),
    ("900902", 401, AuthenticationFailed),
    ("900901", 401, AuthenticationFailed),
    ("910002", 403, AccessDenied),
    ("910003", 403, AccessDenied),
    ("910004", 403, AccessDenied),
    ("900910", 403, AccessDenied),
    ("920404", 404, DocumentNotFound),
    ("900804", 429, QuotaExceeded),
    ("930001", 503, ServiceUnavailable),
    ("930002", 503, ServiceUnavailable),
    ("930003", 503, ServiceUnavailable),
    ("930004", 503, ServiceUnavailable),
    ("930005", 503, ServiceUnavailable),
    ("999999", 500, ServerError),
]
MENTION = f"{API}/mentionInformation"


class Sleeps(list[float]):
    """The waits the client asked for (none really happens)."""


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    waits = Sleeps()
    monkeypatch.setattr(core, "sleep", waits.append)
    return waits


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def make_client(api: FakeApi, **options: object) -> Client:
    return Client(
        "https://api.test",
        client_id=CLIENT_ID,
        teleservice=TELESERVICE,
        transport=api.transport(),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(api: FakeApi) -> Iterator[Client]:
    with make_client(api) as made:
        yield made


def refuse(code: str, status: int, **extra: object) -> Answer:
    return lambda request: problem(
        code, status, correlation_id=request.headers.get("x-correlation-id"), **extra
    )


@pytest.mark.parametrize("case", CONTRACT_CODES, ids=[code for code, _, _ in CONTRACT_CODES])
def test_every_contract_code_raises_its_family_with_code_status_and_correlation_id(
    client: Client, api: FakeApi, sleeps: Sleeps, case: tuple[str, int, type[ApiError]]
) -> None:
    code, status, family = case
    api.queue(MENTION, *[refuse(code, status, retry_after=999)] * 5)
    with pytest.raises(family) as raised:
        client.mention_information()
    error = raised.value
    assert (error.code, error.status) == (code, status)
    sent = api.calls(MENTION)[0].headers["x-correlation-id"]
    assert error.correlation_id == sent
    assert error.hint  # what to do, in plain words
    assert error.problem["code"] == code
    assert len(api.calls(MENTION)) == 1  # a Retry-After past the budget: no retry
    assert sleeps == []


def test_every_family_lists_exactly_the_contract_codes() -> None:
    listed = {code for family in ensu_client._exceptions.FAMILIES for code in family.codes}
    assert listed == {code for code, _, _ in CONTRACT_CODES}


def test_a_validation_error_carries_its_parameters(client: Client, api: FakeApi) -> None:
    erreurs = [{"parametre": "siren", "message": "9 chiffres"}]
    api.queue(f"{API}/documents", refuse("920400", 400, erreurs=erreurs))
    with pytest.raises(RequestInvalid) as raised:
        client.list_documents(siren="123")
    assert raised.value.erreurs == erreurs


def test_an_unknown_code_falls_back_on_its_status_family(client: Client, api: FakeApi) -> None:
    api.queue(MENTION, refuse("940000", 403))
    with pytest.raises(AccessDenied) as raised:
        client.mention_information()
    assert raised.value.code == "940000"


def test_an_answer_without_problem_document_is_unexpected(client: Client, api: FakeApi) -> None:
    api.queue(MENTION, lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(UnexpectedResponse) as raised:
        client.mention_information()
    assert raised.value.status == 502


@pytest.mark.parametrize(("code", "status"), [("900804", 429), ("930001", 503), ("930005", 503)])
def test_429_and_503_are_retried_after_retry_after(
    client: Client, api: FakeApi, sleeps: Sleeps, code: str, status: int
) -> None:
    api.queue(MENTION, refuse(code, status, retry_after=2), refuse(code, status, retry_after=3))
    result = client.mention_information()
    assert result.value.texte == "Données de la DGFiP."
    assert sleeps == [2.0, 3.0]
    calls = api.calls(MENTION)
    assert len(calls) == 3
    # One call, one correlation id: its retries keep it (the journal ties them).
    assert {call.headers["x-correlation-id"] for call in calls} == {result.correlation_id}


@pytest.mark.parametrize(
    ("code", "status"), [(code, status) for code, status, _ in CONTRACT_CODES if status < 429]
)
def test_a_4xx_is_never_retried(
    client: Client, api: FakeApi, sleeps: Sleeps, code: str, status: int
) -> None:
    api.queue(MENTION, refuse(code, status), refuse(code, status))
    with pytest.raises(ApiError):
        client.mention_information()
    assert len(api.calls(MENTION)) == 1
    assert sleeps == []


def test_a_500_is_not_retried(client: Client, api: FakeApi, sleeps: Sleeps) -> None:
    api.queue(MENTION, refuse("999999", 500), refuse("999999", 500))
    with pytest.raises(ServerError):
        client.mention_information()
    assert len(api.calls(MENTION)) == 1


def test_retries_stop_at_the_time_budget(api: FakeApi, sleeps: Sleeps) -> None:
    """The waits already made count: the next one would overrun the budget."""
    clock = [0.0]

    def waited(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    with (
        make_client(api, retry=RetryPolicy(budget=10, max_attempts=10)) as client,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(core, "monotonic", lambda: clock[0])
        patch.setattr(core, "sleep", waited)
        api.queue(MENTION, *[refuse("930003", 503, retry_after=4)] * 5)
        with pytest.raises(ServiceUnavailable) as raised:
            client.mention_information()
    assert sleeps == [4.0, 4.0]  # 8 s waited; 4 more would pass 10
    assert len(api.calls(MENTION)) == 3
    assert raised.value.retry_after == 4.0


def test_retries_stop_at_max_attempts(api: FakeApi, sleeps: Sleeps) -> None:
    with make_client(api, retry=RetryPolicy(budget=100, max_attempts=2)) as client:
        api.queue(MENTION, *[refuse("900804", 429, retry_after=0)] * 5)
        with pytest.raises(QuotaExceeded):
            client.mention_information()
    assert len(api.calls(MENTION)) == 2


def test_a_503_without_retry_after_waits_the_default(api: FakeApi, sleeps: Sleeps) -> None:
    bare = lambda request: httpx.Response(503, text="busy")  # noqa: E731
    with make_client(api, retry=RetryPolicy(default_delay=0.5)) as client:
        api.queue(MENTION, bare)
        client.mention_information()
    assert sleeps == [0.5]


def test_retry_after_as_an_http_date() -> None:
    response = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert core.retry_after(response.headers) == 0.0  # in the past: at once
    assert core.retry_after(httpx.Response(503, headers={"Retry-After": "soon"}).headers) is None


def test_each_call_sends_a_fresh_correlation_id_and_the_teleservice(
    client: Client, api: FakeApi
) -> None:
    first, second = client.mention_information(), client.codes_documents()
    calls = api.calls(MENTION) + api.calls(f"{API}/codesDocuments")
    assert [call.headers["x-correlation-id"] for call in calls] == [
        first.correlation_id,
        second.correlation_id,
    ]
    assert first.correlation_id != second.correlation_id
    uuid.UUID(first.correlation_id)
    assert {call.headers["id_teleservice"] for call in calls} == {TELESERVICE}
    assert {call.headers["authorization"] for call in calls} == {"Bearer token-1"}


def test_the_token_is_fetched_once_and_kept(client: Client, api: FakeApi) -> None:
    for _ in range(5):
        client.mention_information()
    (token_call,) = api.calls("/token")
    form = dict(httpx.QueryParams(token_call.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": CLIENT_ID}
    assert "authorization" not in token_call.headers  # tls_client_auth: the certificate only


def test_the_token_is_renewed_before_it_expires(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 600 s token is renewed 60 s ahead: at 539 s it serves, at 541 s a new one."""
    clock = [1000.0]
    monkeypatch.setattr(core, "monotonic", lambda: clock[0])
    with make_client(api) as client:
        client.mention_information()
        clock[0] += 539
        client.mention_information()
        assert api.tokens_issued == 1
        clock[0] += 2
        client.mention_information()
    assert api.tokens_issued == 2
    assert api.calls(MENTION)[-1].headers["authorization"] == "Bearer token-2"


def test_threads_sharing_a_client_fetch_the_token_once(api: FakeApi) -> None:
    """The sync client's lock: 20 threads, a slow token endpoint, one token."""
    inner = api.handle
    waiting = threading.Barrier(20, timeout=10)

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            time.sleep(0.05)
        return inner(request)

    with Client(
        "https://api.test",
        client_id=CLIENT_ID,
        teleservice=TELESERVICE,
        transport=httpx.MockTransport(slow),
    ) as client:

        def call() -> str:
            waiting.wait()
            return client.mention_information().correlation_id

        with ThreadPoolExecutor(max_workers=20) as pool:
            ids = list(pool.map(lambda _: call(), range(20)))
    assert len(set(ids)) == 20
    assert len(api.calls("/token")) == 1


def test_a_refused_token_is_dropped_not_retried(client: Client, api: FakeApi) -> None:
    api.queue(MENTION, refuse("900901", 401))
    with pytest.raises(AuthenticationFailed):
        client.mention_information()
    assert len(api.calls(MENTION)) == 1
    client.mention_information()
    assert api.tokens_issued == 2


def test_client_secret_basic_adds_basic_credentials(api: FakeApi) -> None:
    with make_client(api, client_secret="s3cr=t&") as client:
        client.mention_information()
    (token_call,) = api.calls("/token")
    scheme, encoded = token_call.headers["authorization"].split()
    assert scheme == "Basic"
    # RFC 6749 §2.3.1: both form-urlencoded before Basic.
    assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:s3cr%3Dt%26"


def test_a_refused_token_request_raises_token_error(client: Client, api: FakeApi) -> None:
    body = {"error": "invalid_client", "error_description": "Authentification refusée."}
    api.queue("/token", lambda request: httpx.Response(401, json=body))
    with pytest.raises(TokenError) as raised:
        client.mention_information()
    assert (raised.value.status, raised.value.error) == (401, "invalid_client")
    assert "certificate" in raised.value.hint
    assert api.calls(MENTION) == []


def test_a_token_slow_down_is_retried(client: Client, api: FakeApi, sleeps: Sleeps) -> None:
    slow = {"error": "slow_down", "error_description": "Trop de demandes."}
    api.queue("/token", lambda r: httpx.Response(429, json=slow, headers={"Retry-After": "1"}))
    client.mention_information()
    assert sleeps == [1.0]
    assert len(api.calls("/token")) == 2


def test_a_connection_failure_is_a_transport_error_not_retried(sleeps: Sleeps) -> None:
    attempts = []

    def down(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("refused", request=request)

    transport = httpx.MockTransport(down)
    with (
        Client("https://api.test", client_id="c", teleservice="t", transport=transport) as client,
        pytest.raises(TransportError),
    ):
        client.health()
    assert len(attempts) == 1


def test_quota_comes_from_ratelimit_headers(client: Client) -> None:
    result = client.quota()
    assert (result.value.limit, result.value.reset) == (50, 42)
    assert client.last_quota == result.value


def test_the_mention_information_is_fetched(client: Client) -> None:
    mention = client.mention_information().value
    assert (mention.id_teleservice, mention.texte) == (TELESERVICE, "Données de la DGFiP.")


def test_pages_are_iterated_to_the_last(api: FakeApi) -> None:
    api.documents = 7
    with make_client(api) as client:
        listed = list(client.iter_documents(siren=SIREN, taille=3))
    assert len(listed) == 7
    assert len({document.identifiants.idensua for document in listed}) == 7
    pages = [call.url.params["page"] for call in api.calls(f"{API}/documents")]
    assert pages == ["1", "2", "3"]
    assert {call.url.params["siren"] for call in api.calls(f"{API}/documents")} == {SIREN}


def test_the_list_query_uses_the_contract_names(client: Client, api: FakeApi) -> None:
    client.list_documents(
        siren=SIREN,
        code_document=["TVA-CA3", "IS-2065"],
        date_debut="2024-01-01",
        date_fin="2024-12-31",
        taille=5,
        reference_demande="dossier-42",
    )
    params = api.calls(f"{API}/documents")[0].url.params
    assert params.get_list("codeDocument") == ["TVA-CA3", "IS-2065"]
    assert (params["dateDebut"], params["dateFin"]) == ("2024-01-01", "2024-12-31")
    assert (params["page"], params["taille"], params["referenceDemande"]) == (
        "1",
        "5",
        "dossier-42",
    )


def test_a_page_keeps_the_json_as_given(client: Client) -> None:
    page = client.list_documents(siren=SIREN).value
    assert page.raw["total"] == 3
    assert page.documents[0].raw == page.raw["documents"][0]
    assert page.documents[0].periode_debut.isoformat() == "2024-01-01"


def test_a_malformed_answer_is_unexpected(client: Client, api: FakeApi) -> None:
    api.queue(MENTION, lambda request: httpx.Response(200, json={"autre": 1}))
    with pytest.raises(UnexpectedResponse):
        client.mention_information()


def test_download_checks_the_digest_and_keeps_the_file(client: Client, tmp_path: Path) -> None:
    document = client.get_document("IDENSUA:" + "0" * 63 + "1").value
    seen: list[tuple[int, int | None]] = []
    result = client.download(document, tmp_path / "doc.pdf", on_progress=lambda *a: seen.append(a))
    assert (tmp_path / "doc.pdf").read_bytes() == PDF
    assert result.value.size == len(PDF)
    assert seen[-1] == (len(PDF), len(PDF))
    assert sorted(tmp_path.iterdir()) == [tmp_path / "doc.pdf"]


@pytest.mark.parametrize(
    "digest", ["sha-256=:" + base64.b64encode(bytes(32)).decode() + ":", ""], ids=["wrong", "none"]
)
def test_a_digest_mismatch_raises_and_leaves_no_file(
    api: FakeApi, tmp_path: Path, digest: str
) -> None:
    api.digest = digest
    with make_client(api) as client, pytest.raises(DigestMismatch) as raised:
        client.download(DocumentRef.parse("IDENSUA:" + "0" * 64), tmp_path / "doc.pdf")
    assert raised.value.correlation_id == api.requests[-1].headers["x-correlation-id"]
    assert list(tmp_path.iterdir()) == []


def test_content_matching_repr_digest_but_not_the_metadata_raises(
    client: Client, api: FakeApi
) -> None:
    document = client.get_document("IDENSUA:" + "0" * 64).value
    api.content = PDF + b"x"  # the server's digest follows, the metadata's does not
    with pytest.raises(DigestMismatch, match="empreinteSha256"):
        client.content(document)


def test_repr_digest_parsing_follows_rfc_9530() -> None:
    value = base64.b64encode(bytes(range(32))).decode()
    headers = httpx.Headers({"Repr-Digest": f"sha-512=:AAAA:, sha-256=:{value}:"})
    assert core.repr_digest_sha256(headers) == bytes(range(32))
    assert core.repr_digest_sha256(httpx.Headers({"Repr-Digest": "sha-256=abc"})) is None


def test_document_references_parse() -> None:
    assert str(DocumentRef.parse("idensua:abc")) == "IDENSUA:abc"
    with pytest.raises(ValueError, match="IDENSUA"):
        DocumentRef.parse("abc")
    assert core.document_path("DOCDISTRIB:DD 1") == f"{API}/documents/DOCDISTRIB/DD%201"


def test_health_needs_no_token(client: Client, api: FakeApi) -> None:
    assert client.health().value.statut == "ok"
    assert api.calls("/token") == []
