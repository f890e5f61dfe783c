"""One subject's rows in a dataset version: the store's own reads and rewrites, not a party's query.

Subject access, offers (the values an offer was computed from) and erasure need the rows of
named subjects. These are trusted service-side operations, so they do not go through the
governor; they run in a DuckDB connection that may read only the one file it is given (and,
for erasure, write only the new version's temporary file).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import duckdb

from ..domain.errors import BadInput
from ..domain.schema import PERSON_NUMBER_COLUMN, UNIT_HASH_COLUMN
from ..ports import IngestedFile
from .ingest import ParquetIngest, _ident, _quote, has_hidden_column, publish


def members_path(path: Path) -> Path:
    """Where a purged version keeps its distinct subject ids: beside its (deleted) data file."""
    return path.with_name(f"{path.stem}.members.parquet")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


class SubjectData:
    def __init__(self, ingest: ParquetIngest):
        self.ingest = ingest

    def _connect(self, readable: Iterable[Path], writable: Path | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                 "autoload_known_extensions": False, "threads": 2})
        paths = [str(Path(p).resolve()) for p in readable] + ([str(writable.resolve())] if writable else [])
        con.execute("SET allowed_paths = $paths", {"paths": paths})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def rows(self, path: Path, subject_column: str, subjects: list[str], columns: list[str] | None = None,
             limit_per_subject: int = 1000) -> dict[str, list[dict[str, Any]]]:
        """The rows of each named subject (all columns, or `columns`), at most `limit_per_subject` each."""
        if not subjects:
            return {}
        import pyarrow as pa  # only these reads need Arrow; keep it off every command's start-up

        con = self._connect([path])
        try:
            con.register("cg_wanted", pa.table({"s": pa.array(sorted(set(subjects)), pa.string())}))
            names = ", ".join(_ident(c) for c in (columns or []))
            # All columns: the declared ones, not this read's helpers or the version's hidden columns.
            hidden = ", ".join(f"'{c}'" for c in ("__cg_n", "__cg_s", UNIT_HASH_COLUMN, PERSON_NUMBER_COLUMN))
            select = f"{names}" if columns else f"COLUMNS(lambda c: c NOT IN ({hidden}))"
            cursor = con.execute(
                f"SELECT __cg_s, {select} FROM (SELECT *, {_ident(subject_column)} AS __cg_s, row_number() OVER "
                f"(PARTITION BY {_ident(subject_column)}) AS __cg_n FROM read_parquet({_quote(path)}) "
                f"WHERE {_ident(subject_column)} IN (SELECT s FROM cg_wanted)) WHERE __cg_n <= {int(limit_per_subject)}")
            header = [d[0] for d in cursor.description][1:]
            out: dict[str, list[dict[str, Any]]] = {}
            for row in cursor.fetchall():
                out.setdefault(row[0], []).append({k: _plain(v) for k, v in zip(header, row[1:])})
            return out
        finally:
            con.close()

    def holds(self, files: list[tuple[Path, str]], subject: str) -> list[bool]:
        """For each (file, subject column): does it hold rows of `subject`? One connection for all.

        A purged version is answered from its members file; a version with neither file (deleted
        by hand) counts as holding the subject, so a receipt may over-state, never under-state."""
        if not files:
            return []
        readable = [p for path, _ in files for p in (path, members_path(path)) if p.exists()]
        con = self._connect(readable)
        try:
            tests = []
            for path, column in files:
                if path.exists():
                    tests.append(f"EXISTS (SELECT 1 FROM read_parquet({_quote(path)}) WHERE {_ident(column)} = $s)")
                elif members_path(path).exists():
                    tests.append(f"EXISTS (SELECT 1 FROM read_parquet({_quote(members_path(path))}) "
                                 "WHERE subject = CAST($s AS VARCHAR))")
                else:
                    tests.append("true")
            return [bool(v) for v in con.execute(f"SELECT {', '.join(tests)}", {"s": subject}).fetchone()]
        finally:
            con.close()

    def _scratch(self, kind: str) -> Path:
        """A fresh temporary Parquet path in the store's tmp/ (swept on open if a crash leaves it)."""
        self.ingest.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.ingest.tmp_dir / f"{kind}-{uuid.uuid4().hex}.parquet"

    def purge(self, path: Path, subject_column: str | None) -> None:
        """Delete a superseded version's data file, keeping only who was in it (its distinct subject
        ids, for people's receipts). The members file is written whole before the data goes, so a
        crash leaves the version readable or purged, never neither."""
        if not path.exists():
            return
        if subject_column is not None:
            members = members_path(path)
            tmp = self._scratch("members")
            con = self._connect([path], tmp)
            try:
                con.execute(f"COPY (SELECT DISTINCT CAST({_ident(subject_column)} AS VARCHAR) AS subject FROM "
                            f"read_parquet({_quote(path)}) WHERE {_ident(subject_column)} IS NOT NULL ORDER BY 1) "
                            f"TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)")
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            finally:
                con.close()
            tmp.replace(members)
        path.unlink()

    def without(self, path: Path, subject_column: str, subject: str, dest: Path, schema) -> IngestedFile:
        """A new version file: the same rows minus the subject's, written whole or not at all. The
        rows keep their order and their people's numbers (the gap a removed person leaves is
        harmless: the numbers only need to tell people apart)."""
        tmp = self._scratch("erasure")
        con = self._connect([path], tmp)
        try:
            con.execute(f"COPY (SELECT * FROM read_parquet({_quote(path)}) WHERE {_ident(subject_column)} "
                        f"IS DISTINCT FROM $s) TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
                        {"s": subject})
            rows, subjects, most = self.ingest.stats(con, tmp, schema)
            subject_level = self.ingest.subject_level_columns(con, tmp, schema, most)
            numbered = has_hidden_column(con, f"read_parquet({_quote(tmp)})", PERSON_NUMBER_COLUMN)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            con.close()
        digest, size = publish(tmp, dest)
        return IngestedFile(dest, digest, rows, size, subjects, most, subject_level, numbered)

    def trace(self, leaked: Path, candidates: list[tuple[dict[str, Any], Path, str, Any]]) -> list[dict[str, Any]]:
        """For each candidate export (record, the dataset file, its subject column, the agreement):
        how many values of the leaked file's best-matching column are that recipient's pseudonyms."""
        from ..policy.exports import recipient_key  # noqa: PLC0415 - only tracing needs it
        from ..policy.transforms import PSEUDONYM_HEX, hmac_sql  # noqa: PLC0415

        if not leaked.is_file():
            raise BadInput(f"cannot read {leaked}: no such file")
        con = self._connect([leaked] + [data for _, data, _, _ in candidates])
        try:
            parquet = leaked.suffix.lower() in (".parquet", ".pq")
            reader = (f"read_parquet({_quote(leaked)})" if parquet
                      else f"read_csv({_quote(leaked)}, all_varchar=true, header=true)")
            try:
                columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
                metadata = {}
                if parquet:
                    metadata = {bytes(k).decode(errors="replace"): bytes(v).decode(errors="replace") for k, v in con.execute(
                        f"SELECT key, value FROM parquet_kv_metadata({_quote(leaked)})").fetchall()}
            except duckdb.Error as e:
                raise BadInput(f"cannot read {leaked.name} as {'Parquet' if parquet else 'CSV'}: "
                               f"{str(e).splitlines()[0][:200]}") from None
            con.execute(f"CREATE TEMP TABLE leaked AS SELECT * FROM {reader}")
            total = con.execute("SELECT count(*) FROM leaked").fetchone()[0]
            out = []
            for record, data, subject, agreement in candidates:
                pseudonym = hmac_sql(recipient_key(agreement, record["recipient"]), f"CAST({_ident(subject)} AS VARCHAR)")
                con.execute(f"CREATE OR REPLACE TEMP TABLE theirs AS SELECT DISTINCT {pseudonym} AS p "
                            f"FROM read_parquet({_quote(data)})")
                # Copies made before pseudonyms were cut to 128 bits carry the 64-character form,
                # whose first 32 characters are today's pseudonym.
                best = max((con.execute(f"SELECT count(*) FROM leaked WHERE left(CAST({_ident(c)} AS VARCHAR), "
                                        f"{PSEUDONYM_HEX}) IN (SELECT p FROM theirs)").fetchone()[0], c) for c in columns)
                out.append({"recipient": record["recipient"], "export": record["id"], "agreement": record["agreement"],
                            "dataset": record["dataset"], "matched": best[0], "column": best[1] if best[0] else None,
                            "rows": total, "export_in_metadata": metadata.get("commonground.export") == record["id"]})
            return out
        finally:
            con.close()
