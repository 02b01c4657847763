"""The scheduled tick: everything whose moment has come, as of the event's time, is queued.

The outbox guarantee (communications still queued past their retry time are queued again), and one
message per scheduled step (dossiers' `deadline_approaching` automations, installments' and expected
documents' steps) for the communications worker, and one per bulk job or mailing that stalled for the bulk
worker: all read from the sparse sharded `due` index, so a tick reads what is due, never the portfolio, and
does no step's work itself. The webhooks' retries and lost events, on the same index, are `webhook_tick`'s
(every minute: an hour would make a 5-minute retry an hour late).
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.clock import parse_iso
from chalicelib.services.communications import requeue_forgotten
from chalicelib.services.schedule import queue_due_steps
from chalicelib.wiring import container


def run(as_of: datetime) -> int:
    """Queue what is due at `as_of`; returns how many messages were queued."""
    services = container()
    requeued = requeue_forgotten(services.communications, services.communications_queue, as_of)
    return requeued + queue_due_steps(
        services.due_steps, services.communications_queue, services.bulk_queue, as_of
    )


def handle(event_time: str | None) -> int:
    services = container()
    as_of = parse_iso(event_time) if event_time else services.now()
    return run(as_of)
