"""Merkle trees of RFC 9162 (Certificate Transparency v2) §2.1, for the journal (R-TR-2).

Only the standard library: the offline bundle checker (:mod:`ensu.audit.offline`) uses this
module, and an investigator must be able to run it with Python and ``cryptography`` alone.

- §2.1.1 hashes: a leaf is ``SHA-256(0x00 || d)``, a node ``SHA-256(0x01 || left || right)``,
  the empty tree ``SHA-256()``; a tree of ``n > 1`` leaves splits at the largest power of
  two smaller than ``n``.
- §2.1.3 inclusion proofs (``PATH``) and §2.1.4 consistency proofs (``PROOF``/``SUBPROOF``)
  are generated from a *subtree oracle*: a function that returns ``MTH(D[start:end])``
  for the subtrees the recursion names, so that the same code serves an in-memory list
  of leaves, two compact ranges (the verifier's streaming state) or the stored tiles.
- The verification algorithms are the RFC's §2.1.3.2 and §2.1.4.2, step by step.
- :class:`CompactRange` is the right edge of a tree (its maximal perfect subtrees), which
  makes an append cost ``O(log n)`` hashes without rereading the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``MTH(D[start:end])`` for a subtree that the proof recursion names.
Subtree = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof cannot be generated for these sizes, or a range is not a known subtree."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``MTH({d}) = SHA-256(0x00 || d)``."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: an interior node ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): where the tree splits."""
    if n < 2:
        raise ProofError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` of RFC 9162 §2.1.1, from the *leaf hashes* ``hashes``."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = split_point(len(hashes))
    return node_hash(root_of(hashes[:k]), root_of(hashes[k:]))


def memory_subtree(hashes: Sequence[bytes]) -> Subtree:
    """A subtree oracle over leaf hashes held in memory (small trees, tests)."""
    return lambda start, end: root_of(hashes[start:end])


# -- generation (RFC 9162 §2.1.3.1 and §2.1.4.1) -----------------------------------------


def inclusion_path(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """``PATH(m, D[n])`` of RFC 9162 §2.1.3.1 for leaf ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    return _path(index, 0, size, subtree)


def _path(m: int, start: int, end: int, subtree: Subtree) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*_path(m, start, start + k, subtree), subtree(start + k, end)]
    return [*_path(m - k, start + k, end, subtree), subtree(start, start + k)]


def consistency_proof(first: int, second: int, subtree: Subtree) -> list[bytes]:
    """``PROOF(m, D[n])`` of RFC 9162 §2.1.4.1, defined for ``0 < m < n``."""
    if not 0 < first < second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    return _subproof(first, 0, second, True, subtree)


def _subproof(m: int, start: int, end: int, whole: bool, subtree: Subtree) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree(start, end)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, start, start + k, whole, subtree), subtree(start + k, end)]
    return [*_subproof(m - k, start + k, end, False, subtree), subtree(start, start + k)]


# -- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------


def verify_inclusion(
    *, leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    if index >= size or index < 0:  # step 1
        return False
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in path:  # step 4
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    return sn == 0 and r == root  # step 5


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``path`` prove tree ``first`` is a prefix of tree ``second``?

    Defined for ``0 < first < second`` (§2.1.4.1); equal sizes need equal roots and an
    empty proof, which :func:`consistent` accepts.
    """
    if not 0 < first < second or not path:  # step 1 (and the sizes PROOF is defined for)
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # step 2: first is an exact power of two
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]  # step 5
    for c in proof[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c
    return fr == first_root and sr == second_root and sn == 0  # step 7


def consistent(
    *, first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """:func:`verify_consistency`, extended to the trivial cases (empty or equal trees)."""
    if first == 0:
        return first_root == EMPTY_ROOT and not path
    if first == second:
        return first_root == second_root and not path
    return verify_consistency(
        first=first, second=second, first_root=first_root, second_root=second_root, path=path
    )


# -- compact ranges ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A perfect subtree: leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int
    hash: bytes

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


@dataclass(slots=True)
class CompactRange:
    """The leaves ``[begin, end)`` as their maximal perfect subtrees, left to right.

    Appending a leaf merges equal siblings, so the range holds ``O(log n)`` hashes; from
    ``begin = 0`` its :meth:`root` is ``MTH(D[end])``. Every merge is reported to
    ``on_merge`` (the journal stores some of these subtrees as tiles).
    """

    begin: int = 0
    end: int = 0
    pieces: list[Piece] = field(default_factory=list)

    def copy(self) -> CompactRange:
        return CompactRange(self.begin, self.end, list(self.pieces))

    def append(self, leaf: bytes, on_merge: Callable[[Piece], None] | None = None) -> None:
        pieces = self.pieces
        pieces.append(Piece(0, self.end, leaf))
        self.end += 1
        while len(pieces) >= 2:
            left, right = pieces[-2], pieces[-1]
            if left.level != right.level or left.index & 1:
                break
            merged = Piece(left.level + 1, left.index >> 1, node_hash(left.hash, right.hash))
            pieces[-2:] = [merged]
            if on_merge is not None:
                on_merge(merged)

    def root(self) -> bytes:
        """``MTH`` of the range (RFC 9162 §2.1.1 when ``begin`` is 0)."""
        return fold(self.pieces)

    def subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` when that range is a run of this range's pieces."""
        run = [p for p in self.pieces if start <= p.start and p.end <= end]
        if not run or run[0].start != start or run[-1].end != end:
            raise ProofError(
                f"[{start}, {end}) is not made of pieces of [{self.begin}, {self.end})"
            )
        return fold(run)


def fold(pieces: Sequence[Piece]) -> bytes:
    """The hash of consecutive decreasing pieces: each split takes the biggest on the left."""
    if not pieces:
        return EMPTY_ROOT
    value = pieces[-1].hash
    for piece in reversed(pieces[:-1]):
        value = node_hash(piece.hash, value)
    return value


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into maximal aligned perfect subtrees, as ``(level, index)``."""
    pieces: list[tuple[int, int]] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        pieces.append((level, start >> level))
        start += 1 << level
    return pieces


def ranges_subtree(*ranges: CompactRange) -> Subtree:
    """A subtree oracle over compact ranges, e.g. ``[0, m)`` and ``[m, n)`` for a
    consistency proof from ``m`` to ``n``: every subtree ``SUBPROOF`` names lies on one
    side of ``m`` and is made of whole pieces (RFC 9162 §2.1.4.1's recursion)."""

    def subtree(start: int, end: int) -> bytes:
        for compact in ranges:
            if compact.begin <= start and end <= compact.end:
                return compact.subtree(start, end)
        raise ProofError(f"[{start}, {end}) lies across the ranges")

    return subtree
