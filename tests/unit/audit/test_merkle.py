"""RFC 9162 §2.1 Merkle trees: known answers built by hand from the RFC's definitions,
the RFC's own example (§2.1.5), tampered proofs refused, and properties (R-TR-2)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensu.audit import merkle
from ensu.audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_path,
    memory_subtree,
    verify_consistency,
    verify_inclusion,
)


def H(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def node(left: bytes, right: bytes) -> bytes:
    return H(b"\x01", left, right)


# The tree of RFC 9162 §2.1.5: seven leaves d0..d6, named as in its figure.
D = [f"d{i}".encode() for i in range(7)]
a, b, c, d, e, f, j = (H(b"\x00", leaf) for leaf in D)
g, h, i = node(a, b), node(c, d), node(e, f)
k, l_ = node(g, h), node(i, j)
ROOT = node(k, l_)
LEAVES = [a, b, c, d, e, f, j]


def test_hashes_follow_the_rfc_prefixes() -> None:
    assert merkle.leaf_hash(b"d0") == H(b"\x00d0")
    assert merkle.node_hash(a, b) == H(b"\x01" + a + b)
    assert H() == merkle.EMPTY_ROOT
    assert merkle.root_of([]) == H()


def test_tree_hash_splits_at_the_largest_power_of_two() -> None:
    assert merkle.root_of(LEAVES) == ROOT
    assert merkle.root_of(LEAVES[:3]) == node(g, c)
    assert merkle.root_of(LEAVES[:5]) == node(k, e)
    assert merkle.root_of(LEAVES[:6]) == node(k, i)
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 4, 4, 8]


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, [b, h, l_]), (3, [c, g, l_]), (4, [f, j, k]), (6, [i, k])],
)
def test_inclusion_proofs_of_the_rfc_example(index: int, expected: list[bytes]) -> None:
    """RFC 9162 §2.1.5: the inclusion proofs of d0, d3, d4 and d6."""
    path = inclusion_path(index, 7, memory_subtree(LEAVES))
    assert path == expected
    assert verify_inclusion(leaf=LEAVES[index], index=index, size=7, path=path, root=ROOT)


@pytest.mark.parametrize(
    ("first", "expected", "first_root"),
    [(3, [c, d, g, l_], node(g, c)), (4, [l_], k), (6, [i, j, k], node(k, i))],
)
def test_consistency_proofs_of_the_rfc_example(
    first: int, expected: list[bytes], first_root: bytes
) -> None:
    """RFC 9162 §2.1.5: the consistency proofs from 3, 4 and 6 leaves to 7."""
    path = consistency_proof(first, 7, memory_subtree(LEAVES))
    assert path == expected
    assert verify_consistency(
        first=first, second=7, first_root=first_root, second_root=ROOT, path=path
    )


def test_known_roots_of_the_certificate_transparency_test_vectors() -> None:
    """The roots of the classic CT test leaves ("", 00, 10, 2021, ...), sizes 1 to 8."""
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        bytes(range(0x50, 0x58)),
        bytes(range(0x60, 0x70)),
    ]
    hashes = [merkle.leaf_hash(item) for item in data]
    roots = [merkle.root_of(hashes[:n]).hex()[:16] for n in range(1, 9)]
    assert roots == [
        "6e340b9cffb37a98",
        "fac54203e7cc696c",
        "aeb6bcfe274b70a1",
        "d37ee418976dd957",
        "4e3bbb1f7b478dcf",
        "76e67dadbcdf1e10",
        "ddb89be403809e32",
        "5dc9da79a70659a9",
    ]


def test_tampered_inclusion_proofs_are_refused() -> None:
    good = [b, h, l_]
    kwargs = {"leaf": a, "index": 0, "size": 7, "root": ROOT}
    assert verify_inclusion(path=good, **kwargs)  # type: ignore[arg-type]
    for path in ([b, h], [b, h, l_, l_], [h, b, l_], [b, h, k], []):
        assert not verify_inclusion(path=path, **kwargs)  # type: ignore[arg-type]
    assert not verify_inclusion(leaf=b, index=0, size=7, path=good, root=ROOT)
    assert not verify_inclusion(leaf=a, index=1, size=7, path=good, root=ROOT)
    # The size is bound by the signed checkpoint, not by the proof: sizes 5 to 8 give
    # this path the same shape; smaller or larger trees do not.
    assert not verify_inclusion(leaf=a, index=0, size=4, path=good, root=ROOT)
    assert not verify_inclusion(leaf=a, index=0, size=9, path=good, root=ROOT)
    assert not verify_inclusion(leaf=a, index=7, size=7, path=good, root=ROOT)


def test_tampered_consistency_proofs_are_refused() -> None:
    first_root = node(g, c)
    good = [c, d, g, l_]
    assert verify_consistency(first=3, second=7, first_root=first_root, second_root=ROOT, path=good)
    for path in ([c, d, g], [c, d, g, l_, l_], [d, c, g, l_], [], [c, d, g, k]):
        assert not verify_consistency(
            first=3, second=7, first_root=first_root, second_root=ROOT, path=path
        )
    assert not verify_consistency(first=3, second=7, first_root=ROOT, second_root=ROOT, path=good)
    assert not verify_consistency(
        first=3, second=4, first_root=first_root, second_root=ROOT, path=good
    )
    assert not verify_consistency(
        first=3, second=9, first_root=first_root, second_root=ROOT, path=good
    )
    assert not verify_consistency(first=7, second=3, first_root=ROOT, second_root=ROOT, path=good)


def test_trivial_consistency_cases() -> None:
    assert merkle.consistent(
        first=0, second=5, first_root=merkle.EMPTY_ROOT, second_root=k, path=[]
    )
    assert merkle.consistent(first=7, second=7, first_root=ROOT, second_root=ROOT, path=[])
    assert not merkle.consistent(first=7, second=7, first_root=ROOT, second_root=k, path=[])
    with pytest.raises(merkle.ProofError):
        consistency_proof(7, 7, memory_subtree(LEAVES))
    with pytest.raises(merkle.ProofError):
        inclusion_path(7, 7, memory_subtree(LEAVES))


def test_compact_range_reports_merges_and_its_root() -> None:
    merged: list[merkle.Piece] = []
    compact = CompactRange()
    for leaf in LEAVES:
        compact.append(leaf, merged.append)
    assert compact.root() == ROOT
    assert [(p.level, p.index) for p in compact.pieces] == [(2, 0), (1, 2), (0, 6)]
    assert [(p.level, p.index, p.hash) for p in merged] == [
        (1, 0, g),
        (1, 1, h),
        (2, 0, k),
        (1, 2, i),
    ]
    assert merkle.perfect_pieces(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(n.to_bytes(4, "big") + bytes([x % 251])) for x in range(n)]


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=200))
def test_every_inclusion_proof_verifies_and_no_tampered_one(data: st.DataObject, size: int) -> None:
    leaves = _leaves(size)
    root = merkle.root_of(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = inclusion_path(index, size, memory_subtree(leaves))
    assert len(path) <= size.bit_length()
    assert verify_inclusion(leaf=leaves[index], index=index, size=size, path=path, root=root)
    other = data.draw(st.integers(min_value=0, max_value=size))
    if other != index:
        leaf = leaves[other] if other < size else leaves[index]
        assert not verify_inclusion(leaf=leaf, index=other, size=size, path=path, root=root)
    if path:
        broken = list(path)
        spot = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        broken[spot] = bytes([broken[spot][0] ^ 1]) + broken[spot][1:]
        assert not verify_inclusion(
            leaf=leaves[index], index=index, size=size, path=broken, root=root
        )
        assert not verify_inclusion(
            leaf=leaves[index], index=index, size=size, path=path[:-1], root=root
        )
    assert not verify_inclusion(
        leaf=leaves[index], index=index, size=size, path=[*path, root], root=root
    )


@settings(max_examples=100, deadline=None)
@given(data=st.data(), second=st.integers(min_value=2, max_value=200))
def test_every_consistency_proof_verifies_and_no_tampered_one(
    data: st.DataObject, second: int
) -> None:
    leaves = _leaves(second)
    first = data.draw(st.integers(min_value=1, max_value=second - 1))
    first_root, second_root = merkle.root_of(leaves[:first]), merkle.root_of(leaves)
    path = consistency_proof(first, second, memory_subtree(leaves))
    assert verify_consistency(
        first=first, second=second, first_root=first_root, second_root=second_root, path=path
    )
    # The streaming verifier's oracle, two compact ranges, gives the same proof.
    left, right = CompactRange(), CompactRange(first, first)
    for leaf in leaves[:first]:
        left.append(leaf)
    for leaf in leaves[first:]:
        right.append(leaf)
    assert consistency_proof(first, second, merkle.ranges_subtree(left, right)) == path
    assert left.root() == first_root
    spot = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
    broken = list(path)
    broken[spot] = bytes(32)
    for tampered in (broken, path[:-1], [*path, first_root]):
        assert not verify_consistency(
            first=first,
            second=second,
            first_root=first_root,
            second_root=second_root,
            path=tampered,
        )
    other_root = merkle.root_of([*leaves[: first - 1], bytes(32)])
    assert not verify_consistency(
        first=first, second=second, first_root=other_root, second_root=second_root, path=path
    )


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=0, max_value=200))
def test_compact_range_root_is_the_tree_hash(size: int) -> None:
    leaves = _leaves(size)
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    assert compact.root() == merkle.root_of(leaves)
    assert len(compact.pieces) == bin(size).count("1")
