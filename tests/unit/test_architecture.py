"""The layering is a contract, not a convention: import-linter checks it in the test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([linter, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_nothing_is_created_at_import_time():
    """Importing the app factory and CLI opens no database and no engine."""
    code = ("import sqlalchemy, duckdb; "
            "import commonground.api.app, commonground.cli.main, commonground.bootstrap; "
            "import gc; from sqlalchemy.engine import Engine; "
            "assert not [o for o in gc.get_objects() if isinstance(o, Engine)]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
