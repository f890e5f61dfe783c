"""The ledger as users see it: signed tree heads, proofs, verification, the log."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..domain.errors import NotFound
from ..domain.merkle import CompactRange, MerkleTree, ProofError, leaf_hash, verify_consistency, verify_inclusion
from .deps import Deps


# The HTTP header that carries the latest signed tree head on every API response.
TREE_HEAD_HEADER = "X-Commonground-Tree-Head"


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        return head_bytes(self.tree_size, self.root_hash, self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": base64.b64encode(self.root_hash).decode(),
                "timestamp": self.timestamp, "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TreeHead":
        return cls(int(d["tree_size"]), base64.b64decode(d["root_hash"]), str(d["timestamp"]), base64.b64decode(d["signature"]))


def head_bytes(size: int, root: bytes, timestamp: str) -> bytes:
    return f"commonground-tree-head\n{size}\n{base64.b64encode(root).decode()}\n{timestamp}\n".encode()


def _tree(deps: Deps, conn=None) -> MerkleTree:
    """The in-process tree, extended with entries appended since it was last read."""
    tree: MerkleTree = deps.caches.setdefault("merkle", MerkleTree())
    if conn is None:
        with deps.store.read() as conn:
            return _tree(deps, conn)
    tree.extend(deps.store.leaf_hashes_from(conn, len(tree)))
    return tree


def _stamp(moment: dt.datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_head(deps: Deps, max_age_s: float = 0.0) -> TreeHead:
    """The head for the log as it is now; a new size is signed once and kept (append-only).

    The next root is computed from the frontier stored with the last head plus the entries
    appended since, so signing costs O(new entries), not O(log). With `max_age_s`, a head
    this process signed less than that long ago is returned as it is, even if entries were
    appended since (a bounded merge delay, as Certificate Transparency logs have): a busy API
    then signs about once per interval instead of once per response.
    """
    cached: TreeHead | None = deps.caches.get("head")
    if cached is not None:
        if max_age_s > 0 and time.monotonic() - deps.caches.get("head_signed_at", float("-inf")) < max_age_s:
            return cached
        with deps.store.read() as conn:  # the common case: nothing new, no write lock taken
            if deps.store.ledger_size(conn) == cached.tree_size:
                return cached
    with deps.store.transaction() as conn:
        size = deps.store.ledger_size(conn)
        latest = deps.store.latest_tree_head(conn)
        if latest and latest[0] == size:
            head = TreeHead(latest[0], latest[1], _stamp(latest[2]), latest[3])
        else:
            frontier = CompactRange()
            if latest and latest[4] is not None and latest[0] < size:
                frontier = CompactRange.from_bytes(latest[0], latest[4])
            for leaf in deps.store.leaf_hashes_from(conn, frontier.size):
                frontier.append(leaf)
            now = deps.now()
            root = frontier.root()
            head = TreeHead(size, root, _stamp(now), deps.signer.sign(head_bytes(size, root, _stamp(now))))
            if not latest or latest[0] < size:
                deps.store.insert_tree_head(conn, size, root, now, head.signature, frontier.to_bytes())
    deps.caches["head"] = head
    deps.caches["head_signed_at"] = time.monotonic()
    return head


def inclusion(deps: Deps, index: int) -> dict[str, Any]:
    """An entry, its inclusion proof and the signed head it proves against."""
    head = signed_head(deps)
    if not 0 <= index < head.tree_size:
        raise NotFound(f"no ledger entry {index}")
    with deps.store.read() as conn:
        tree = _tree(deps, conn)
        (_, _, entry), = deps.store.entries(conn, start=index, limit=1)
    proof = tree.inclusion_proof(index, head.tree_size)
    return {"index": index, "entry": entry, "proof": [base64.b64encode(p).decode() for p in proof],
            "tree_head": head.to_dict(), "public_key": deps.signer.public_key_pem().decode()}


def verify_proof_offline(bundle: dict[str, Any], public_key_pem: bytes) -> None:
    """Check an entry, its proof and a tree head with nothing but the public key."""
    head = TreeHead.from_dict(bundle["tree_head"])
    key = load_pem_public_key(public_key_pem)
    try:
        key.verify(head.signature, head.signed_bytes())  # type: ignore[call-arg]
    except Exception:
        raise ProofError("tree head signature does not verify with this public key") from None
    verify_inclusion(leaf_hash(bundle["entry"].encode()), int(bundle["index"]), head.tree_size,
                     [base64.b64decode(p) for p in bundle["proof"]], head.root_hash)


def consistency(deps: Deps, old_size: int) -> dict[str, Any]:
    head = signed_head(deps)
    tree = _tree(deps)
    proof = tree.consistency_proof(old_size, head.tree_size) if 0 < old_size <= head.tree_size else []
    return {"old_size": old_size, "proof": [base64.b64encode(p).decode() for p in proof], "tree_head": head.to_dict()}


def check_witness(old: TreeHead, new: TreeHead, proof: list[bytes]) -> None:
    """A client's check that the log it saw before is a prefix of the log it sees now."""
    if new.tree_size < old.tree_size:
        raise ProofError(f"log shrank from {old.tree_size} to {new.tree_size} entries")
    if old.tree_size == 0:
        return
    verify_consistency(old.tree_size, new.tree_size, proof, old.root_hash, new.root_hash)


