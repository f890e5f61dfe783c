"""Curation benchmark. Section 1: PII scan throughput against Microsoft Presidio.

    .venv/bin/python benchmarks/curation.py                       # 200k rows
    .venv/bin/python benchmarks/curation.py --rows 20000          # smoke
    .venv/bin/python benchmarks/curation.py --presidio-python /tmp/presidio-venv/bin/python

Data: a CSV with one column per kind (email, phone, payment card, IBAN, SSN, IP, date of
birth), a free-text column, and decoys (16-digit numbers failing Luhn, bad IBANs, version
strings, event dates). Both sides look at the same columns, one run each:

- commonground: `adapters.pii_scan.scan_file`, sample plus the exact full pass over every
  flagged column (every distinct candidate validated), rows/s over the whole file;
- Presidio: its pattern recognizers only (email, phone, credit card, IBAN, US SSN, IP, date),
  called directly on every value of the first `--presidio-rows` rows (no NLP engine, so no spaCy
  model is needed), rows/s. Presidio runs in a child process with `--presidio-python` (default:
  this interpreter); if it cannot import presidio_analyzer the section says so and skips it
  (`python -m venv /tmp/presidio-venv && /tmp/presidio-venv/bin/pip install presidio-analyzer`).

Later sections (export throughput) append to this script; each prints its own table.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
COLUMNS = ["contact", "mobile", "card", "account", "ssn", "client_ip", "born", "notes",
           "order_ref", "bad_iban", "version", "ordered_on"]


def _luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body + "0")):
        d = int(c)
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
    return str((10 - total % 10) % 10)


def write_data(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    digits = "0123456789"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(rows):
            body = rng.choice(["4", "51", "37", "6011"])
            body += "".join(rng.choice(digits) for _ in range(15 - len(body)))
            bban = "37040044" + "".join(rng.choice(digits) for _ in range(10))
            check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
            bad = "".join(rng.choice(digits) for _ in range(16))
            w.writerow([
                f"user{i}@example{rng.randint(1, 50)}.com",
                f"+1 415 555 {rng.randint(0, 9999):04d}" if i % 2 else f"+44 20 7946 {rng.randint(0, 999):04d}",
                body + _luhn_digit(body), f"DE{check:02d}{bban}",
                f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"{rng.randint(1940, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"call me on +1 415 555 {rng.randint(0, 9999):04d}" if i % 10 == 0 else "nothing to add",
                bad[:-1] + str((int(bad[-1]) + 1) % 10) if _luhn_digit(bad[:-1]) == bad[-1] else bad,
                "DE00" + "".join(rng.choice(digits) for _ in range(18)),
                f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 300)}",
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            ])


PRESIDIO_CHILD = r"""
import csv, json, logging, sys, time
logging.disable(logging.CRITICAL)
from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, DateRecognizer, EmailRecognizer,
    IbanRecognizer, IpRecognizer, PhoneRecognizer, UsSsnRecognizer)
recognizers = [EmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(), UsSsnRecognizer(),
               IpRecognizer(), DateRecognizer()]
path, limit = sys.argv[1], int(sys.argv[2])
with open(path, newline="") as f:
    rows = [r for _, r in zip(range(limit), csv.DictReader(f))]
for r in recognizers:  # warm up (lazy loading) outside the timing
    r.analyze("warm up jo@example.com 4111 1111 1111 1111", r.supported_entities, None)
hits = {}
started = time.perf_counter()
for row in rows:
    for column, value in row.items():
        for r in recognizers:
            for res in r.analyze(value, r.supported_entities, None):
                key = column + ":" + res.entity_type
                hits[key] = hits.get(key, 0) + 1
seconds = time.perf_counter() - started
print(json.dumps({"rows": len(rows), "seconds": seconds, "hits": hits}))
"""


def presidio(python: str, path: Path, rows: int) -> dict | None:
    proc = subprocess.run([python, "-c", PRESIDIO_CHILD, str(path), str(rows)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"presidio skipped: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pii_section(args: argparse.Namespace) -> None:
    from commonground.adapters.pii_scan import scan_file
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"pii-{args.rows}.csv"
    if not path.exists():
        write_data(path, args.rows)
    started = time.perf_counter()
    report = scan_file(path)
    ours = time.perf_counter() - started
    flagged = {c.column: c.primary.value for c in report.flagged}
    print(f"## PII scan ({args.rows:,} rows, {len(COLUMNS)} columns)")
    print(f"commonground: {ours:.2f} s, {args.rows / ours:,.0f} rows/s (sample + exact full pass); flagged {flagged}")
    theirs = presidio(args.presidio_python, path, min(args.presidio_rows, args.rows))
    if theirs:
        rate = theirs["rows"] / theirs["seconds"]
        print(f"presidio (pattern recognizers, {theirs['rows']:,} rows): {theirs['seconds']:.2f} s, {rate:,.0f} rows/s")
        print(f"ratio: commonground is {args.rows / ours / rate:,.1f}x Presidio's rows/s")
        decoys = {k: v for k, v in theirs["hits"].items() if k.split(":")[0] in ("order_ref", "bad_iban", "version", "ordered_on")}
        print(f"presidio hits on decoy columns (of {theirs['rows']:,} rows): {decoys}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--presidio-rows", type=int, default=5_000, help="Presidio is timed on the first N rows.")
    parser.add_argument("--presidio-python", default=sys.executable)
    args = parser.parse_args()
    pii_section(args)


if __name__ == "__main__":
    main()
