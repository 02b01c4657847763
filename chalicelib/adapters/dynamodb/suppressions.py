"""The account's suppression list: addresses that bounced for good or complained, one item each
(`ACCOUNT#<id>` / `SUPPRESSED#<address hash>`), so that checking the recipients of an email is one
BatchGetItem. Only the hash of the address is stored (RGPD); the caller knows the addresses it asks about.

Items written before the hashing are keyed by the plain address (`SUPPRESSED#<address>`, with `address`):
they still suppress (each lookup reads both keys in the same BatchGetItem), a new suppression of the same
address replaces them, and the list shows them by the hash of their address."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError

from chalicelib.adapters.dynamodb.models import SuppressionItem
from chalicelib.domain.deliverability import Suppression, address_hash

_PREFIX = "SUPPRESSED#"


def _pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def _key(account_id: str, address: str) -> tuple[str, str]:
    return _pk(account_id), f"{_PREFIX}{address_hash(address)}"


def _plain_key(account_id: str, address: str) -> tuple[str, str]:
    return _pk(account_id), f"{_PREFIX}{address}"


def _entry(item: SuppressionItem) -> Suppression:
    digest = item.address_hash or address_hash(str(item.address))
    return Suppression(digest, item.reason, item.communication_id, item.suppressed_at)


class DynamoSuppressionRepository:
    def add(
        self, account_id: str, address: str, reason: str, communication_id: str | None, at: datetime
    ) -> None:
        """Idempotent: suppressing an address again keeps one item (the latest reason)."""
        SuppressionItem(
            *_key(account_id, address),
            address_hash=address_hash(address),
            reason=reason,
            communication_id=communication_id,
            suppressed_at=at,
        ).save()
        SuppressionItem(*_plain_key(account_id, address)).delete()

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        """Which of `addresses` (normalized) the account may no longer write to."""
        by_key: dict[tuple[str, str], str] = {}
        for address in set(addresses):
            by_key[_key(account_id, address)] = address
            by_key[_plain_key(account_id, address)] = address
        if not by_key:
            return set()
        return {by_key[(item.pk, item.sk)] for item in SuppressionItem.batch_get(sorted(by_key))}

    def entries(
        self, account_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Suppression], dict[str, Any] | None]:
        """One page of the list: one Query of the account's `SUPPRESSED#` items."""
        found = SuppressionItem.query(
            _pk(account_id),
            SuppressionItem.sk.startswith(_PREFIX),
            limit=limit,
            last_evaluated_key=cursor,
        )
        entries = [_entry(item) for item in found]
        return entries, found.last_evaluated_key

    def remove(self, account_id: str, digest: str) -> bool:
        """Take the address off the list (it may be written to again); False when it was not on it."""
        item = SuppressionItem(_pk(account_id), f"{_PREFIX}{digest}")
        try:
            item.delete(condition=SuppressionItem.pk.exists())
        except DeleteError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
