"""Governor fixture cases, in the spirit of sqlglot's optimizer fixtures.

Each YAML file in tests/fixtures/governor/ (except context.yaml, the shared catalog and
agreements) lists cases: a query and a context name, and either the expected rewrite (views,
the per-group SQL with its row-count bound and exact forms, the output SQL, all compared
pretty-printed) or the expected refusal (rule prefixes of the reasons, and fragments the
reasons mention), `not_found: true` or `bad_input: true`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
import yaml

from commonground.domain.errors import BadInput, NotFound, Refused
from commonground.policy.governor import govern

GOVERNOR_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "governor"


def _cases() -> list:
    params = []
    for path in sorted(GOVERNOR_FIXTURES.glob("*.yaml")):
        if path.name == "context.yaml":
            continue
        for case in yaml.safe_load(path.read_text()):
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def _pretty(sql: str) -> str:
    return sqlglot.transpile(sql, read="duckdb", write="duckdb", pretty=True)[0]


@pytest.mark.parametrize("case", _cases())
def test_governor_fixture(case, governor_context):
    ctx = governor_context(case["context"])
    if case.get("not_found"):
        with pytest.raises(NotFound):
            govern(case["sql"], ctx)
        return
    if case.get("bad_input"):
        with pytest.raises(BadInput):
            govern(case["sql"], ctx)
        return
    if "refused" in case:
        with pytest.raises(Refused) as refusal:
            govern(case["sql"], ctx)
        reasons = refusal.value.reasons
        for prefix in case["refused"]:
            assert any(r.startswith(prefix) for r in reasons), f"no reason starts with {prefix!r}: {reasons}"
        for fragment in case.get("mentions", []):
            assert any(fragment in r for r in reasons), f"no reason mentions {fragment!r}: {reasons}"
        return
    plan = govern(case["sql"], ctx)
    assert list(plan.columns) == case["columns"]
    assert _pretty(plan.sql) == case["output"].strip()
    if "groups" not in case:
        assert not plan.governed
        return
    assert plan.min_group_size == case["min_group_size"]
    for dataset, expected in case.get("views", {}).items():
        view = next(v for v in plan.views if v.dataset == dataset)
        assert _pretty(view.select_sql) == expected.strip(), f"view {dataset}"
    assert len(plan.groups) == len(case["groups"])
    for group, expected in zip(plan.groups, case["groups"]):
        assert (group.fast_sql and _pretty(group.fast_sql)) == (expected["fast"] and expected["fast"].strip())
        assert _pretty(group.exact_sql) == expected["exact"].strip()
