"""The webhooks' minute tick: the delivery retries whose moment has come, the events whose fan-out
message was lost, and the emails' outcomes that no message announces (the communications worker's), are
queued for the webhook worker, as of the event's time.

Retries of 5 minutes and longer wait on the `due` index (`WHR#<shard>`: SQS delays a message 15 minutes
at most), and a lost or unannounced event waits there too (`WH#<shard>`). The hourly `dunning_tick` would
make a 5-minute retry up to an hour late; this function runs every minute and does nothing else, so a
retry, or an email's `communication.sent`, is at most a minute late. A run reads one bounded page per
shard, and more of a shard whose page of events came full (`queue_due`: 10 pages or 30 s, within the
function's 50 s); what is left waits for the next minute.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.clock import parse_iso
from chalicelib.services.webhooks import queue_due
from chalicelib.wiring import container


def run(as_of: datetime) -> int:
    """Queue the webhook work due at `as_of`; returns how many messages were queued."""
    services = container()
    return queue_due(services.webhooks, services.webhooks_queue, as_of)


def handle(event_time: str | None) -> int:
    services = container()
    as_of = parse_iso(event_time) if event_time else services.now()
    return run(as_of)
