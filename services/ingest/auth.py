"""Who may post events: API keys per source and optional HMAC-SHA256 body signatures.

- Keys are configured as SHA-256 hashes only (`LEADFLOW_INGEST_API_KEYS="website:<hex>,hubspot:<hex>"`,
  `leadflow keys hash KEY` makes one), so the configuration never holds a usable key. A presented
  key (`Authorization: Bearer <key>`) is hashed and compared with `hmac.compare_digest` against
  EVERY configured hash, without stopping at a match, so the time taken says nothing about which
  entry matched or how much of it did. A source may have several keys (rotation).
- With `LEADFLOW_INGEST_HMAC_SECRET` set, a request must also carry `X-Leadflow-Timestamp` (unix
  seconds) and `X-Leadflow-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>`,
  and the timestamp must be within 5 minutes of the server clock (either way), which bounds how
  long a captured request can be replayed.
- Any failure is one answer (401, generic body): the caller learns nothing about which check failed.
- No keys configured: the API is open (dev mode; the service logs a warning at start-up).

Pure code: no I/O; time is passed in.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Mapping

from services.common.api_keys import ApiKeys, bearer_token, hash_key, new_key


__all__ = ["ApiKeys", "Authenticator", "bearer_token", "hash_key", "new_key", "sign", "signature_headers",
           "signature_valid"]

SIGNATURE_HEADER = "X-Leadflow-Signature"
TIMESTAMP_HEADER = "X-Leadflow-Timestamp"
MAX_SIGNATURE_AGE_S = 300
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Leadflow-Signature` value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    """Both signing headers for a body sent now (for clients such as `leadflow send`)."""
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def signature_valid(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float,
                    max_age_s: int = MAX_SIGNATURE_AGE_S) -> bool:
    """Whether the body carries a fresh, correct signature. The MAC is compared in constant time."""
    if timestamp is None or signature is None:
        return False
    timestamp = timestamp.strip()
    if not _TIMESTAMP.match(timestamp):
        return False
    if abs(now - int(timestamp)) > max_age_s:
        return False
    match = _SIGNATURE.match(signature.strip())
    if match is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).digest()
    return hmac.compare_digest(bytes.fromhex(match.group(1)), expected)


@dataclass(frozen=True)
class Authenticator:
    """Both checks together, as the HTTP handler applies them."""

    keys: ApiKeys = ApiKeys()
    hmac_secret: str = ""

    @property
    def open(self) -> bool:
        """No keys configured: anyone may post (dev mode)."""
        return not self.keys.enabled

    def key_source(self, headers: Mapping[str, str]) -> tuple[bool, str | None]:
        """(allowed, the key's source). Open mode: (True, None)."""
        if self.open:
            return True, None
        source = self.keys.source_of(bearer_token(headers.get("Authorization")))
        return source is not None, source

    def body_allowed(self, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        if not self.hmac_secret:
            return True
        return signature_valid(self.hmac_secret, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER),
                               body, now)
