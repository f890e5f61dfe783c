"""Survey answers are published when the data is next read (services/answers.py), on SQLite and
PostgreSQL: a burst of answers costs one version, an answer stored during a publication waits
for the next one, a publication overtaken by a newer one does not replace it with less, two of
the same answers make one version, and one that read before an erasure does not bring the
erased answer back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import duckdb
import pytest

from commonground.services import answers as answer_svc
from commonground.services import conversations as conversation_svc
from commonground.services import datasets as dataset_svc
from commonground.services import parties as party_svc
from commonground.services import subjects as subject_svc

AR = "analytics.reporting"
SURVEY = {"name": "delivery", "title": "Was your delivery on time?", "purposes": [AR], "partners": ["courier"],
          "min_group_size": 3, "questions": [{"id": "on_time", "text": "On time?", "type": "yes_no"}]}
COPIES = ("delivery", "delivery__courier")


class During:
    """The real ingest, with something else happening while it writes the file (the window
    between a publication's read and its writing transaction)."""

    def __init__(self, inner: Any, meanwhile: Callable[[], None]):
        self.inner, self.meanwhile = inner, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ingest(self, *args: Any, **kwargs: Any) -> Any:
        self.meanwhile()
        return self.inner.ingest(*args, **kwargs)


@pytest.fixture
def survey(make_deps):
    deps = make_deps()
    for name in ("shop", "courier"):
        party_svc.add_party(deps, name)
    for n in range(6):
        code, _ = subject_svc.invite(deps, "shop", f"S{n}")
        subject_svc.register(deps, f"person{n}", code)
    made = conversation_svc.create_survey(deps, "shop", SURVEY)
    return deps, made["id"]


def _answer(deps, survey_id: str, n: int) -> None:
    conversation_svc.answer(deps, f"person{n}", survey_id, {"on_time": n % 2 == 0}, [("shop", AR), ("courier", AR)])


def _versions(deps, name: str = "delivery") -> list:
    with deps.store.read() as conn:
        return deps.store.versions(conn, "shop", name)


def _respondents(deps, version) -> list[str]:
    path = Path(deps.home) / version.path
    return sorted(r[0] for r in duckdb.connect().execute(f"SELECT respondent FROM read_parquet('{path}')").fetchall())


def _during(deps, meanwhile: Callable[[], None]):
    return dataclasses.replace(deps, ingest=During(deps.ingest, meanwhile))


def test_answers_wait_for_a_reader_and_a_burst_costs_one_version(survey):
    deps, survey_id = survey
    for n in range(4):
        _answer(deps, survey_id, n)
    assert _versions(deps) == [] and _versions(deps, COPIES[1]) == []  # answering writes no file
    results = conversation_svc.results(deps, "shop", survey_id, AR)  # a read publishes the four at once
    assert results["answers"] == 4 and {q["id"]: q["groups"] for q in results["questions"]}["on_time"] == []
    for name in COPIES:
        (version,) = _versions(deps, name)
        assert version.rows == 4 and _respondents(deps, version) == ["S0", "S1", "S2", "S3"]
    conversation_svc.results(deps, "shop", survey_id, AR)
    assert len(_versions(deps)) == 1  # nothing new: no version
    _answer(deps, survey_id, 4)
    assert len(_versions(deps)) == 1
    latest, history = dataset_svc.show_dataset(deps, "shop", "delivery")  # the owner's own view reads it too
    assert latest.rows == 5 and len(history) == 2
    with deps.store.read() as conn:
        assert deps.store.pending_surveys(conn) == []


def test_an_answer_stored_during_a_publication_waits_for_the_next(survey):
    deps, survey_id = survey
    for n in range(3):
        _answer(deps, survey_id, n)
    answer_svc.publish_pending(_during(deps, lambda: _answer(deps, survey_id, 3)))
    (first,) = _versions(deps)
    assert _respondents(deps, first) == ["S0", "S1", "S2"]  # what it read; S3 came after
    with deps.store.read() as conn:
        assert deps.store.pending_surveys(conn) == [survey_id]
    latest, _ = dataset_svc.show_dataset(deps, "shop", "delivery")
    assert _respondents(deps, latest) == ["S0", "S1", "S2", "S3"]


def test_a_publication_overtaken_by_a_newer_one_does_not_land(survey):
    deps, survey_id = survey
    for n in range(3):
        _answer(deps, survey_id, n)

    def newer_one_lands() -> None:
        _answer(deps, survey_id, 3)
        answer_svc.publish_pending(deps)

    answer_svc.publish_pending(_during(deps, newer_one_lands))
    versions = _versions(deps)  # the newer (four answers) stands; the slower (three) was dropped
    assert [v.rows for v in versions] == [4] and _respondents(deps, versions[0]) == ["S0", "S1", "S2", "S3"]
    written = {p.name for p in (Path(deps.home) / "data" / "shop" / "delivery").glob("*.parquet")}
    assert written == {Path(versions[0].path).name}  # the dropped file was removed


def test_two_publications_of_the_same_answers_make_one_version(survey):
    deps, survey_id = survey
    for n in range(3):
        _answer(deps, survey_id, n)
    answer_svc.publish_pending(_during(deps, lambda: answer_svc.publish_pending(deps)))
    assert [v.rows for v in _versions(deps)] == [3]


def test_a_publication_that_read_before_an_erasure_does_not_bring_it_back(survey):
    deps, survey_id = survey
    for n in range(4):
        _answer(deps, survey_id, n)
    conversation_svc.results(deps, "shop", survey_id, AR)
    _answer(deps, survey_id, 4)  # pending
    answer_svc.publish_pending(_during(deps, lambda: subject_svc.request_erasure(deps, "person1", "shop")))
    for name in COPIES:
        versions = _versions(deps, name)
        # v1 the first four; v2 the erasure's rewrite of v1; v3 the retry, from the answers as stored after it
        assert [_respondents(deps, v) for v in versions] == [["S0", "S1", "S2", "S3"], ["S0", "S2", "S3"],
                                                             ["S0", "S2", "S3", "S4"]]


def test_a_failing_publication_fails_no_reader_and_stays_pending(survey, caplog):
    deps, survey_id = survey
    for n in range(3):
        _answer(deps, survey_id, n)

    def disk_full() -> None:
        raise OSError("No space left on device")

    broken = _during(deps, disk_full)
    with caplog.at_level("ERROR", logger="commonground.services.answers"):
        assert dataset_svc.list_datasets(broken, "courier") == []  # another party's read goes on
    assert f"survey {survey_id} failed (OSError)" in caplog.text and "S0" not in caplog.text
    assert _versions(deps) == [] and not list((Path(deps.home) / "data" / "shop").rglob("*.parquet"))
    with deps.store.read() as conn:
        assert deps.store.pending_surveys(conn) == [survey_id]
    conversation_svc.results(deps, "shop", survey_id, AR)  # the next read publishes them
    assert [v.rows for v in _versions(deps)] == [3]

