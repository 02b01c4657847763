"""The account's suppression list: addresses that bounced for good or complained, one item each
(`ACCOUNT#<id>` / `SUPPRESSED#<address hash>`), so that checking the recipients of an email is one
BatchGetItem. Only the hash of the address is stored (RGPD); the caller knows the addresses it asks about.

Items written before the hashing are keyed by the plain address (`SUPPRESSED#<address>`, with `address`):
they still suppress (each lookup reads both keys in the same BatchGetItem), a new suppression of the same
address replaces them, the list shows them by the hash of their address, and an administrator removes them
by that hash (found by reading the account's list, only when no hashed item has that key)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.audit import audit_item
from chalicelib.adapters.dynamodb.models import (
    AuditEntryItem,
    SuppressionItem,
    condition_failed,
    transactions,
)
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.deliverability import Suppression, address_hash

_PREFIX = "SUPPRESSED#"


def _pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def _key(account_id: str, address: str) -> tuple[str, str]:
    return _pk(account_id), f"{_PREFIX}{address_hash(address)}"


def _plain_key(account_id: str, address: str) -> tuple[str, str]:
    return _pk(account_id), f"{_PREFIX}{address}"


def suppression_keys(account_id: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Both keys an address's suppression item may have: hashed, and plain (written before the hashing)."""
    return _key(account_id, address), _plain_key(account_id, address)


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
            for key in suppression_keys(account_id, address):
                by_key[key] = address
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

    def remove(self, account_id: str, digest: str, audit: AuditEntry) -> bool:
        """Take the address off the list (it may be written to again) with the audit entry that says so,
        in one transaction; False when it was not on it."""
        if self._delete((_pk(account_id), f"{_PREFIX}{digest}"), audit):
            return True
        legacy = self._plain_item_of(account_id, digest)
        return legacy is not None and self._delete(legacy, audit)

    @staticmethod
    def _delete(key: tuple[str, str], audit: AuditEntry) -> bool:
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.delete(SuppressionItem(*key), condition=SuppressionItem.pk.exists())
                transaction.save(audit_item(audit), condition=AuditEntryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    @staticmethod
    def _plain_item_of(account_id: str, digest: str) -> tuple[str, str] | None:
        """The key of the item written before the hashing whose address has this hash, if any: its key
        holds the address, not the hash, so the account's list is read, a page of 100 at a time (those
        items are finite: none has been written since)."""
        found = SuppressionItem.query(
            _pk(account_id),
            SuppressionItem.sk.startswith(_PREFIX),
            filter_condition=SuppressionItem.address.exists(),
            page_size=100,
        )
        for item in found:
            if address_hash(str(item.address)) == digest:
                return item.pk, item.sk
        return None
