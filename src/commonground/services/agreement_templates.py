"""Agreement templates as a form needs them: the text and the `${param}` names to ask for.

Kept apart from `agreements.py` so edges that build forms (the web app) can ask which
parameters a template takes without rendering it, and without reaching into the store.
"""

from __future__ import annotations

import string
from typing import Any

from ..domain.errors import NotFound
from .deps import Deps


def template_parameters(text: str) -> list[str]:
    """The placeholder names of a template, in order of first appearance."""
    seen: list[str] = []
    for match in string.Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name and name not in seen:
            seen.append(name)
    return seen


def describe_template(deps: Deps, name: str) -> dict[str, Any]:
    """A template's owner, text and parameters; an unknown name is NotFound."""
    with deps.store.read() as conn:
        found = deps.store.template(conn, name)
    if found is None:
        raise NotFound(f"no agreement template {name!r}")
    text, owner = found
    return {"name": name, "owner": owner, "text": text, "parameters": template_parameters(text)}
