"""Releases a dp plan's bounded aggregates with OpenDP's Laplace mechanism, and chooses which
groups may be shown by Laplace thresholding on the noisy people count.

The plan (policy/dp.py) bounds each person to m groups, 1 per group in counts and a clamped
total in [lo, hi] per summed column, so the L1 sensitivity is m for the counts and
m * max(|lo|, |hi|) for each sum. The query's epsilon is split evenly between the count and each
bounded aggregate (sum, avg, quantile); AVG is post-processing (noisy sum / noisy count). A
quantile is OpenDP's make_private_quantile (its scorer and noisy max, `NoisyQuantile`) over each
shown group's per-person totals: a person is one element of at most m groups' vectors, so each
group's measurement gets 1/m of the quantile's share, and OpenDP's own privacy map (symmetric
distance 1) is checked against it. A group is shown only if its noisy count reaches
tau = 1 + b ln(m / 2 delta) (b the count's noise scale): a group that only one person makes up
is shown with probability at most delta, so the set of groups does not reveal them.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import opendp.prelude as dp

from ..policy.dp import GRID_STEPS, DpAggregate, DpPlan, grid

dp.enable_features("contrib")

Z95 = math.log(20)  # Laplace: P(|noise| > b ln 20) = 5%


def _laplace(values: Sequence[float], scale: float) -> list[float]:
    if not values:
        return []
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    return list(dp.m.make_laplace(*space, scale=scale)([float(v) for v in values]))


@dataclass(frozen=True)
class NoisyQuantile:
    """OpenDP's make_private_quantile, taken apart: its scorer (make_quantile_score_candidates)
    and its noisy min over the scores (make_noisy_max). The engine hands over each group's
    histogram on the candidate grid (policy/dp.py `grid_bucket`), not a value per person, so
    the scores are computed from that histogram with the scorer's own weights, read off the
    scorer itself, and equal what it computes from the values (tests/unit/test_dp_quantiles.py);
    the privacy map is OpenDP's, of the scorer chained with the noisy min, checked against the
    group's epsilon. A person is one element of each group's vector: symmetric distance 1."""

    candidates: list[float]
    below: int  # a score's weight for each person whose total is below the candidate
    above: int  # and above it: score = |below * people below - above * people above|
    select: dp.Measurement  # the noisy min over the candidates' scores

    def __call__(self, histogram: dict[int, int] | None) -> float:
        return self.candidates[self.select(self.scores(histogram))]

    def scores(self, histogram: dict[int, int] | None) -> list[int]:
        buckets = [0] * (2 * len(self.candidates) - 1)  # 2i: on candidate i; 2i + 1: between i and i + 1
        for bucket, people in (histogram or {}).items():
            buckets[bucket] += people
        up_to = list(itertools.accumulate(buckets))  # people in buckets 0..b
        everyone = up_to[-1]
        return [abs(self.below * (up_to[2 * i - 1] if i else 0) - self.above * (everyone - up_to[2 * i]))
                for i in range(len(self.candidates))]


def noisy_quantile(aggregate: DpAggregate, epsilon: float) -> NoisyQuantile:
    """The quantile's mechanism for one group, spending at most `epsilon` (checked, not trusted)."""
    bounds, alpha = aggregate.bounds, aggregate.quantile
    scorer = _scorer(bounds, alpha)  # type: ignore[arg-type]
    select = _noisy_min(scorer, _scale(bounds, alpha, epsilon))  # type: ignore[arg-type]
    if not (scorer >> select).map(1) <= epsilon:
        raise RuntimeError("the quantile measurement spends more than its share of epsilon")
    candidates = grid(bounds)  # type: ignore[arg-type]
    probe = scorer([candidates[1]])  # one person on candidate 1: scores [above, 0, below, ...]
    return NoisyQuantile(candidates, below=probe[2], above=probe[0], select=select)


def _scorer(bounds: tuple[float, float], alpha: float) -> dp.Transformation:
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()
    return dp.t.make_quantile_score_candidates(*space, candidates=grid(bounds), alpha=alpha)


