"""API keys held as SHA-256 hashes, checked in constant time: ingest's sources and the console's
readers authenticate the same way (docs: services/ingest/auth.py).

- Keys are configured as hashes only (`name:<sha256 hex>,...`; `leadflow keys hash KEY` makes one),
  so the configuration never holds a usable key. A presented key is hashed and compared with
  `hmac.compare_digest` against EVERY configured hash, without stopping at a match, so the time
  taken says nothing about which entry matched or how much of it did. A name may have several
  keys (rotation). No keys configured: open (dev mode; the service logs a warning).

Pure code: no I/O.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from services.common.config import ConfigError

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SOURCE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key (what the configuration holds)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "lf_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKeys:
    """The configured (source, sha256 digest) pairs."""

    entries: tuple[tuple[str, bytes], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(source for source, _ in self.entries)

    @classmethod
    def parse(cls, spec: str, variable: str = "LEADFLOW_INGEST_API_KEYS") -> "ApiKeys":
        """`source:sha256hex[,source:sha256hex...]`; whitespace around entries is ignored.
        Errors name the variable and the entry's position, never its value."""
        entries: list[tuple[str, bytes]] = []
        for position, item in enumerate(spec.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            source, sep, digest = item.partition(":")
            source, digest = source.strip(), digest.strip()
            if not sep or not _SOURCE.match(source):
                raise ConfigError(
                    f"{variable}: entry {position} must be 'source:sha256hex' with a source of 1-64 "
                    "letters, digits, '.', '_' or '-'"
                )
            if not _HEX64.match(digest):
                raise ConfigError(
                    f"{variable}: entry {position} ({source}) must hold the 64-hex-digit SHA-256 of the key, "
                    "not the key itself (make one with `leadflow keys hash KEY`)"
                )
            entries.append((source, bytes.fromhex(digest)))
        return cls(tuple(entries))

    def source_of(self, key: str | None) -> str | None:
        """The source a presented key belongs to, or None. Constant time over all entries."""
        if key is None or not self.entries:
            return None
        presented = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        for source, digest in self.entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = source
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def basic_password(authorization: str | None) -> str | None:
    """The password of an `Authorization: Basic <base64 user:password>` header: how a browser
    presents a key (the user name is ignored)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep and password else None
