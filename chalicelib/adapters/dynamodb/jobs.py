"""Bulk jobs: the job item and its chunk items form one collection (`ACCOUNT#<a>#JOB#<id>`), so showing
a job with every failure is one Query, and a chunk is counted by one TransactWriteItems that writes its
item (only if absent) and adds its counts to the job: a redelivered chunk counts nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.models import JobItem, condition_failed, transactions
from chalicelib.domain.jobs import Failure, FailureCode, Job

KEEP_JOBS = timedelta(days=90)


def _pk(account_id: str, job_id: str) -> str:
    return f"ACCOUNT#{account_id}#JOB#{job_id}"


class DynamoJobRepository:
    def add(self, job: Job) -> None:
        JobItem(
            _pk(job.account_id, job.id),
            "JOB",
            kind=job.kind,
            total=job.total,
            chunks=job.chunks,
            chunks_done=0,
            succeeded=0,
            failed=0,
            created_at=job.created_at,
            ttl=int((job.created_at + KEEP_JOBS).timestamp()),
        ).save(condition=JobItem.pk.does_not_exist())

    def chunk_done(self, account_id: str, job_id: str, chunk: int) -> bool:
        try:
            JobItem.get(_pk(account_id, job_id), f"CHUNK#{chunk:05d}", attributes_to_get=["PK"])
        except DoesNotExist:
            return False
        return True

    def record_chunk(
        self, account_id: str, job_id: str, chunk: int, succeeded: int, failures: list[Failure], at: datetime
    ) -> bool:
        """Count a chunk's outcome once; False when it had already been counted (a redelivery)."""
        chunk_item = JobItem(
            _pk(account_id, job_id),
            f"CHUNK#{chunk:05d}",
            succeeded=succeeded,
            failed=len(failures),
            failures=[{"id": f.id, "code": f.code.value} for f in failures],
            created_at=at,
            ttl=int((at + KEEP_JOBS).timestamp()),
        )
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.save(chunk_item, condition=JobItem.pk.does_not_exist())
                transaction.update(
                    JobItem(_pk(account_id, job_id), "JOB"),
                    actions=[
                        JobItem.chunks_done.add(1),
                        JobItem.succeeded.add(succeeded),
                        JobItem.failed.add(len(failures)),
                    ],
                    condition=JobItem.pk.exists(),
                )
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

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
