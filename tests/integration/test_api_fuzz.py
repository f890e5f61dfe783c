"""Schemathesis fuzzes every operation of the OpenAPI schema against the demo store.

No input may produce a 5xx, and every response must match the schema: its status code is
documented, its content type and body match what the schema says. The caller is a real
party (the brand, with an admin token), so authenticated code paths are fuzzed too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.api.app import create_app  # noqa: E402
from commonground.api.security import SignInThrottle  # noqa: E402
from commonground.demo import build_demo  # noqa: E402

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, store_database):
    home = tmp_path_factory.mktemp("fuzz") / "home"
    deps = bootstrap.build(bootstrap.Settings(home, store_database(home)))
    report = build_demo(deps)
    yield deps, report["tokens"]
    deps.store.dispose()


def test_no_5xx_and_every_response_matches_the_schema(demo):
    deps, tokens = demo
    app = create_app(deps, SignInThrottle(limit=1_000_000))  # fuzzing sends many bad tokens on purpose
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {tokens['brand']}"}
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)
        try:
            fuzz()
        except Exception as e:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(e).strip()[:1500]}")
    assert not failures, "\n\n".join(failures)
