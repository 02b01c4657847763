"""The tick's use case: queue one message per step whose moment has come.

The tick reads the `due` index once (deadlines of dossiers, steps of installments and expected
documents, every kind at once) and queues one message per step, in SQS batches of ten. The
communications worker decides and writes each step, as of the tick's time, with its email: steps run
in parallel, however many are due. A step queued twice (two ticks at once, a tick replayed, a backlog
still waiting at the next tick) is written once, by the step's own version or condition. Bulk jobs and
mailings that have not moved on for a while sit on the same index; the tick hands them to the bulk worker,
which queues again what remains of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.services.bulk import ResumeRequest
from chalicelib.services.dossiers import DeadlineRequest, ErasureRequest
from chalicelib.services.dunning import StepRequest
from chalicelib.services.ports import DueSteps, MessageQueue, ScheduledKey

TICK_LIMIT = 10_000
"""Steps one tick queues at most, oldest first; a larger backlog goes on at the next tick."""


def queue_due_steps(
    due_steps: DueSteps, steps: MessageQueue, bulk: MessageQueue, now: datetime, limit: int = TICK_LIMIT
) -> int:
    """Queue every step due at `now` (up to `limit`); returns how many. Steps go to the communications
    worker (`steps`); bulk jobs and mailings that stalled go to the bulk worker (`bulk`), to be resumed."""
    keys = due_steps.due(now, limit)
    stalled = [key for key in keys if key.kind in _STALLING]
    steps.send_many(_message(key, now) for key in keys if key.kind not in _STALLING)
    bulk.send_many(
        ResumeRequest(key.kind, key.account_id, key.parent_id, now).to_message() for key in stalled
    )
    return len(keys)


_STALLING = ("JOB", "MAILING")


def _message(key: ScheduledKey, now: datetime) -> dict[str, Any]:
    if key.kind == "DEADLINE":
        return DeadlineRequest(key.account_id, key.parent_id, key.thing_id, now).to_message()
    if key.kind == "ERASE":
        return ErasureRequest(key.account_id, key.parent_id).to_message()
    return StepRequest(key.account_id, key.parent_id, key.kind, key.thing_id, now).to_message()
