"""Scheduled `deadline_approaching` automations: one item per dossier and automation on the sparse `due`
index (`STEP#<shard>`), so the tick reads what is due (`due_steps.py`), never the dossiers. Firing
writes the emails and takes the item off the index in one transaction: two ticks at once, a tick
replayed, or a message delivered twice fire it once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import (
    DUE_SHARDS,
    DeadlineItem,
    EventItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.repositories import NewCommunications
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import Communication
from chalicelib.domain.events import Event


def _shard(key: str) -> str:
    return f"STEP#{int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % DUE_SHARDS}"


def deadline_item(account_id: str, dossier_id: str, automation_id: str, at: datetime) -> DeadlineItem:
    pk = f"ACCOUNT#{account_id}#DOSSIER#{dossier_id}"
    return DeadlineItem(
        pk,
        f"DEADLINE#{automation_id}",
        due_pk=_shard(f"{pk}#{automation_id}"),
        due_sk=f"{iso(at)}#{account_id}#{dossier_id}#{automation_id}",
    )


def erasure_item(account_id: str, dossier_id: str, at: datetime) -> DeadlineItem:
    """The dossier's erasure at the end of its retention (SK `ERASE`), on the `due` index like a deadline."""
    pk = f"ACCOUNT#{account_id}#DOSSIER#{dossier_id}"
    return DeadlineItem(
        pk, "ERASE", due_pk=_shard(f"{pk}#ERASE"), due_sk=f"{iso(at)}#{account_id}#{dossier_id}#ERASE"
    )


class DynamoDeadlineRepository:
    def fire(
        self,
        account_id: str,
        dossier_id: str,
        automation_id: str,
        emails: list[tuple[Communication, datetime]],
        events: Sequence[Event] = (),
    ) -> bool:
        """Write the deadline's emails (screened: `NewCommunications`) with the events that tell them, and
        take it off the schedule, once; False when already fired; RecipientsSuppressed when an address of
        an email is on the suppression list."""
        item = DeadlineItem(f"ACCOUNT#{account_id}#DOSSIER#{dossier_id}", f"DEADLINE#{automation_id}")
        transaction = TransactWrite(connection=transactions())
        written = NewCommunications(transaction)
        try:
            with transaction:
                transaction.update(
                    item,
                    actions=[DeadlineItem.due_pk.remove(), DeadlineItem.due_sk.remove()],
                    condition=DeadlineItem.due_pk.exists(),
                )
                for email, retry_at in emails:
                    written.add(email, retry_at)
                for event in events:
                    transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            written.raise_if_suppressed(exc)
            if condition_failed(exc):
                return False
            raise
        return True
