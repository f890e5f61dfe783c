"""Publishing survey answers: the answers stored since the last publication become the next
version of every copy of their survey when something is about to read the data.

Why on read and not on each answer: a version is written whole, every answer so far in one
file, so publishing per answer cost each answer time and disk in proportion to the answers
before it (a survey of n answers wrote n versions of up to n rows). Now answering only
stores the answer (marked unpublished); `publish_pending` runs first in every path that reads
the data (governed queries and offers, exports, code runs, survey results, the owner's dataset
views, a person's own data) and writes one version for all the answers since the last one. A
reader therefore never misses an answer stored before it started, and a burst of answers
between two reads costs one version.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..domain.conversations import RESPONDENT, answer_schema, survey_from_dict
from ..domain.schema import parse_schema
from .deps import Deps

ATTEMPTS = 3  # a publication that lost a race (another landed, or an erasure) reads again
_log = logging.getLogger(__name__)


def publish_pending(deps: Deps) -> None:
    """Publish every survey that has answers no version holds yet.

    A publication that fails (a full disk, a broken file) is logged, by survey id and error
    class only (answers are personal data), and left pending: it must not fail the reader's own
    work, which may be another party's query about other data. Readers of that survey's copies
    see its last published version until a later read publishes it.
    """
    with deps.store.read() as conn:
        pending = deps.store.pending_surveys(conn)
    for survey_id in pending:
        try:
            for _ in range(ATTEMPTS):
                if publish(deps, survey_id):
                    break
        except Exception as e:  # noqa: BLE001 (isolated per survey, see above)
            _log.error("publishing the answers of survey %s failed (%s); they stay pending", survey_id,
                       type(e).__name__)


def publish(deps: Deps, survey_id: str) -> bool:
    """Write the survey's stored answers as the next version of every copy (one file, one
    commitment). False when it did not land because the answers changed under it.

    It lands only if, in its writing transaction, every answer it wrote is still stored (no
    erasure since: it must not bring one back), every answer already published is among them
    (no newer publication landed since its read: it must not replace it with less) and one of
    them is still unpublished (a concurrent publication of the same answers landed first: a
    second identical version would add nothing). Answers stored after its read stay unpublished
    for the next reader.
    """
    with deps.store.read() as conn:
        row = deps.store.surveys(conn, survey_id=survey_id)[0]
        answers = deps.store.answers(conn, survey_id)
    survey = survey_from_dict(row["spec"])
    written = [a["subject"] for a in answers]
    if not answers or all(a["published"] for a in answers):
        return True
    schema = parse_schema(answer_schema(survey))
    tmp = deps.home / "tmp" / f"survey-{survey_id}-{deps.new_id()}.jsonl"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    dest = deps.home / "data" / survey.asker / survey.name / f"answers-{deps.new_id()}.parquet"
    try:
        with tmp.open("w") as f:
            for a in answers:
                f.write(json.dumps({RESPONDENT: a["subject"], **a["values"]}) + "\n")
        ingested, schema = deps.ingest.ingest(tmp, schema, dest)
    finally:
        tmp.unlink(missing_ok=True)
    now = deps.now()
    try:
        with deps.store.transaction() as conn:
            if not _lands(deps.store.answers(conn, survey_id), set(written)):
                dest.unlink(missing_ok=True)
                return False
            for member in survey.audience:
                name = survey.copy_name(member)
                dataset_id = deps.store.dataset_id(conn, row["asker_id"], name)
                number = deps.store.last_version(conn, dataset_id) + 1
                record = ingested.version(deps.new_id(), survey.asker, name, number, str(dest.relative_to(deps.home)),
                                          schema, now)
                deps.store.insert_version(conn, record, dataset_id)
                deps.store.append_entry(conn, {
                    "event": "dataset.version_added", "party": survey.asker, "dataset": record.key, "version": number,
                    "sha256": record.sha256, "rows": record.rows, "columns": schema.to_dict()["columns"],
                    "reason": "survey answers", "survey": survey_id, "at": now})
            deps.store.mark_published(conn, survey_id, written)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return True


def _lands(stored: list[dict[str, Any]], written: set[str]) -> bool:
    subjects = {a["subject"] for a in stored}
    published = {a["subject"] for a in stored if a["published"]}
    return written <= subjects and published <= written and not written <= published
