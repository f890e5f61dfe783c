"""Personal data detection rules: what each kind looks like, how a candidate is validated, and
which role and Fideslang data category a column holding it should get.

Pure: the patterns here are RE2-compatible so the scanner (adapters/pii_scan.py) can pre-filter
whole columns in DuckDB with `regexp_matches`, then validate only the candidates in Python with
the checksum libraries (phonenumbers, python-stdnum, ipaddress). Values are never logged; the
findings carry counts and, at most, a masked example.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import statistics
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterable

from .schema import Role


class PiiKind(str, Enum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "payment_card"
    IBAN = "iban"
    NATIONAL_ID = "national_id"
    IP = "ip_address"
    DOB = "date_of_birth"
    NAME = "person_name"  # by column name only


CATEGORIES = {
    PiiKind.EMAIL: "user.contact.email",
    PiiKind.PHONE: "user.contact.phone_number",
    PiiKind.CARD: "user.financial.credit_card",
    PiiKind.IBAN: "user.financial.bank_account",
    PiiKind.NATIONAL_ID: "user.government_id.national_identification_number",
    PiiKind.IP: "user.device.ip_address",
    PiiKind.DOB: "user.demographic.date_of_birth",
    PiiKind.NAME: "user.name",
}
ROLES = {kind: Role.IDENTIFIER for kind in PiiKind} | {PiiKind.DOB: Role.QUASI_IDENTIFIER}

# Pre-filters (RE2 and Python `re` alike): they find candidates anywhere in a value, so free
# text that contains an address is caught too. Validation decides.
PATTERNS: dict[PiiKind, str] = {
    PiiKind.EMAIL: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    PiiKind.PHONE: r"(?:\+|\b00)[1-9][0-9 ().-]{6,18}[0-9]|\(?\b[0-9]{2,4}\)?[ .-][0-9]{3,4}[ .-][0-9]{3,5}\b",
    PiiKind.CARD: r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
    PiiKind.IBAN: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
    PiiKind.NATIONAL_ID: (r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"  # US SSN
                          r"|\b[12] ?[0-9]{2} ?[0-9]{2} ?[0-9AB]{2} ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b"  # FR NIR
                          r"|\b[A-Za-z]{6}[0-9]{2}[A-Za-z][0-9]{2}[A-Za-z][0-9]{3}[A-Za-z]\b"  # IT codice fiscale
                          r"|\b[XYZ]?[0-9]{7,8}-?[A-Za-z]\b"  # ES DNI / NIE
                          r"|\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"),  # UK NINO
    PiiKind.IP: r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b|\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
    PiiKind.DOB: (r"\b(?:19|20)[0-9]{2}[-/.][01]?[0-9][-/.][0-3]?[0-9]\b"
                  r"|\b[0-3]?[0-9][-/.][01]?[0-9][-/.](?:19|20)[0-9]{2}\b"),
}
# Cheap DuckDB tests run before a kind's regex, so the regex only sees plausible values.
PRETESTS: dict[PiiKind, str] = {
    PiiKind.EMAIL: "contains({v}, '@')",
    PiiKind.PHONE: "length({v}) >= 8",
    PiiKind.CARD: "length({v}) >= 13",
    PiiKind.IBAN: "length({v}) >= 15",
    PiiKind.NATIONAL_ID: "length({v}) >= 9",
    PiiKind.IP: "(contains({v}, '.') OR contains({v}, ':'))",
    PiiKind.DOB: "length({v}) >= 8",
}
# Bare national numbers (DE tax id, NL BSN, undashed SSN) pass a checksum too often by chance:
# they are looked for only in columns whose name says so.
HINTED_PATTERNS: dict[PiiKind, str] = {
    PiiKind.NATIONAL_ID: r"\b[0-9]{9,11}\b",
    PiiKind.PHONE: r"\+?\b[0-9][0-9 ().-]{6,16}[0-9]\b",
}

_NAME_HINTS: list[tuple[PiiKind, re.Pattern[str]]] = [
    (PiiKind.EMAIL, re.compile(r"(^|_)(e_?mail|mail|email_address)(_|$)")),
    (PiiKind.PHONE, re.compile(r"(^|_)(phone|tel|telephone|mobile|cell|msisdn|fax)(_|$)")),
    (PiiKind.CARD, re.compile(r"(^|_)(card|cc|pan|credit_card|card_number|ccnum)(_|$)")),
    (PiiKind.IBAN, re.compile(r"(^|_)(iban|bank_account|account_number|bic_iban)(_|$)")),
    (PiiKind.NATIONAL_ID, re.compile(r"(^|_)(ssn|nino|nin|national_id|nir|bsn|tax_id|taxid|idnr|steuer_id|"
                                     r"passport|dni|nie|codice_fiscale|social_security)(_|$)")),
    (PiiKind.IP, re.compile(r"(^|_)(ip|ip_address|ipaddr|ipv4|ipv6|client_ip|remote_addr)(_|$)")),
    (PiiKind.DOB, re.compile(r"(^|_)(dob|birth|birthdate|birthday|date_of_birth|born|geburtsdatum)(_|$)")),
    (PiiKind.NAME, re.compile(r"(^|_)(name|first_name|last_name|surname|given_name|family_name|full_name|"
                              r"firstname|lastname|fullname)(_|$)")),
]
_NOT_PERSON_NAME = re.compile(r"(^|_)(file|host|user|product|company|brand|store|item|org|organisation|"
                              r"organization|dataset|table|column|event|category|city|country|street)_?name")
_SUBJECT_HINT = re.compile(r"^(customer|client|user|person|patient|member|subject|account|individual|employee|"
                           r"citizen|contact)_?(id|key|no|number|ref)$")

# Columns that do not point at one person alone but, combined, single people out (the 87% of
# Americans unique by zip, birth date and sex), or that say something sensitive about them
# (GDPR art. 9 categories, money). Values cannot tell these apart from ordinary data, so the
# name decides: role and Fideslang category to propose, by normalised column name.
_PROFILE_HINTS: list[tuple[re.Pattern[str], Role, str]] = [
    (re.compile(r"^(age|ages|age_(group|band|range|years|bracket)|age_at_\w+)$"), Role.QUASI_IDENTIFIER,
     "user.demographic.age_range"),
    (re.compile(r"^(gender|sex)$|_(gender|sex)$"), Role.QUASI_IDENTIFIER, "user.demographic.gender"),
    (re.compile(r"(^|_)(race|ethnicity|ethnic_(group|origin))(_|$)"), Role.QUASI_IDENTIFIER,
     "user.demographic.race_ethnicity"),
    (re.compile(r"(^|_)marital(_status)?(_|$)"), Role.QUASI_IDENTIFIER, "user.demographic.marital_status"),
    (re.compile(r"(^|_)(zip|zipcode|zip_code|postcode|post_code|postal_code|plz)(_|$)"), Role.QUASI_IDENTIFIER,
     "user.contact.address.postal_code"),
    (re.compile(r"^(native_country|nationality|citizenship|country_of_(birth|origin)|birth_country|"
                r"place_of_birth|birthplace)$"), Role.QUASI_IDENTIFIER, "user.demographic"),
    (re.compile(r"^(education|education_level|highest_education)$"), Role.QUASI_IDENTIFIER, "user.demographic"),
    (re.compile(r"^(occupation|job|job_title|profession)$"), Role.QUASI_IDENTIFIER, "user.job_title"),
    (re.compile(r"(^|_)(religion|religious_\w+|faith)(_|$)"), Role.SENSITIVE, "user.demographic.religious_belief"),
    (re.compile(r"(^|_)(political_\w+|party_affiliation)(_|$)"), Role.SENSITIVE, "user.demographic.political_opinion"),
    (re.compile(r"(^|_)sexual_orientation(_|$)"), Role.SENSITIVE, "user.demographic.sexual_orientation"),
    (re.compile(r"(^|_)(health|diagnosis|diagnoses|disability|medical_\w+)(_|$)"), Role.SENSITIVE,
     "user.health_and_medical"),
    (re.compile(r"^(income|salary|salaries|wage|wages|net_worth|annual_income|household_income)$"), Role.SENSITIVE,
     "user.financial"),
]

WHOLE_RATE = 0.3  # a column is flagged when this share of its values is the kind...
TEXT_RATE = 0.01  # ...or, for free text that contains it, this share
MIN_MATCHES = 3


def name_hints(column: str) -> set[PiiKind]:
    """Kinds a (normalised) column name suggests: `customer_email` -> email."""
    found = {kind for kind, rx in _NAME_HINTS if rx.search(column)}
    if PiiKind.NAME in found and _NOT_PERSON_NAME.search(column):
        found.discard(PiiKind.NAME)
    return found


def profile_hint(column: str) -> tuple[Role, str] | None:
    """The role and category a (normalised) name suggests for a column that is no identifier by
    itself: `marital_status` -> quasi-identifier, `user.demographic.marital_status`."""
    return next(((role, category) for rx, role, category in _PROFILE_HINTS if rx.search(column)), None)


def subject_hint(column: str) -> bool:
    """Whether the name reads like the id of a person (a subject_id candidate)."""
    return bool(_SUBJECT_HINT.match(column))


# -- validation ------------------------------------------------------------------------------

_CARD_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|3[0689]|6011|65|64[4-9]|62|35)")


def _email(s: str) -> bool:
    local, _, domain = s.rpartition("@")
    return 0 < len(local) <= 64 and len(s) <= 254 and ".." not in s and not domain.startswith("-") and "." in domain


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """The Luhn check (ISO/IEC 7812) over a string of digits; table-driven, a few microseconds."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        total += _LUHN_DOUBLE[d] if i % 2 else d
    return total % 10 == 0


