"""RFC 9162 §2.1 trees, checked against the RFC's own recursive definitions.

The reference below is written from the RFC text (MTH §2.1.1, PATH §2.1.3.1, PROOF and
SUBPROOF §2.1.4.1) and shares nothing with node.protocol.merkle but the definitions.

A root claimed for a tree of another size can reach the same hash through the same path
(leaf 0 of 255 and of 256 leaves): the size is bound by the batch signature's statement,
which signs it with the root, and is tested there."""

from __future__ import annotations

import functools
import hashlib

import pytest

from node.protocol.merkle import (
    MerkleTree,
    leaf_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    return [f"message {i}".encode() for i in range(n)]


class Reference:
    """MTH, PATH and PROOF exactly as RFC 9162 §2.1 defines them, over D[n]."""

    def __init__(self, data: list[bytes]) -> None:
        self.data = data

    @functools.cache  # noqa: B019 - one small object per test
    def mth(self, start: int, n: int) -> bytes:
        if n == 0:
            return H(b"")
        if n == 1:
            return H(b"\x00" + self.data[start])
        k = 1
        while k * 2 < n:
            k *= 2
        return H(b"\x01" + self.mth(start, k) + self.mth(start + k, n - k))

    def path(self, m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return [*self.path(m, start, k), self.mth(start + k, n - k)]
        return [*self.path(m - k, start + k, n - k), self.mth(start, k)]

    def subproof(self, m: int, start: int, n: int, b: bool) -> list[bytes]:
        if m == n:
            return [] if b else [self.mth(start, n)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*self.subproof(m, start, k, b), self.mth(start + k, n - k)]
        return [*self.subproof(m - k, start + k, n - k, False), self.mth(start, k)]


def test_roots_and_every_inclusion_path_match_the_rfc_for_sizes_1_to_300() -> None:
    data = leaves(300)
    for size in range(1, 301):
        ref = Reference(data[:size])
        tree = MerkleTree.of(data[:size])
        root = ref.mth(0, size)
        assert tree.size == size
        assert tree.root() == root, size
        for index in range(size):
            path = tree.inclusion_path(index)
            assert path == ref.path(index, 0, size), (size, index)
            assert verify_inclusion(H(b"\x00" + data[index]), index, size, path, root)


def test_any_earlier_size_is_served_from_the_bigger_tree() -> None:
    """Roots, paths and proofs of every prefix, as the evidence log needs for old checkpoints."""
    data = leaves(45)
    tree = MerkleTree.of(data)
    for size in range(0, 46):
        ref = Reference(data[:size])
        assert tree.root(size) == ref.mth(0, size), size
        for index in range(size):
            assert tree.inclusion_path(index, size) == ref.path(index, 0, size)
        for old in range(1, size + 1):
            assert tree.consistency_path(old, size) == ref.subproof(old, 0, size, True)
    with pytest.raises(IndexError):
        tree.root(46)
    with pytest.raises(IndexError):
        tree.inclusion_path(3, 3)


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert MerkleTree([]).root() == H(b"")


def test_consistency_proofs_match_the_rfc_and_verify_for_every_pair_up_to_70() -> None:
    data = leaves(70)
    trees = {n: MerkleTree.of(data[:n]) for n in range(1, 71)}
    for new in range(1, 71):
        ref = Reference(data[:new])
        for old in range(1, new + 1):
            proof = trees[new].consistency_path(old)
            assert proof == ref.subproof(old, 0, new, True), (old, new)
            assert verify_consistency(old, new, trees[old].root(), trees[new].root(), proof)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 64, 100, 255, 256])
