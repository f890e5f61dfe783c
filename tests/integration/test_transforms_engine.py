"""Transforms run as SQL in the engine and give what an independent implementation gives."""

from __future__ import annotations

import hashlib
import hmac

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from commonground.domain.agreements import parse_transform
from commonground.policy.transforms import apply, hmac_sql, pseudonym_function
from sqlglot import exp


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=64), value=st.text(min_size=0, max_size=40))
def test_keyed_hash_is_rfc2104_hmac_sha256_truncated_to_128_bits(key, value):
    con = duckdb.connect()
    con.execute(f"CREATE MACRO pseudo(v) AS {hmac_sql(key, 'v')}")
    got = con.execute("SELECT pseudo($v)", {"v": value}).fetchone()[0]
    assert got == hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def test_other_transforms():
    con = duckdb.connect()
    column = exp.column("x")
    cases = [
        ({"transform": "generalize", "keep": 3}, "'12345'", "123"),
        ({"transform": "bucket", "width": 10}, "47", 40),
        ({"transform": "mask", "keep_last": 4}, "'4111111111111111'", "************1111"),
        ({"transform": "mask"}, "'secret'", "******"),
        ({"transform": "generalize", "to": "month"}, "DATE '2026-03-17'", "2026-03-01"),
    ]
    for spec, literal, expected in cases:
        sql = apply(parse_transform("t", spec), column, "ag1").sql("duckdb")
        value = con.execute(f"SELECT {sql} FROM (SELECT {literal} AS x)").fetchone()[0]
        assert str(value) == str(expected), (spec, value)
    assert pseudonym_function("Ab-12") == "cg_pseudonym_ab12"
