"""Releases a dp plan's bounded aggregates with OpenDP's Laplace mechanism, and chooses which
groups may be shown by Laplace thresholding on the noisy people count.

The plan (policy/dp.py) bounds each person to m groups, 1 per group in counts and a clamped
total in [lo, hi] per summed column, so the L1 sensitivity is m for the counts and
m * max(|lo|, |hi|) for each sum. The query's epsilon is split evenly between the count and each
sum; AVG is post-processing (noisy sum / noisy count). A group is shown only if its noisy count
reaches tau = 1 + b ln(m / 2 delta) (b the count's noise scale): a group that only one person
makes up is shown with probability at most delta, so the set of groups does not reveal them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import opendp.prelude as dp

from ..policy.dp import DpPlan

dp.enable_features("contrib")

Z95 = math.log(20)  # Laplace: P(|noise| > b ln 20) = 5%


def _laplace(values: Sequence[float], scale: float) -> list[float]:
    if not values:
        return []
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    return list(dp.m.make_laplace(*space, scale=scale)([float(v) for v in values]))


def release(plan: DpPlan, rows: Sequence[Sequence[Any]]) -> tuple[list[list[Any]], int, dict[str, Any]]:
    """(released rows, groups withheld by partition selection, what the result says about its noise)."""
    dims = len(plan.dimensions)
    measures = plan.measures
    share = plan.epsilon / (1 + len(measures))
    count_scale = plan.max_groups / share
    sum_scales = [plan.max_groups * max(abs(m.bounds[0]), abs(m.bounds[1])) / share for m in measures]  # type: ignore[index]
    counts = _laplace([r[dims] for r in rows], count_scale)
    sums = [_laplace([r[dims + 1 + j] or 0.0 for r in rows], scale) for j, scale in enumerate(sum_scales)]
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
            total = sums[j][i]
            j += 1
            if aggregate.kind == "sum":
                values.append(total)
            else:
                lo, hi = aggregate.bounds  # type: ignore[misc]
                values.append(min(max(total / max(counts[i], 1.0), lo), hi))
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
    return released, withheld, {
        "mechanism": "Laplace (OpenDP), Laplace-threshold partition selection",
        "epsilon_spent": plan.epsilon, "delta_spent": plan.delta, "max_groups_per_subject": plan.max_groups,
        "partition_threshold": None if math.isinf(threshold) else round(threshold, 3),
        "ci95_half_width": error_bars,
        "ci95_note": "count and sum: +/- the half-width; avg: noisy sum / noisy count, clamped to its bounds",
    }
