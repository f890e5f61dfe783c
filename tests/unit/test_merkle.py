"""The audit ledger's Merkle tree against RFC 9162 §2.1, the transparency-dev test
vectors, the Certificate Transparency reference tree, and random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonground.domain.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "data" / "merkle-testdata"
# Without ../shared the vector tests are skipped; the property and reference tests still run.
needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"transparency-dev test vectors not found at {VECTORS}")

# Only inclusion/ and consistency/ test the RFC 9162 algorithms. subtreeinclusion/ and
# subtreeconsistency/ test proofs for an arbitrary subtree [start, end) of a tree (the
# "subtree" proofs of the Merkle Tree Certificates draft): a different API, not run here.
INCLUSION_FILES = sorted((VECTORS / "inclusion").rglob("*.json")) or [VECTORS / "inclusion"]
CONSISTENCY_FILES = sorted((VECTORS / "consistency").rglob("*.json")) or [VECTORS / "consistency"]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _ids(files: list[Path]) -> list[str]:
    return [str(f.relative_to(VECTORS)) for f in files]


@needs_vectors
@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_ids(INCLUSION_FILES))
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@needs_vectors
@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_ids(CONSISTENCY_FILES))
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (
        v["size1"],
        v["size2"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root1"]),
        _b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@needs_vectors
def test_vector_directories_are_not_empty() -> None:
    assert len(INCLUSION_FILES) > 50 and len(CONSISTENCY_FILES) > 50


# --- RFC 6962 reference tree (Certificate Transparency merkle_tree_test.cc) -----------

CT_LEAF_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert EMPTY_ROOT == root_from_leaf_hashes([]) == MerkleTree().root() == bytes.fromhex(expected)


def test_ct_reference_tree_roots() -> None:
    hashes = [leaf_hash(bytes.fromhex(x)) for x in CT_LEAF_INPUTS]
    tree = MerkleTree(hashes)
    for size, want in enumerate(CT_ROOTS, start=1):
        assert root_from_leaf_hashes(hashes[:size]).hex() == want
        assert tree.root(size).hex() == want
    assert [p.hex() for p in tree.inclusion_proof(0)] == CT_INCLUSION_0_OF_8


# --- RFC 9162 definitions, written out recursively as an independent oracle -----------


def _h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _k(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def _ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return _h()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return _h(b"\x01", _ref_mth(d[:k]), _ref_mth(d[k:]))


def _ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return _ref_path(m, d[:k]) + [_ref_mth(d[k:])]
    return _ref_path(m - k, d[k:]) + [_ref_mth(d[:k])]


def _ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [_ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return _ref_subproof(m, d[:k], b) + [_ref_mth(d[k:])]
    return _ref_subproof(m - k, d[k:], False) + [_ref_mth(d[:k])]


def _leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [_h(b"\x00", salt, i.to_bytes(4, "big")) for i in range(n)]


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"abc") == _h(b"\x00abc")
    assert MerkleTree([leaf_hash(b"a"), leaf_hash(b"b")]).root() == _h(
        b"\x01", _h(b"\x00a"), _h(b"\x00b")
    )


def test_proofs_match_the_rfc_definitions_exhaustively() -> None:
    for n in range(1, 34):
        d = _leaves(n)
        tree = MerkleTree(d)
        assert tree.root() == root_from_leaf_hashes(d) == _ref_mth(d)
        for m in range(n):
            assert tree.inclusion_proof(m) == inclusion_proof(d, m) == _ref_path(m, d)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m) == consistency_proof(d, m) == _ref_subproof(m, d, True)


def test_proofs_for_an_earlier_size_come_from_the_grown_tree() -> None:
    d = _leaves(50)
    tree = MerkleTree(d)
    for size in (1, 7, 32, 33):
        assert tree.root(size) == _ref_mth(d[:size])
        assert tree.inclusion_proof(3 % size, size) == _ref_path(3 % size, d[:size])
        assert tree.consistency_proof(1, size) == _ref_subproof(1, d[:size], True)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.inclusion_proof(5),
        lambda t: t.inclusion_proof(-1),
        lambda t: t.inclusion_proof(0, 0),
        lambda t: t.root(6),
        lambda t: t.consistency_proof(0),
        lambda t: t.consistency_proof(4, 3),
        lambda t: t.extend([b"short"]),
    ],
)
def test_bad_requests_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call(MerkleTree(_leaves(5)))


# --- Properties over random trees -----------------------------------------------------

sizes = st.integers(min_value=1, max_value=300)
salts = st.binary(max_size=8)


def _flip(value: bytes, bit: int) -> bytes:
    bit %= 8 * len(value)
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@given(sizes, salts)
def test_every_inclusion_proof_verifies(n: int, salt: bytes) -> None:
    d = _leaves(n, salt)
    tree = MerkleTree(d)
    root = tree.root()
    assert root == root_from_leaf_hashes(d)
    for i in range(n):
        verify_inclusion(d[i], i, n, tree.inclusion_proof(i), root)


@given(sizes, salts, st.data())
def test_tampered_inclusion_fails(n: int, salt: bytes, data: st.DataObject) -> None:
    d = _leaves(n, salt)
    tree = MerkleTree(d)
    i = data.draw(st.integers(0, n - 1))
    leaf, proof, root = d[i], tree.inclusion_proof(i), tree.root()
    target = data.draw(st.sampled_from(["leaf", "root"] + (["proof"] if proof else [])))
    bit = data.draw(st.integers(0, 8 * 32 - 1))
    if target == "leaf":
        leaf = _flip(leaf, bit)
    elif target == "root":
        root = _flip(root, bit)
    else:
        j = data.draw(st.integers(0, len(proof) - 1))
        proof[j] = _flip(proof[j], bit)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, i, n, proof, root)


@given(sizes, salts)
def test_every_consistency_proof_verifies(n: int, salt: bytes) -> None:
    tree = MerkleTree(_leaves(n, salt))
    new_root = tree.root()
    for m in range(1, n + 1):
        verify_consistency(m, n, tree.consistency_proof(m), tree.root(m), new_root)


@given(sizes, salts, st.data())
def test_tampered_consistency_fails(n: int, salt: bytes, data: st.DataObject) -> None:
    tree = MerkleTree(_leaves(n, salt))
    m = data.draw(st.integers(1, n))
    proof, old_root, new_root = tree.consistency_proof(m), tree.root(m), tree.root()
    target = data.draw(st.sampled_from(["old", "new"] + (["proof"] if proof else [])))
    bit = data.draw(st.integers(0, 8 * 32 - 1))
    if target == "old":
        old_root = _flip(old_root, bit)
    elif target == "new":
        new_root = _flip(new_root, bit)
    else:
        j = data.draw(st.integers(0, len(proof) - 1))
        proof[j] = _flip(proof[j], bit)
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, old_root, new_root)


@given(st.lists(st.integers(0, 40), max_size=10), salts)
def test_extending_the_cache_equals_building_it_at_once(chunks: list[int], salt: bytes) -> None:
    d = _leaves(sum(chunks), salt)
    grown, at = MerkleTree(), 0
    for c in chunks:
        grown.extend(d[at : at + c])
        at += c
        assert grown.root() == root_from_leaf_hashes(d[:at])
    whole = MerkleTree(d)
    assert len(grown) == len(whole) == len(d)
    assert all(grown.inclusion_proof(i) == whole.inclusion_proof(i) for i in range(len(d)))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_compact_range_gives_the_rfc_root_and_resumes(size, more):
    from commonground.domain.merkle import CompactRange
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size + more)]
    cr = CompactRange()
    for h in leaves[:size]:
        cr.append(h)
    assert cr.root() == root_from_leaf_hashes(leaves[:size])
    resumed = CompactRange.from_bytes(size, cr.to_bytes())
    for h in leaves[size:]:
        resumed.append(h)
    assert resumed.root() == root_from_leaf_hashes(leaves)
