"""The whole app fuzzed from outside (R-GW-6; OWASP API Security Top 10 2023): whatever
the query, the path or the headers a consumer with valid credentials sends, the answer
is a result or a problem document with a contract code — never a 500, never a body
without ``code``. Few calls in ``make test``; ENSU_FUZZ_EXAMPLES raises them."""

from __future__ import annotations

from urllib.parse import quote

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ensu.errors import PROBLEM_JSON
from tests.support.fuzz import DEFAULT_CALLS, fuzz
from tests.unit.gateway.conftest import World

pytestmark = [pytest.mark.anyio, pytest.mark.fuzz]
PREFIX = "/ensudocuments/v1"
NAMES = st.sampled_from(
    ["siren", "idsp", "codeDocument", "dateDebut", "dateFin", "page", "taille", "depuis", "x"]
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789", min_size=4300, max_size=4400),
    st.sampled_from(["732829320", "ABCDEF12", "2023-01-01", "TVA-CA3", "1"]),
)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/documents",
            "/codesDocuments",
            "/mentionInformation",
            "/journal/coherence",
            "/journal/pointControle",
        ]
    ),
    st.builds(
        lambda kind, ident: f"/documents/{quote(kind, safe='')}/{quote(ident, safe='')}",
        st.one_of(st.sampled_from(["IDENSUA", "DOCDISTRIB", "DOCCFS"]), st.text(max_size=12)),
        st.text(min_size=1, max_size=140),
    ),
    st.text(max_size=40).map(lambda text: "/" + quote(text)),
)
HEADER_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200
)


def _structured(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, body[:300]
    if status >= 400:
        assert content_type == PROBLEM_JSON, body[:300]
        problem = orjson.loads(body)
        assert problem["status"] == status
        assert len(problem["code"]) == 6


@fuzz(DEFAULT_CALLS)
@given(
    path=PATHS,
    query=st.lists(st.tuples(NAMES, VALUES), max_size=6),
    headers=st.dictionaries(
        st.sampled_from(["X-Correlation-ID", "ID_Teleservice", "Content-Length", "X-Other"]),
        HEADER_VALUES,
        max_size=3,
    ),
)
@example(path="/documents", query=[("siren", "732829320"), ("page", "9" * 5000)], headers={})
@example(path="/journal/coherence", query=[("depuis", "9" * 5000)], headers={})
async def test_no_call_is_answered_500(
    world: World, path: str, query: list[tuple[str, str]], headers: dict[str, str]
) -> None:
    headers = {name: value for name, value in headers.items() if name != "Content-Length"}
    response = await world.get(PREFIX + path, "A", params=query, headers=headers)
    _structured(response.status_code, response.headers["content-type"], response.content)
