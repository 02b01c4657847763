"""The one check every list makes of the cursor it is handed back.

A cursor is DynamoDB's LastEvaluatedKey, encoded by the API. Handed to another list (another index, or
another partition of the same one), DynamoDB would refuse it with a ValidationException, or worse, start
reading another tenant's partition: it must be the client's 400, found before any call is made.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.errors import FieldIssue, InvalidInput


def check_cursor(cursor: dict[str, Any] | None, partition_key: str, partition: str) -> None:
    """Refuse a cursor that is not a position in the partition `partition` of the key `partition_key`
    (`PK` for the table itself, `GSI<n>PK` for an index, whose keys then include the table's)."""
    if cursor is None:
        return
    keys = {"PK", "SK"}
    if partition_key != "PK":
        keys |= {partition_key, partition_key.replace("PK", "SK")}
    value = cursor.get(partition_key)
    if set(cursor) != keys or not isinstance(value, dict) or value.get("S") != partition:
        raise InvalidInput(
            "The cursor does not belong to this list.", [FieldIssue("cursor", "not from this list")]
        )
