"""Turn an uploaded file into an immutable, canonical Parquet dataset version.

DuckDB does the streaming work (read, validate, cast, write) with a memory cap, so a 10M-row
file never sits in Python memory. The version is written to a temporary file, hashed, and
only then moved into place; the store writes the metadata row after the move and sweeps
unreferenced files on open, so a killed upload leaves neither file nor row behind.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from ..domain.errors import BadInput
from ..domain.schema import (FINGERPRINT_PATTERN, PERSON_NUMBER_COLUMN, SEALED_PATTERN, UNIT_HASH_COLUMN, ColumnType,
                             DatasetSchema, Seal, inferred_schema, normalize_column_name)
from ..ports import IngestedFile
from . import curation as curation_steps

_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "json", ".ndjson": "json", ".json": "json"}
_INFERRED_TYPES = {
    "BIGINT": ColumnType.INTEGER, "INTEGER": ColumnType.INTEGER, "SMALLINT": ColumnType.INTEGER,
    "TINYINT": ColumnType.INTEGER, "HUGEINT": ColumnType.INTEGER, "UBIGINT": ColumnType.INTEGER,
    "DOUBLE": ColumnType.DOUBLE, "FLOAT": ColumnType.DOUBLE, "BOOLEAN": ColumnType.BOOLEAN,
    "DATE": ColumnType.DATE, "TIMESTAMP": ColumnType.TIMESTAMP, "TIMESTAMP WITH TIME ZONE": ColumnType.TIMESTAMP,
}
_VERSION_PARQUET = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"
_COPY_SHARE = 80.0  # percent of an upload's progress bar for the copy when a clustering pass may follow
_SAMPLE_ROWS = 20_480  # as many rows as DuckDB's CSV sniffer reads
_TYPE_WORDS = {ColumnType.INTEGER: "an integer", ColumnType.DOUBLE: "a number", ColumnType.BOOLEAN: "true/false",
               ColumnType.DATE: "a date", ColumnType.TIMESTAMP: "a timestamp", ColumnType.STRING: "text"}


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unit_hash_sql(subject: str) -> str:
    """The hidden unit column's value (domain.schema.UNIT_HASH_COLUMN) for the subject column
    `subject`: DuckDB's 64-bit hash of the id's text, shifted to 63 bits so it is a plain BIGINT
    every engine reads (Spark has no unsigned type). The engine computes the same expression on
    the fly for versions written before the column existed, so both give one value per person."""
    col = _ident(subject)
    return f"CASE WHEN {col} IS NOT NULL THEN CAST(hash(CAST({col} AS VARCHAR)) >> 1 AS BIGINT) END"


def has_hidden_column(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> bool:
    """Whether a relation (a version's rows) carries a hidden column (UNIT_HASH_COLUMN or
    PERSON_NUMBER_COLUMN): versions stored before a column existed lack it. Reads the footer only."""
    return any(str(r[0]) == column for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall())


class ParquetIngest:
    def __init__(self, home: Path, max_bytes: int, memory_limit: str = "1GB", threads: int | None = None):
        self.home = home
        self.max_bytes = max_bytes
        self.memory_limit = memory_limit
        self.threads = threads

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, object] = {"memory_limit": self.memory_limit, "preserve_insertion_order": False,
                                     "autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                     "temp_directory": str(self.tmp_dir / "spill")}
        if self.threads:
            config["threads"] = self.threads
        return duckdb.connect(":memory:", config=config)

    def _open_reader(self, source: Path) -> tuple[str, str]:
        """Check the file is there, small enough and non-empty; returns (format, reader SQL)."""
        if not source.is_file():
            raise BadInput(f"cannot read {source}: no such file")
        try:
            size = source.stat().st_size
            with open(source, "rb") as f:
                f.read(1)
        except OSError as e:
            raise BadInput(f"cannot read {source}: {e.strerror}") from None
        if size == 0:
            raise BadInput(f"{source.name} is empty")
        if size > self.max_bytes:
            raise BadInput(f"{source.name} is {size:,} bytes, over the upload limit of {self.max_bytes:,} bytes")
        fmt = _FORMATS.get(source.suffix.lower())
        if fmt is None:
            raise BadInput(f"{source.name}: unknown file type {source.suffix!r} (use .csv, .parquet or .jsonl)")
        if fmt == "csv":
            delim = "\\t" if source.suffix.lower() == ".tsv" else ","
            reader = f"read_csv({_quote(source)}, header=true, all_varchar=true, delim='{delim}', strict_mode=false)"
        elif fmt == "parquet":
            reader = f"read_parquet({_quote(source)})"
        else:
            reader = f"read_json({_quote(source)}, format='newline_delimited')"
        return fmt, reader

    def ingest(self, source: Path, schema: DatasetSchema | None, dest: Path,
               progress: Callable[[float], None] | None = None,
               curation_report: list | None = None) -> tuple[IngestedFile, DatasetSchema]:
        """`curation_report`, when given, receives one adapters.curation.ColumnCuration per curated column."""
        fmt, reader = self._open_reader(source)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"upload-{uuid.uuid4().hex}.parquet"
        con = self._connect()
        try:
            try:
                described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            except duckdb.Error as e:
                raise BadInput(f"cannot read {source.name} as {fmt}: {_first_line(e)}") from None
            file_columns = [(str(r[0]), str(r[1])) for r in described]
            if not file_columns:
                raise BadInput(f"{source.name} has no columns")
            if schema is None:
                schema = self._infer(con, reader, fmt, file_columns)
            checked = self._select(schema, file_columns, fmt, source.name)  # also checks the columns match
            reader, curated = curation_steps.prepare(con, reader, schema, file_columns, fmt, source.name)
            if curation_report is not None:
                curation_report.extend(curated)
            try:
                if curated:  # mapped values are text: take the trim-and-cast path
                    raise _ConversionFailed()
                # Fast path: the reader parses typed columns itself; strings are trimmed.
                typed = self._typed_reader(reader, fmt, schema, file_columns)
                padded = self._padded_columns(con, reader, schema, file_columns) if fmt == "csv" else set()
                self._copy(con, f"SELECT {self._select(schema, file_columns, fmt, source.name, typed=True, padded=padded)} "
                                f"FROM {typed}", tmp, progress, schema)
            except _ConversionFailed:
                try:  # e.g. a padded null marker (' ?') in a numeric column: trim everything, then cast
                    self._copy(con, f"SELECT {checked} FROM {reader}", tmp, progress, schema)
                except _ConversionFailed:
                    self._explain_conversion(con, schema, reader, file_columns, fmt, source.name)
            self._check_subjects(con, schema, tmp, source.name)
            self._check_seals(con, schema, tmp, source.name)
            stats = self.stats(con, tmp, schema)
            numbered = stats[2] is not None and stats[2] > 1
            if numbered:
                tmp = self._cluster_by_person(con, tmp, progress)
            subject_level = self.subject_level_columns(con, tmp, schema, stats[2])
            if progress:
                progress(100.0)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            con.close()
        digest, size = publish(tmp, dest)
        return IngestedFile(dest, digest, stats[0], size, stats[1], stats[2], subject_level, numbered), schema

    def scan_pii(self, path: Path, schema: DatasetSchema) -> list[str]:
        """Warnings for a written version's plain attributes that look like personal data (adapters/pii_scan.py)."""
        from .pii_scan import version_warnings
        return version_warnings(path, schema)

    def _infer(self, con, reader: str, fmt: str, file_columns) -> DatasetSchema:
        typed_reader = reader.replace("all_varchar=true, ", "") if fmt == "csv" else reader
        try:
            typed = con.execute(f"DESCRIBE SELECT * FROM {typed_reader}").fetchall()
        except duckdb.Error as e:
            raise BadInput(f"cannot infer column types: {_first_line(e)}") from None
        return inferred_schema([(str(r[0]), _INFERRED_TYPES.get(str(r[1]), ColumnType.STRING)) for r in typed])

    def _typed_reader(self, reader: str, fmt: str, schema: DatasetSchema, file_columns) -> str:
        """For CSV, a reader that parses each declared type directly (strings stay VARCHAR)."""
        if fmt != "csv":
            return reader
        by_norm = {c.name: c for c in schema.columns}
        types = ", ".join(f"'{raw.replace(chr(39), chr(39) * 2)}': '{by_norm[normalize_column_name(raw)].type.sql}'"
                          for raw, _ in file_columns)
        nulls = ", ".join("'" + n.replace("'", "''") + "'" for n in schema.null_values)
        return reader.replace("all_varchar=true", f"columns={{{types}}}, nullstr=[{nulls}]")

    def _padded_columns(self, con, reader: str, schema: DatasetSchema, file_columns) -> set[str]:
        """String columns whose values carry surrounding spaces in the first rows (as the sniffer reads them).

        Trimming every cell of a large file costs about a fifth of the ingest; files that are
        not padded (most machine-written ones) skip it. Padding first seen past the sample is
        kept as written.
        """
        by_norm = {c.name: c for c in schema.columns}
        strings = [raw for raw, _ in file_columns if by_norm[normalize_column_name(raw)].type is ColumnType.STRING]
        if not strings:
            return set()
        tests = ", ".join(f"coalesce(bool_or({_ident(r)} <> trim({_ident(r)})), false)" for r in strings)
        flags = con.execute(f"SELECT {tests} FROM (SELECT * FROM {reader} LIMIT {_SAMPLE_ROWS})").fetchone()
        return {raw for raw, padded in zip(strings, flags) if padded}

    def _select(self, schema: DatasetSchema, file_columns, fmt: str, filename: str, typed: bool = False,
                padded: set[str] | None = None) -> str:
        by_name = {normalize_column_name(n): n for n, _ in file_columns}
        declared = [c for c in schema.columns if c.name != schema.row_id]
        missing = [c.name for c in declared if c.name not in by_name]
        extra = [raw for norm, raw in by_name.items() if norm not in {c.name for c in declared}]
        if missing:
            raise BadInput(f"{filename}: schema column(s) {missing} not in the file (file has {list(by_name)})")
        if extra:
            raise BadInput(f"{filename}: file column(s) {extra} are not declared in the schema; declare them (role attribute) or remove them")
        parts = []
        if schema.row_id:
            parts.append(f"CAST(row_number() OVER () AS BIGINT) AS {_ident(schema.row_id)}")
        for col in declared:
            raw = by_name[col.name]
            if typed and fmt == "csv" and (col.type is not ColumnType.STRING or raw not in (padded or set())):
                # The typed reader already parsed the value and applied the exact null markers.
                value = _ident(raw)
            else:
                value = self._value(col.type, raw, fmt, schema, strict=True)
            parts.append(f"{value} AS {_ident(col.name)}")
        return ", ".join(parts)

    def _value(self, ctype: ColumnType, raw: str, fmt: str, schema: DatasetSchema, strict: bool) -> str:
        col = _ident(raw)
        if fmt == "csv":
            text = f"trim({col})"
            for null in schema.null_values:  # nested NULLIF: far cheaper than CASE ... IN (...)
                text = "NULLIF(" + text + ", '" + null.replace("'", "''") + "')"
        else:
            text = col
        if ctype is ColumnType.STRING:
            return f"CAST({text} AS VARCHAR)"
        return f"{'CAST' if strict else 'TRY_CAST'}({text} AS {ctype.sql})"

    def _copy(self, con, query: str, target: Path, progress, schema: DatasetSchema) -> None:
        if schema.subject_column:  # the version's hidden unit column, from the converted subject id
            query = f"SELECT *, {unit_hash_sql(schema.subject_column)} AS {_ident(UNIT_HASH_COLUMN)} FROM ({query})"
        # With a subject column the version may be clustered afterwards: the copy is the first 80%.
        share = _COPY_SHARE if schema.subject_column else 100.0
        try:
            with _reporting(con, progress, 0.0, share):
                con.execute(f"COPY ({query}) TO {_quote(target)} ({_VERSION_PARQUET})")
        except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
            if isinstance(e, duckdb.InvalidInputException) and "CSV Error" not in str(e) and "convert" not in str(e).lower():
                raise BadInput(f"cannot read the file: {_first_line(e)}") from None
            raise _ConversionFailed() from None
        except duckdb.Error as e:
            raise BadInput(f"cannot read the file: {_first_line(e)}") from None

    def _cluster_by_person(self, con, tmp: Path, progress) -> Path:
        """Rewrite a version whose people have several rows with each person's rows stored together
        (ordered by the hidden unit column), each row numbered with its person's number
        (PERSON_NUMBER_COLUMN: 0, 1, ... in unit order, so the column is sorted; ~1 byte a row in
        the file), and return the new file; the first is removed.

        Everything that works per person (dp's contribution bounding, exact distinct counts of
        people, the differencing recount, ingest's own statistics) is a hash aggregation over
        millions of people; when a person's rows sit side by side it touches one group for a run
        of rows instead of a random one per row, which halved those aggregations on 10M rows of
        2M people (docs/benchmarks.md §6). Versions with one row per person skip this pass.

        The sort is on the unit alone (10M rows: 1.9 s against 0.8 s for the unsorted copy; adding
        every column as a tie-break made it 2.7 s), so one person's rows keep no particular order,
        as the parallel copy before it keeps none.

        The numbers come from the distinct units, numbered in order and joined back (10M rows of
        2M people: the ingest took 11.1 s against 9.0 s without numbers; a dense_rank window over
        all rows instead cost 0.4 s more than that).
        A row without a subject id keeps no number, as it has no unit."""
        clustered = tmp.with_name(f"{tmp.stem}-clustered.parquet")
        unit, source = _ident(UNIT_HASH_COLUMN), f"read_parquet({_quote(tmp)})"
        numbers = (f"SELECT {unit}, CAST(row_number() OVER (ORDER BY {unit}) - 1 AS INTEGER) AS "
                   f"{_ident(PERSON_NUMBER_COLUMN)} FROM (SELECT DISTINCT {unit} FROM {source} WHERE {unit} IS NOT NULL)")
        try:
            with _reporting(con, progress, _COPY_SHARE, 100.0):
                con.execute(f"COPY (SELECT * FROM {source} LEFT JOIN ({numbers}) USING ({unit}) ORDER BY {unit}) "
                            f"TO {_quote(clustered)} ({_VERSION_PARQUET})")
        except BaseException:
            clustered.unlink(missing_ok=True)
            raise
        tmp.unlink()
        return clustered

    def _check_subjects(self, con, schema: DatasetSchema, tmp: Path, filename: str) -> None:
        subject = schema.subject_column
        if subject:
            nulls = con.execute(f"SELECT count(*) FROM read_parquet({_quote(tmp)}) WHERE {_ident(subject)} IS NULL").fetchone()[0]
            if nulls:
                raise BadInput(f"{filename}: {nulls} row(s) have no {subject}; every row needs its subject id")

    def _check_seals(self, con, schema: DatasetSchema, tmp: Path, filename: str) -> None:
        """Fingerprint and sealed columns must hold exactly the sealed forms (docs/sealing.md), so a
        file sealed wrongly, or not at all, is refused whole: nothing is stored. The store cannot
        check that a fingerprint is an HMAC (it has no key), only that it has the form of one;
        the message never repeats a value, which may be a raw identifier."""
        sealed = schema.sealed_columns
        if not sealed:
            return
        parts = []
        for col in sealed:
            c = _ident(col.name)
            if col.seal is Seal.FINGERPRINT:
                bad = f"NOT regexp_full_match({c}, '{FINGERPRINT_PATTERN}')"
            else:
                bad = f"(NOT regexp_full_match({c}, '{SEALED_PATTERN}') OR length({c}) % 4 = 1)"
            cond = f"{c} IS NOT NULL AND {bad}"
            parts.append(f"count(*) FILTER (WHERE {cond}), min(file_row_number) FILTER (WHERE {cond})")
        found = con.execute(f"SELECT {', '.join(parts)} FROM read_parquet({_quote(tmp)}, file_row_number=true)").fetchone()
        problems = []
        for i, col in enumerate(sealed):
            count, first = found[2 * i], found[2 * i + 1]
            if count:
                form = ("a fingerprint (22 base64url characters)" if col.seal is Seal.FINGERPRINT
                        else "a sealed value (base64url of version, nonce, ciphertext and tag)")
                problems.append(f"column {col.name} is declared {col.seal.value}, but {count:,} value(s) are not "
                                f"{form}, the first at row {int(first) + 1}")
        if problems:
            raise BadInput(f"{filename}: " + "; ".join(problems) + ". Seal the file at your site with `commonground "
                           "seal` before uploading it; nothing was stored")

    def _explain_conversion(self, con, schema, reader, file_columns, fmt, filename: str) -> None:
        """Find the first row and column that broke the cast, for a message a person can act on."""
        by_name = {normalize_column_name(n): n for n, _ in file_columns}
        for col in schema.columns:
            if col.name == schema.row_id or col.type is ColumnType.STRING:
                continue
            raw = by_name[col.name]
            text = self._value(ColumnType.STRING, raw, fmt, schema, strict=False)
            typed = self._value(col.type, raw, fmt, schema, strict=False)
            bad = con.execute(
                f"SELECT n, v FROM (SELECT row_number() OVER () AS n, {text} AS v, {typed} AS t FROM {reader}) "
                "WHERE v IS NOT NULL AND t IS NULL ORDER BY n LIMIT 1").fetchone()
            if bad:
                raise BadInput(f"{filename}: row {bad[0]}, column {col.name}: {bad[1]!r} is not {_TYPE_WORDS[col.type]}")
        raise BadInput(f"{filename}: a value does not match its declared type")

    def stats(self, con, tmp: Path, schema: DatasetSchema) -> tuple[int, int | None, int | None]:
        subject = schema.subject_column
        if subject is None:
            rows = con.execute(f"SELECT count(*) FROM read_parquet({_quote(tmp)})").fetchone()[0]
            return int(rows), None, None
        # Grouping on a 64-bit hash of the id (the stored unit column, where the version has it)
        # is faster than on the strings. A collision (odds ~n^2/2^64: 5e-6 at 10M subjects) can
        # only merge two people, which raises the rows-per-subject bound (safe: it sends more
        # groups to exact counting).
        source = f"read_parquet({_quote(tmp)})"
        person = _person(con, source, subject)
        rows, subjects, most = con.execute(
            f"SELECT coalesce(sum(c), 0), count(*), max(c) FROM (SELECT count(*) AS c FROM {source} "
            f"GROUP BY {person})").fetchone()
        return int(rows), int(subjects), int(most) if most is not None else None

    def subject_level_columns(self, con, path: Path, schema: DatasetSchema, most: int | None) -> frozenset[str] | None:
        """The columns that hold one value per subject: on every row of a person the same value,
        or NULL on all of them. A query grouped only by such columns puts each person in one
        group, so dp's plan can skip choosing a person's groups (policy/dp.py).

        Compared exactly (min = max, and no mix of NULL and values), not by a hash, because a
        wrong "yes" would let one person into two groups. DOUBLE columns are left out: grouping
        and MIN/MAX need not agree on -0.0 and 0.0 or on NaNs. The subject column is left out
        too: its rows are grouped by a hash of it, under which two ids could collide. Run on
        the person-ordered version, where grouping by person is cheapest (~0.25 s per column
        per 10M rows of 2M people); at most one row per person, every column qualifies."""
        subject = schema.subject_column
        if subject is None or most is None:
            return None
        if most <= 1:
            return frozenset(schema.names)
        candidates = [c.name for c in schema.columns if c.type is not ColumnType.DOUBLE and c.name != subject]
        if not candidates:
            return frozenset()
        checks = ", ".join(f"count({q}) = 0 OR (count({q}) = count(*) AND min({q}) = max({q})) AS k{i}"
                           for i, q in enumerate(map(_ident, candidates)))
        source = f"read_parquet({_quote(path)})"
        found = con.execute(f"SELECT {', '.join(f'bool_and(k{i})' for i in range(len(candidates)))} FROM "
                            f"(SELECT {checks} FROM {source} GROUP BY {_person(con, source, subject)})").fetchone()
        return frozenset(c for c, same in zip(candidates, found) if same)

    def sweep(self, referenced: set[Path]) -> list[Path]:
        """Remove leftovers of killed uploads: temporary files and unreferenced versions."""
        removed = []
        if self.tmp_dir.exists():
            for p in self.tmp_dir.rglob("*"):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
        data = self.home / "data"
        if data.exists():
            resolved = {r.resolve() for r in referenced}
            for p in data.rglob("*.parquet"):
                if p.resolve() not in resolved:
                    p.unlink(missing_ok=True)
                    removed.append(p)
        return removed


@contextmanager
def _reporting(con: duckdb.DuckDBPyConnection, progress: Callable[[float], None] | None,
               start: float, end: float) -> Iterator[None]:
    """Report the running query's progress, scaled into [start, end] percent, every 0.2 s (no
    watcher at all when nobody listens)."""
    if progress is None:
        yield
        return
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            try:
                value = con.query_progress()
            except Exception:  # the query may have finished between checks
                return
            if value >= 0:
                progress(start + (end - start) * min(value, 100.0) / 100.0)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


class _ConversionFailed(Exception):
    """Raised inside the copy so the caller can retry, then name the offending row and column."""


def _person(con: duckdb.DuckDBPyConnection, source: str, subject: str) -> str:
    """What groups a version's rows by person: its hidden unit column, or for a file written
    before versions had one, a hash of the subject id."""
    return _ident(UNIT_HASH_COLUMN) if has_hidden_column(con, source, UNIT_HASH_COLUMN) else f"hash({_ident(subject)})"


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:300]


def publish(tmp: Path, dest: Path) -> tuple[str, int]:
    """Hash a finished temporary file and move it into place whole; returns (SHA-256, bytes)."""
    digest, size = file_sha256(tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return digest, size


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
