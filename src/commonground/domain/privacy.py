"""Privacy terms of an agreement beyond the group threshold: which quasi-identifying columns may
be compared with values, and the differential-privacy budget.

Pure: parsed from the agreement's `access` mapping; no clock, no randomness here (noise is
added by an adapter with OpenDP, seeded from what the service passes in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import BadInput

PRIVACY_KEYS = frozenset({"filterable", "noise", "epsilon", "delta", "epsilon_per_query",
                          "max_groups_per_subject", "bounds"})
DP_KEYS = frozenset({"epsilon", "delta", "epsilon_per_query", "max_groups_per_subject", "bounds"})
MAX_EPSILON = 20.0  # AWS Clean Rooms' ceiling; more is not privacy


@dataclass(frozen=True)
class DpTerms:
    """Access mode dp: a total budget per recipient (never refreshed), the most one query may
    spend, how many groups one privacy unit may add to, and clamping bounds per summed column."""

    epsilon: float
    delta: float
    epsilon_per_query: float
    max_groups_per_subject: int = 1
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"epsilon": self.epsilon, "delta": self.delta,
                               "epsilon_per_query": self.epsilon_per_query,
                               "max_groups_per_subject": self.max_groups_per_subject}
        if self.bounds:
            out["bounds"] = {c: [lo, hi] for c, (lo, hi) in self.bounds.items()}
        return out


@dataclass(frozen=True)
class NoiseTerms:
    """Threshold modes: Laplace scales of the seeded noise added to released COUNTs (`count`) and
    to SUMs and AVGs of the named columns (`sums`). A perturbation against averaging repeated
    answers, not a differential-privacy guarantee (docs/privacy.md §3)."""

    count: float
    sums: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, **({"sum": dict(self.sums)} if self.sums else {})}


@dataclass(frozen=True)
class PrivacyTerms:
    """`filterable`: quasi-identifying columns the provider lets the recipient compare with values
    (AWS Clean Rooms' allow-list); `noise`: seeded noise in threshold modes; `dp`: access mode
    dp's budget and bounds."""

    filterable: tuple[str, ...] = ()
    dp: DpTerms | None = None
    noise: NoiseTerms | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.filterable:
            out["filterable"] = list(self.filterable)
        if self.noise is not None:
            out["noise"] = self.noise.to_dict()
        if self.dp is not None:
            out.update(self.dp.to_dict())
        return out


def parse_privacy_terms(access: Mapping[str, Any], dp_mode: bool, threshold_mode: bool = False) -> PrivacyTerms:
    """The privacy keys of an agreement's `access` mapping (docs/privacy.md). `threshold_mode`:
    aggregate or join, the modes whose released aggregates seeded noise can perturb."""
    filterable = access.get("filterable", [])
    if isinstance(filterable, str):
        filterable = [filterable]
    if not isinstance(filterable, list) or not all(isinstance(c, str) and c for c in filterable):
        raise BadInput("agreement: access.filterable must be a list of field names")
    given = set(access) & DP_KEYS
    if given and not dp_mode:
        raise BadInput(f"agreement: {', '.join(sorted(given))} belong to access mode dp")
    noise = None
    if "noise" in access:
        if not threshold_mode:
            raise BadInput("agreement: access.noise applies to access modes aggregate and join "
                           "(mode dp adds its own noise)")
        noise = _noise_terms(access["noise"])
    return PrivacyTerms(tuple(filterable), _dp_terms(access) if dp_mode else None, noise)


MAX_NOISE_SCALE = 1e12


def _noise_terms(spec: Any) -> NoiseTerms:
    """`{count: 2, sum: {spend: 50}}`: the Laplace scale (> 0) for COUNTs, required, and for the
    SUMs/AVGs of each named column; a SUM or AVG of a column not named is refused at query time."""
    if not isinstance(spec, dict) or set(spec) - {"count", "sum"}:
        raise BadInput("agreement: access.noise must be a mapping {count: scale, sum: {field: scale}}")
    count = _scale("access.noise.count", spec.get("count"))
    sums = spec.get("sum", {})
    if not isinstance(sums, dict):
        raise BadInput("agreement: access.noise.sum must map a numeric field to its noise scale")
    return NoiseTerms(count, {str(c): _scale(f"access.noise.sum.{c}", v) for c, v in sums.items()})


def _scale(where: str, value: Any) -> float:
    if value is None:
        raise BadInput(f"agreement: {where} is required: the Laplace scale of the noise")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= MAX_NOISE_SCALE:
        raise BadInput(f"agreement: {where} must be a number > 0 (a Laplace scale), got {value!r}")
    return float(value)


def _dp_terms(access: Mapping[str, Any]) -> DpTerms:
    epsilon = _number(access, "epsilon", None)
    if not 0 < epsilon <= MAX_EPSILON:
        raise BadInput(f"agreement: access.epsilon must be in (0, {MAX_EPSILON:g}], got {epsilon:g}")
    per_query = _number(access, "epsilon_per_query", min(1.0, epsilon))
    if not 0 < per_query <= epsilon:
        raise BadInput("agreement: access.epsilon_per_query must be > 0 and at most access.epsilon")
    delta = _number(access, "delta", 1e-7)
    if not 0 < delta < 1e-3:
        raise BadInput("agreement: access.delta must be in (0, 0.001): partition selection needs a small delta > 0")
    groups = access.get("max_groups_per_subject", 1)
    if not isinstance(groups, int) or isinstance(groups, bool) or not 1 <= groups <= 100:
        raise BadInput("agreement: access.max_groups_per_subject must be an integer between 1 and 100")
    raw_bounds = access.get("bounds", {})
    if not isinstance(raw_bounds, dict):
        raise BadInput("agreement: access.bounds must map a numeric field to [lower, upper]")
    bounds = {}
    for column, pair in raw_bounds.items():
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair) or pair[0] >= pair[1]):
            raise BadInput(f"agreement: access.bounds.{column} must be [lower, upper] with lower < upper")
        bounds[str(column)] = (float(pair[0]), float(pair[1]))
    return DpTerms(epsilon, delta, per_query, groups, bounds)


def _number(access: Mapping[str, Any], key: str, default: float | None) -> float:
    value = access.get(key, default)
    if value is None:
        raise BadInput(f"agreement: access mode dp needs access.{key}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadInput(f"agreement: access.{key} must be a number, got {value!r}")
    return float(value)
