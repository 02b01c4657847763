"""Announcing events: after the transaction that wrote a change and its events commits, their messages go
to the webhooks queue. A message lost here is not an event lost: the event sits on the `due` index until
the webhook worker has fanned it out, and the tick queues it again. The communications worker announces
nothing: its emails' outcomes are written due at once, and the minute's tick queues them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from chalicelib.domain.events import Event, Subject
from chalicelib.services.ports import MessageQueue


def announce(events: Iterable[Event], queue: MessageQueue) -> None:
    queue.send_many(event.to_message() for event in events)


class ActivityLog(Protocol):
    def page(
        self, account_id: str, subject: Subject, limit: int, cursor: dict[str, object] | None
    ) -> tuple[list[Event], dict[str, object] | None]:
        """A page of the subject's events, oldest first."""
        ...
