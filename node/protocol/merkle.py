"""RFC 9162 §2.1 Merkle trees: the hashing under batch signatures and the evidence log.

Rules kept here (sans-I/O; the hash function is a parameter, SHA-256 by default, SM3 for
the national suite):
- A leaf is hashed as ``H(0x00 || data)``, an interior node as ``H(0x01 || left || right)``,
  so a leaf can never pass for a node (second-preimage resistance, RFC 9162 §2.1.1).
- The tree has the RFC's shape: the left subtree of ``n`` leaves holds the largest power of
  two below ``n``; an odd node is carried up a level, never duplicated. So every node is
  made of *perfect* subtrees (``2**level`` leaves starting at a multiple of ``2**level``),
  and those are all a tree keeps: in memory for a batch, in the store for the evidence log.
  Roots, paths and proofs of the whole tree or of any earlier size are built from them.
- An inclusion path (§2.1.3.1) lists siblings from the leaf upward. Verification follows
  §2.1.3.2 to the letter: the index must be below the size, and the path must be exactly as
  long as the tree needs, or the proof is refused — a proof that merely "reaches the root"
  is not enough.
- A consistency proof (§2.1.4) shows a tree of ``old`` leaves is a prefix of one of ``new``
  leaves; verified by §2.1.4.2.

Mutants ``make mutation`` leaves alive here are equivalent, not untested:
- ``fn != 0`` → ``fn != 1`` in the right-shift loops of both verifications: the loop runs
  only on an even ``fn`` equal to ``sn > 0``, which reaches an odd number before 0, so
  neither bound is ever what stops it (the RFC writes it for safety).
- ``complete=False`` → ``complete=None`` in ``_subproof``: only the truth value is read.
- ``> 1`` → ``>= 1`` building ``MerkleTree``'s levels: it adds one empty level above the
  root, which no lookup reaches.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

HashFunction = Callable[[bytes], bytes]
"""One-shot hash of bytes to its digest (all digests of one tree have one length)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes, hash_function: HashFunction = sha256) -> bytes:
    return hash_function(LEAF_PREFIX + data)


def node_hash(left: bytes, right: bytes, hash_function: HashFunction = sha256) -> bytes:
    return hash_function(NODE_PREFIX + left + right)


class TreeView(ABC):
    """A tree of ``size`` leaves that can hand out its perfect subtrees' hashes; every root,
    inclusion path and consistency proof, of this size or of any earlier one, is built from
    them by the RFC's recursion. Held in memory (``MerkleTree``) or in a store."""

    def __init__(self, size: int, hash_function: HashFunction) -> None:
        self.size = size
        self.hash_function = hash_function

    @abstractmethod
    def perfect(self, level: int, index: int) -> bytes:
        """The hash of leaves ``[index * 2**level, (index + 1) * 2**level)``, all present."""

    def root(self, size: int | None = None) -> bytes:
        """The head of the first ``size`` leaves (all by default); the hash of the empty
        string for an empty tree (§2.1.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._mth(0, size) if size else self.hash_function(b"")

    def inclusion_path(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the first ``size`` leaves, from its sibling up
        (PATH of §2.1.3.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise IndexError(f"leaf {index} is not in a tree of {size}")
        path: list[bytes] = []
        start, n = 0, size
        while n > 1:
            k = _largest_power_of_two_below(n)
            if index - start < k:
                path.append(self._mth(start + k, n - k))
                n = k
            else:
                path.append(self._mth(start, k))
                start, n = start + k, n - k
        path.reverse()
        return path

    def consistency_path(self, old_size: int, size: int | None = None) -> list[bytes]:
        """The proof that the first ``old_size`` leaves are a prefix of the first ``size``
        (PROOF of §2.1.4.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 < old_size <= size:
            raise IndexError(f"no consistency proof from {old_size} to {size}")
        return self._subproof(old_size, 0, size, complete=True)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise IndexError(f"a tree of {self.size} leaves has no prefix of {size}")

    def _subproof(self, m: int, start: int, n: int, *, complete: bool) -> list[bytes]:
        """SUBPROOF(m, D[start:start+n], complete) of §2.1.4.1."""
        if m == n:
            return [] if complete else [self._mth(start, n)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            left = self._subproof(m, start, k, complete=complete)
            return [*left, self._mth(start + k, n - k)]
        right = self._subproof(m - k, start + k, n - k, complete=False)
        return [*right, self._mth(start, k)]

    def _mth(self, start: int, n: int) -> bytes:
        """MTH(D[start:start+n]) for a node of the RFC's shape: ``start`` is a multiple of
        the largest power of two not above ``n``, so it splits into perfect subtrees."""
        level = n.bit_length() - 1
        if n == 1 << level:
            return self.perfect(level, start >> level)
        k = 1 << level
        return node_hash(self._mth(start, k), self._mth(start + k, n - k), self.hash_function)


class MerkleTree(TreeView):
    """A tree over leaves held in memory (a batch of messages)."""

    def __init__(self, leaf_hashes: Sequence[bytes], hash_function: HashFunction = sha256) -> None:
        super().__init__(len(leaf_hashes), hash_function)
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append(
                [
                    node_hash(below[i], below[i + 1], hash_function)
                    for i in range(0, len(below) - 1, 2)
                ]
            )
        self._levels = levels

    @classmethod
    def of(cls, leaves: Sequence[bytes], hash_function: HashFunction = sha256) -> MerkleTree:
        """The tree over the leaves' data (each hashed as a leaf)."""
        return cls([leaf_hash(leaf, hash_function) for leaf in leaves], hash_function)

    def perfect(self, level: int, index: int) -> bytes:
        return self._levels[level][index]


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def root_from_inclusion(
    leaf: bytes,
    index: int,
    size: int,
    path: Sequence[bytes],
    hash_function: HashFunction = sha256,
) -> bytes | None:
    """The root that ``path`` proves leaf hash ``leaf`` at ``index`` of ``size`` leads to,
    or None when the proof is malformed (§2.1.3.2 steps 1–5, without the final compare)."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r, hash_function)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p, hash_function)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes,
    index: int,
    size: int,
    path: Sequence[bytes],
    root: bytes,
    hash_function: HashFunction = sha256,
) -> bool:
    """Whether ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree with ``root``."""
    return root_from_inclusion(leaf, index, size, path, hash_function) == root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    path: Sequence[bytes],
    hash_function: HashFunction = sha256,
) -> bool:
    """Whether ``path`` proves the tree ``old_root`` of ``old_size`` leaves is a prefix of the
    tree ``new_root`` of ``new_size`` leaves (§2.1.4.2)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr, hash_function)
            sr = node_hash(c, sr, hash_function)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c, hash_function)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
