"""The keyed hash on identifying columns is skipped only where it cannot change a result."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from commonground.policy.governor import govern
from commonground.policy.rewrite import _elidable_hash


def test_one_agreement_elides_the_hash(governor_context):
    plan = govern("select count(distinct customer_id) from retailer.purchases", governor_context("brand"))
    assert plan.pseudonym_keys == {}
    assert "PSEUDONYM" not in plan.views[0].select_sql.upper()


def test_two_agreements_keep_their_keys_apart(governor_context):
    """Pseudonyms must never link across agreements, so with two keys in play nothing is elided."""
    first = governor_context("brand").agreements[0]
    second = dataclasses.replace(first, id="ag9", hash_key=b"another key of 32 bytes........")
    ref = lambda agreement: SimpleNamespace(agreement=agreement)  # noqa: E731
    assert _elidable_hash([ref(first), ref(second)]) is None
    assert _elidable_hash([ref(first), ref(None), ref(first)]) == first.id
