"""The account's suppression list: addresses that bounced for good or complained, one item each
(`ACCOUNT#<id>` / `SUPPRESSED#<address>`), so that checking the recipients of an email is one BatchGetItem."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from chalicelib.adapters.dynamodb.models import SuppressionItem


def _key(account_id: str, address: str) -> tuple[str, str]:
    return f"ACCOUNT#{account_id}", f"SUPPRESSED#{address}"


class DynamoSuppressionRepository:
    def add(
        self, account_id: str, address: str, reason: str, communication_id: str | None, at: datetime
    ) -> None:
        """Idempotent: suppressing an address again keeps one item (the latest reason)."""
        SuppressionItem(
            *_key(account_id, address),
            address=address,
            reason=reason,
            communication_id=communication_id,
            suppressed_at=at,
        ).save()

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        """Which of `addresses` (normalized) the account may no longer write to."""
        keys = sorted({_key(account_id, address) for address in addresses})
        if not keys:
            return set()
        return {item.address for item in SuppressionItem.batch_get(keys)}
