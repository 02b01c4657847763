"""Who unsubscribed from an account's mailings: one item per addressee (`ACCOUNT#<id>` /
`UNSUBSCRIBED#<party>#<id>`), so a mailing checks a page of recipients with one BatchGetItem."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.audit import audit_item
from chalicelib.adapters.dynamodb.models import (
    AuditEntryItem,
    UnsubscriptionItem,
    condition_failed,
    transactions,
)
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.unsubscribe import Addressee, Unsubscription


def _key(account_id: str, party: str, party_id: str) -> tuple[str, str]:
    return f"ACCOUNT#{account_id}", f"UNSUBSCRIBED#{party}#{party_id}"


class DynamoUnsubscriptionRepository:
    def add(self, addressee: Addressee, at: datetime) -> bool:
        """True the first time; a second click keeps the first moment and answers False."""
        item = UnsubscriptionItem(
            *_key(addressee.account_id, addressee.party, addressee.party_id), unsubscribed_at=at
        )
        try:
            item.save(condition=UnsubscriptionItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def unsubscribed(self, account_id: str, parties: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (party, id) of `parties` no longer receive this account's mailings."""
        keys = sorted({_key(account_id, party, party_id) for party, party_id in parties})
        if not keys:
            return set()
        found: set[tuple[str, str]] = set()
        for item in UnsubscriptionItem.batch_get(keys):
            party, _, party_id = item.sk.removeprefix("UNSUBSCRIBED#").partition("#")
            found.add((party, party_id))
        return found

    def entries(
        self, account_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Unsubscription], dict[str, Any] | None]:
        """One page of who unsubscribed: one Query of the account's `UNSUBSCRIBED#` items."""
        found = UnsubscriptionItem.query(
            f"ACCOUNT#{account_id}",
            UnsubscriptionItem.sk.startswith("UNSUBSCRIBED#"),
            limit=limit,
            last_evaluated_key=cursor,
        )
        entries = []
        for item in found:
            party, _, party_id = item.sk.removeprefix("UNSUBSCRIBED#").partition("#")
            entries.append(Unsubscription(party, party_id, item.unsubscribed_at))
        return entries, found.last_evaluated_key

    def remove(self, account_id: str, party: str, party_id: str, audit: AuditEntry) -> bool:
        """The addressee receives the account's mailings again, recorded by the audit entry in the same
        transaction; False when it had not unsubscribed."""
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.delete(
                    UnsubscriptionItem(*_key(account_id, party, party_id)),
                    condition=UnsubscriptionItem.pk.exists(),
                )
                transaction.save(audit_item(audit), condition=AuditEntryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True
