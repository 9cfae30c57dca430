"""The portal's small pieces: where sign-in may send a person next."""

from __future__ import annotations

import pytest

from ensu.portal.web import safe_next


@pytest.mark.parametrize(
    "target",
    ["/compte", "/admin/teleservices/TS-ABC", "/demandes?etat=brouillon&page=2", "/a%20b"],
)
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next(target, "/") == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "compte",
        "/compte\r\nSet-Cookie: x=1",
    ],
)
def test_anything_else_goes_to_the_default(target: str | None) -> None:
    assert safe_next(target, "/compte") == "/compte"
