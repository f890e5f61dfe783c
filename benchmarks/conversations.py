"""Conversations benchmark: an aggregate over survey answers versus over an ordinary dataset.

    .venv/bin/python benchmarks/conversations.py                # 1,000 people
    .venv/bin/python benchmarks/conversations.py --people 200   # smoke

Issue #12 asks that survey answers flow into aggregate queries "with no slower path than other
datasets". The store (SQLite, in a temporary home) gets a retailer, a brand and N people,
each signed up with a claim code; each answers the retailer's survey through
`services.conversations.answer` and shares the answer with the brand for analytics.reporting
(every 10th person shares with nobody). The ordinary dataset is the same rows uploaded with
`dataset add` under the same schema, with the same consent grants recorded by the controller.
The brand runs the same aggregate over each, under an aggregate agreement (k = 10), through
`services.queries.run_query` (governor, consent gate, engine, ledger, receipts).

Baseline, measured in the same run: the same GROUP BY in raw DuckDB over the version's file.
Printed: medians of --repeat interleaved runs and ratios against the baseline; the figure that matters is
survey / ordinary (target: at most 1.1, i.e. no slower path). Also the cost of one answer
(recording it and its consent records) and of the publication the first read then makes (all
the answers as the next version of every copy, services/answers.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.domain.conversations import answer_schema, parse_survey  # noqa: E402
from commonground.services import agreements as agreement_svc  # noqa: E402
from commonground.services import answers as answer_svc  # noqa: E402
from commonground.services import consent as consent_svc  # noqa: E402
from commonground.services import conversations as survey_svc  # noqa: E402
from commonground.services import datasets as dataset_svc  # noqa: E402
from commonground.services import parties as party_svc  # noqa: E402
from commonground.services import queries as query_svc  # noqa: E402
from commonground.services import subjects as subject_svc  # noqa: E402

AR = "analytics.reporting"
SURVEY = {"name": "visit", "title": "How was your visit?", "purposes": [AR], "partners": ["brand"], "min_group_size": 10,
          "questions": [{"id": "mood", "text": "Mood?", "type": "choice", "options": ["good", "fine", "bad"]},
                        {"id": "minutes", "text": "Minutes in the shop", "type": "number", "min": 0},
                        {"id": "again", "text": "Again?", "type": "yes_no"}]}
SQL = "SELECT mood, COUNT(*) AS people, AVG(minutes) AS minutes FROM retailer.{table} GROUP BY mood"


def _agreement(name: str, dataset: str) -> dict:
    return {"name": name, "provider": "retailer", "recipients": ["brand"], "purposes": [AR], "valid_until": "2099-12-31",
            "datasets": {dataset: {"fields": {"respondent": "hash", "mood": "raw", "minutes": "raw", "again": "raw"}}},
            "access": {"mode": "aggregate", "min_group_size": 10}}


def _medians_ms(fns: dict, repeat: int) -> dict[str, float]:
    """Each contender's median, the contenders interleaved so load changes hit them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cg-conversations-bench-")) / "home"
    deps = bootstrap.build(bootstrap.Settings(home, f"sqlite:///{home.parent / 'meta.db'}"))
    bootstrap.init_store(deps)
    for org in ("retailer", "brand"):
        party_svc.add_party(deps, org)
    survey = survey_svc.create_survey(deps, "retailer", SURVEY)
    answer_ms = []
    for n in range(args.people):
        code, _ = subject_svc.invite(deps, "retailer", f"C{n:06d}")
        subject_svc.register(deps, f"p{n}", code)
        share = [] if n % 10 == 9 else [("brand", AR)]
        started = time.perf_counter()
        survey_svc.answer(deps, f"p{n}", survey["id"], {"mood": ("good", "fine", "bad")[n % 3], "minutes": n % 60,
                                                        "again": n % 2 == 0}, share)
        answer_ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    answer_svc.publish_pending(deps)  # what the first read does
    publish_ms = (time.perf_counter() - started) * 1000
    with deps.store.read() as conn:
        copy = deps.store.versions(conn, "retailer", "visit__brand")[-1]

    # The ordinary dataset: the same rows and schema, uploaded; the same grants, by the controller.
    plain = home.parent / "visits.parquet"  # the copy's rows without the store's hidden columns
    duckdb.connect().execute(f"COPY (SELECT COLUMNS(lambda c: NOT starts_with(c, '__cg_')) FROM read_parquet('{home / copy.path}')) "
                             f"TO '{plain}' (FORMAT parquet)")
    dataset_svc.add_dataset(deps, "retailer", "visits", plain, answer_schema(parse_survey(SURVEY, "retailer")))
    consent_svc.record(deps, "retailer", "retailer.visits",
                       [(f"C{n:06d}", AR, "granted") for n in range(args.people) if n % 10 != 9], "controller")
    for name, dataset in (("survey-brand", "retailer.visit__brand"), ("visits-brand", "retailer.visits")):
        agreement_svc.accept(deps, "brand", agreement_svc.propose(deps, "retailer", _agreement(name, dataset)).id)

    def governed(table: str) -> list:
        return query_svc.run_query(deps, "brand", AR, SQL.format(table=table))[0].rows

    survey_rows, ordinary_rows = governed("visit__brand"), governed("visits")
    assert sorted(survey_rows) == sorted(ordinary_rows), "both paths must give the same answer"
    shared = sum(1 for n in range(args.people) if n % 10 != 9)
    assert sum(r[1] for r in survey_rows) == shared, "only the people who chose the brand are counted"
    raw_sql = f"SELECT mood, COUNT(*), AVG(minutes) FROM read_parquet('{home / copy.path}') GROUP BY mood"
    medians = _medians_ms({"raw": lambda: duckdb.connect().execute(raw_sql).fetchall(),
                           "survey": lambda: governed("visit__brand"), "ordinary": lambda: governed("visits")}, args.repeat)
    baseline, on_survey, on_ordinary = medians["raw"], medians["survey"], medians["ordinary"]
    ratio = on_survey / on_ordinary
    print(f"survey answers vs an ordinary dataset, {args.people:,} people ({shared:,} shared with the brand), SQLite")
    print(f"{'step':52} {'median ms':>10} {'vs raw':>8}")
    print(f"{'raw DuckDB GROUP BY over the file, new connection':52} {baseline:10.2f} {1.0:7.1f}x")
    print(f"{'governed aggregate, ordinary opt-in dataset':52} {on_ordinary:10.2f} {on_ordinary / baseline:7.1f}x")
    print(f"{'governed aggregate, survey answers (brand copy)':52} {on_survey:10.2f} {on_survey / baseline:7.1f}x")
    print(f"{'survey / ordinary (target <= 1.1)':52} {ratio:10.2f}x  {'MET' if ratio <= 1.1 else 'NOT MET'}")
    print(f"{'one answer (record, consent records), median':52} {statistics.median(answer_ms):10.2f}")
    print(f"{'one answer, last 10% of people':52} {statistics.median(answer_ms[-max(1, args.people // 10):]):10.2f}")
    print(f"{'the first read publishes all {:,} answers'.format(args.people):52} {publish_ms:10.2f}")
    print(machine_line())
    deps.store.dispose()


if __name__ == "__main__":
    main()
