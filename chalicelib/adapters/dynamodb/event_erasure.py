"""Erasing a contract's activity log with its client's personal data (RGPD): the events live in the
contract's own partition (`ACCOUNT#<a>#CONTRACT#<id>#EVENTS`), read a bounded page of keys at a time and
deleted by BatchWriteItem. An event not yet fanned out leaves the `due` index with its item."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.dynamodb.events import event_partition
from chalicelib.adapters.dynamodb.models import EventItem
from chalicelib.domain.events import Subject, SubjectKind

PAGE = 100


class DynamoEventEraser:
    def erase_contract_events(self, account_id: str, contract_id: str) -> int:
        """Delete every event of the contract; how many."""
        partition = event_partition(account_id, Subject(SubjectKind.CONTRACT, contract_id), "")
        erased = 0
        cursor: dict[str, Any] | None = None
        while True:
            query = EventItem.query(
                partition,
                EventItem.sk.startswith("EVENT#"),
                limit=PAGE,
                last_evaluated_key=cursor,
                attributes_to_get=["PK", "SK"],
            )
            keys = list(query)
            with EventItem.batch_write() as batch:
                for item in keys:
                    batch.delete(item)
            erased += len(keys)
            cursor = query.last_evaluated_key
            if cursor is None:
                return erased
