"""The one thing pyproject.toml cannot yet say stably: the native keyed hash extension.

HMAC-SHA256 over OpenSSL's libcrypto for DuckDB pseudonyms (src/commonground/adapters/_keyed_hash.c).
Optional: without a compiler or libssl-dev the install still succeeds and pseudonyms use the
SQL form; tests/unit/test_keyed_hash.py fails when it is missing, so CI notices.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("commonground.adapters._keyed_hash", ["src/commonground/adapters/_keyed_hash.c"],
                             libraries=["crypto"], optional=True)])
