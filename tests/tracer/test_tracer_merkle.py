"""Merkle trees: every proof of every size verifies; anything changed does not."""

import hashlib

import pytest

from insitu import merkle


def leaves(n):
    return [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(n)]


@pytest.mark.parametrize("n", list(range(1, 34)) + [100, 257])
def test_every_proof_verifies(n):
    ls = leaves(n)
    levels = merkle.build_levels(ls)
    root = levels[-1][0]
    for i in range(n):
        proof = merkle.proof_from_levels(levels, i)
        assert merkle.verify(ls[i], i, n, proof, root)
        assert merkle.unpack_proof(merkle.pack_proof(proof)) == proof


def test_known_small_trees():
    a, b, c = leaves(3)
    h = merkle.node_hash
    assert merkle.root_of([a]) == a
    assert merkle.root_of([a, b]) == h(a, b)
    assert merkle.root_of([a, b, c]) == h(h(a, b), c)
    assert merkle.proof_from_levels(merkle.build_levels([a, b, c]), 2) == [h(a, b)]


def test_wrong_leaf_position_size_or_proof_fails():
    n = 13
    ls = leaves(n)
    levels = merkle.build_levels(ls)
    root = levels[-1][0]
    proof = merkle.proof_from_levels(levels, 5)
    assert not merkle.verify(ls[6], 5, n, proof, root)  # other leaf
    assert not merkle.verify(ls[5], 4, n, proof, root)  # other position
    last = merkle.proof_from_levels(levels, n - 1)
    assert merkle.verify(ls[n - 1], n - 1, n, last, root)
    assert not merkle.verify(ls[n - 1], n - 1, n + 1, last, root)  # other size: the last leaf's path changes
    assert not merkle.verify(ls[5], 5, n, proof[:-1], root)  # too short
    assert not merkle.verify(ls[5], 5, n, proof + [proof[0]], root)  # too long
    for k in range(len(proof)):
        for bit in (0, 7, 255):
            bad = list(proof)
            flipped = bytearray(bad[k])
            flipped[bit % 32] ^= 1 << (bit % 8)
            bad[k] = bytes(flipped)
            assert not merkle.verify(ls[5], 5, n, bad, root)


def test_a_leaf_cannot_pose_as_an_interior_node():
    a, b = leaves(2)
    root = merkle.root_of([a, b])
    # the two-leaf tree's root must not verify as a one-leaf tree
    assert not merkle.verify(merkle.node_hash(a, b)[:-1] + b"\x00", 0, 1, [], root)
    with pytest.raises(ValueError):
        merkle.build_levels([])
