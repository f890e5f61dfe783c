"""Code-to-data: a recipient's analysis, pinned by its SHA-256, reviewed by every provider.

An analysis is a Python module defining `analysis(tables)`, which receives the agreement's
governed views (Arrow tables, transforms and the consent gate applied) keyed `owner.dataset`
and returns one table. It declares `GROUP_BY = [...]` (the columns each output row is a group
of) and may declare `COUNT = "n"` (a column holding each group's number of people); both are
read from the source without running it, so they are part of what the hash pins and what the
providers review.

Pure: the rules of who reviews, when a submission is approved and when a result is released.
Hashing and diffing text is computation, not I/O; ids and time are passed in.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from .errors import BadInput, Refused

ENTRY_POINT = "analysis"
MAX_SOURCE_BYTES = 256 * 1024


class AutoApprove(str, Enum):
    # A submission whose code hash equals one every provider approved under the same agreement.
    SAME_CODE_HASH = "same_code_hash"


class AutoRelease(str, Enum):
    # A result that passed every disclosure check is released without waiting for the providers.
    CHECKS_PASSED = "checks_passed"


@dataclass(frozen=True)
class CodeTerms:
    """The `access` terms of a `code` agreement: automation rules and the sandbox's limits."""

    auto_approve: tuple[AutoApprove, ...] = ()
    auto_release: tuple[AutoRelease, ...] = ()
    cpu_seconds: int = 30
    memory_mb: int = 1024
    wall_seconds: int = 60
    max_output_rows: int = 10_000
    max_output_bytes: int = 16 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        return {"auto_approve": [r.value for r in self.auto_approve], "auto_release": [r.value for r in self.auto_release],
                "cpu_seconds": self.cpu_seconds, "memory_mb": self.memory_mb, "wall_seconds": self.wall_seconds,
                "max_output_rows": self.max_output_rows, "max_output_bytes": self.max_output_bytes}


CODE_KEYS = frozenset(CodeTerms().to_dict())
# Ceilings an agreement cannot raise: the store's machine is shared by every collaboration.
_CEILINGS = {"cpu_seconds": 3600, "memory_mb": 16384, "wall_seconds": 7200, "max_output_rows": 1_000_000,
             "max_output_bytes": 512 * 1024 * 1024}


def parse_code_terms(access: Mapping[str, Any]) -> CodeTerms:
    """The code terms of an agreement's `access` mapping (other keys are the agreement's own)."""
    defaults = CodeTerms()
    values: dict[str, Any] = {}
    for key, ceiling in _CEILINGS.items():
        value = access.get(key, getattr(defaults, key))
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ceiling:
            raise BadInput(f"agreement: access.{key} must be an integer from 1 to {ceiling}, got {value!r}")
        values[key] = value
    return CodeTerms(_rules("auto_approve", AutoApprove, access), _rules("auto_release", AutoRelease, access), **values)


def _rules(key: str, kind: type[Enum], access: Mapping[str, Any]) -> tuple[Any, ...]:
    listed = access.get(key, [])
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list):
        raise BadInput(f"agreement: access.{key} must be a list of rules")
    try:
        return tuple(kind(r) for r in listed)
    except ValueError:
        allowed = ", ".join(r.value for r in kind)  # type: ignore[attr-defined]
        raise BadInput(f"agreement: access.{key} has unknown rule(s) {listed!r} (rules: {allowed})") from None


@dataclass(frozen=True)
class Declared:
    """What the analysis declares about its output, read from its source without running it."""

    group_by: tuple[str, ...]
    count: str | None
    mentions: tuple[str, ...]  # every string literal in the code: what it reads, for the reviewers


def code_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def inspect_source(source: str) -> Declared:
    """Check the module's shape and read its declarations. The code is parsed, never executed."""
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise BadInput(f"an analysis must be at most {MAX_SOURCE_BYTES // 1024} KiB of Python source")
    try:
        module = ast.parse(source)
    except SyntaxError as e:
        raise BadInput(f"the analysis is not valid Python: line {e.lineno}: {e.msg}") from None
    constants: dict[str, Any] = {}
    entry = False
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT:
            entry = len(node.args.args) == 1
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("GROUP_BY", "COUNT"):
                try:
                    constants[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    raise BadInput(f"{node.targets[0].id} must be a literal (a list of column names, a column name)") from None
    if not entry:
        raise BadInput(f"the analysis must define `def {ENTRY_POINT}(tables):` (tables: dict of owner.dataset -> "
                       "pyarrow.Table) returning a pyarrow.Table")
    group_by = constants.get("GROUP_BY")
    if not isinstance(group_by, (list, tuple)) or not all(isinstance(c, str) and c for c in group_by):
        raise BadInput("the analysis must declare GROUP_BY = [...]: the columns each output row is one group of "
                       "(an empty list for one overall group); outputs are released only as groups of people")
    count = constants.get("COUNT")
    if count is not None and not (isinstance(count, str) and count):
        raise BadInput("COUNT, if declared, must name the output column holding each group's number of people")
    mentions = sorted({n.value for n in ast.walk(module) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                       and 0 < len(n.value) <= 200})
    return Declared(tuple(group_by), count, tuple(mentions))


def unified_diff(previous: str, source: str, previous_hash: str, new_hash: str) -> str:
    return "".join(difflib.unified_diff(previous.splitlines(keepends=True), source.splitlines(keepends=True),
                                        f"analysis@{previous_hash[:12]}", f"analysis@{new_hash[:12]}"))


class Decision(str, Enum):
    APPROVED = "approved"
    REJECTED = "rejected"


def submission_status(reviewers: tuple[str, ...], decisions: Mapping[str, Decision]) -> str:
    """`rejected` once any provider rejects; `approved` once every provider approved; else `pending`."""
    if Decision.REJECTED in decisions.values():
        return "rejected"
    if reviewers and all(decisions.get(r) is Decision.APPROVED for r in reviewers):
        return "approved"
    return "pending"


def check_reviewer(party: str, submitter: str, reviewers: tuple[str, ...], decisions: Mapping[str, Decision]) -> None:
    """Only a provider whose data the analysis reads decides, once, and never on its own code."""
    if party == submitter:
        raise Refused(["code: no party approves or rejects its own code"])
    if party not in reviewers:
        raise Refused([f"code: only the providers whose data it reads review this analysis ({', '.join(reviewers)})"])
    if party in decisions:
        raise Refused([f"code: {party} already {decisions[party].value} this submission; submit a new version to "
                       "be reviewed again"])


def run_status(reviewers: tuple[str, ...], released_by: frozenset[str]) -> str:
    """A result that passed its checks is `held` until every provider released it."""
    return "released" if reviewers and all(r in released_by for r in reviewers) else "held"
