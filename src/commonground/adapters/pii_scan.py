"""Find personal data in a file: DuckDB pre-filters, the checksum libraries decide.

1. A sample (the first `sample_rows`) is read once into a temporary table, every value as text.
2. One query counts, per column and kind, the values a kind's RE2 pattern finds anything in.
3. Only those candidates (distinct, with their counts, capped) go to Python, where each match is
   validated (phonenumbers, python-stdnum's Luhn/IBAN/national ids, ipaddress, strict dates).
4. For flagged columns a full pass reads just those columns of the whole file and validates the
   distinct candidates there, for the exact count (or an estimate past `validate_limit`).

Nothing here logs or returns a value except one masked example per finding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb

from ..domain.errors import BadInput
from ..domain.pii import HINTED_PATTERNS, PATTERNS, PRETESTS, ColumnFinding, KindStats, PiiKind, mask, matches, name_hints, parse_date, \
    subject_hint, validators
from ..domain.schema import ColumnType, DatasetSchema, Role, normalize_column_name

SAMPLE_ROWS = 20_000
CANDIDATES_PER_KIND = 1_000  # distinct sampled candidates validated per column and kind
_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "json", ".ndjson": "json", ".json": "json"}
_TYPES = {"BIGINT": ColumnType.INTEGER, "INTEGER": ColumnType.INTEGER, "SMALLINT": ColumnType.INTEGER,
          "TINYINT": ColumnType.INTEGER, "HUGEINT": ColumnType.INTEGER, "DOUBLE": ColumnType.DOUBLE,
          "FLOAT": ColumnType.DOUBLE, "BOOLEAN": ColumnType.BOOLEAN, "DATE": ColumnType.DATE,
          "TIMESTAMP": ColumnType.TIMESTAMP}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ScanReport:
    file: str
    sampled_rows: int
    total_rows: int | None
    columns: list[ColumnFinding]
    types: dict[str, ColumnType] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def flagged(self) -> list[ColumnFinding]:
        return [c for c in self.columns if c.flagged]

    @property
    def subject(self) -> str | None:
        """The column proposed as the subject_id: the first one named like a person's id."""
        return next((c.column for c in self.columns if not c.flagged and subject_hint(c.column)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sampled_rows": self.sampled_rows, "total_rows": self.total_rows,
                "seconds": round(self.seconds, 3), "subject_column": self.subject,
                "columns": [c.to_dict() for c in self.columns if c.flagged or c.proposal() is not None]}

    def suggested_schema(self) -> dict[str, Any]:
        """A schema document `parse_schema` accepts: detected columns get their role and category,
        one person-id-like column becomes the subject_id, columns named like quasi-identifiers or
        sensitive data get that role, the rest stay attributes."""
        subject = self.subject
        cols: dict[str, Any] = {}
        for c in self.columns:
            ctype = self.types.get(c.column, ColumnType.STRING)
            proposal = c.proposal()
            if c.column == subject:
                cols[c.column] = {"type": ctype.value, "role": Role.SUBJECT_ID.value, "category": "user.unique_id"}
            elif proposal is not None and c.flagged:
                role, category = proposal
                if c.primary is not PiiKind.DOB or ctype not in (ColumnType.DATE, ColumnType.TIMESTAMP):
                    ctype = ColumnType.STRING  # phone numbers, card numbers and ids keep their leading + and zeros
                cols[c.column] = {"type": ctype.value, "role": role.value, "category": category}
            elif proposal is not None and proposal[0] is not Role.SUBJECT_ID:  # named like a quasi-identifier
                cols[c.column] = {"type": ctype.value, "role": proposal[0].value, "category": proposal[1]}
            else:
                cols[c.column] = {"type": ctype.value, "role": Role.ATTRIBUTE.value}
        return {"columns": cols}


def _reader(path: Path, typed: bool = False) -> str:
    if not path.is_file():
        raise BadInput(f"cannot read {path}: no such file")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path.name}: unknown file type {path.suffix!r} (use .csv, .parquet or .jsonl)")
    if fmt == "csv":
        delim = "\\t" if path.suffix.lower() == ".tsv" else ","
        varchar = "" if typed else "all_varchar=true, "
        return f"read_csv({_quote(str(path))}, header=true, {varchar}delim='{delim}', strict_mode=false)"
    if fmt == "parquet":
        return f"read_parquet({_quote(str(path))})"
    return f"read_json({_quote(str(path))}, format='newline_delimited')"


