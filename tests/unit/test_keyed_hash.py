"""The native keyed hash gives the pseudonyms the SQL form and Python's `hmac` give, byte for byte.

A pseudonym is HMAC-SHA256 truncated to 128 bits: the first 32 hex characters of Python's
`hmac.new(key, value, "sha256").hexdigest()`.

Three spellings of one function must agree or pseudonyms stop linking across engines (DuckDB
native, the SQL macro kept by Spark and `subject_data`, and `hmac` used to trace leaked exports):
for any unicode text (empty included), any key of 1..64 bytes, NULLs, sliced Arrow arrays and
non-text inputs that DuckDB casts to VARCHAR first.
"""

from __future__ import annotations

import hmac

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonground.adapters import keyed_hash
from commonground.policy.transforms import hmac_sql


def test_the_extension_is_built() -> None:
    # Imported directly, not through keyed_hash's fallback: where setup.py should have built it
    # (a compiler and libssl-dev, as .ci/run installs), its absence is a failure, not a skip.
    from commonground.adapters import _keyed_hash

    assert keyed_hash._keyed_hash is _keyed_hash  # and the engine's pseudonyms use it


def _expected(key: bytes, values: list[str | None]) -> list[str | None]:
    return [None if v is None else hmac.new(key, v.encode(), "sha256").hexdigest()[:32] for v in values]


def _connection(key: bytes) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    keyed_hash.define_pseudonym(con, "native_p", key)
    con.execute(f"CREATE MACRO sql_p(v) AS {hmac_sql(key, 'v')}")
    return con


@settings(max_examples=80, deadline=None)
@given(key=st.binary(min_size=1, max_size=64),
       values=st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=40),
       start=st.integers(min_value=0, max_value=9))
def test_native_sql_and_python_agree(key: bytes, values: list[str | None], start: int) -> None:
    array = pa.array(values, pa.string()).slice(min(start, len(values)))  # a non-zero array offset too
    wanted = _expected(key, array.to_pylist())
    assert keyed_hash.pseudonymiser(key)(array).to_pylist() == wanted
    con = _connection(key)
    con.register("vals", pa.table({"i": pa.array(range(len(array))), "v": array}))
    rows = con.execute("SELECT native_p(v), sql_p(v) FROM vals ORDER BY i").fetchall()
    assert [r[0] for r in rows] == wanted
    assert [r[1] for r in rows] == wanted


def test_other_types_hash_their_varchar_text_as_the_sql_form_does() -> None:
    con = _connection(b"k" * 32)
    for value in ("42", "-7::BIGINT", "DATE '2024-02-29'", "TIMESTAMP '2024-01-02 03:04:05'", "1.5::DOUBLE",
                  "3.10::DECIMAL(5, 2)", "true", "NULL", "''", "'Zoë'"):
        native, sql = con.execute(f"SELECT native_p({value}), sql_p({value})").fetchone()
        assert native == sql, value
    assert con.execute("SELECT native_p(NULL)").fetchone()[0] is None
    native, sql = con.execute("SELECT list(native_p(i) ORDER BY i), list(sql_p(i) ORDER BY i) FROM range(5000) t(i)").fetchone()
    assert native == sql and len(set(native)) == 5000


def test_without_the_extension_the_sql_form_is_defined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyed_hash, "_keyed_hash", None)
    con = _connection(b"key")
    assert not con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'native_p__native'").fetchone()[0]
    assert con.execute("SELECT native_p('x'), native_p(NULL)").fetchone() == (_expected(b"key", ["x"])[0], None)


def test_the_key_is_in_no_sql_text() -> None:
    key = bytes(range(1, 33))
    con = _connection(key)
    macro = con.execute("SELECT macro_definition FROM duckdb_functions() WHERE function_name = 'native_p'").fetchone()[0]
    pads = [bytes(b ^ pad for b in key.ljust(64, b"\0")).hex() for pad in (0x36, 0x5C)]
    assert "native_p__native" in macro and not any(p in macro for p in pads) and key.hex() not in macro


def test_keys_over_64_bytes_and_malformed_arrays_are_refused() -> None:
    from commonground.adapters import _keyed_hash

    with pytest.raises(ValueError, match="at most 64 bytes"):
        keyed_hash.pseudonymiser(b"k" * 65)
    with pytest.raises(ValueError, match="at most 64 bytes"):
        _keyed_hash.hmac_sha256_128_hex(b"k" * 65, 0, 0, None, b"\0" * 4, b"")
    offsets = pa.array([0, 3, 99], pa.int32()).buffers()[1]  # the second value ends past the data
    with pytest.raises(ValueError, match="out of range"):
        _keyed_hash.hmac_sha256_128_hex(b"k", 2, 0, None, offsets, b"abc")
    with pytest.raises(ValueError, match="shorter than the array"):
        _keyed_hash.hmac_sha256_128_hex(b"k", 3, 0, None, offsets, b"abc")
