"""Code-to-data's pure rules: agreement terms, the module's declarations, who reviews and
releases, and the disclosure checks over measured output facts."""

from __future__ import annotations

import pytest

from commonground.domain.agreements import AccessMode, parse_agreement
from commonground.domain.code import (AutoApprove, AutoRelease, CodeTerms, Decision, check_reviewer, code_hash,
                                      inspect_source, parse_code_terms, run_status, submission_status, unified_diff)
from commonground.domain.errors import BadInput, Refused
from commonground.policy.code_release import (CodeInput, CodePlan, OutputFacts, declaration_reasons,
                                              disclosure_reasons, value_checked_columns)
from commonground.policy.context import RelationView


def _doc(**access):
    return {"name": "m", "provider": "p", "recipients": ["r"], "purposes": ["analytics"], "valid_until": "2099-01-01",
            "datasets": {"p.d": {"fields": {"id": "raw"}}}, "access": {"min_group_size": 5, **access}}


def test_code_terms_parse_with_defaults_limits_and_rules():
    terms = parse_agreement(_doc(mode="code", auto_approve=["same_code_hash"], auto_release="checks_passed",
                                 cpu_seconds=5, max_output_rows=100))
    assert terms.mode is AccessMode.CODE and terms.code is not None
    assert terms.code.auto_approve == (AutoApprove.SAME_CODE_HASH,) and terms.code.auto_release == (AutoRelease.CHECKS_PASSED,)
    assert (terms.code.cpu_seconds, terms.code.max_output_rows, terms.code.memory_mb) == (5, 100, CodeTerms().memory_mb)
    assert terms.to_dict()["access"]["cpu_seconds"] == 5
    assert parse_agreement(terms.to_dict()) == terms  # round-trips through its document
    assert parse_agreement(_doc(mode="aggregate")).code is None


@pytest.mark.parametrize("access, message", [
    ({"mode": "code", "memory_mb": 0}, "memory_mb must be an integer from 1"),
    ({"mode": "code", "wall_seconds": 10**6}, "wall_seconds must be an integer from 1 to 7200"),
    ({"mode": "code", "cpu_seconds": True}, "cpu_seconds must be an integer"),
    ({"mode": "code", "auto_approve": ["anything_goes"]}, "unknown rule"),
    ({"mode": "aggregate", "auto_release": ["checks_passed"]}, "belong to access mode code"),
])
def test_bad_code_terms_are_named(access, message):
    with pytest.raises(BadInput, match=message):
        parse_agreement(_doc(**access))
    if access["mode"] == "code":  # the same check, on the access mapping alone
        with pytest.raises(BadInput, match=message):
            parse_code_terms(access)


def test_declarations_are_read_without_running_the_code():
    source = 'import os\nGROUP_BY = ["segment", "region"]\nCOUNT = "n"\ndef analysis(tables):\n    return tables["p.d"]\n'
    declared = inspect_source(source)
    assert declared.group_by == ("segment", "region") and declared.count == "n"
    assert "p.d" in declared.mentions and "segment" in declared.mentions
    assert code_hash(source) == code_hash(source) != code_hash(source + " ")


@pytest.mark.parametrize("source, message", [
    ("def analysis(:\n", "not valid Python: line 1"),
    ("GROUP_BY = []\n", "must define `def analysis"),
    ("GROUP_BY = []\ndef analysis():\n    pass\n", "must define `def analysis"),
    ("def analysis(t):\n    pass\n", "must declare GROUP_BY"),
    ("GROUP_BY = cols()\ndef analysis(t):\n    pass\n", "GROUP_BY must be a literal"),
    ("GROUP_BY = [1]\ndef analysis(t):\n    pass\n", "must declare GROUP_BY"),
    ("GROUP_BY = []\nCOUNT = 3\ndef analysis(t):\n    pass\n", "COUNT, if declared"),
    ("x = '" + "a" * 300_000 + "'\n", "at most 256 KiB"),
])
def test_malformed_modules_are_bad_input(source, message):
    with pytest.raises(BadInput, match=message):
        inspect_source(source)


def test_diff_names_both_hashes():
    diff = unified_diff("a = 1\n", "a = 2\n", "1" * 64, "2" * 64)
    assert diff.splitlines()[:2] == ["--- analysis@111111111111", "+++ analysis@222222222222"]
    assert "-a = 1" in diff and "+a = 2" in diff


