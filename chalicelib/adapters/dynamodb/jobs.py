"""Bulk jobs: the job item and its chunk items form one collection (`ACCOUNT#<a>#JOB#<id>`), so showing
a job with every failure is one Query, and a chunk is counted by one TransactWriteItems that writes its
item (only if absent) and adds its counts to the job: a redelivered chunk counts nothing twice.

The chunk count that ends the job (`chunks_left` from 1 to 0) also writes `job.finished`, with the final
counts: it is first written as "not the last" (one call); when that condition fails, the job is read and
the count written again as the last one, on the condition that the counts are still those read.

Until every chunk is counted the job sits on the `due` index at the moment it counts as stalled, which each
chunk counted moves on; the planned chunks' messages wait in a collection of their own
(`ACCOUNT#<a>#JOB#<id>#PLAN`), so a stalled job re-queues exactly the chunks not counted yet."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import EventItem, JobItem, failed_among, transactions
from chalicelib.adapters.dynamodb.stalls import claim_stalled, stall_pk, stall_sk
from chalicelib.domain.events import Event
from chalicelib.domain.jobs import STALLED_AFTER, Failure, FailureCode, Job, finished_event

KEEP_JOBS = timedelta(days=90)


def _pk(account_id: str, job_id: str) -> str:
    return f"ACCOUNT#{account_id}#JOB#{job_id}"


def _plan_pk(account_id: str, job_id: str) -> str:
    return f"{_pk(account_id, job_id)}#PLAN"


class DynamoJobRepository:
    def add(self, job: Job, chunk_messages: list[dict[str, Any]]) -> None:
        """Write the job, on the `due` index until it is done, and the message of each of its chunks."""
        pk = _pk(job.account_id, job.id)
        ttl = int((job.created_at + KEEP_JOBS).timestamp())
        JobItem(
            pk,
            "JOB",
            kind=job.kind,
            total=job.total,
            chunks=job.chunks,
            chunks_done=0,
            chunks_left=job.chunks,
            succeeded=0,
            failed=0,
            created_at=job.created_at,
            ttl=ttl,
            due_pk=stall_pk(pk),
            due_sk=stall_sk(job.created_at + STALLED_AFTER, pk),
        ).save(condition=JobItem.pk.does_not_exist())
        with JobItem.batch_write() as batch:
            for number, message in enumerate(chunk_messages):
                plan = _plan_pk(job.account_id, job.id)
                batch.save(JobItem(plan, f"CHUNK#{number:05d}", message=message, ttl=ttl))

    def claim_stalled(self, account_id: str, job_id: str, as_of: datetime) -> int | None:
        """Move a stalled job's moment on by STALLED_AFTER and count one resume; the resumes so far, or None
        when it moved on (or finished) since the tick read it."""
        item = JobItem(_pk(account_id, job_id), "JOB")
        return int(item.resumes or 0) if claim_stalled(item, as_of, as_of + STALLED_AFTER) else None

    def pending_chunks(self, account_id: str, job_id: str) -> list[dict[str, Any]]:
        """The messages of the chunks not counted yet: one Query of the plan, one of the job's chunks."""
        done = {
            item.sk
            for item in JobItem.query(
                _pk(account_id, job_id), JobItem.sk.startswith("CHUNK#"), attributes_to_get=["SK"]
            )
        }
        return [
            dict(item.message or {})
            for item in JobItem.query(_plan_pk(account_id, job_id))
            if item.sk not in done
        ]

    def leave_schedule(self, account_id: str, job_id: str) -> None:
        """Take a job whose every chunk is counted off the `due` index."""
        try:
            JobItem(_pk(account_id, job_id), "JOB").update(
                actions=[JobItem.due_pk.remove(), JobItem.due_sk.remove()],
                condition=JobItem.chunks_done >= JobItem.chunks,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def chunk_done(self, account_id: str, job_id: str, chunk: int) -> bool:
        try:
            JobItem.get(_pk(account_id, job_id), f"CHUNK#{chunk:05d}", attributes_to_get=["PK"])
        except DoesNotExist:
            return False
        return True

    def record_chunk(
        self, account_id: str, job_id: str, chunk: int, succeeded: int, failures: list[Failure], at: datetime
    ) -> list[Event] | None:
        """Count a chunk's outcome once; None when it had already been counted (a redelivery), else the
        events written (`job.finished` when this was the last chunk)."""
        pk = _pk(account_id, job_id)
        chunk_item = JobItem(
            pk,
            f"CHUNK#{chunk:05d}",
            succeeded=succeeded,
            failed=len(failures),
            failures=[{"id": f.id, "code": f.code.value} for f in failures],
            created_at=at,
            ttl=int((at + KEEP_JOBS).timestamp()),
        )
        actions = [
            JobItem.chunks_done.add(1),
            JobItem.chunks_left.add(-1),
            JobItem.succeeded.add(succeeded),
            JobItem.failed.add(len(failures)),
            # Progress: the job counts as stalled only if nothing moves it on again.
            JobItem.due_sk.set(stall_sk(at + STALLED_AFTER, pk)),
            JobItem.resumes.set(0),
        ]
        last = JobItem.chunks_left == 1
        for _ in range(_ATTEMPTS):
            counted = _count(chunk_item, actions, JobItem.pk.exists() & ~last, [])
            if counted is not _Counted.JOB_REFUSED:
                return [] if counted is _Counted.WRITTEN else None
            try:
                head = JobItem.get(pk, "JOB", consistent_read=True)
            except DoesNotExist:
                return None
            if head.chunks_left != 1:
                continue  # it moved on since: count again as not the last
            done = Job(
                id=job_id,
                account_id=account_id,
                kind=str(head.kind),
                total=int(head.total or 0),
                chunks=int(head.chunks or 0),
                created_at=head.created_at or at,
                chunks_done=int(head.chunks or 0),
                succeeded=int(head.succeeded or 0) + succeeded,
                failed=int(head.failed or 0) + len(failures),
            )
            exact = (
                last
                & (JobItem.succeeded == int(head.succeeded or 0))
                & (JobItem.failed == int(head.failed or 0))
            )
            events = [finished_event(done, at)]
            counted = _count(chunk_item, actions, exact, events)
            if counted is _Counted.WRITTEN:
                return events
            if counted is _Counted.CHUNK_REFUSED:
                return None
        return None

    def get(self, account_id: str, job_id: str) -> Job | None:
        items = list(JobItem.query(_pk(account_id, job_id)))
        heads = [item for item in items if item.sk == "JOB"]
        if not heads:
            return None
        head = heads[0]
        failures = tuple(
            Failure(str(raw["id"]), FailureCode(raw["code"]))
            for item in items
            if item.sk.startswith("CHUNK#")
            for raw in item.failures or []
        )
        return Job(
            id=job_id,
            account_id=account_id,
            kind=str(head.kind),
            total=int(head.total or 0),
            chunks=int(head.chunks or 0),
            created_at=head.created_at or datetime.min,
            chunks_done=int(head.chunks_done or 0),
            succeeded=int(head.succeeded or 0),
            failed=int(head.failed or 0),
            failures=failures,
        )


_ATTEMPTS = 5
"""Chunks counted at once each guess whether they are the last; a guess that lost a race goes again."""


class _Counted(Enum):
    WRITTEN = "written"
    CHUNK_REFUSED = "chunk_refused"
    """The chunk was counted already (a redelivery)."""
    JOB_REFUSED = "job_refused"


def _count(chunk_item: JobItem, actions: list[Any], condition: Condition, events: list[Event]) -> _Counted:
    try:
        with TransactWrite(connection=transactions()) as transaction:
            transaction.save(chunk_item, condition=JobItem.pk.does_not_exist())
            transaction.update(JobItem(chunk_item.pk, "JOB"), actions=actions, condition=condition)
            for event in events:
                transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
    except TransactWriteError as exc:
        # PynamoDB sends the puts before the updates, whatever the order they were added in: the job's
        # update, added second, is the last item, after the events' puts (as in mailing_counts). The
        # events are new (fresh ids): a refusal before the job's update is the chunk's own.
        job_at = 1 + len(events)
        if failed_among(exc, 0, job_at):
            return _Counted.CHUNK_REFUSED
        if failed_among(exc, job_at, 1):
            return _Counted.JOB_REFUSED
        raise
    return _Counted.WRITTEN
