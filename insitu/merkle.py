"""Merkle trees: root, proofs, verification. Pure, standard library only, no I/O.

The one implementation of the platform's Merkle rules, used for trace batches
(leaves ``insitu.trace.leaf_hash``) and dataset manifests (leaves
``insitu.manifest.leaf``). A leaf is ``sha256(0x00 || data)``; an interior node
is ``sha256(0x01 || left || right)``; the prefixes keep an inner node from
passing for a leaf (as RFC 6962 does). The tree is built level
by level: adjacent pairs are hashed; an odd node at the end of a level is
carried up unchanged. The root of one leaf is the leaf itself.

A proof for the leaf at ``index`` in a tree of ``size`` leaves is the list of
sibling hashes from the bottom up, skipping levels where the node is carried
up. The path (left or right at each level) follows from ``index`` and ``size``
alone, so a proof binds the leaf to its position: in a batch anchored for
sequence numbers ``[first, last]`` the trace with sequence number ``seq`` sits
at ``index = seq - first`` in a tree of ``size = last - first + 1``.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_LEN = 32


def leaf_hash(data: bytes) -> bytes:
    """sha256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def build_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaves first, root level last."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaves)]
    h = hashlib.sha256
    prefix = NODE_PREFIX
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [h(prefix + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


def root_of(leaves: Sequence[bytes]) -> bytes:
    return build_levels(leaves)[-1][0]


def proof_from_levels(levels: list[list[bytes]], index: int) -> list[bytes]:
    """Sibling hashes for the leaf at ``index``, bottom up."""
    if not 0 <= index < len(levels[0]):
        raise IndexError(index)
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def root_from_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf, its position and its proof.

    Raises ``ValueError`` when the proof does not have the shape that
    ``index`` and ``size`` require (too short, too long, wrong hash length).
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside a tree of {size} leaves")
    node = leaf
    it = iter(proof)
    width = size
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            try:
                s = next(it)
            except StopIteration:
                raise ValueError("proof too short") from None
            if len(s) != HASH_LEN:
                raise ValueError("proof element is not 32 bytes")
            node = node_hash(node, s) if index % 2 == 0 else node_hash(s, node)
        index //= 2
        width = (width + 1) // 2
    if next(it, None) is not None:
        raise ValueError("proof too long")
    return node


def verify(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    try:
        return root_from_proof(leaf, index, size, proof) == root
    except ValueError:
        return False


def pack_proof(proof: Sequence[bytes]) -> bytes:
    return b"".join(proof)


def unpack_proof(blob: bytes) -> list[bytes]:
    if len(blob) % HASH_LEN:
        raise ValueError("packed proof length is not a multiple of 32")
    return [blob[i : i + HASH_LEN] for i in range(0, len(blob), HASH_LEN)]
