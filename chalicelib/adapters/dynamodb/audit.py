"""The account's audit trail in DynamoDB: one partition per account (`ACCOUNT#<a>#AUDIT`), an item per
entry (`AUDIT#<entry_id>`, a ULID), read oldest first one bounded Query a page. The changes it records
are rare (an administrator's hand, a retention erasure), so one partition takes them without heat.

The repositories whose change an entry records put `audit_item(entry)` in their own transaction."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.models import AuditEntryItem
from chalicelib.domain.audit import AuditEntry, AuditType
from chalicelib.domain.events import Actor


def _partition(account_id: str) -> str:
    return f"ACCOUNT#{account_id}#AUDIT"


def audit_item(entry: AuditEntry) -> AuditEntryItem:
    """The item of a new entry; write it with `AuditEntryItem.pk.does_not_exist()`."""
    return AuditEntryItem(
        _partition(entry.account_id),
        f"AUDIT#{entry.id}",
        entry_id=entry.id,
        type=entry.type.value,
        at=entry.at,
        actor=entry.actor.as_json(),
        data=entry.data,
    )


def _entry(account_id: str, item: AuditEntryItem) -> AuditEntry:
    return AuditEntry(
        account_id=account_id,
        type=AuditType(item.type),
        at=item.at,
        actor=Actor.from_json(item.actor),
        data=dict(item.data or {}),
        id=item.entry_id,
    )


class DynamoAuditTrail:
    def page(
        self, account_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[AuditEntry], dict[str, Any] | None]:
        partition = _partition(account_id)
        check_cursor(cursor, "PK", partition)
        query = AuditEntryItem.query(
            partition,
            AuditEntryItem.sk.startswith("AUDIT#"),
            limit=limit,
            last_evaluated_key=cursor,
            scan_index_forward=True,
        )
        return [_entry(account_id, item) for item in query], query.last_evaluated_key
