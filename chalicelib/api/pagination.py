"""Lists: `?limit=` (default 50, at most 200) and an opaque `?cursor=` (the store's position, encoded)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from chalice.app import Request

from chalicelib.domain.errors import FieldIssue, InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def query_param(request: Request, name: str) -> str | None:
    params: Any = request.query_params or {}
    value = params.get(name)
    return str(value) if value is not None else None


def refuse_unknown_params(request: Request, allowed: set[str]) -> None:
    """A misspelt filter must be a 400, not a list that silently ignores it."""
    unknown = sorted(set(request.query_params or {}) - allowed)
    if unknown:
        raise InvalidInput(
            "The query has unknown parameters.",
            [FieldIssue(name, "is not a known parameter") for name in unknown],
        )


def page_params(request: Request, filters: frozenset[str] = frozenset()) -> tuple[int, dict[str, Any] | None]:
    """`limit` and `cursor` of a list whose other query parameters may only be `filters`."""
    refuse_unknown_params(request, {"limit", "cursor", *filters})
    raw_limit, raw_cursor = query_param(request, "limit"), query_param(request, "cursor")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise InvalidInput(
                "The limit is invalid.",
                [FieldIssue("limit", f"must be a whole number from 1 to {MAX_LIMIT}")],
            )
        limit = int(raw_limit)
    return limit, decode_cursor(raw_cursor) if raw_cursor is not None else None


def decode_cursor(text: str) -> dict[str, Any]:
    refused = InvalidInput("The cursor is invalid.", [FieldIssue("cursor", "not a cursor of this API")])
    try:
        decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise refused from exc
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
        for k, v in decoded.items()
    ):
        raise refused
    return decoded


def encode_cursor(position: dict[str, Any] | None) -> str | None:
    if not position:
        return None
    return base64.urlsafe_b64encode(json.dumps(position, sort_keys=True).encode()).rstrip(b"=").decode()


def page(items: list[dict[str, Any]], position: dict[str, Any] | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": encode_cursor(position)}
