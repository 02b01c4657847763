"""Bulk jobs: a change applied to many records in chunks by `bulk_worker`, with counters and failures.

A job is split into chunks when it is accepted; each chunk is counted once, when its outcome is written,
so the job's status follows from how many chunks are done and how many ids failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain.events import Event, EventType, Subject, SubjectKind

CHUNK_SIZE = 100
MAX_IDS = 10_000
STALLED_AFTER = timedelta(minutes=15)
"""A bulk job or a mailing fan-out that has not moved on for this long is resumed by the tick: what remains of
it is queued again (chunks and pages are idempotent, so work done twice is counted once)."""
MAX_RESUMES = 5
"""Resumes in a row without progress before the remaining work is given up and counted as failed: a chunk or
page that fails every time must not keep a job or a mailing running for ever."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class FailureCode(StrEnum):
    NOT_FOUND = "not_found"
    NO_APPORTEUR = "no_apporteur"
    CONFLICT = "conflict"
    NOT_PROCESSED = "not_processed"


FAILURE_MESSAGES = {
    FailureCode.NOT_FOUND: "No such record in this account.",
    FailureCode.NO_APPORTEUR: "The rule only applies where an apporteur is set; this record has none.",
    FailureCode.CONFLICT: "The record kept changing while it was updated; it was left as it was.",
    FailureCode.NOT_PROCESSED: "Its chunk failed at every attempt; the record may not have changed.",
}


@dataclass(frozen=True)
class Failure:
    id: str
    code: FailureCode

    @property
    def message(self) -> str:
        return FAILURE_MESSAGES[self.code]


@dataclass(frozen=True)
class Job:
    id: str
    account_id: str
    kind: str
    total: int
    chunks: int
    created_at: datetime
    chunks_done: int = 0
    succeeded: int = 0
    failed: int = 0
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def status(self) -> JobStatus:
        if self.chunks_done == 0 and self.chunks > 0:
            return JobStatus.QUEUED
        if self.chunks_done < self.chunks:
            return JobStatus.RUNNING
        if self.failed and not self.succeeded:
            return JobStatus.FAILED
        return JobStatus.PARTIALLY_FAILED if self.failed else JobStatus.SUCCEEDED


def chunked(ids: list[str], size: int = CHUNK_SIZE) -> list[list[str]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def finished_event(job: Job, at: datetime) -> Event:
    """`job.finished`, written by the one chunk count that ends the job, with its final counts."""
    return Event(
        account_id=job.account_id,
        type=EventType.JOB_FINISHED,
        at=at,
        subject=Subject(SubjectKind.ACCOUNT, job.account_id),
        data={
            "job_id": job.id,
            "kind": job.kind,
            "status": job.status.value,
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
        },
    )
