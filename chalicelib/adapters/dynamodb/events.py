"""Events in DynamoDB: the item a change's transaction writes, and the activity logs that read them.

An event lives beside what it is about: a dossier's in the dossier's partition (`ACCOUNT#<a>#DOSSIER#<id>`,
so erasing the dossier erases them), a contract's in `ACCOUNT#<a>#CONTRACT#<id>#EVENTS` (the contract's own
partition is read whole by the dunning), the account's own in one of 16 `ACCOUNT#<a>#EVENTS#<shard>`
partitions (a mailing's 100,000 emails make no hot partition); each under `EVENT#<event_id>`. Event ids are
ULIDs, so `begins_with(SK, "EVENT#")` reads a subject's activity oldest first, one bounded Query a page.
Until the webhook worker has fanned it out, the event also sits on the sparse `due` index (`WH#<shard>`, at
the moment the tick should queue it again if its SQS message was lost, or at its own moment when no message
announces it: see `event_item`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.models import DUE_SHARDS, EventItem
from chalicelib.domain.clock import iso
from chalicelib.domain.events import Actor, Event, EventType, Subject, SubjectKind

ACCOUNT_EVENT_SHARDS = 16
FANOUT_GRACE = timedelta(minutes=5)
"""How long after its change an event waits for its queue message before the tick queues it again."""

Cursor = dict[str, Any]


def _shard(value: str, shards: int) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:8], 16) % shards


def event_partition(account_id: str, subject: Subject, event_id: str) -> str:
    if subject.kind is SubjectKind.DOSSIER:
        return f"ACCOUNT#{account_id}#DOSSIER#{subject.id}"
    if subject.kind is SubjectKind.CONTRACT:
        return f"ACCOUNT#{account_id}#CONTRACT#{subject.id}#EVENTS"
    return f"ACCOUNT#{account_id}#EVENTS#{_shard(event_id, ACCOUNT_EVENT_SHARDS)}"


def event_key(event: Event) -> tuple[str, str]:
    return event_partition(event.account_id, event.subject, event.id), f"EVENT#{event.id}"


def fanout_due_key(event: Event, at: datetime) -> tuple[str, str]:
    """The event's place on the `due` index: where the tick finds it if nobody fanned it out by `at`."""
    pk, sk = event_key(event)
    return f"WH#{_shard(event.id, DUE_SHARDS)}", f"{iso(at)}#{pk}#{sk}"


def event_item(event: Event, *, announced: bool = True) -> EventItem:
    """The item of a new event, written inside the transaction of the change it reports (with the condition
    `EventItem.pk.does_not_exist()`, so a replayed change cannot announce itself twice).

    An event its writer announces waits FANOUT_GRACE on the `due` index for its message. One nobody will
    announce (`announced=False`: the communications worker's outcomes, which saves that worker an SQS call
    per email) is due at once: the next `webhook_tick`, within a minute, queues its fan-out."""
    pk, sk = event_key(event)
    due_pk, due_sk = fanout_due_key(event, event.at + FANOUT_GRACE if announced else event.at)
    return EventItem(
        pk,
        sk,
        account_id=event.account_id,
        event_id=event.id,
        type=event.type.value,
        at=event.at,
        subject={"kind": event.subject.kind.value, "id": event.subject.id},
        actor=event.actor.as_json(),
        data=event.data,
        due_pk=due_pk,
        due_sk=due_sk,
    )


def event_from(item: EventItem) -> Event:
    return Event(
        account_id=item.account_id,
        type=EventType(item.type),
        at=item.at,
        subject=Subject(SubjectKind(item.subject["kind"]), str(item.subject["id"])),
        data=dict(item.data or {}),
        actor=Actor.from_json(item.actor),
        id=item.event_id,
    )


class DynamoActivityLog:
    """The activity of a dossier or a contract: its events, oldest first, a bounded Query a page."""

    def page(
        self, account_id: str, subject: Subject, limit: int, cursor: Cursor | None
    ) -> tuple[list[Event], Cursor | None]:
        partition = event_partition(account_id, subject, "")
        check_cursor(cursor, "PK", partition)
        query = EventItem.query(
            partition,
            EventItem.sk.startswith("EVENT#"),
            limit=limit,
            last_evaluated_key=cursor,
            scan_index_forward=True,
        )
        events = [event_from(item) for item in query]
        return events, query.last_evaluated_key
