"""The store's Ed25519 signing key for tree heads, created at init, kept under the home (0600)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class FileSigner:
    def __init__(self, path: Path):
        self.path = path
        self._key: Ed25519PrivateKey | None = None

    def create_if_missing(self) -> None:
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def _private(self) -> Ed25519PrivateKey:
        if self._key is None:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            self._key = key
        return self._key

    def sign(self, data: bytes) -> bytes:
        return self._private().sign(data)

    def public_key_pem(self) -> bytes:
        return self._private().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
