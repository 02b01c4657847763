"""The scheduled tick: everything whose moment has come, as of the event's time, is queued.

The outbox guarantee (communications still queued past their retry time are queued again), the dossiers'
`deadline_approaching` automations, and the steps of unpaid installments and expected documents: all read
from the sparse sharded `due` index, so a tick reads what is due, never the portfolio.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain.clock import parse_iso
from chalicelib.services.communications import requeue_forgotten
from chalicelib.services.dossiers import fire_deadlines
from chalicelib.services.dunning import run_due_steps
from chalicelib.wiring import container


def run(as_of: datetime) -> int:
    """Queue what is due at `as_of`; returns how many messages were queued."""
    services = container()
    requeued = requeue_forgotten(services.communications, services.communications_queue, as_of)
    deadlines = fire_deadlines(services.deadlines, replace(services.dossier_context(), now=as_of))
    return requeued + deadlines + run_due_steps(replace(services.dunning_context(), now=as_of))


def handle(event_time: str | None) -> int:
    services = container()
    as_of = parse_iso(event_time) if event_time else services.now()
    return run(as_of)
