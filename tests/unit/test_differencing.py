"""The differencing sketch (policy/differencing.py): built from (cell, rows, sum x, sum x^2) as
the engine aggregates them, from random people, and checked against the true number of people
whose rows differ."""

from __future__ import annotations

import random

import pytest

from commonground.policy.differencing import (CELLS, DUCKDB_HASH, SPARK_XXHASH64, Released, Sketch,
                                              candidate_window, differencing_reasons, people_apart,
                                              released_groups)


def _sketch(rows_by_person: dict[int, int], scheme: int = DUCKDB_HASH) -> Sketch:
    """What the engine computes: each person x with r rows adds (r, r*x, r*x^2) to cell x % CELLS."""
    cells = [(x % CELLS, r, r * x, r * x * x) for x, r in rows_by_person.items()]
    return Sketch.from_cells(cells, scheme)


def _people(n: int, rng: random.Random) -> dict[int, int]:
    return {rng.getrandbits(32): rng.randint(1, 9) for _ in range(n)}


@pytest.mark.parametrize("seed", range(20))
def test_small_differences_are_counted_exactly_and_large_ones_reach_k(seed):
    rng = random.Random(seed)
    base = _people(2000, rng)
    removed = rng.randint(1, 9)
    fewer = dict(list(base.items())[removed:])
    assert people_apart(_sketch(base), _sketch(fewer), 10) == removed
    many = dict(list(base.items())[50:])
    assert people_apart(_sketch(base), _sketch(many), 10) >= 10


def test_one_persons_changed_row_count_is_one_person():
    rng = random.Random(7)
    base = _people(500, rng)
    changed = dict(base)
    someone = next(iter(changed))
    changed[someone] += 3
    assert people_apart(_sketch(base), _sketch(changed), 5) == 1
    assert people_apart(_sketch(base), _sketch(dict(base)), 5) == 0


def test_bytes_round_trip_and_sums_wrap():
    sketch = _sketch({(1 << 32) - 1: 10_000_000, 5: 1})
    assert Sketch.from_bytes(sketch.to_bytes()) == sketch
    assert Sketch.from_bytes(_sketch({3: 1}, SPARK_XXHASH64).to_bytes()).scheme == SPARK_XXHASH64


def test_a_total_beside_its_groups_is_refused_and_disjoint_groups_pass():
    rng = random.Random(3)
    a, b = _people(300, rng), _people(300, rng)
    lonely = {rng.getrandbits(32): 1}
    total = _sketch({**a, **b, **lonely})
    groups = [_sketch(a), _sketch(b)]  # the lonely person's group was suppressed
    assert differencing_reasons(released_groups([groups]), [], 10) == []
    reasons = differencing_reasons(released_groups([groups, [total]]), [], 10)
    assert reasons and reasons[0].startswith("differencing:")
    earlier = [Released(total, "your query at ledger entry 4")]
    assert "ledger entry 4" in differencing_reasons(released_groups([groups]), earlier, 10)[0]


def test_sketches_of_different_engines_are_not_compared():
    people = _people(100, random.Random(1))
    fewer = dict(list(people.items())[1:])
    assert differencing_reasons([Released(_sketch(people), "this query")],
                                [Released(_sketch(fewer, SPARK_XXHASH64), "x")], 5) == []


@pytest.mark.parametrize("seed", range(30))
def test_the_row_count_window_never_drops_a_group_within_k_people(seed):
    """History prefilter soundness: whenever two groups (each person <= their bound of rows)
    differ by the rows of 1..k-1 people, the earlier one's row count is inside the new one's
    window, so it is read and compared."""
    rng = random.Random(seed)
    k = rng.randint(2, 12)
    bound_new, bound_old = rng.randint(1, 9), rng.randint(1, 9)
    old = {rng.getrandbits(32): rng.randint(1, bound_old) for _ in range(rng.randint(k, 300))}
    new = dict(old)
    for person in rng.sample(list(old), rng.randint(1, k - 1)):  # change, drop or swap a few people
        action = rng.choice(["change", "drop", "swap"])
        if action == "drop":
            del new[person]
        elif action == "swap":
            del new[person]
            new[rng.getrandbits(32)] = rng.randint(1, bound_new)
        else:
            new[person] = rng.randint(1, min(bound_new, bound_old))
    apart = sum(old.get(p) != new.get(p) for p in {*old, *new})  # the true number, not the sketch's bound
    earlier = Released(_sketch(old), "earlier", bound_old)
    group = Released(_sketch(new), "this query", bound_new)
    lo, hi = candidate_window(group, bound_old, k)
    if apart < k:
        assert lo <= earlier.rows <= hi
    else:  # only groups >= k people apart may fall outside, and those the check would pass
        assert apart * max(bound_new, bound_old) >= abs(group.rows - earlier.rows)


def test_a_group_of_unknown_bound_reads_the_whole_history():
    assert candidate_window(Released(_sketch({1: 3}), "this query", None), 5, 10) is None
    assert candidate_window(Released(_sketch({1: 3, 2: 4}), "this query", 2), None, 10) == (7 - 18, 7 + 18)


def test_block_totals_carry_the_blocks_bound():
    a, b = _sketch({1: 2}), _sketch({2: 3})
    released = released_groups([[a, b], [a]], [4])
    assert [(r.rows, r.row_bound) for r in released] == [(2, 4), (3, 4), (2, None), (5, 4)]
