"""Names users type: party names, dataset names, column names."""

from __future__ import annotations

import re

from .errors import BadInput

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_name(kind: str, value: str) -> str:
    """Names become SQL identifiers (`owner.dataset`), so keep them plain and lower-case."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise BadInput(
            f"invalid {kind} name {value!r}: use 1-63 lower-case letters, digits or _, "
            "starting with a letter"
        )
    if value.startswith("cg_") or value in {"main", "information_schema", "pg_catalog", "temp", "system"}:
        raise BadInput(f"invalid {kind} name {value!r}: reserved")
    return value


_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def check_label(kind: str, value: str) -> str:
    """Labels (agreement and template names) may also use hyphens: `syrup-insights`."""
    if not isinstance(value, str) or not _LABEL.match(value):
        raise BadInput(f"invalid {kind} name {value!r}: use 1-63 lower-case letters, digits, _ or -")
    return value