def test_a_tampered_inclusion_proof_is_refused(size: int) -> None:
    data = leaves(size)
    tree = MerkleTree.of(data)
    root = tree.root()
    for index in {0, size // 2, size - 1}:
        leaf = leaf_hash(data[index])
        path = tree.inclusion_path(index)
        assert verify_inclusion(leaf, index, size, path, root)
        # A changed leaf, or the same leaf claimed at another index.
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, path, root)
        for other in {index - 1, index + 1} & set(range(size)):
            assert not verify_inclusion(leaf, other, size, path, root)
        # The leaf's data hashed as an interior node instead of a leaf.
        assert not verify_inclusion(H(b"\x01" + data[index]), index, size, path, root)
        if path:
            # A swapped or altered sibling; a path one short or one long.
            if len(path) > 1:
                swapped = [path[1], path[0], *path[2:]]
                assert not verify_inclusion(leaf, index, size, swapped, root)
            altered = [bytes(32), *path[1:]]
            assert not verify_inclusion(leaf, index, size, altered, root)
            assert root_from_inclusion(leaf, index, size, path[:-1]) is None
        assert root_from_inclusion(leaf, index, size, [*path, root]) is None
        # Index at or past the size.
        assert root_from_inclusion(leaf, size, size, path) is None
        assert root_from_inclusion(leaf, -1, size, path) is None


def test_a_tampered_consistency_proof_is_refused() -> None:
    data = leaves(40)
    old, new = MerkleTree.of(data[:13]), MerkleTree.of(data)
    proof = new.consistency_path(13)
    assert verify_consistency(13, 40, old.root(), new.root(), proof)
    forked = MerkleTree.of([*data[:12], b"rewritten", *data[13:]])
    assert not verify_consistency(13, 40, old.root(), forked.root(), forked.consistency_path(13))
    assert not verify_consistency(13, 40, old.root(), new.root(), proof[:-1])
    assert not verify_consistency(13, 40, old.root(), new.root(), [*proof, bytes(32)])
    assert not verify_consistency(13, 40, old.root(), new.root(), [])
    assert not verify_consistency(12, 40, old.root(), new.root(), proof)
    assert not verify_consistency(41, 40, old.root(), new.root(), proof)
    assert not verify_consistency(0, 40, old.root(), new.root(), proof)
    eight = MerkleTree.of(data[:8])
    assert verify_consistency(8, 40, eight.root(), new.root(), new.consistency_path(8))
    assert not verify_consistency(8, 40, eight.root(), new.root(), [])
    assert verify_consistency(40, 40, new.root(), new.root(), [])
    assert not verify_consistency(40, 40, new.root(), new.root(), [bytes(32)])
    assert not verify_consistency(40, 40, old.root(), new.root(), [])


def test_paths_are_asked_only_for_leaves_in_the_tree() -> None:
    tree = MerkleTree.of(leaves(5))
    with pytest.raises(IndexError, match=r"^leaf 5 is not in a tree of 5$"):
        tree.inclusion_path(5)
    with pytest.raises(IndexError, match=r"^leaf -1 is not in a tree of 5$"):
        tree.inclusion_path(-1)
    with pytest.raises(IndexError, match=r"^no consistency proof from 0 to 5$"):
        tree.consistency_path(0)
    with pytest.raises(IndexError, match=r"^a tree of 5 leaves has no prefix of 6$"):
        tree.consistency_path(1, 6)


def test_the_hash_function_is_a_parameter() -> None:
    def sha512(data: bytes) -> bytes:
        return hashlib.sha512(data).digest()

    data = leaves(5)
    tree = MerkleTree.of(data, sha512)
    assert len(tree.root()) == 64
    assert tree.root() != MerkleTree.of(data).root()
    path = tree.inclusion_path(3)
    assert verify_inclusion(leaf_hash(data[3], sha512), 3, 5, path, tree.root(), sha512)
    assert not verify_inclusion(leaf_hash(data[3]), 3, 5, path, tree.root(), sha512)
    bigger = MerkleTree.of(leaves(13), sha512)
    for old in (3, 4, 6):  # every branch of the consistency walk, with the other hash
        proof = bigger.consistency_path(old)
        older = MerkleTree.of(leaves(old), sha512).root()
        assert verify_consistency(old, 13, older, bigger.root(), proof, sha512)
        assert not verify_consistency(old, 13, older, bigger.root(), proof)
