"""Property-based runs of every parser that sees outside input (R-GW-6, R-DATA-1..5;
OWASP API Security Top 10 2023, API4 and API8): whatever it is given, a parser returns a
valid result or refuses with its structured error, never another exception (which the
API would answer 500). Bounded in ``make test``; ``ENSU_FUZZ_EXAMPLES`` raises the
examples (tests/support/fuzz.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from ensu import bounds, certificates
from ensu.config import Settings, TLSMode
from ensu.consumers.perimeter import Perimeter
from ensu.documents import catalogue, ingest, queries
from ensu.documents.identifiers import is_valid_idsp, is_valid_siren
from ensu.documents.service import IdentifierKind, ListQuery
from ensu.errors import EnsuError, InvalidParameter, OutsidePerimeter
from tests.support.certs import make_certificate
from tests.support.fuzz import fuzz

pytestmark = pytest.mark.fuzz

CODES = frozenset(entry.code for entry in catalogue.CATALOGUE)
PERIMETER = Perimeter(
    codes=CODES, period_start=dt.date(2020, 1, 1), period_end=dt.date(2030, 12, 31)
)
NAMES = [*sorted(queries.LIST_PARAMETERS), "inconnu", "", "siren[]"]
#: Text as an attacker sends it: any character, digits of any script, long runs.
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789", min_size=0, max_size=6000),
    st.text(alphabet=st.characters(categories=["Nd"]), max_size=20),
    st.sampled_from(["732829320", "ABCDEF12", "2023-01-01", "2023-02-30", "0", "-1", "1e3"]),
)
PARAMETER = st.tuples(st.sampled_from(NAMES), TEXT)


# -- the query parameters: SIREN/IDSP, dates and periods, page and taille, codes ------


@fuzz()
@given(st.lists(PARAMETER, max_size=8))
@example([("siren", "732829320"), ("page", "9" * 5000)])
@example([("idsp", "ABCDEF12"), ("dateDebut", "2023-01-01"), ("dateFin", "2022-01-01")])
def test_list_parameters(pairs: list[tuple[str, str]]) -> None:
    params = QueryParams(pairs)
    try:
        query = queries.parse_list(params, perimeter=PERIMETER, catalogue=CODES)
    except (InvalidParameter, OutsidePerimeter):
        return
    assert isinstance(query, ListQuery)
    assert (query.siren is None) != (query.idsp is None)
    assert query.siren is None or is_valid_siren(query.siren)
    assert query.idsp is None or is_valid_idsp(query.idsp)
    assert 1 <= query.page <= queries.MAX_PAGE
    assert 1 <= query.taille <= queries.MAX_TAILLE
    assert query.date_debut <= query.date_fin
    assert query.codes <= PERIMETER.codes


@fuzz()
@given(st.binary(max_size=300))
def test_raw_query_strings(raw: bytes) -> None:
    """The query string as sent, percent-escapes and all, through the same parser."""
    try:
        queries.parse_list(QueryParams(raw), perimeter=PERIMETER, catalogue=CODES)
        queries.reference_of(QueryParams(raw))
    except (InvalidParameter, OutsidePerimeter):
        pass


@fuzz()
@given(st.text(max_size=30), st.text(max_size=200))
@example("IDENSUA", "A" * 64)
def test_document_identifiers(kind: str, identifier: str) -> None:
    try:
        parsed = queries.parse_identifier(kind, identifier)
    except InvalidParameter:
        return
    assert isinstance(parsed, IdentifierKind)
    assert queries.IDENTIFIER_PATTERN.fullmatch(identifier)


@fuzz()
@given(TEXT, st.integers(min_value=1, max_value=10**6))
def test_integers_are_bounded_before_conversion(raw: str, top: int) -> None:
    value = bounds.digits_within(raw, top)
    assert value is None or 1 <= value <= top


# -- the certificate and address forwarded by the proxy --------------------------------

PROXY = Settings(tls_mode=TLSMode.PROXY, trusted_proxies="127.0.0.1/32")
PEM = make_certificate("fuzz").pem


def _mutations() -> st.SearchStrategy[bytes]:
    escaped = quote(PEM, safe="").encode()
    return st.one_of(
        st.binary(max_size=2000),
        st.builds(lambda cut: escaped[:cut], st.integers(0, len(escaped))),
        st.builds(
            lambda at, junk: escaped[:at] + junk + escaped[at:],
            st.integers(0, len(escaped)),
            st.binary(min_size=1, max_size=8),
        ),
        st.builds(lambda text: quote(text).encode(), st.text(max_size=200)),
    )


@fuzz()
@given(_mutations(), st.binary(max_size=60))
@example(quote(PEM, safe="").encode(), b"127.0.0.1")
def test_the_forwarded_certificate_and_address(header: bytes, forwarded: bytes) -> None:
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 40000),
        "headers": [(b"x-ssl-client-cert", header), (b"x-forwarded-for", forwarded)],
    }
    certificate = certificates.presented_certificate(scope, PROXY)
    assert certificate is None or len(certificate.thumbprint) == 43
    address = certificates.client_ip(scope, PROXY)
    assert address is None or isinstance(address, str)
    if address is not None:
        certificates.parse_address(address)


@fuzz()
@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=400)), max_size=30))
def test_head_bounds(headers: list[tuple[bytes, bytes]]) -> None:
    scope = {"path": "/", "raw_path": b"/", "query_string": b"", "headers": headers}
    refusal = bounds.head_refusal(scope, bounds.HeadLimits(), api=True)
    assert refusal is None or isinstance(refusal, EnsuError)


# -- the import manifest (ensu documents import) ---------------------------------------

CSV_HEADER = ",".join(ingest.COLUMNS)


def _check_manifest(path: Path) -> None:
    try:
        records = list(ingest.read_records(path))
    except ingest.ManifestError:
        return
    for record in records:
        checked = ingest.check_record(record, codes=CODES, base_dir=path.parent, max_bytes=1 << 20)
        assert checked.row is not None or checked.problems


@fuzz()
@given(body=st.text(max_size=600), with_header=st.booleans())
@example(body="732829320,,,AMR,2023-01-01,2023-01-31,2023-02-10,\x00,,,\n", with_header=True)
def test_csv_manifests(
    body: str, with_header: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("manifest") / "m.csv"
    path.write_text((CSV_HEADER + "\n" if with_header else "") + body, encoding="utf-8")
    _check_manifest(path)


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30), TEXT)


@fuzz()
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from([*ingest.COLUMNS, "x"]), VALUES, max_size=8),
        max_size=5,
    ),
    junk=st.binary(max_size=80),
)
@example(rows=[{"siren": "732829320", "fichier": "\x00"}], junk=b"")
def test_jsonl_manifests(
    rows: list[dict[str, object]], junk: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import json  # noqa: PLC0415 - the encoder of the manifest written here

    path = tmp_path_factory.mktemp("manifest") / "m.jsonl"
    lines = [json.dumps(row) for row in rows]
    path.write_bytes("\n".join(lines).encode() + b"\n" + junk)
    _check_manifest(path)
