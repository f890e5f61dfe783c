"""The governor's shared test context: the catalog and agreements of
tests/fixtures/governor/context.yaml, built into a QueryContext per named context."""

from __future__ import annotations

import pytest
import yaml

from tests.governor_context import GOVERNOR_FIXTURES, build_context


@pytest.fixture(scope="session")
def governor_context():
    doc = yaml.safe_load((GOVERNOR_FIXTURES / "context.yaml").read_text())
    return lambda name: build_context(name, doc)
