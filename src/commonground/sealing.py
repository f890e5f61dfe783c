"""Client-side sealing: run at the contributor's site, so the store never sees raw identifiers.

`seal_file` turns a CSV or Parquet file into one whose `fingerprint` columns hold a keyed
HMAC of each (normalised) value and whose `sealed` columns hold AES-GCM ciphertext; the
`cleartext` columns pass through. `unseal_file` / `unseal_rows` open sealed columns in a
result the recipient was allowed to see. Keys come from a collaboration secret the parties
share among themselves and never send to the store (docs/sealing.md):

    key(kind, domain) = HKDF-SHA256(ikm=secret, salt="commonground-seal-v1",
                                    info=kind || 0x00 || collaboration || 0x00 || domain)

so each column domain (by default the column name) gets its own key: fingerprints of one
domain cannot be compared with those of another, and pseudonyms do not link across
collaborations. Nothing here opens a store or a network connection; it reads and writes the
user's files with pyarrow, batch by batch, so a 10M-row file streams in bounded memory.

Primitives are the standard ones: HKDF and AES-GCM from `cryptography`, HMAC-SHA256 from the
standard library's OpenSSL one-shot `hmac.digest` (the fastest call per value; a test checks
it against `cryptography`'s HMAC).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .domain.errors import BadInput
from .domain.schema import (FINGERPRINT_BYTES, FINGERPRINT_CHARS, SEAL_NONCE_BYTES, SEAL_SECRET_ENV, SEAL_TAG_BYTES,
                            SEAL_VERSION_PADDED, SEAL_VERSION_PLAIN, ColumnSpec, DatasetSchema, Seal,
                            normalize_column_name)

MIN_SECRET_BYTES = 32
KDF_SALT = b"commonground-seal-v1"
AAD_PREFIX = b"commonground-seal-v1|"
BATCH_ROWS = 65_536
_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

Progress = Callable[[float], None]


# ---------------------------------------------------------------------------------------
# secrets and keys


def new_secret() -> str:
    """A fresh collaboration secret (256 bits, base64url): one party makes it and shares it with
    the others out of band; it never goes to the store."""
    return secrets.token_urlsafe(32)


def load_secret(secret_file: Path | str | None = None, env: Mapping[str, str] | None = None) -> bytes:
    """The collaboration secret from a file, or else from $COMMONGROUND_SEAL_SECRET."""
    if secret_file is not None:
        try:
            raw = Path(secret_file).read_bytes().strip()
        except OSError as e:
            raise BadInput(f"cannot read the secret file {secret_file}: {e.strerror}") from None
        where = f"the secret file {secret_file}"
    else:
        value = (os.environ if env is None else env).get(SEAL_SECRET_ENV, "")
        raw = value.strip().encode()
        where = f"${SEAL_SECRET_ENV}"
        if not raw:
            raise BadInput(f"no collaboration secret: pass --secret-file FILE or set ${SEAL_SECRET_ENV} "
                           "(make one with `commonground seal-secret FILE`)")
    return check_secret(raw, where)


def check_secret(secret: bytes | str, where: str = "the collaboration secret") -> bytes:
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise BadInput(f"{where} is {len(raw)} bytes; it needs at least {MIN_SECRET_BYTES} (a guessable secret "
                       "would let anyone holding the sealed file test guesses of the identifiers)")
    return raw


def derive_key(secret: bytes, collaboration: str, kind: Seal, domain: str) -> bytes:
    """The 256-bit key of one column domain: HKDF-SHA256 with the kind, collaboration and domain as info."""
    info = kind.value.encode() + b"\x00" + collaboration.encode() + b"\x00" + domain.encode()
    return HKDF(algorithm=SHA256(), length=32, salt=KDF_SALT, info=info).derive(secret)


# ---------------------------------------------------------------------------------------
# column transforms (one Arrow array at a time)


_OFFSETS_CACHE: dict[int, pa.Buffer] = {}


def _offsets(n: int, width: int) -> pa.Buffer:
    """An int32 offsets buffer 0, width, 2*width, ... (n + 1 entries), cached per width."""
    cached = _OFFSETS_CACHE.get(width)
    if cached is None or cached.size < 4 * (n + 1):
        import array
        size = max(n, BATCH_ROWS)
        cached = pa.py_buffer(array.array("i", range(0, width * (size + 1), width)).tobytes())
        _OFFSETS_CACHE[width] = cached
    return cached.slice(0, 4 * (n + 1))


def normalize(values: pa.Array, steps: Sequence[str], null_values: Sequence[str] = ("",)) -> pa.Array:
    """The declared normalisation, then the schema's null markers (and "") become NULL."""
    out = values if values.type == pa.string() else pc.cast(values, pa.string())
    for step in steps:
        if step == "trim":
            out = pc.utf8_trim_whitespace(out)
        elif step == "lower":
            out = pc.utf8_lower(out)
        elif step == "nfc":
            out = pc.utf8_normalize(out, form="NFC")
        elif step == "digits":
            out = pc.replace_substring_regex(out, pattern=r"[^0-9]", replacement="")
    nulls = pa.array(sorted(set(null_values) | {""}), pa.string())
    return pc.if_else(pc.is_in(out, value_set=nulls), pa.scalar(None, pa.string()), out)


