"""Transforms as SQL expressions, so they run vectorised in the engine (no per-row Python).

The keyed hash is HMAC-SHA256 (RFC 2104) spelled in SQL over the engine's own SHA-256:
    HMAC(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m))
truncated to its first 128 bits (NIST SP 800-107 allows truncated HMACs): a pseudonym is the
first PSEUDONYM_HEX = 32 lowercase hex characters of the digest, which still makes collisions
negligible for join keys (about 2^-65 for 2^32 distinct values) and writes half the bytes.
The key never appears in SQL text: the engine defines the function `name(x)` from the plan's
`pseudonym_keys`, and the SQL only calls it by name.
"""

from __future__ import annotations

from sqlglot import exp

from ..domain.agreements import Transform, TransformKind

PSEUDONYM_PREFIX = "cg_pseudonym_"
PSEUDONYM_HEX = 32  # hex characters of a pseudonym: HMAC-SHA256 truncated to 128 bits


def pseudonym_function(agreement_id: str) -> str:
    return PSEUDONYM_PREFIX + "".join(ch for ch in agreement_id if ch.isalnum()).lower()


def hmac_sql(key: bytes, value_sql: str) -> str:
    """The body of the engine-side pseudonym function for one key (the truncated hex digest)."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else None
    if block is None:
        raise ValueError("pseudonym keys are at most 64 bytes")
    ipad = bytes(b ^ 0x36 for b in block).hex()
    opad = bytes(b ^ 0x5C for b in block).hex()
    inner = f"unhex(sha256(unhex('{ipad}') || encode(CAST({value_sql} AS VARCHAR))))"
    return f"left(sha256(unhex('{opad}') || {inner}), {PSEUDONYM_HEX})"


def apply(transform: Transform, column: exp.Expression, agreement_id: str) -> exp.Expression:
    kind = transform.kind
    if kind is TransformKind.RAW:
        return column
    if kind is TransformKind.HASH:
        return exp.Anonymous(this=pseudonym_function(agreement_id), expressions=[column])
    if kind is TransformKind.MASK:
        text = exp.cast(column, "VARCHAR")
        keep = transform.keep_last
        stars = exp.func("repeat", exp.Literal.string("*"),
                         exp.func("greatest", exp.Sub(this=exp.Length(this=text.copy()), expression=exp.Literal.number(keep)), exp.Literal.number(0)))
        if keep == 0:
            return stars
        return exp.DPipe(this=stars, expression=exp.func("right", text.copy(), exp.Literal.number(keep)))
    if kind is TransformKind.GENERALIZE:
        if transform.keep is not None:
            return exp.func("left", exp.cast(column, "VARCHAR"), exp.Literal.number(transform.keep))
        return exp.cast(exp.func("date_trunc", exp.Literal.string(transform.to or "month"), column), "DATE")
    if kind is TransformKind.BUCKET:
        width = transform.width or 1
        integral = float(width).is_integer()
        width_lit = exp.Literal.number(int(width) if integral else width)
        lower = exp.Mul(this=exp.Floor(this=exp.Div(this=column, expression=width_lit.copy())), expression=width_lit)
        return exp.cast(lower, "BIGINT") if integral else lower
    raise ValueError(f"transform {kind.value} has no SQL form")
