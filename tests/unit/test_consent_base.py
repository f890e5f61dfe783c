"""The consent gate as the engine applies it: a derived base plus the changes since, exactly.

The reference is computed in Python from the consent history; the engine's answer must equal it
for opt-in and opt-out, several rows per subject, a base built at any point of the history and
any changes (grants and withdrawals) after it. A base whose header does not match is rebuilt,
never read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonground.adapters import consent_base
from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.errors import BadInput
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern
from commonground.ports import ConsentGate, ConsentSnapshot
from commonground.services.consent import _changes

PURPOSE = "analytics.reporting"
SHA = "0" * 64
ENGINE = DuckDBEngine(threads=1, memory_limit="256MB")


def _schema(mode: str):
    return parse_schema({"consent": mode, "columns": {
        "sid": {"type": "string", "role": "subject_id"}, "v": {"type": "integer"}, "g": {}}})


def _write(path: Path, rows: list[tuple[str, int, str]]) -> Path:
    con = duckdb.connect()
    values = ", ".join(f"('{s}', {v}, '{g}')" for s, v, g in rows) or "('x', 0, 'a')"
    where = "" if rows else " WHERE false"
    con.execute(f"COPY (SELECT * FROM (VALUES {values}) t(sid, v, g){where}) TO '{path}' (FORMAT parquet)")
    return path


def _own(mode: str, sql: str):
    table = TableInfo("retailer", "people", _schema(mode), 0, None, mode)
    return govern(sql, QueryContext("retailer", PURPOSE, {"retailer.people": table}))


def _state(history: list[tuple[str, str]]) -> dict[str, str]:
    state: dict[str, str] = {}
    for subject, status in history:
        state[subject] = status
    return state


def _snapshot_subjects(history: list[tuple[str, str]], mode: str) -> list[str]:
    wanted = "granted" if mode == "opt_in" else "withdrawn"
    return sorted(s for s, status in _state(history).items() if status == wanted)


def _admitted(state: dict[str, str], subject: str, mode: str) -> bool:
    return state.get(subject) == "granted" if mode == "opt_in" else state.get(subject) != "withdrawn"


def _records(history: list[tuple[str, str]], start: int) -> list:
    return [(start + n + 1, s, status, None) for n, (s, status) in enumerate(history)]


def _gate(tmp: Path, mode: str, seq: int, history: list[tuple[str, str]], build: bool, reload=None) -> ConsentGate:
    """What services.consent.gate hands the engine: base as of `seq` records, changes after it."""
    base = tmp / f"{PURPOSE}.{mode}.{seq}.parquet"
    snapshot = ConsentSnapshot(seq, _snapshot_subjects(history[:seq], mode)) if build else None
    return ConsentGate(mode, PURPOSE, SHA, base, seq, _changes(_records(history[seq:], seq)), snapshot, reload)


subjects = st.sampled_from([f"S{i}" for i in range(12)])
histories = st.lists(st.tuples(subjects, st.sampled_from(["granted", "withdrawn"])), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["opt_in", "opt_out"]),
       rows=st.lists(st.tuples(subjects, st.integers(-50, 50), st.sampled_from(["a", "b"])), max_size=40),
       history=histories, cuts=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=4))
def test_gated_result_equals_the_reference(tmp_path_factory, mode, rows, history, cuts):
    tmp = tmp_path_factory.mktemp("gate")
    data = _write(tmp / "data.parquet", rows)
    plan = _own(mode, "SELECT g, COUNT(*) AS n, SUM(v) AS total, COUNT(DISTINCT sid) AS people FROM retailer.people GROUP BY g")
    for a, b in cuts:
        # A base built after `base_at` records, a query after `query_at` (the changes between).
        base_at, query_at = sorted((round(a * len(history)), round(b * len(history))))
        seen = history[:query_at]
        state = _state(seen)
        expected: dict[str, list] = {}
        for s, v, g in rows:
            if _admitted(state, s, mode):
                e = expected.setdefault(g, [0, 0, set()])
                e[0] += 1
                e[1] += v
                e[2].add(s)
        build = not (tmp / f"{PURPOSE}.{mode}.{base_at}.parquet").exists()
        gate = _gate(tmp, mode, base_at, seen, build)
        got = ENGINE.run(plan, {"retailer.people": data}, {"retailer.people": gate}).rows
        assert {r[0]: (r[1], r[2], r[3]) for r in got} == {g: (n, t, len(p)) for g, (n, t, p) in expected.items()}


@pytest.mark.parametrize("mode", ["opt_in", "opt_out"])
def test_joined_views_are_each_gated(tmp_path, mode):
    rows = [(f"S{i}", i, "ab"[i % 2]) for i in range(10) for _ in range(3)]
    data = _write(tmp_path / "data.parquet", rows)
    history = [(f"S{i}", "granted" if i % 3 else "withdrawn") for i in range(10)] + [("S1", "withdrawn"), ("S3", "granted")]
    plan = _own(mode, "SELECT COUNT(*) AS n FROM retailer.people a JOIN retailer.people b ON a.sid = b.sid")
    got = ENGINE.run(plan, {"retailer.people": data}, {"retailer.people": _gate(tmp_path, mode, 10, history, True)}).rows
    state = _state(history)
    admitted = [s for s in {r[0] for r in rows} if _admitted(state, s, mode)]
    assert got == [[len(admitted) * 9]]


def test_a_gated_view_without_a_gate_does_not_run(tmp_path):
    data = _write(tmp_path / "data.parquet", [("S1", 1, "a")])
    with pytest.raises(BadInput, match="consent"):
        ENGINE.run(_own("opt_out", "SELECT COUNT(*) FROM retailer.people"), {"retailer.people": data})


def _tamper_header(path: Path, **changes) -> None:
    """Rewrite a base keeping its rows, with header fields changed."""
    header = consent_base.read_header(path)
    header.pop("footer_rows")
    header.update(changes)
    meta = json.dumps(header).replace("'", "''")
    tmp = path.with_suffix(".rewrite")
    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet('{path}')) TO '{tmp}' (FORMAT parquet, "
                             f"KV_METADATA {{'{consent_base.HEADER_KEY.decode()}': '{meta}'}})")
    shutil.move(tmp, path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing", "other_seq", "other_version", "other_purpose",
                                    "row_count", "no_header"])
def test_a_stale_or_corrupt_base_is_rebuilt_never_trusted(tmp_path, damage):
    rows = [(f"S{i}", i, "a") for i in range(20)]
    data = _write(tmp_path / "data.parquet", rows)
    history = [(f"S{i}", "withdrawn") for i in range(5)]
    plan = _own("opt_out", "SELECT COUNT(*) AS n FROM retailer.people")
    sources = {"retailer.people": data}
    assert ENGINE.run(plan, sources, {"retailer.people": _gate(tmp_path, "opt_out", 5, history, True)}).rows == [[15]]
    base = tmp_path / f"{PURPOSE}.opt_out.5.parquet"
    assert consent_base.is_valid(base, SHA, PURPOSE, "opt_out", 5)
    if damage == "garbage":
        base.write_bytes(b"PAR1 not a parquet file PAR1")
    elif damage == "truncated":
        base.write_bytes(base.read_bytes()[:-100])
    elif damage == "missing":
        base.unlink()
    elif damage == "other_seq":  # a base of an older state, renamed as the current one
        _tamper_header(base, seq=4)
    elif damage == "other_version":
        _tamper_header(base, source_sha256="1" * 64)
    elif damage == "other_purpose":
        _tamper_header(base, purpose="marketing.advertising")
    elif damage == "row_count":
        _tamper_header(base, rows=16)
    elif damage == "no_header":
        duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet('{data}')) TO '{base}' (FORMAT parquet)")
    assert not consent_base.is_valid(base, SHA, PURPOSE, "opt_out", 5)
    # Without a way to rebuild, the query does not run on it.
    with pytest.raises(BadInput, match="consent base"):
        ENGINE.run(plan, sources, {"retailer.people": _gate(tmp_path, "opt_out", 5, history, False)})
    # With one, the engine asks for a fresh snapshot and rebuilds.
    reloads = []

    def reload():
        reloads.append(1)
        return _gate(tmp_path, "opt_out", 5, history, True)
    assert ENGINE.run(plan, sources, {"retailer.people": _gate(tmp_path, "opt_out", 5, history, False, reload)}).rows == [[15]]
    assert reloads == [1]
    assert consent_base.is_valid(base, SHA, PURPOSE, "opt_out", 5)
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_base_is_only_readable_by_its_query(tmp_path):
    """The engine may read the data and the base, nothing else: the base adds no other path."""
    data = _write(tmp_path / "data.parquet", [("S1", 1, "a")])
    other = _write(tmp_path / "other.parquet", [("S2", 2, "b")])
    gate = _gate(tmp_path, "opt_out", 0, [], True)
    own = _own("opt_out", "SELECT COUNT(*) AS n FROM retailer.people")
    assert ENGINE.run(own, {"retailer.people": data}, {"retailer.people": gate}).rows == [[1]]
    con = ENGINE._connect([data, gate.base])
    try:
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT * FROM read_parquet('{other}')").fetchall()
        assert con.execute(f"SELECT count(*) FROM read_parquet('{gate.base}')").fetchone() == (1,)
    finally:
        con.close()
