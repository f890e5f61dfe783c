"""Keyed pseudonyms in DuckDB through the native HMAC-SHA256 (`_keyed_hash.c`), with the SQL form as fallback.

A pseudonym is the HMAC truncated to 128 bits: 32 lowercase hex characters (`PSEUDONYM_HEX`),
the C function writing only those, so nothing is sliced here.

`policy.transforms.hmac_sql` spells HMAC-SHA256 in SQL over DuckDB's software SHA-256: four
compressions per row plus string work, most of an export's time. The native function does the
same HMAC over OpenSSL (two compressions per row, the key's midstates computed once) on
DuckDB's Arrow chunks without the GIL. Both give the same lowercase hex for the same key and
value (tests/unit/test_keyed_hash.py checks them against Python's `hmac`); the Spark engine and
`subject_data` keep the SQL form.

The key is bound into a Python closure, never written into SQL text: the SQL only names the
function, as with the macro.
"""

from __future__ import annotations

import array
import logging
from typing import Callable

import duckdb
import pyarrow as pa

from ..policy.transforms import PSEUDONYM_HEX, hmac_sql

try:
    from . import _keyed_hash
except ImportError:  # the C extension did not build (no compiler or libcrypto headers): SQL form
    _keyed_hash = None  # type: ignore[assignment]
    logging.getLogger(__name__).warning("native keyed hash not built; pseudonyms use the SQL form")

_PIECE = 1 << 16  # rows per native call; DuckDB passes chunks of at most 2048
# One offsets buffer 0, 32, 64, ... shared by every result: a prefix of it fits any piece. Made
# from a C int array, not `pa.array(range(...))`: Arrow's inference from a Python sequence imports
# pandas (~0.5 s), which every query process then paid on its first query.
if array.array("i").itemsize != 4:  # Arrow's string offsets are 32-bit
    raise ImportError("the keyed hash needs a 32-bit C int")
_OFFSETS = pa.py_buffer(array.array("i", range(0, PSEUDONYM_HEX * (_PIECE + 1), PSEUDONYM_HEX)))


def pseudonymiser(key: bytes) -> Callable[[pa.Array | pa.ChunkedArray], pa.ChunkedArray]:
    """The Arrow function: string values -> their pseudonyms under `key` (hex HMAC-SHA256 truncated
    to 128 bits), nulls kept null."""
    if _keyed_hash is None:
        raise RuntimeError("the native keyed hash is not built")
    if len(key) > 64:
        raise ValueError("pseudonym keys are at most 64 bytes")
    hmac_hex = _keyed_hash.hmac_sha256_128_hex

    def piece(values: pa.Array) -> pa.Array:
        validity, offsets, data = values.buffers()
        hexes, bitmap = hmac_hex(key, len(values), values.offset, validity if values.null_count else None,
                                 offsets, data if data is not None else b"")
        return pa.StringArray.from_buffers(len(values), _OFFSETS.slice(0, 4 * (len(values) + 1)), pa.py_buffer(hexes),
                                           None if bitmap is None else pa.py_buffer(bitmap), values.null_count)

    def pseudonyms(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        return pa.chunked_array([piece(chunk.cast(pa.string()).slice(start, _PIECE))
                                 for chunk in chunks for start in range(0, len(chunk), _PIECE)], pa.string())

    return pseudonyms


def define_pseudonym(con: duckdb.DuckDBPyConnection, name: str, key: bytes) -> None:
    """Define the engine's pseudonym function `name(v)` for one key.

    The macro casts to VARCHAR before hashing, as the SQL form does, so integers, dates and
    the rest hash the text DuckDB gives them either way.
    """
    if _keyed_hash is None:
        con.execute(f"CREATE MACRO {name}(v) AS {hmac_sql(key, 'v')}")
        return
    con.create_function(f"{name}__native", pseudonymiser(key), ["VARCHAR"], "VARCHAR", type="arrow")
    con.execute(f"CREATE MACRO {name}(v) AS {name}__native(CAST(v AS VARCHAR))")
