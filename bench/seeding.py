"""Portfolios written straight to the table, item by item as the repositories write them (setting up a
bench is not what it measures, and going through the API would take minutes on moto)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def contract_item(
    account_id: str, client_id: str, reference: str, apporteur_id: str | None, at: datetime
) -> tuple[str, Any]:
    """A new active contract, as stored at version 1: its id and its PynamoDB item."""
    from chalicelib.adapters.dynamodb.partners import _to_item
    from chalicelib.domain.ids import new_ulid
    from chalicelib.domain.partners import Commissioning, Deal, RecordKind

    deal = Deal(
        new_ulid(),
        account_id,
        RecordKind.CONTRACT,
        client_id,
        reference,
        None,
        apporteur_id,
        Commissioning(),
        "active",
        at,
        version=0,
    )
    item = _to_item(deal)
    item.version = 1
    return deal.id, item
