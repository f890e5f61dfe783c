"""The vendored Fideslang names (domain/fideslang_taxonomy.py) are exactly the installed
fideslang's default taxonomy. After upgrading fideslang, regenerate the module with

    .venv/bin/python tests/unit/test_vocabulary_taxonomy.py > src/commonground/domain/fideslang_taxonomy.py
"""

from __future__ import annotations

from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / "src" / "commonground" / "domain" / "fideslang_taxonomy.py"


def module_text() -> str:
    """The module as generated from the installed fideslang."""
    import fideslang
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY as taxonomy

    def block(name: str, keys) -> str:
        body = "".join(f'    "{k}",\n' for k in sorted(keys))
        return f"{name} = frozenset({{\n{body}}})\n"
    return f'''"""Fideslang's default taxonomy (fideslang {fideslang.__version__}): the names only, as checked
against the installed fideslang by tests/unit/test_vocabulary_taxonomy.py, which also prints how to
regenerate this module after an upgrade.

Generated, so that checking a purpose does not import fideslang: its taxonomy's pydantic models
took ~0.26 s to build in a CLI command (0.6 s in a bare interpreter), paid by every command and
server request that named a purpose, category or subject kind.
"""

FIDESLANG_VERSION = "{fideslang.__version__}"

{block("DATA_USES", [u.fides_key for u in taxonomy.data_use])}
{block("DATA_CATEGORIES", [c.fides_key for c in taxonomy.data_category])}
{block("DATA_SUBJECTS", [s.fides_key for s in taxonomy.data_subject])}'''


def test_the_vendored_taxonomy_is_the_installed_fideslangs():
    assert MODULE.read_text() == module_text(), f"regenerate it: see {__doc__}"


def test_the_vocabulary_is_built_from_it_without_importing_fideslang():
    import subprocess
    import sys
    code = ("import sys; from commonground.domain.vocabulary import fideslang_vocabulary as f; v = f(); "
            "assert 'analytics.reporting' in v.purposes and 'user.contact.email' in v.categories, v; "
            "assert 'fideslang' not in sys.modules; print(len(v.purposes), len(v.categories), len(v.subjects))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from commonground.domain import fideslang_taxonomy as t
    assert list(map(int, out)) == [len(t.DATA_USES), len(t.DATA_CATEGORIES), len(t.DATA_SUBJECTS)]


if __name__ == "__main__":
    print(module_text(), end="")
