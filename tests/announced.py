"""What a webhook receiver or a broker's activity log would see of the events a test caused: the
messages announced on the webhooks queue (or queued by the webhook tick), and the stored events of a
contract, a dossier or the account."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.dynamodb.events import ACCOUNT_EVENT_SHARDS, event_from
from chalicelib.adapters.dynamodb.models import EventItem
from chalicelib.config import Queue, queue_name
from chalicelib.domain.events import Event, Subject, SubjectKind


def announced(aws: Any) -> list[dict[str, Any]]:
    """Every message waiting on the webhooks queue (taken off it: the next call sees only newer ones)."""
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name(Queue.WEBHOOKS))["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get(
        "Messages", []
    ):
        bodies += [json.loads(m["Body"]) for m in batch]
    return bodies


def told_by_the_tick(aws: Any) -> list[dict[str, Any]]:
    """Run `webhook_tick` as of now, then take every message waiting on the webhooks queue, as `announced`
    does: the events nobody announces (the communications worker's) reach the queue this way."""
    from chalicelib.handlers import webhook_tick

    webhook_tick.run(aws.now())
    return announced(aws)


def activity(aws: Any, account_id: str, kind: SubjectKind, subject_id: str) -> list[Event]:
    """A contract's or a dossier's events, oldest first, read as the activity routes read them."""
    events, cursor = aws.activity.page(account_id, Subject(kind, subject_id), 100, None)
    assert cursor is None
    return list(events)


def account_events(account_id: str) -> list[Event]:
    """The account's own events (mailings, bulk jobs, emails about no contract nor dossier), oldest first."""
    found = [
        event_from(item)
        for shard in range(ACCOUNT_EVENT_SHARDS)
        for item in EventItem.query(f"ACCOUNT#{account_id}#EVENTS#{shard}")
    ]
    return sorted(found, key=lambda event: event.id)


def of_type(events: list[Event], event_type: str) -> list[Event]:
    return [event for event in events if event.type.value == event_type]
