"""Token secrets are stored only as digests: a leaked database does not leak tokens."""

from __future__ import annotations

import hashlib


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