def _map_valid(values: pa.Array, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Apply fn to the non-null values only; nulls stay null."""
    if values.null_count == 0:
        return fn(values)
    valid = pc.is_valid(values)
    done = fn(pc.drop_null(values))
    position = pc.subtract(pc.cumulative_sum(pc.cast(valid, pa.int64())), 1)
    return pc.take(done, pc.if_else(valid, position, pa.scalar(None, pa.int64())))


def fingerprint_array(values: pa.Array, key: bytes) -> pa.Array:
    """HMAC-SHA256 of each (already normalised) value under `key`, truncated to 128 bits, in
    unpadded base64url (22 characters). Vectorised except for the HMAC call itself: the
    digests are joined, cut to 16 bytes plus two zero bytes (18 bytes encode to exactly 24
    base64 characters, so values stay aligned), encoded in one call, and sliced to 22."""
    def run(plain: pa.Array) -> pa.Array:
        n = len(plain)
        if n == 0:
            return pa.array([], pa.string())
        data = pc.cast(plain, pa.binary()).to_pylist()
        joined = b"".join(map(hmac.digest, repeat(key, n), data, repeat("sha256", n)))
        digests = pa.Array.from_buffers(pa.binary(32), n, [None, pa.py_buffer(joined)])
        cut = pc.binary_replace_slice(pc.cast(digests, pa.binary()), start=FINGERPRINT_BYTES, stop=32,
                                      replacement=b"\x00\x00")
        encoded = base64.urlsafe_b64encode(cut.buffers()[2].to_pybytes()[: 18 * n])
        padded = pa.Array.from_buffers(pa.string(), n, [None, _offsets(n, 24), pa.py_buffer(encoded)])
        return pc.utf8_slice_codeunits(padded, 0, FINGERPRINT_CHARS)
    return _map_valid(values, run)


def fingerprint_value(value: str | None, key: bytes, steps: Sequence[str] = ("trim",)) -> str | None:
    """One value, for tests and look-ups; the same result as `fingerprint_array`."""
    plain = normalize(pa.array([value], pa.string()), steps)
    return fingerprint_array(plain, key)[0].as_py()


def _pad(data: bytes, block: int) -> bytes:
    return data + b"\x80" + b"\x00" * ((-len(data) - 1) % block)


def _unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise ValueError("bad padding")
    return stripped[:-1]


def seal_array(values: pa.Array, key: bytes, pad: int | None = None) -> pa.Array:
    """AES-256-GCM of each value with a fresh random 96-bit nonce; the version byte is
    authenticated as associated data. Output: unpadded base64url of version||nonce||ct||tag."""
    version = SEAL_VERSION_PADDED if pad else SEAL_VERSION_PLAIN
    header = bytes([version])
    aad = AAD_PREFIX + header
    encrypt = AESGCM(key).encrypt
    b64 = base64.urlsafe_b64encode

    def run(plain: pa.Array) -> pa.Array:
        n = len(plain)
        data = pc.cast(plain, pa.binary()).to_pylist()
        if pad:
            data = [_pad(d, pad) for d in data]
        nonces = os.urandom(SEAL_NONCE_BYTES * n)
        out = []
        for i, d in enumerate(data):
            nonce = nonces[i * SEAL_NONCE_BYTES:(i + 1) * SEAL_NONCE_BYTES]
            out.append(b64(header + nonce + encrypt(nonce, d, aad)).rstrip(b"="))
        return pc.cast(pa.array(out, pa.binary()), pa.string())
    return _map_valid(values, run)


def open_value(token: str, key: bytes) -> str:
    """Decrypt one sealed value; ValueError if it is not a value sealed under this key."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if len(raw) < 1 + SEAL_NONCE_BYTES + SEAL_TAG_BYTES or raw[0] not in (SEAL_VERSION_PLAIN, SEAL_VERSION_PADDED):
        raise ValueError("not a sealed value")
    nonce = raw[1:1 + SEAL_NONCE_BYTES]
    try:
        plain = AESGCM(key).decrypt(nonce, raw[1 + SEAL_NONCE_BYTES:], AAD_PREFIX + raw[:1])
    except InvalidTag:
        raise ValueError("does not open with this secret, collaboration and domain") from None
    if raw[0] == SEAL_VERSION_PADDED:
        plain = _unpad(plain)
    return plain.decode("utf-8")


# ---------------------------------------------------------------------------------------
# files


@dataclass
class SealReport:
    source: str
    output: str
    rows: int = 0
    fingerprint: list[str] = field(default_factory=list)
    sealed: list[str] = field(default_factory=list)
    cleartext: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _format(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path.name}: unknown file type {path.suffix!r} (use .csv or .parquet)")
    return fmt


def _batches(source: Path, progress: Progress | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Stream a CSV (every column as text, as the store's ingest reads it) or Parquet file."""
    if not source.is_file():
        raise BadInput(f"cannot read {source}: no such file")
    fmt = _format(source)
    total = max(source.stat().st_size, 1)
    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(source)
        except (pa.ArrowException, OSError) as e:
            raise BadInput(f"cannot read {source.name} as parquet: {e}") from None
        rows = max(pf.metadata.num_rows, 1)

        def parquet_iter() -> Iterator[pa.RecordBatch]:
            done = 0
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                done += batch.num_rows
                yield batch
                if progress:
                    progress(100.0 * done / rows)
        return pf.schema_arrow, parquet_iter()
    import csv
    with open(source, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise BadInput(f"{source.name} is empty")
    handle = pa.OSFile(str(source))
    try:
        reader = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=8 << 20),
                                convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                                     strings_can_be_null=False))
    except pa.ArrowException as e:
        handle.close()
        raise BadInput(f"cannot read {source.name} as CSV: {e}") from None

    def csv_iter() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowException as e:
                    raise BadInput(f"cannot read {source.name} as CSV: {e}") from None
                yield batch
                if progress:
                    progress(min(100.0 * handle.tell() / total, 99.9))
        finally:
            handle.close()
    return reader.schema, csv_iter()


def _match_columns(names: Sequence[str], schema: DatasetSchema, filename: str) -> dict[str, ColumnSpec]:
    """File header -> the schema column it is (names normalised as the store's ingest does)."""
    declared = {c.name: c for c in schema.columns if c.name != schema.row_id}
    by_file = {raw: declared.get(normalize_column_name(raw)) for raw in names}
    extra = [raw for raw, spec in by_file.items() if spec is None]
    missing = sorted(set(declared) - {normalize_column_name(r) for r in names})
    if extra:
        raise BadInput(f"{filename}: file column(s) {extra} are not declared in the schema; declare them "
                       "(seal: cleartext if they may leave your site as they are) or remove them")
    if missing:
        raise BadInput(f"{filename}: schema column(s) {missing} not in the file (file has {list(names)})")
    return by_file  # type: ignore[return-value]


def _collaboration(schema: DatasetSchema, collaboration: str | None) -> str:
    if not schema.sealed_columns:
        raise BadInput("schema: no column has seal: fingerprint or seal: sealed, so there is nothing to seal")
    assert schema.collaboration is not None  # parse_schema requires it when a column is sealed
    if collaboration is not None and collaboration != schema.collaboration:
        raise BadInput(f"--collaboration {collaboration!r} does not match the schema's collaboration "
                       f"{schema.collaboration!r}; both parties must seal under the same one")
    return schema.collaboration


def column_keys(schema: DatasetSchema, secret: bytes, collaboration: str | None = None) -> dict[str, bytes]:
    """Each sealed or fingerprint column's key, by column name."""
    collab = _collaboration(schema, collaboration)
    return {c.name: derive_key(secret, collab, c.seal, c.domain) for c in schema.sealed_columns}


class _Writer:
    def __init__(self, dest: Path, schema: pa.Schema):
        self.dest = dest
        self.fmt = _format(dest)
        self.tmp = dest.with_name(dest.name + ".partial")
        if self.fmt == "parquet":
            self.w: Any = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        else:
            self.w = pacsv.CSVWriter(self.tmp, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.fmt == "parquet":
            self.w.write_batch(batch)
        else:
            self.w.write(batch)

    def close(self, ok: bool) -> int:
        self.w.close()
        if not ok:
            self.tmp.unlink(missing_ok=True)
            return 0
        os.replace(self.tmp, self.dest)
        return self.dest.stat().st_size


def seal_file(source: Path | str, dest: Path | str, schema: DatasetSchema, secret: bytes,
              collaboration: str | None = None, progress: Progress | None = None) -> SealReport:
    """Seal a file at the contributor's site. The output has the same columns and rows; the
    schema's fingerprint and sealed columns are replaced by their sealed forms (text)."""
    source, dest = Path(source), Path(dest)
    secret = check_secret(secret)
    keys = column_keys(schema, secret, collaboration)
    if source.resolve() == dest.resolve():
        raise BadInput("the output must be a new file, not the input")
    file_schema, batches = _batches(source, progress)
    specs = _match_columns(file_schema.names, schema, source.name)
    report = SealReport(str(source), str(dest))
    for raw, spec in specs.items():
        {Seal.FINGERPRINT: report.fingerprint, Seal.SEALED: report.sealed,
         Seal.CLEARTEXT: report.cleartext}[spec.seal].append(raw)
        if spec.role.identifying and not spec.sealed:
            report.warnings.append(f"{raw} is identifying ({spec.role.value}) but stays cleartext: the store's "
                                   "operator will see it; declare seal: fingerprint to hide it")
    out_schema = pa.schema([pa.field(f.name, pa.string()) if specs[f.name].sealed else f for f in file_schema])
    writer = _Writer(dest, out_schema)
    ok = False
    try:
        for batch in batches:
            columns = []
            for f, column in zip(file_schema, batch.columns):
                spec = specs[f.name]
                if spec.seal is Seal.FINGERPRINT:
                    column = fingerprint_array(normalize(column, spec.normalize, schema.null_values), keys[spec.name])
                elif spec.seal is Seal.SEALED:
                    column = seal_array(normalize(column, ("trim",), schema.null_values), keys[spec.name], spec.pad)
                columns.append(column)
            writer.write(pa.RecordBatch.from_arrays(columns, schema=out_schema))
            report.rows += batch.num_rows
        ok = True
    finally:
        report.bytes = writer.close(ok)
    if progress:
        progress(100.0)
    return report


def _sealed_targets(names: Sequence[str], schema: DatasetSchema, keys: Mapping[str, bytes],
                    columns: Mapping[str, str] | None) -> dict[int, tuple[str, bytes]]:
    """Which result columns to open: those named like a sealed column of the schema, or mapped
    explicitly (result column -> schema column) for a result that renamed them."""
    sealed = {c.name: c for c in schema.columns if c.seal is Seal.SEALED}
    wanted = dict(columns or {})
    for name in names:
        if name not in wanted and normalize_column_name(name) in sealed:
            wanted[name] = normalize_column_name(name)
    targets = {}
    for result_col, schema_col in wanted.items():
        if schema_col not in sealed:
            raise BadInput(f"{schema_col!r} is not a sealed column of the schema (sealed: {sorted(sealed)})")
        if result_col not in names:
            raise BadInput(f"the result has no column {result_col!r} (it has {list(names)})")
        targets[list(names).index(result_col)] = (result_col, keys[schema_col])
    if not targets:
        raise BadInput(f"the result has no sealed column of the schema (sealed: {sorted(sealed) or 'none'})")
    return targets


def _open_array(values: pa.Array, key: bytes, column: str, first_row: int) -> pa.Array:
    out: list[str | None] = []
    for i, token in enumerate(pc.cast(values, pa.string()).to_pylist()):
        if not token:  # NULL (or an empty CSV cell)
            out.append(None)
            continue
        try:
            out.append(open_value(token, key))
        except ValueError as e:
            raise BadInput(f"row {first_row + i + 1}, column {column}: cannot open the value: {e}") from None
    return pa.array(out, pa.string())


def unseal_file(source: Path | str, dest: Path | str, schema: DatasetSchema, secret: bytes,
                collaboration: str | None = None, columns: Mapping[str, str] | None = None,
                progress: Progress | None = None) -> SealReport:
    """Open the sealed columns of a result file (CSV or Parquet) the recipient was allowed to see."""
    source, dest = Path(source), Path(dest)
    keys = column_keys(schema, check_secret(secret), collaboration)
    if source.resolve() == dest.resolve():
        raise BadInput("the output must be a new file, not the input")
    file_schema, batches = _batches(source, progress)
    targets = _sealed_targets(file_schema.names, schema, keys, columns)
    out_schema = pa.schema([pa.field(f.name, pa.string()) if i in targets else f for i, f in enumerate(file_schema)])
    report = SealReport(str(source), str(dest), sealed=[t[0] for t in targets.values()])
    writer = _Writer(dest, out_schema)
    ok = False
    try:
        for batch in batches:
            cols = [(_open_array(c, targets[i][1], targets[i][0], report.rows) if i in targets else c)
                    for i, c in enumerate(batch.columns)]
            writer.write(pa.RecordBatch.from_arrays(cols, schema=out_schema))
            report.rows += batch.num_rows
        ok = True
    finally:
        report.bytes = writer.close(ok)
    return report


def unseal_rows(result_columns: Sequence[str], rows: Sequence[Sequence[Any]], schema: DatasetSchema, secret: bytes,
                collaboration: str | None = None, columns: Mapping[str, str] | None = None) -> list[list[Any]]:
    """Open the sealed columns of a query result held in memory ({"columns": [...], "rows": [...]})."""
    keys = column_keys(schema, check_secret(secret), collaboration)
    targets = _sealed_targets(list(result_columns), schema, keys, columns)
    out = []
    for n, row in enumerate(rows):
        row = list(row)
        for i, (name, key) in targets.items():
            if row[i] is not None and row[i] != "":
                try:
                    row[i] = open_value(str(row[i]), key)
                except ValueError as e:
                    raise BadInput(f"row {n + 1}, column {name}: cannot open the value: {e}") from None
        out.append(row)
    return out
