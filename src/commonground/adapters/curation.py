"""Standard codes at ingest: a column's declared `curate` step rewrites its values.

Each curated column's DISTINCT values are read once (DuckDB), mapped once in Python (pycountry,
dateutil), loaded as a small mapping table and joined back while the version is written. Values
that do not map are reported (count and a capped list), then kept, nulled or the upload refused,
as the schema's `on_unmapped` says; never dropped silently.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..domain.errors import BadInput
from ..domain.schema import ColumnType, DatasetSchema, normalize_column_name

UNMAPPED_LISTED = 20  # distinct unmapped values named in a warning
_FUZZY_TRIES = 500  # distinct values given a (slow) fuzzy country lookup


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- countries ---------------------------------------------------------------------------------

_COUNTRY_ALIASES = {
    "uk": "GB", "u.k.": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "usa": "US", "u.s.a.": "US", "u.s.": "US", "america": "US",
    "united states of america": "US", "russia": "RU", "south korea": "KR", "north korea": "KP", "holland": "NL",
    "the netherlands": "NL", "czech republic": "CZ", "ivory coast": "CI", "vatican": "VA", "macau": "MO",
    "burma": "MM", "swaziland": "SZ", "east timor": "TL", "cape verde": "CV", "uae": "AE",
}


@functools.lru_cache(maxsize=1)
def _country_names() -> dict[str, Any]:
    import pycountry
    names: dict[str, Any] = {}
    for c in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(c, attr, None)
            if value:
                names[value.lower()] = c
    return names


def map_country(value: str, attr: str, tries: list[int]) -> tuple[str | None, str]:
    """A country name or code -> its ISO 3166-1 code (`attr`: alpha_2 or alpha_3); (None, why) if unsure."""
    import pycountry
    text = re.sub(r"\s+", " ", value.replace("&", " and ").replace("-", " ").replace("_", " ")).strip()
    low = text.lower()
    if low in _COUNTRY_ALIASES:
        return getattr(pycountry.countries.get(alpha_2=_COUNTRY_ALIASES[low]), attr), "exact"
    try:
        return getattr(pycountry.countries.lookup(text), attr), "exact"
    except LookupError:
        pass
    names = _country_names()
    close = difflib.get_close_matches(low, list(names), n=2, cutoff=0.85)
    if len(close) == 1 or (len(close) == 2 and names[close[0]] is names[close[1]]):
        return getattr(names[close[0]], attr), "fuzzy"  # a misspelling of exactly one name
    if tries[0] < _FUZZY_TRIES and 3 < len(text) <= 60:
        tries[0] += 1
        try:
            found = pycountry.countries.search_fuzzy(text)
        except LookupError:
            found = []
        if len(found) == 1:  # several candidates: ambiguous, better unmapped than wrong
            return getattr(found[0], attr), "fuzzy"
    return None, "unknown country"


# -- currencies --------------------------------------------------------------------------------

_CURRENCY_ALIASES = {"€": "EUR", "euro": "EUR", "euros": "EUR", "£": "GBP", "pound sterling": "GBP",
                     "pounds sterling": "GBP", "us$": "USD", "us dollar": "USD", "us dollars": "USD",
                     "dollars us": "USD", "sfr": "CHF", "swiss franc": "CHF", "swiss francs": "CHF", "yen": "JPY"}


def map_currency(value: str) -> tuple[str | None, str]:
    import pycountry
    text = value.strip()
    low = text.lower()
    if low in _CURRENCY_ALIASES:
        return _CURRENCY_ALIASES[low], "exact"
    try:
        return pycountry.currencies.lookup(text).alpha_3, "exact"
    except LookupError:
        pass
    if low.endswith("s"):
        try:
            return pycountry.currencies.lookup(text[:-1]).alpha_3, "exact"
        except LookupError:
            pass
    return None, "unknown or ambiguous currency"


# -- dates -------------------------------------------------------------------------------------

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_NUMERIC = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})")


def _date_order(values: list[str]) -> str | None:
    """`dmy` or `mdy` when the column's numeric dates say so (a part above 12), else None."""
    first = second = False
    for v in values:
        m = _NUMERIC.fullmatch(v.strip())
        if m:
            first |= int(m.group(1)) > 12
            second |= int(m.group(2)) > 12
    if first and not second:
        return "dmy"
    if second and not first:
        return "mdy"
    return None


def map_date(value: str, order: str | None, with_time: bool) -> tuple[str | None, str]:
    from dateutil import parser
    text = value.strip()
    m = _ISO.fullmatch(text)
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat(), "exact"
        except ValueError:
            return None, "not a calendar date"
    n = _NUMERIC.fullmatch(text)
    if n and order is None and int(n.group(1)) <= 12 and int(n.group(2)) <= 12 and n.group(1) != n.group(2):
        return None, "ambiguous day/month order (use curate: date_iso8601_dmy or date_iso8601_mdy)"
    if not any(ch.isdigit() for ch in text):
        return None, "no date"
    try:
        parsed = parser.parse(text, dayfirst=order == "dmy", yearfirst=False, default=dt.datetime(1, 1, 1))
    except (ValueError, OverflowError, parser.ParserError):
        return None, "not a date"
    if parsed.year == 1 or len(re.findall(r"\d+", text)) < 2:
        return None, "incomplete date"
    if with_time and (parsed.hour or parsed.minute or parsed.second):
        return parsed.replace(tzinfo=None).isoformat(timespec="seconds"), "exact"
    return parsed.date().isoformat(), "exact"


