"""Merkle tree of the audit ledger, per RFC 9162 §2.1 (identical to RFC 6962 §2.1).

Pure protocol logic: hashing, proof generation and proof verification. No I/O, so the
same code serves the ledger that writes entries and any auditor that checks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256
_PAIR = 2 * HASH_SIZE


class ProofError(ValueError):
    """A Merkle proof does not verify; the message says which check failed."""


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the 0x00 prefix keeps a leaf from posing as an inner node."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the 0x01 prefix separates inner nodes from leaves."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 9162 splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) computed level by level, so a million leaves need no deep recursion.

    Pairing neighbours and carrying an odd last node up unchanged yields exactly the
    RFC's split-at-the-largest-power-of-two tree.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        parents = [_sha256(b"\x01" + l + r).digest() for l, r in zip(level[0::2], level[1::2])]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


class MerkleTree:
    """Leaf hashes plus the hash of every complete, aligned subtree above them.

    Level k holds, concatenated, the hashes of the subtrees of 2**k leaves that start at
    a multiple of 2**k. Appending leaves never changes those hashes, so the cache is
    built once, then extended as the ledger grows, and serves roots and proofs for any
    tree size up to the current one in O(log n) hashes each.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes, hashing only the complete subtrees they newly close."""
        new = list(leaf_hashes)
        if any(len(h) != HASH_SIZE for h in new):
            raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
        self._levels[0] += b"".join(new)
        k = 0
        while len(self._levels[k]) >= _PAIR:
            if k + 1 == len(self._levels):
                self._levels.append(bytearray())
            below, above = self._levels[k], self._levels[k + 1]
            done, end = 2 * len(above), len(below) - len(below) % _PAIR
            above += b"".join(
                _sha256(b"\x01" + below[i : i + _PAIR]).digest() for i in range(done, end, _PAIR)
            )
            k += 1

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]), the current tree's root when size is None."""
        size = self._size(size)
        return self._mth(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, the leaf's sibling first."""
        size = self._size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        path = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo += k
        return path[::-1]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1, defined for 0 < old <= new."""
        new_size = self._size(new_size)
        if not 0 < old_size <= new_size:
            raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
        proof = []
        lo, hi = 0, new_size
        while old_size < hi:
            k = _split(hi - lo)
            if old_size <= lo + k:
                proof.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._mth(lo, lo + k))
                lo += k
        # SUBPROOF's flag b is true exactly while lo == 0: the verifier already has that root.
        if lo:
            proof.append(self._mth(lo, hi))
        return proof[::-1]

    def _size(self, size: int | None) -> int:
        if size is None:
            return len(self)
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} is not in 0..{len(self)}")
        return size

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a non-empty range the RFC recursion visits (lo is aligned).

        A complete subtree is a cache lookup; otherwise only the right edge is hashed.
        """
        n = hi - lo
        if n & (n - 1) == 0:
            k = n.bit_length() - 1
            at = (lo >> k) * HASH_SIZE
            return bytes(self._levels[k][at : at + HASH_SIZE])
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) over all the given leaves; use MerkleTree to serve many proofs."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) over all the given leaves; use MerkleTree to serve many proofs."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf_hash is leaf `index` of the tree of `tree_size` with `root`.

    The RFC 9162 §2.1.3.2 algorithm; raises ProofError on any failure.
    """
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof of {len(proof)} hashes is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof of {len(proof)} hashes is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the given root")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of `new_size` with `new_root` extends the one of `old_size`.

    The RFC 9162 §2.1.4.2 algorithm, plus the edge cases it leaves out, as the
    transparency-dev vectors expect: an empty old tree proves nothing, and equal sizes
    need an empty proof and equal roots. Raises ProofError on any failure.
    """
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size < 1:
        raise ProofError(f"no consistency proof exists from a tree of size {old_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("sizes are equal, but the consistency proof is not empty")
        if old_root != new_root:
            raise ProofError("sizes are equal, but the roots differ")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof of {len(proof)} hashes is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof of {len(proof)} hashes is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


class CompactRange:
    """The right edge of a tree: the roots of its perfect subtrees, largest first.

    A tree of n leaves has one perfect subtree per set bit of n, so at most log2(n) + 1
    hashes describe everything needed to append and to compute the root. Stored beside a
    signed tree head, it lets the next head be computed from the entries added since,
    instead of from the whole log.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        n = self.size
        while n & 1:  # each trailing one of the old size is a subtree the new leaf completes
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> "CompactRange":
        if len(data) % HASH_SIZE:
            raise ValueError("a compact range is a whole number of 32-byte hashes")
        return cls(size, [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])
