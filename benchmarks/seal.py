"""Sealing benchmark (issue #10): `commonground seal` of 10M identifiers against raw HMAC-SHA256.

    .venv/bin/python benchmarks/seal.py                      # 10M identifiers
    .venv/bin/python benchmarks/seal.py --rows 200000        # smoke run

Generates (once, with DuckDB) a Parquet file of 10M distinct e-mail addresses under
benchmarks/.data/, then, in the same process and run:

  * the limit: `hmac.digest(key, value, "sha256")` over every value, already in memory as
    bytes (no reading, normalising, encoding or writing), summed over the same batches;
  * the product: `sealing.seal_file` (the function `commonground seal` calls), reading the
    Parquet file, trimming and case-folding, HMAC-ing, encoding, writing Parquet (zstd);
  * sealed columns: AES-256-GCM of the same values for a tenth of the rows (`seal_array`).

Prints values/s for each, the product's fraction of the limit, and bytes per fingerprint:
the encoded value (22 characters, against C3R's 52 bytes) and the Parquet file's bytes per
value on disk.
"""

from __future__ import annotations

import argparse
import hmac
import json
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

from commonground import sealing  # noqa: E402
from commonground.domain.schema import Seal, parse_schema  # noqa: E402

C3R_FINGERPRINT_BYTES = 52
SECRET = b"benchmark-collaboration-secret-0123456789"


def make_input(rows: int) -> Path:
    path = B.data_dir() / f"seal-{rows}.parquet"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        duckdb.sql(f"COPY (SELECT 'User.' || i || '@Example.com' AS email FROM range({rows}) t(i)) "
                   f"TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        tmp.rename(path)
    return path


def raw_hmac(source: Path, key: bytes) -> float:
    """Seconds of hmac.digest alone over every value (bytes in memory, read beforehand per batch)."""
    spent = 0.0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=sealing.BATCH_ROWS):
        values = batch.column(0).cast(pa.binary()).to_pylist()
        started = time.perf_counter()
        for v in values:
            hmac.digest(key, v, "sha256")
        spent += time.perf_counter() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    source = make_input(args.rows)
    schema = parse_schema({"collaboration": "bench", "columns": {
        "email": {"type": "string", "role": "subject_id", "seal": "fingerprint", "normalize": ["trim", "lower"]}}})
    key = sealing.derive_key(SECRET, "bench", Seal.FINGERPRINT, "email")

    limit_s = raw_hmac(source, key)
    dest = B.data_dir() / "seal-out.parquet"
    started = time.perf_counter()
    report = sealing.seal_file(source, dest, schema, SECRET)
    seal_s = time.perf_counter() - started
    assert report.rows == args.rows

    meta = pq.ParquetFile(dest).metadata
    column_bytes = sum(meta.row_group(i).column(0).total_compressed_size for i in range(meta.num_row_groups))
    sample = pq.read_table(dest).column(0).slice(0, 1000).to_pylist()
    encoded = max(len(v) for v in sample)

    aes_rows = max(args.rows // 10, 1)
    values = pq.read_table(source).column(0).slice(0, aes_rows).combine_chunks()
    aes_key = sealing.derive_key(SECRET, "bench", Seal.SEALED, "email")
    started = time.perf_counter()
    sealed = sealing.seal_array(values, aes_key)
    aes_s = time.perf_counter() - started
    sealed_bytes = sum(len(v) for v in sealed.to_pylist()) / aes_rows
    plain_bytes = sum(len(v) for v in values.to_pylist()) / aes_rows

    figures = {
        "rows": args.rows,
        "raw_hmac_values_per_s": round(args.rows / limit_s),
        "seal_values_per_s": round(args.rows / seal_s),
        "seal_fraction_of_raw_hmac": round(limit_s / seal_s, 3),
        "seal_s": round(seal_s, 2), "raw_hmac_s": round(limit_s, 2),
        "fingerprint_chars": encoded, "c3r_fingerprint_bytes": C3R_FINGERPRINT_BYTES,
        "fingerprint_parquet_bytes_per_value": round(column_bytes / args.rows, 2),
        "aes_gcm_values_per_s": round(aes_rows / aes_s),
        "aes_gcm_plaintext_bytes_per_value": round(plain_bytes, 1),
        "aes_gcm_sealed_chars_per_value": round(sealed_bytes, 1),
    }
    print(json.dumps(figures, indent=2))
    print(f"\nseal: {figures['seal_values_per_s']:,} values/s = {figures['seal_fraction_of_raw_hmac']:.0%} of raw "
          f"HMAC-SHA256 ({figures['raw_hmac_values_per_s']:,} values/s, the limit); "
          f"{encoded} bytes per fingerprint value (C3R: {C3R_FINGERPRINT_BYTES}), "
          f"{figures['fingerprint_parquet_bytes_per_value']} on disk in Parquet; "
          f"AES-GCM sealed columns {figures['aes_gcm_values_per_s']:,} values/s")
    dest.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