# -- the step over one column ------------------------------------------------------------------

@dataclass
class ColumnCuration:
    column: str
    step: str
    on_unmapped: str
    distinct: int = 0
    mapped_rows: int = 0
    unmapped_rows: int = 0
    unmapped: list[tuple[str, str, int]] = field(default_factory=list)  # (value, why, rows), most rows first
    fuzzy: list[tuple[str, str]] = field(default_factory=list)

    def ledger_fields(self) -> dict[str, Any]:
        """What goes on the ledger: counts and settings, never values."""
        return {"step": self.step, "on_unmapped": self.on_unmapped, "distinct_values": self.distinct,
                "mapped_rows": self.mapped_rows, "unmapped_rows": self.unmapped_rows,
                "unmapped_distinct": len(self.unmapped), "fuzzy_matches": len(self.fuzzy)}

    def warnings(self) -> list[str]:
        out = []
        if self.unmapped:
            listed = ", ".join(f"{v!r} ({n:,} rows: {why})" for v, why, n in self.unmapped[:UNMAPPED_LISTED])
            more = f" and {len(self.unmapped) - UNMAPPED_LISTED:,} more" if len(self.unmapped) > UNMAPPED_LISTED else ""
            fate = {"keep": "kept as written", "null": "set to null", "reject": "refused"}[self.on_unmapped]
            out.append(f"column {self.column!r} ({self.step}): {self.unmapped_rows:,} rows in {len(self.unmapped):,} "
                       f"distinct value(s) did not map and were {fate}: {listed}{more}")
        if self.fuzzy:
            listed = ", ".join(f"{v!r} -> {c}" for v, c in self.fuzzy[:UNMAPPED_LISTED])
            out.append(f"column {self.column!r} ({self.step}): {len(self.fuzzy):,} value(s) mapped by close spelling: {listed}")
        return out


def _mapper(step: str, values: list[str], ctype: ColumnType) -> Callable[[str], tuple[str | None, str]]:
    if step in ("country_iso2", "country_iso3"):
        attr, tries = ("alpha_2" if step == "country_iso2" else "alpha_3"), [0]
        return lambda v: map_country(v, attr, tries)
    if step == "currency_iso4217":
        return map_currency
    order = {"date_iso8601_dmy": "dmy", "date_iso8601_mdy": "mdy"}.get(step) or _date_order(values)
    with_time = ctype is not ColumnType.DATE
    return lambda v: map_date(v, order, with_time)


def prepare(con, reader: str, schema: DatasetSchema, file_columns: list[tuple[str, str]], fmt: str,
            filename: str) -> tuple[str, list[ColumnCuration]]:
    """Map every curated column's distinct values; returns a reader with the mapped values in
    place (same column names) and the report. Raises BadInput for `on_unmapped: reject`."""
    by_norm = {normalize_column_name(raw): raw for raw, _ in file_columns}
    curated = [c for c in schema.columns if getattr(c, "curate", None) and c.name in by_norm]
    if not curated:
        return reader, []
    reports: list[ColumnCuration] = []
    replace = []
    joins = []
    for i, col in enumerate(curated):
        raw = by_norm[col.name]
        text = f"trim(CAST(src.{_ident(raw)} AS VARCHAR))"
        nulls = ", ".join(_quote(n) for n in schema.null_values) or "''"
        rows = con.execute(f"SELECT {text} AS v, count(*) FROM {reader} AS src WHERE {text} NOT IN ({nulls}) "
                           "GROUP BY ALL ORDER BY 2 DESC").fetchall()
        report = ColumnCuration(col.name, col.curate, col.on_unmapped, distinct=len(rows))
        mapper = _mapper(col.curate, [v for v, _ in rows], col.type)
        pairs = []
        for value, n in rows:
            code, how = mapper(value)
            if code is None:
                report.unmapped.append((value, how, n))
                report.unmapped_rows += n
            else:
                report.mapped_rows += n
                if how == "fuzzy":
                    report.fuzzy.append((value, code))
                pairs.append((value, code))
        reports.append(report)
        if report.unmapped and col.on_unmapped == "reject":
            raise BadInput(f"{filename}: " + report.warnings()[0] + " (on_unmapped: reject)")
        table = f"cg_curate_{i}"
        con.execute(f"CREATE TEMP TABLE {table} (k VARCHAR PRIMARY KEY, v VARCHAR)")
        if pairs:
            con.execute(f"INSERT INTO {table} SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])",
                        [[k for k, _ in pairs], [v for _, v in pairs]])
        kept = f"CAST(src.{_ident(raw)} AS VARCHAR)" if col.on_unmapped == "keep" else "NULL"
        replace.append(f"CASE WHEN m{i}.k IS NOT NULL THEN m{i}.v ELSE {kept} END AS {_ident(raw)}")
        joins.append(f"LEFT JOIN {table} AS m{i} ON m{i}.k = {text}")
    wrapped = f"(SELECT src.* REPLACE ({', '.join(replace)}) FROM {reader} AS src {' '.join(joins)})"
    return wrapped, reports
