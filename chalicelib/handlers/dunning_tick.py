"""The scheduled tick: everything whose moment has come, as of the event's time, is queued.

Today that is the outbox guarantee (communications still queued past their retry time are queued again);
the dunning and reminder steps of later issues come through the same sharded `due` index.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.clock import parse_iso
from chalicelib.services.communications import requeue_forgotten
from chalicelib.wiring import container


def run(as_of: datetime) -> int:
    """Queue what is due at `as_of`; returns how many messages were queued."""
    services = container()
    return requeue_forgotten(services.communications, services.communications_queue, as_of)


def handle(event_time: str | None) -> int:
    services = container()
    as_of = parse_iso(event_time) if event_time else services.now()
    return run(as_of)