def _connect(memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    return con


def scan_file(path: Path, *, sample_rows: int = SAMPLE_ROWS, full: bool = True, only: set[str] | None = None,
              validate_limit: int | None = None, region: str | None = "US", null_values: tuple[str, ...] = ("",),
              progress: Callable[[float], None] | None = None, memory_limit: str = "1GB") -> ScanReport:
    """Scan a file. `only`: the (normalised) columns to look at, all by default. `full`: also count
    over the whole file for flagged columns. `validate_limit`: at most this many distinct candidates
    are validated per column and kind in the full pass (None: all, exact; 0: none, the candidates
    counted in SQL are scaled by the sample's valid share)."""
    started = time.perf_counter()
    reader = _reader(Path(path))
    con = _connect(memory_limit)
    try:
        try:
            raw_cols = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        except duckdb.Error as e:
            raise BadInput(f"cannot read {Path(path).name}: {str(e).strip().splitlines()[0][:200]}") from None
        names = {raw: normalize_column_name(raw) for raw in raw_cols}
        wanted = [raw for raw in raw_cols if only is None or names[raw] in only]
        types = _sniff_types(con, Path(path), names)

        def text(raw: str) -> str:
            value = f"trim(CAST({_ident(raw)} AS VARCHAR))"
            for null in null_values:
                value = f"NULLIF({value}, {_quote(null)})"
            return value

        findings = [ColumnFinding(names[raw], hints=name_hints(names[raw])) for raw in wanted]
        if not wanted:
            return ScanReport(str(path), 0, None, findings, types, time.perf_counter() - started)
        select = ", ".join(f"{text(raw)} AS c{i}" for i, raw in enumerate(wanted))
        con.execute(f"CREATE TEMP TABLE sample AS SELECT {select} FROM {reader} LIMIT {int(sample_rows)}")
        sampled = con.execute("SELECT count(*) FROM sample").fetchone()[0]

        patterns = {i: _patterns(f, types.get(f.column, ColumnType.STRING)) for i, f in enumerate(findings)}
        exprs = []
        for i in range(len(wanted)):
            exprs += [f"count(c{i})", f"approx_count_distinct(c{i})"]
            exprs += [f"count(*) FILTER (WHERE {_where(f'c{i}', k, p)})" for k, p in patterns[i].items()]
        counts = iter(con.execute(f"SELECT {', '.join(exprs)} FROM sample").fetchone())
        check = validators(region)
        for i, finding in enumerate(findings):
            finding.sample_values = int(next(counts))
            finding.distinct_ratio = int(next(counts)) / finding.sample_values if finding.sample_values else 0.0
            for kind, pattern in patterns[i].items():
                candidates = int(next(counts))
                stats = finding.kinds.setdefault(kind, KindStats(kind, finding.sample_values))
                if not candidates:
                    continue
                rows = con.execute(f"SELECT c{i}, count(*) FROM sample WHERE {_where(f'c{i}', kind, pattern)} "
                                   f"GROUP BY ALL LIMIT {CANDIDATES_PER_KIND}").fetchall()
                whole, embedded, seen = _validate(rows, kind, pattern, check[kind], stats)
                scale = candidates / seen if seen else 0.0  # past the cap, the checked share stands for the rest
                stats.whole, stats.embedded = round(whole * scale), round(embedded * scale)

        flagged = [(i, s) for i, f in enumerate(findings) for s in f.detected]
        total = None
        if full and flagged:
            total = _full_pass(con, reader, wanted, text, flagged, patterns, check, validate_limit, progress)
        if progress:
            progress(100.0)
        return ScanReport(str(path), int(sampled), total, findings, types, time.perf_counter() - started)
    finally:
        con.close()


def _where(column: str, kind: PiiKind, pattern: str) -> str:
    hinted = kind in HINTED_PATTERNS and pattern.endswith(HINTED_PATTERNS[kind])
    pretest = "" if hinted else PRETESTS[kind].format(v=column) + " AND "
    return f"{pretest}regexp_matches({column}, {_quote(pattern)})"


_KINDS_BY_TYPE = {  # what a typed column can hold: numbers are never emails, dates only birth dates
    ColumnType.INTEGER: {PiiKind.CARD, PiiKind.NATIONAL_ID, PiiKind.PHONE},
    ColumnType.DOUBLE: set(), ColumnType.BOOLEAN: set(),
    ColumnType.DATE: {PiiKind.DOB}, ColumnType.TIMESTAMP: {PiiKind.DOB},
}


def _patterns(finding: ColumnFinding, ctype: ColumnType) -> dict[PiiKind, str]:
    kinds = _KINDS_BY_TYPE.get(ctype)
    out = {k: p for k, p in PATTERNS.items() if kinds is None or k in kinds}
    for kind, extra in HINTED_PATTERNS.items():
        if kind in finding.hints and kind in out:
            out[kind] = f"{out[kind]}|{extra}"
    return out


def _validate(rows, kind: PiiKind, pattern: str, valid: Callable[[str], bool], stats: KindStats | None):
    """Weighted counts of values holding one valid instance (whole value / inside text), and rows seen."""
    whole = embedded = seen = 0
    for value, n in rows:
        seen += n
        hit = None
        for candidate, is_whole in matches(pattern, value):
            if valid(candidate):
                hit = is_whole
                if is_whole:
                    break
        if hit is None:
            continue
        if hit:
            whole += n
        else:
            embedded += n
        if stats is not None:
            if stats.example is None:
                stats.example = mask(value if hit else candidate)
            if kind is PiiKind.DOB and hit:
                d = parse_date(value.strip())
                if d is not None:
                    stats.years.extend([d.year] * min(n, 100))
    return whole, embedded, seen


def _full_pass(con, reader: str, wanted: list[str], text, flagged, patterns, check, validate_limit, progress) -> int:
    if validate_limit == 0:
        return _estimate_pass(con, reader, wanted, text, flagged, patterns)
    columns = sorted({i for i, _ in flagged})
    select = ", ".join(f"{text(wanted[i])} AS c{i}" for i in columns)
    con.execute(f"CREATE TEMP TABLE whole_file AS SELECT {select} FROM {reader}")
    total = int(con.execute("SELECT count(*) FROM whole_file").fetchone()[0])
    for step, (i, stats) in enumerate(flagged):
        pattern = patterns[i][stats.kind]
        where = _where(f"c{i}", stats.kind, pattern)
        candidates = int(con.execute(f"SELECT count(*) FROM whole_file WHERE {where}").fetchone()[0])
        cursor = con.execute(f"SELECT c{i}, count(*) FROM whole_file WHERE {where} GROUP BY ALL")
        valid = seen_rows = checked = 0
        while chunk := cursor.fetchmany(10_000):
            if validate_limit is not None and checked >= validate_limit:
                break
            w, e, s = _validate(chunk, stats.kind, pattern, check[stats.kind], None)
            valid, seen_rows, checked = valid + w + e, seen_rows + s, checked + len(chunk)
            if progress:
                progress(min(99.0, 100.0 * (step + min(seen_rows / max(candidates, 1), 1.0)) / len(flagged)))
        stats.exact = seen_rows >= candidates
        stats.full_rows = valid if stats.exact else round(valid * candidates / max(seen_rows, 1))
    return total


def _estimate_pass(con, reader: str, wanted: list[str], text, flagged, patterns) -> int:
    """One scan of the file counting candidates per flagged kind; the sample's valid share scales them."""
    exprs = ["count(*)"] + [f"count(*) FILTER (WHERE {_where(text(wanted[i]), s.kind, patterns[i][s.kind])})"
                            for i, s in flagged]
    total, *counts = con.execute(f"SELECT {', '.join(exprs)} FROM {reader}").fetchone()
    for (i, stats), candidates in zip(flagged, counts):
        sampled = con.execute(f"SELECT count(*) FROM sample WHERE {_where(f'c{i}', stats.kind, patterns[i][stats.kind])}"
                              ).fetchone()[0]
        share = (stats.whole + stats.embedded) / sampled if sampled else 0.0
        stats.full_rows, stats.exact = round(int(candidates) * min(share, 1.0)), False
    return int(total)


def _sniff_types(con, path: Path, names: dict[str, str]) -> dict[str, ColumnType]:
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {_reader(path, typed=True)}").fetchall()
    except duckdb.Error:
        return {}
    return {names.get(str(r[0]), normalize_column_name(str(r[0]))): _TYPES.get(str(r[1]), ColumnType.STRING)
            for r in described}


def version_warnings(path: Path, schema: DatasetSchema, sample_rows: int = 5_000) -> list[str]:
    """On `dataset add`: scan a just-written version's plain attributes; warnings, never values.

    A sample only, so the upload stays cheap: counts over the file are the sample's rate times
    the version's rows, marked as estimates (`dataset scan` validates every value and counts exactly).
    """
    from ..domain.pii import declared_attribute_warnings
    attributes = {c.name for c in schema.columns if c.role is Role.ATTRIBUTE}
    if not attributes:
        return []
    report = scan_file(path, sample_rows=sample_rows, only=attributes, full=False)
    if report.flagged:
        con = _connect("256MB")
        try:
            rows = int(con.execute(f"SELECT count(*) FROM {_reader(Path(path))}").fetchone()[0])
        finally:
            con.close()
        for finding in report.flagged:
            for stats in finding.detected:
                stats.full_rows, stats.exact = round(stats.rate * rows), stats.sample_values >= rows
    return declared_attribute_warnings(report.columns, {c.name: c.role for c in schema.columns}, schema.inferred)