def _noisy_min(scorer: dp.Transformation, scale: float) -> dp.Measurement:
    return dp.m.make_noisy_max(scorer.output_domain, scorer.output_metric, dp.max_divergence(), scale=scale, negate=True)


@functools.lru_cache(maxsize=256)
def _scale(bounds: tuple[float, float], alpha: float, epsilon: float) -> float:
    """OpenDP's binary search for the smallest noise scale within `epsilon` (tens of ms, and the
    same answer for the same terms, so kept; the measurement built from it is still checked)."""
    scorer = _scorer(bounds, alpha)
    return dp.binary_search_param(lambda scale: scorer >> _noisy_min(scorer, scale), d_in=1, d_out=epsilon)


def release(plan: DpPlan, rows: Sequence[Sequence[Any]]) -> tuple[list[list[Any]], int, dict[str, Any]]:
    """(released rows, groups withheld by partition selection, what the result says about its noise)."""
    dims = len(plan.dimensions)
    measures = plan.measures
    share = plan.epsilon / (1 + len(measures))
    count_scale = plan.max_groups / share
    sum_scales = [plan.max_groups * max(abs(m.bounds[0]), abs(m.bounds[1])) / share for m in measures]  # type: ignore[index]
    counts = _laplace([r[dims] for r in rows], count_scale)
    sums = [_laplace([r[dims + 1 + j] or 0.0 for r in rows], scale) if m.kind != "quantile" else []
            for j, (m, scale) in enumerate(zip(measures, sum_scales))]
    quantiles = [noisy_quantile(m, share / plan.max_groups) if m.kind == "quantile" else None for m in measures]
    threshold = 1 + count_scale * math.log(plan.max_groups / (2 * plan.delta)) if dims else -math.inf
    released, withheld = [], 0
    for i, row in enumerate(rows):
        if counts[i] < threshold:
            withheld += 1
            continue
        values, j = [], 0
        for aggregate in plan.aggregates:
            if aggregate.kind == "count":
                values.append(max(0, round(counts[i])))
                continue
            lo, hi = aggregate.bounds  # type: ignore[misc]
            if aggregate.kind == "quantile":
                values.append(quantiles[j](row[dims + 1 + j]))  # type: ignore[misc]
            elif aggregate.kind == "sum":
                values.append(sums[j][i])
            else:
                values.append(min(max(sums[j][i] / max(counts[i], 1.0), lo), hi))
            j += 1
        released.append([*row[:dims], *values])
    error_bars = {}
    j = 0
    for aggregate in plan.aggregates:
        if aggregate.kind == "count":
            error_bars[aggregate.name] = round(count_scale * Z95, 6)
        elif aggregate.kind == "sum":
            error_bars[aggregate.name] = round(sum_scales[j] * Z95, 6)
        if aggregate.kind != "count":
            j += 1
    noise = {
        "mechanism": "Laplace (OpenDP), Laplace-threshold partition selection"
                     + (", OpenDP quantile scores + noisy max" if any(m.kind == "quantile" for m in measures) else ""),
        "epsilon_spent": plan.epsilon, "delta_spent": plan.delta, "max_groups_per_subject": plan.max_groups,
        "partition_threshold": None if math.isinf(threshold) else round(threshold, 3),
        "ci95_half_width": error_bars,
        "ci95_note": "count and sum: +/- the half-width; avg: noisy sum / noisy count, clamped to its bounds",
    }
    if any(m.kind == "quantile" for m in measures):
        noise["quantiles"] = {m.name: _quantile_note(m) for m in measures if m.kind == "quantile"}
    return released, withheld, noise


def _quantile_note(aggregate: DpAggregate) -> dict[str, Any]:
    """What a quantile's answer can be trusted to: it is one of the grid's candidates, of the
    people's clamped totals. OpenDP gives no accuracy bound for it, so none is invented."""
    lo, hi = aggregate.bounds  # type: ignore[misc]
    return {"quantile": aggregate.quantile, "of": "each person's total in the group, clamped to the bounds",
            "candidates": GRID_STEPS + 1, "grid_step": (hi - lo) / GRID_STEPS,
            "ci95_half_width": "no closed-form interval"}
