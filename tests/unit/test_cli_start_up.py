"""What every CLI command pays before it does anything: importing the CLI must not load Arrow,
numpy or fideslang (~0.25 s each in a command on a slow machine); the commands that need them
(sealing, queries, uploads) load them when they run."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_arrow_numpy_or_fideslang():
    code = ("import sys, commonground.cli.main; "
            "print(' '.join(m for m in ('pyarrow', 'numpy', 'fideslang') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