def _card(s: str) -> bool:
    digits = s.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and len(set(digits)) > 1 and luhn_valid(digits)


def _iban(s: str) -> bool:
    """ISO 13616: country code, check digits 02-98, and the whole string mod 97 == 1."""
    compact = s.replace(" ", "").upper()
    if not (15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()):
        return False
    if not 2 <= int(compact[2:4]) <= 98:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_SSN = re.compile(r"([0-9]{3})-?([0-9]{2})-?([0-9]{4})")
_SSN_KNOWN_FAKES = {"078051120", "219099999", "457555462"}


def _ssn(s: str) -> bool:
    """US SSN issuance rules (as python-stdnum's, without its slow number database lookups)."""
    m = _SSN.fullmatch(s)
    if not m:
        return False
    area, group, serial = m.groups()
    return (area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
            and area + group + serial not in _SSN_KNOWN_FAKES)


def _national_id(s: str) -> bool:
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.nl import bsn
    compact = s.replace(" ", "").replace("-", "")
    if re.fullmatch(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", s):
        return _ssn(s)
    if compact.isdigit() and len(compact) == 9 and _ssn(compact):  # hinted columns only: bare nine digits
        return True
    if re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]", compact.upper()):
        return compact[:2].upper() not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}  # UK NINO: format rules only
    return any(m.is_valid(compact) for m in (nir, codicefiscale, dni, nie, idnr, bsn))


