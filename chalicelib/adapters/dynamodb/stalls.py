"""Bulk jobs and mailings on the `due` index while they run, at the moment they count as stalled.

Each step of their work (a chunk counted, a page fanned out) moves that moment on; the tick reads the index
as for any scheduled step, and the bulk worker resumes what stalled. A resume first claims the item with
one conditional update (its moment must still be due), so two ticks, or a tick and a late chunk, re-queue
its remaining work at most once per stall.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pynamodb.exceptions import UpdateError

from chalicelib.adapters.dynamodb.models import DUE_SHARDS, JobItem, MailingItem
from chalicelib.domain.clock import iso

Stalling = JobItem | MailingItem


def stall_pk(pk: str) -> str:
    """The item's shard of the `due` index, fixed by its key."""
    return f"STEP#{int(hashlib.sha256(pk.encode()).hexdigest()[:8], 16) % DUE_SHARDS}"


def stall_sk(at: datetime, pk: str) -> str:
    return f"{iso(at)}#{pk}"


def claim_stalled(item: Stalling, as_of: datetime, next_at: datetime) -> bool:
    """Move a stalled item's moment to `next_at` and count one more resume, if its moment is still due at
    `as_of`; False when it moved on (or left the index) since the tick read it. The item is updated in
    place with what is stored (its `resumes`)."""
    try:
        item.update(
            actions=[type(item).due_sk.set(stall_sk(next_at, item.pk)), type(item).resumes.add(1)],
            condition=type(item).due_sk <= f"{iso(as_of)}#~",
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True
