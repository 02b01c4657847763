"""Identifiers: ULIDs for things people create, stable digests for things that must exist once."""

from __future__ import annotations

import hashlib
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: int | None = None, entropy: bytes | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation. `entropy` (10 bytes,
    a digest's) makes the same ULID again from the same facts, for ids that must exist once."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    return _encode((millis << 80) | int.from_bytes((entropy or os.urandom(10))[:10], "big"))


def ulid_after(previous: str) -> str:
    """A ULID past `previous` by a random step: within its millisecond, as hard to guess and as unlikely to
    meet another as a ULID's random part makes them."""
    value = 0
    for char in previous:
        value = value * 32 + _CROCKFORD.index(char)
    return _encode(value + 1 + int.from_bytes(os.urandom(4), "big"))


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def stable_id(prefix: str, *parts: str) -> str:
    """The same parts always give the same id: the key that makes a communication exist at most once."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"{prefix}{digest[:24]}"
