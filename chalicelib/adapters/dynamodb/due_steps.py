"""The tick's one read of the schedule: every step whose moment has come, from the sparse `due` index.

Deadlines of dossiers, the steps of installments and expected documents, and the bulk jobs and mailings
that may stall share the `STEP#<shard>` partitions: one Query per shard reads them all (keys only), so no
kind can starve another behind a limit, and the tick's reads grow with what is due, never with the
portfolio.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb.models import DUE_SHARDS, ScheduledItem
from chalicelib.domain.clock import iso
from chalicelib.services.ports import ScheduledKey

_PARENTS = {
    "DEADLINE": "#DOSSIER#",
    "ERASE": "#DOSSIER#",
    "INSTALLMENT": "#CONTRACT#",
    "EXPECTED": "#CONTRACT#",
    "JOB": "#JOB#",
    "MAILING": "#MAILING#",
}
"""The parent in each kind's PK. A bulk job (SK `JOB`) and a mailing (SK `MAILING`) are their own parent:
their key names them with an empty `thing_id`."""


class DynamoDueSteps:
    def due(self, now: datetime, limit: int) -> list[ScheduledKey]:
        """The `limit` oldest steps due at `now`, across every shard: a backlog drains oldest first,
        whichever shard holds it."""
        found: list[tuple[str, ScheduledKey]] = []
        upper = f"{iso(now)}#~"
        for shard in range(DUE_SHARDS):
            # Any model bound to the `due` index reads its keys; ScheduledItem's is one of them.
            query = ScheduledItem.due_index.query(f"STEP#{shard}", ScheduledItem.due_sk <= upper, limit=limit)
            for item in query:
                kind, _, thing_id = item.sk.partition("#")
                separator = _PARENTS.get(kind)
                if separator is None or separator not in item.pk:
                    continue
                account_id, _, parent_id = item.pk.removeprefix("ACCOUNT#").partition(separator)
                found.append((str(item.due_sk), ScheduledKey(kind, account_id, parent_id, thing_id)))
        found.sort(key=lambda entry: entry[0])
        return [key for _, key in found[:limit]]
