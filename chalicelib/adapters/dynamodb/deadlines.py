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
    DossierItem,
    EventItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.repositories import NewCommunications, save_link
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import Communication
from chalicelib.domain.errors import StaleVersion
from chalicelib.domain.events import Event
from chalicelib.services.ports import StoredLink


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
        links: tuple[StoredLink, ...] = (),
        tokens: dict[str, list[str]] | None = None,
        version: int = 0,
    ) -> bool:
        """Write the deadline's emails (screened: `NewCommunications`) with the events that tell them, and
        take it off the schedule, once; False when already fired; RecipientsSuppressed when an address of
        an email is on the suppression list. With `links` (the emails' portal links, stored with them),
        the dossier's live tokens become `tokens` at `version` in the same transaction, which then holds
        only while the dossier is unchanged: StaleVersion when it changed or was erased meanwhile."""
        pk = f"ACCOUNT#{account_id}#DOSSIER#{dossier_id}"
        item = DeadlineItem(pk, f"DEADLINE#{automation_id}")
        transaction = TransactWrite(connection=transactions())
        written = NewCommunications(transaction)
        try:
            with transaction:
                transaction.update(
                    item,
                    actions=[DeadlineItem.due_pk.remove(), DeadlineItem.due_sk.remove()],
                    condition=DeadlineItem.due_pk.exists(),
                )
                if links:
                    dossier = DossierItem(pk, "DOSSIER")
                    dossier.version = version
                    transaction.update(
                        dossier,
                        actions=[DossierItem.tokens.set(tokens or {})],
                        condition=DossierItem.pk.exists(),
                    )
                for link in links:
                    save_link(transaction, link)
                for email, retry_at in emails:
                    written.add(email, retry_at)
                for event in events:
                    transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            written.raise_if_suppressed(exc)
            if not condition_failed(exc):
                raise
            if links and _still_due(item):
                raise StaleVersion() from exc
            return False
        return True


def _still_due(item: DeadlineItem) -> bool:
    """Whether the deadline is still to fire (a transaction that failed on its dossier's version)."""
    try:
        found = DeadlineItem.get(item.pk, item.sk)
    except DeadlineItem.DoesNotExist:
        return False
    return bool(found.due_pk)