def _ip(s: str) -> bool:
    try:
        addr = ipaddress.ip_address(s)
    except ValueError:
        return False
    if addr.version == 6:
        return s.count(":") >= 2 and not re.fullmatch(r"[0-9:]+", s)  # `12:30:00` is a time, not an address
    return not addr.is_unspecified


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y")


def parse_date(s: str) -> dt.date | None:
    """A strict numeric date (no guessing beyond the listed formats)."""
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def _dob(s: str, today: dt.date | None = None) -> bool:
    d = parse_date(s)
    if d is None:
        return False
    age = ((today or dt.date.today()) - d).days / 365.25
    return 0 <= age <= 120


def phone_validator(region: str | None) -> Callable[[str], bool]:
    def valid(s: str) -> bool:
        import phonenumbers
        try:
            number = phonenumbers.parse(s, None if s.lstrip().startswith("+") else region)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_valid_number(number)
    return valid


def validators(region: str | None = "US") -> dict[PiiKind, Callable[[str], bool]]:
    return {PiiKind.EMAIL: _email, PiiKind.PHONE: phone_validator(region), PiiKind.CARD: _card,
            PiiKind.IBAN: _iban, PiiKind.NATIONAL_ID: _national_id, PiiKind.IP: _ip, PiiKind.DOB: _dob}


_COMPILED: dict[str, re.Pattern[str]] = {}


def matches(pattern: str, value: str) -> Iterable[tuple[str, bool]]:
    """Each candidate the pattern finds in a value, and whether it is the whole (trimmed) value."""
    rx = _COMPILED.get(pattern) or _COMPILED.setdefault(pattern, re.compile(pattern))
    text = value.strip()
    for m in rx.finditer(text):
        yield m.group(0), m.start() == 0 and m.end() == len(text)


# -- findings --------------------------------------------------------------------------------

@dataclass
class KindStats:
    """How often one kind was found in one column: in the sample, and over the file when checked."""

    kind: PiiKind
    sample_values: int = 0  # non-null values sampled
    whole: int = 0  # sampled values that are one valid instance
    embedded: int = 0  # sampled values that contain one inside other text
    full_rows: int | None = None  # rows of the whole file with a valid instance (after the full pass)
    exact: bool = True  # False when the full pass validated a capped number of distinct values
    example: str | None = None  # masked
    years: list[int] = field(default_factory=list, repr=False)  # DOB only: birth years seen

    @property
    def rate(self) -> float:
        return (self.whole + self.embedded) / self.sample_values if self.sample_values else 0.0

    @property
    def free_text(self) -> bool:
        return self.embedded > self.whole

    def flagged(self, hinted: bool) -> bool:
        n = self.whole + self.embedded
        if n < MIN_MATCHES and not (hinted and n):
            return False
        if self.kind is PiiKind.DOB and not hinted:
            return self.whole / max(self.sample_values, 1) >= 0.8 and _looks_like_birth_years(self.years)
        if self.free_text:
            return self.rate >= TEXT_RATE
        return self.rate >= (0.05 if hinted else WHOLE_RATE)


