"""Time helpers shared by the rules. The clock itself is always passed in, never read here."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with a `Z`, to the second, as API.md writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
