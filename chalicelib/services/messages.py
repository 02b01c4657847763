"""Reading the queue messages the tick and the workers send each other: every field a message names
must be there and be text, or the message is refused (it fails alone and ends in the DLQ)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.clock import parse_iso
from chalicelib.domain.errors import InvalidInput


def message_fields(body: dict[str, Any], names: tuple[str, ...], what: str) -> list[str]:
    values = [body.get(name) for name in names]
    if not all(isinstance(value, str) and value for value in values):
        raise InvalidInput(f"A {what} message needs {', '.join(names)}.")
    return [str(value) for value in values]


def message_time(body: dict[str, Any], name: str, what: str) -> datetime:
    (text,) = message_fields(body, (name,), what)
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise InvalidInput(f"A {what} message has an unreadable `{name}`.") from exc
