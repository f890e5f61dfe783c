"""The docs stay true (datasette's habit): every `commonground ...` command written in the README
and docs/ names a real command with real options, and every complete agreement or schema
written in docs/formats.md parses."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml

from commonground.cli.main import app
from commonground.domain.agreements import parse_agreement
from commonground.domain.listings import parse_listing
from commonground.domain.rights import parse_rights
from commonground.domain.schema import parse_schema

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _command_lines(text: str) -> list[str]:
    """Command lines in shell blocks (continuations joined, comments cut) and inline `commonground ...`."""
    lines = []
    for lang, body in FENCE.findall(text):
        if lang not in ("sh", "bash", "console", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("commonground "):
                lines.append(line)
    prose = FENCE.sub("", text)
    lines += [m for m in re.findall(r"`(commonground [^`]+)`", prose)]
    return lines


def _tokens(line: str) -> list[str]:
    line = re.split(r"\s#\s|\s#$|\s{2,}#", line)[0]
    tokens = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "), posix=True)
    return tokens[1:]


CASES = [(doc.relative_to(ROOT).as_posix(), line) for doc in DOCS for line in _command_lines(doc.read_text())]


def test_the_docs_show_commands():
    assert len(CASES) > 40, "the extraction found too few commands: is the pattern still right?"


@pytest.mark.parametrize(("doc", "line"), CASES, ids=[f"{d}:{i}" for i, (d, _) in enumerate(CASES)])
def test_documented_command_exists(doc, line):
    command = typer.main.get_command(app)  # Typer's own (vendored) click: groups have .commands
    tokens = _tokens(line)
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    while tokens and hasattr(command, "commands"):
        if tokens[0].startswith("-"):  # a group-level option such as --home DIR
            assert tokens[0].split("=")[0] in options, f"{doc}: {line!r}: no option {tokens[0]}"
            tokens = tokens[2:] if "=" not in tokens[0] else tokens[1:]
            continue
        sub = command.commands.get(tokens[0])
        assert sub is not None, f"{doc}: {line!r}: {command.name} has no command {tokens[0]!r}"
        command, tokens = sub, tokens[1:]
        options = {o for p in command.params for o in (*getattr(p, "opts", []), *getattr(p, "secondary_opts", []))}
    assert not hasattr(command, "commands"), f"{doc}: {line!r} stops at a group"
    for token in tokens:
        if token.startswith("--"):
            assert token.split("=")[0] in options | {"--help"}, f"{doc}: {line!r}: {command.name} has no {token}"


def _yaml_blocks(path: Path) -> list[dict]:
    docs = []
    for lang, body in FENCE.findall(path.read_text()):
        if lang == "yaml" and "..." not in body:
            loaded = yaml.safe_load(body)
            if isinstance(loaded, dict):
                docs.append(loaded)
    return docs


def test_formats_examples_parse():
    blocks = _yaml_blocks(ROOT / "docs" / "formats.md")
    agreements = [b for b in blocks if {"name", "provider", "recipients"} <= set(b)]
    rights = [b for b in blocks if "legal_basis" in b]
    listings = [b for b in blocks if "datasets" in b and "provider" not in b]
    schemas = [b for b in blocks if "columns" in b and "provider" not in b and b not in rights]
    assert agreements and schemas and rights and listings
    for doc in agreements:
        parse_agreement(doc)
    for doc in schemas:
        parse_schema(doc)
    for doc in rights:
        parse_rights(doc, "bank.cards", 1, "bank", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                     ("customer_id", "email", "spend"))
    for doc in listings:
        parse_listing(doc, "bank")