def _entry_problem(expected: int, idx: int, stored_hash: bytes, entry: str) -> str | None:
    if idx != expected:
        return f"entry index {idx} found where {expected} was expected (deleted or inserted entry)"
    if leaf_hash(entry.encode()) != stored_hash:
        return "stored leaf hash does not match the entry (modified entry)"
    try:
        if orjson.loads(entry).get("index") != idx:
            return "entry records a different index (reordered entry)"
    except (orjson.JSONDecodeError, AttributeError):
        return "entry is not a JSON object"
    return None


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    ok: bool
    first_bad_index: int | None
    problem: str | None
    root_hash: str


def verify(deps: Deps) -> VerifyReport:
    """Recompute every leaf from the stored entry and the root; name the first bad index."""
    tree = MerkleTree()
    expected = 0
    with deps.store.read() as conn:
        for chunk in deps.store.iter_entries(conn):
            for idx, stored_hash, entry in chunk:
                problem = _entry_problem(expected, idx, stored_hash, entry)
                if problem:
                    return VerifyReport(expected, False, expected, problem, "")
                expected += 1
            tree.extend(h for _, h, _ in chunk)
    root = tree.root()
    with deps.store.read() as conn:
        heads = deps.store.tree_heads(conn)
    public = load_pem_public_key(deps.signer.public_key_pem())
    for size, head_root, stamp, signature in heads:
        try:
            public.verify(signature, head_bytes(size, head_root, _stamp(stamp)))  # type: ignore[call-arg]
        except InvalidSignature:
            return VerifyReport(expected, False, None, f"signed tree head for size {size} has a bad signature", root.hex())
        if size > expected:
            return VerifyReport(expected, False, expected, f"log truncated: a signed tree head covers {size} entries", root.hex())
        if tree.root(size) != head_root:
            return VerifyReport(expected, False, _first_divergence(tree, heads, size),
                                f"log no longer matches the signed tree head for size {size}", root.hex())
    return VerifyReport(expected, True, None, None, root.hex())


def _first_divergence(tree: MerkleTree, heads, size: int) -> int | None:
    """The smallest signed size whose root changed bounds where history was rewritten."""
    previous = 0
    for s, head_root, _, _ in heads:
        if s <= len(tree) and tree.root(s) != head_root:
            return previous
        previous = s
    return None


def log(deps: Deps, start: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        return [json.loads(e) for _, _, e in deps.store.entries(conn, start=start, limit=limit)]