def _looks_like_birth_years(years: list[int]) -> bool:
    """Dates of birth of adults: a median age of 18-90 spread over years, unlike event dates."""
    if len(years) < MIN_MATCHES:
        return False
    this_year = dt.date.today().year
    median_age = this_year - statistics.median(years)
    q = statistics.quantiles(years, n=4) if len(years) >= 4 else [min(years), 0, max(years)]
    return 18 <= median_age <= 90 and (q[-1] - q[0]) >= 5


@dataclass
class ColumnFinding:
    column: str
    hints: set[PiiKind] = field(default_factory=set)
    kinds: dict[PiiKind, KindStats] = field(default_factory=dict)
    sample_values: int = 0
    distinct_ratio: float = 0.0

    @property
    def detected(self) -> list[KindStats]:
        """Kinds flagged by value, most frequent first."""
        found = [s for s in self.kinds.values() if s.flagged(s.kind in self.hints)]
        # An SSN-shaped or card-shaped value is not also a phone number.
        if any(s.kind in (PiiKind.NATIONAL_ID, PiiKind.CARD, PiiKind.IP, PiiKind.DOB) for s in found):
            found = [s for s in found if s.kind is not PiiKind.PHONE or s.kind in self.hints]
        return sorted(found, key=lambda s: -(s.whole + s.embedded))

    @property
    def primary(self) -> PiiKind | None:
        detected = self.detected
        if detected:
            return detected[0].kind
        named = [k for k in PiiKind if k in self.hints and (k is PiiKind.NAME or self.sample_values == 0
                                                            or self.kinds.get(k) is None)]
        return named[0] if named else None

    @property
    def flagged(self) -> bool:
        return self.primary is not None

    @property
    def free_text(self) -> bool:
        detected = self.detected
        return bool(detected) and detected[0].free_text

    def proposal(self) -> tuple[Role, str] | None:
        kind = self.primary
        if kind is None:
            return (Role.SUBJECT_ID, "user.unique_id") if subject_hint(self.column) else profile_hint(self.column)
        role = ROLES[kind]
        if self.free_text:
            role = Role.IDENTIFIER  # free text holding contact details points at people by itself
        return role, CATEGORIES[kind]

    def describe(self) -> str:
        """One line without values: kinds, share of the sample, and the full count when known."""
        parts = []
        for s in self.detected:
            where = "inside free text in" if s.free_text else "in"
            text = f"{s.kind.value} {where} {s.rate:.0%} of {s.sample_values:,} sampled values"
            if s.full_rows is not None:
                text += f", {s.full_rows:,}{'' if s.exact else ' (estimated)'} rows in the file"
            parts.append(text)
        if not parts and self.primary is not None:
            parts.append(f"the name suggests {self.primary.value}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        proposal = self.proposal()
        return {
            "column": self.column,
            "name_hints": sorted(k.value for k in self.hints),
            "detected": [{"kind": s.kind.value, "sample_rate": round(s.rate, 4), "sample_values": s.sample_values,
                          "sample_matches": s.whole + s.embedded, "free_text": s.free_text, "full_rows": s.full_rows,
                          "exact": s.exact, "example": s.example} for s in self.detected],
            "role": proposal[0].value if proposal else None,
            "category": proposal[1] if proposal else None,
            "distinct_ratio": round(self.distinct_ratio, 4),
        }


def mask(value: str) -> str:
    """Keep the shape and a few characters: `jane.doe@example.com` -> `j*******@e**********`."""
    v = value.strip()
    if "@" in v:
        local, _, domain = v.rpartition("@")
        return local[:1] + "*" * max(len(local) - 1, 1) + "@" + domain[:1] + "*" * max(len(domain) - 1, 1)
    keep = 2 if len(v) > 8 else 1
    return "".join(c if i >= len(v) - keep or not c.isalnum() else "*" for i, c in enumerate(v))


def declared_attribute_warnings(findings: Iterable[ColumnFinding], roles: dict[str, Role], inferred: bool) -> list[str]:
    """Warnings for PII-looking columns left as plain attributes (never the values themselves)."""
    out = []
    for f in findings:
        proposal = f.proposal()
        if proposal is None or f.primary is None or roles.get(f.column) is not Role.ATTRIBUTE:
            continue
        role, category = proposal
        how = "no schema was given, so it is an attribute" if inferred else "it is declared attribute"
        out.append(f"column {f.column!r} looks like personal data ({f.describe()}) but {how}; "
                   f"suggested: role {role.value}, category {category} "
                   "(`commonground dataset scan FILE --write-schema S.yaml` writes a suggested schema)")
    return out
