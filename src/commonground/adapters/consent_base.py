"""The consent base: a derived, rebuildable copy of a dataset version's rows whose subjects may be
used for one purpose, as of one consent record sequence number.

A consent-gated view reads the base instead of the version's file, so the gate costs nothing
per row when nothing has changed since (the copy is smaller than the data, not a join); changes
recorded after the base's seq are applied on top by the engine as a small delta. Each base
carries a header in its Parquet key-value metadata (format, the version's SHA-256, purpose,
mode, seq, row count); a base whose header or row count does not match what the query expects
is never read, it is rebuilt. Bases are written to a temporary file and renamed into place,
so a reader sees a whole base or none.

Flags (one boolean per data row read with POSITIONAL JOIN, or a bitmap tested per row) were
measured too and cost 1.6-4x the ungated aggregate: see docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = 1
HEADER_KEY = b"commonground.consent_base"
ROW_GROUP_SIZE = 122_880


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def header(source_sha256: str, purpose: str, mode: str, seq: int, rows: int) -> dict:
    return {"format": FORMAT, "source_sha256": source_sha256, "purpose": purpose, "mode": mode,
            "seq": int(seq), "rows": int(rows)}


def read_header(path: Path) -> dict | None:
    """The base's header, with the row count its Parquet footer declares; None if unreadable."""
    try:
        meta = pq.read_metadata(path)
        raw = (meta.metadata or {}).get(HEADER_KEY)
        if raw is None:
            return None
        found = json.loads(raw)
        if not isinstance(found, dict):
            return None
        return {**found, "footer_rows": meta.num_rows}
    except (OSError, ValueError, pa.ArrowException):
        return None


def is_valid(path: Path, source_sha256: str, purpose: str, mode: str, seq: int) -> bool:
    """Whether `path` is a whole base of this version, purpose, mode and seq."""
    found = read_header(path)
    if found is None:
        return False
    rows = found.pop("footer_rows")
    expected = {"format": FORMAT, "source_sha256": source_sha256, "purpose": purpose, "mode": mode, "seq": int(seq)}
    return all(found.get(k) == v for k, v in expected.items()) and found.get("rows") == rows


def consented_predicate(subject: str, mode: str, members: str) -> str:
    """Rows of subjects who may be used: in the granted set (opt_in), not in the withdrawn one (opt_out).
    Subjects compare as text, as consent records name them."""
    test = f"CAST({ident(subject)} AS VARCHAR) IN (SELECT subject FROM {members})"
    return test if mode == "opt_in" else f"NOT {test}"


def build(source: Path, dest: Path, subject: str, mode: str, purpose: str, source_sha256: str, seq: int,
          subjects: Iterable[str], config: dict[str, object]) -> int:
    """Write the base for `subjects` (opt_in: granted; opt_out: withdrawn) to `dest`; returns its rows."""
    if mode not in ("opt_in", "opt_out"):
        raise ValueError(f"unknown consent mode {mode!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False, **config})
    try:
        con.execute("SET allowed_paths = $paths", {"paths": [str(source.resolve()), str(tmp.resolve())]})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.register("cg_arrow", pa.table({"subject": pa.array(list(subjects), pa.string())}))
        con.execute("CREATE TEMP TABLE cg_members AS SELECT DISTINCT subject FROM cg_arrow")
        con.unregister("cg_arrow")
        keep = f"SELECT * FROM read_parquet({_quote(source.resolve())}) WHERE {consented_predicate(subject, mode, 'cg_members')}"
        rows = con.execute(f"SELECT count(*) FROM ({keep})").fetchone()[0]
        meta = json.dumps(header(source_sha256, purpose, mode, seq, rows)).replace("'", "''")
        con.execute(f"COPY ({keep}) TO {_quote(tmp.resolve())} (FORMAT parquet, COMPRESSION zstd, "
                    f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}, KV_METADATA {{'{HEADER_KEY.decode()}': '{meta}'}})")
        con.close()
        if not is_valid(tmp, source_sha256, purpose, mode, seq):
            raise RuntimeError(f"consent base {dest.name} failed its check after writing")
        os.replace(tmp, dest)
        return rows
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