def test_every_provider_approves_none_its_own_one_decision_each():
    reviewers = ("p1", "p2")
    assert submission_status(reviewers, {}) == "pending"
    assert submission_status(reviewers, {"p1": Decision.APPROVED}) == "pending"
    assert submission_status(reviewers, {"p1": Decision.APPROVED, "p2": Decision.APPROVED}) == "approved"
    assert submission_status(reviewers, {"p1": Decision.APPROVED, "p2": Decision.REJECTED}) == "rejected"
    with pytest.raises(Refused, match="own code"):
        check_reviewer("r", "r", reviewers, {})
    with pytest.raises(Refused, match="only the providers"):
        check_reviewer("x", "r", reviewers, {})
    with pytest.raises(Refused, match="already approved"):
        check_reviewer("p1", "r", reviewers, {"p1": Decision.APPROVED})
    check_reviewer("p2", "r", reviewers, {"p1": Decision.APPROVED})
    assert run_status(reviewers, frozenset({"p1"})) == "held"
    assert run_status(reviewers, frozenset({"p1", "p2"})) == "released"


PLAN = CodePlan(inputs=(CodeInput("p.d", RelationView("p.d", "SELECT 1"), ("member_id", "email", "segment", "spend"),
                                  ("member_id", "email")),),
                pseudonym_keys={}, agreements=("a",), providers=("p",), terms=CodeTerms(max_output_rows=10,
                                                                                        max_output_bytes=1000),
                min_group_size=5)


def test_group_columns_must_come_from_one_input():
    assert declaration_reasons(PLAN, inspect_source("GROUP_BY = ['segment']\ndef analysis(t):\n    pass\n")) == []
    reasons = declaration_reasons(PLAN, inspect_source("GROUP_BY = ['zip']\ndef analysis(t):\n    pass\n"))
    assert "one input holds together" in reasons[0] and "p.d: member_id, email, segment, spend" in reasons[0]


def test_disclosure_checks_each_rule():
    declared = inspect_source("GROUP_BY = ['segment']\nCOUNT = 'n'\ndef analysis(t):\n    pass\n")
    clean = OutputFacts(3, 500, ("segment", "n", "total"), 0, 20, 0, 20, {"total": 0}, {})
    assert disclosure_reasons(clean, declared, PLAN) == []
    assert value_checked_columns(clean.columns, declared, PLAN) == ("total",)
    cases = {
        "size: the output has 11 rows": OutputFacts(11, 500, clean.columns),
        "size: the output is 1,001 bytes": OutputFacts(3, 1001, clean.columns, 0, 20, 0, 20),
        "identifiers: output column(s) Email are named": OutputFacts(3, 500, (*clean.columns, "Email"), 0, 20, 0, 20),
        "identifiers: output column total holds 2 value(s)": OutputFacts(3, 500, clean.columns, 0, 20, 0, 20, {"total": 2}),
        "groups: declared column(s) n are not in the output": OutputFacts(3, 500, ("segment", "total")),
        "groups: 2 output rows repeat": OutputFacts(3, 500, clean.columns, 2, 20, 0, 20),
        "groups: an output row's group has fewer than 5 people": OutputFacts(3, 500, clean.columns, 0, 4, 0, 20),
        "groups: declared count column n has a group of fewer than 5": OutputFacts(3, 500, clean.columns, 0, 20, 0, 3),
        "groups: 1 rows declare more people": OutputFacts(3, 500, clean.columns, 0, 20, 1, 20),
        "shape: output column total is INTEGER[]": OutputFacts(3, 500, clean.columns, unscalar={"total": "INTEGER[]"}),
        "size: the output has 300 columns": OutputFacts(3, 500, tuple(f"c{i}" for i in range(300))),
        "personal data: output column total holds values that look like email":
            OutputFacts(3, 500, clean.columns, 0, 20, 0, 20, {}, {"total": "email"}),
    }
    for expected, facts in cases.items():
        reasons = disclosure_reasons(facts, declared, PLAN)
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)


def test_a_group_column_that_is_an_identifier_is_still_value_checked():
    declared = inspect_source("GROUP_BY = ['member_id']\ndef analysis(t):\n    pass\n")
    assert value_checked_columns(("member_id", "x"), declared, PLAN) == ("member_id", "x")
