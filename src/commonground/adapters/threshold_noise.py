"""Seeded noise on the released groups of a threshold-mode query (policy/noise.py says which
values and at what scale).

Each draw is Laplace(0, scale) from NumPy's PCG64 generator, seeded by HMAC-SHA256 keyed with
the agreement's secret key over the value's canonical expression, the group's key values and
the group's sketch (the people and rows behind it). So the same aggregate over the same people
gets the same noise however the query is worded, and repeating it cannot average the noise
away; the key never enters SQL text, logs or results. Values are rewritten in the group table
before the output SELECT runs, so ORDER BY and LIMIT see only noisy values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

import duckdb
import numpy as np
import pyarrow as pa

from ..policy.context import GroupQuery
from ..policy.differencing import CELLS, KEY, Sketch
from ..policy.noise import AVG_COUNT, AVG_SUM, BlockNoise, NoisedValue

MECHANISM = "seeded Laplace perturbation (not differential privacy)"
_EMPTY = Sketch((0,) * CELLS, (0,) * CELLS, (0,) * CELLS)


def draw(salt: bytes, name: str, group_keys: str, sketch: Sketch, scale: float) -> float:
    """The noise for one value: deterministic in (key, name, group, people), else unpredictable."""
    message = b"\0".join([b"cg-threshold-noise", name.encode(), group_keys.encode(), sketch.to_bytes()])
    seed = int.from_bytes(hmac.new(salt, message, hashlib.sha256).digest(), "big")
    return float(np.random.Generator(np.random.PCG64(seed)).laplace(0.0, scale))


def perturb(con: duckdb.DuckDBPyConnection, table: str, group: GroupQuery, block: BlockNoise,
            sketches: Mapping[int, Sketch], salt: bytes) -> None:
    """Replace each released value of `table` that `block` names by its noisy value."""
    if not block.values:
        return
    keys = [f'"{KEY}{i}"' for i in range(group.sketch_keys)]
    inputs = [_inputs(value, block) for value in block.values]
    read = ", ".join(["rowid", *keys, *(f'"{c}"' for columns in inputs for c in columns)])
    rows = con.execute(f"SELECT {read} FROM {table} WHERE __cg_ok").fetchall()
    noisy: dict[str, list[Any]] = {"rid": []} | {value.column: [] for value in block.values}
    for row in rows:
        rowid, key_values, rest = row[0], row[1:1 + len(keys)], list(row[1 + len(keys):])
        group_keys = json.dumps([str(v) if v is not None else None for v in key_values])
        sketch = sketches.get(rowid, _EMPTY)
        noisy["rid"].append(rowid)
        for value, columns in zip(block.values, inputs):
            given = [rest.pop(0) for _ in columns]
            noisy[value.column].append(_noisy(value, given, salt, group_keys, sketch))
    con.register("cg_noise_arrow", pa.table(noisy))
    assignments = ", ".join(f'"{v.column}" = cg_noise_arrow."{v.column}"' for v in block.values)
    con.execute(f"UPDATE {table} SET {assignments} FROM cg_noise_arrow WHERE {table}.rowid = cg_noise_arrow.rid")
    con.unregister("cg_noise_arrow")


def _inputs(value: NoisedValue, block: BlockNoise) -> list[str]:
    """The group-table columns a value's noisy form is computed from."""
    if value.kind != "avg":
        return [value.column]
    j = [v for v in block.values if v.kind == "avg"].index(value)
    return [f"{AVG_SUM}{j}", f"{AVG_COUNT}{j}"]


def _noisy(value: NoisedValue, given: list[Any], salt: bytes, group_keys: str, sketch: Sketch) -> float | None:
    if given[0] is None:
        return None  # a SUM/AVG over no values: NULL says nothing about anyone
    total = float(given[0]) + draw(salt, value.seed_name, group_keys, sketch, value.scale)
    if value.kind != "avg":
        return total
    count = float(given[1]) + draw(salt, value.count_seed_name, group_keys, sketch, value.count_scale)
    return total / max(count, 1.0)  # post-processing: a noisy count under 1 would blow the mean up


def describe(blocks: tuple[BlockNoise, ...], columns: list[str]) -> dict[str, Any]:
    """What the result says about its noise: the mechanism and each noisy column's scale."""
    scales: dict[str, dict[str, float]] = {}
    for block in blocks:
        for value in block.values:
            scales.setdefault(value.column, value.describe())
    return {"mechanism": MECHANISM, "scales": {c: scales[c] for c in columns if c in scales}}
