"""Bulk changes of the communication rule on contracts or projects: accepted at once, applied in chunks.

The request writes the job, then queues one message per chunk of ids (SQS batches of ten). `bulk_worker`
applies a chunk: one read of its records, one conditional write per record that must change (a record
edited meanwhile is read again, up to three times, then fails with `conflict`), and one transaction that
counts the chunk. A chunk already counted is skipped whole, so a redelivered message changes and counts
nothing twice. A chunk whose message failed for good (its queue gave up on it) is queued again when the tick
finds the job stalled, so every job ends with every id counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.clock import iso
from chalicelib.domain.errors import FieldIssue, InvalidInput, PayloadTooLarge
from chalicelib.domain.events import Event
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.jobs import MAX_IDS, MAX_RESUMES, Failure, FailureCode, Job, chunked
from chalicelib.domain.partners import Deal, RecordKind
from chalicelib.domain.recipients import CommunicationRule
from chalicelib.observability import logger
from chalicelib.services.events import announce
from chalicelib.services.messages import message_fields, message_time
from chalicelib.services.ports import MessageQueue

CONFLICT_RETRIES = 3
MESSAGE_TYPE = "set_communication_rule"


class JobRepository(Protocol):
    def add(self, job: Job, chunk_messages: list[dict[str, Any]]) -> None: ...

    def claim_stalled(self, account_id: str, job_id: str, as_of: datetime) -> int | None: ...

    def pending_chunks(self, account_id: str, job_id: str) -> list[dict[str, Any]]: ...

    def leave_schedule(self, account_id: str, job_id: str) -> None: ...

    def get(self, account_id: str, job_id: str) -> Job | None: ...

    def chunk_done(self, account_id: str, job_id: str, chunk: int) -> bool: ...

    def record_chunk(
        self, account_id: str, job_id: str, chunk: int, succeeded: int, failures: list[Failure], at: datetime
    ) -> list[Event] | None:
        """Count a chunk once (None when it was counted already); the events written: `job.finished`
        when it was the last."""
        ...


class DealWriter(Protocol):
    def deals(self, account_id: str, kind: RecordKind, ids: list[str]) -> dict[str, Deal]: ...

    def set_rule(self, deal: Deal, rule: CommunicationRule, at: datetime) -> bool: ...


@dataclass(frozen=True)
class RuleChunk:
    account_id: str
    job_id: str
    chunk: int
    kind: RecordKind
    ids: list[str]
    rule: CommunicationRule

    def to_message(self) -> dict[str, Any]:
        return {
            "type": MESSAGE_TYPE,
            "account_id": self.account_id,
            "job_id": self.job_id,
            "chunk": self.chunk,
            "kind": self.kind.value,
            "ids": self.ids,
            "rule": self.rule.value,
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> RuleChunk:
        try:
            return cls(
                account_id=str(body["account_id"]),
                job_id=str(body["job_id"]),
                chunk=int(body["chunk"]),
                kind=RecordKind(body["kind"]),
                ids=[str(i) for i in body["ids"]],
                rule=CommunicationRule(body["rule"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("A bulk message lacks or garbles a field.") from exc


def start_rule_change(
    account_id: str,
    kind: RecordKind,
    ids: list[str],
    rule: CommunicationRule,
    jobs: JobRepository,
    queue: MessageQueue,
    now: datetime,
) -> Job:
    """Accept a bulk change of up to 10,000 ids (duplicates counted once) and queue its chunks."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise InvalidInput("Name at least one record.", [FieldIssue("ids", "must not be empty")])
    if len(unique) > MAX_IDS:
        raise PayloadTooLarge(f"A bulk change takes at most {MAX_IDS} ids.")
    chunks = chunked(unique)
    job = Job(
        id=new_ulid(int(now.timestamp() * 1000)),
        account_id=account_id,
        kind=f"{kind.value}_communication_rule",
        total=len(unique),
        chunks=len(chunks),
        created_at=now,
    )
    messages = [
        RuleChunk(account_id, job.id, number, kind, chunk_ids, rule).to_message()
        for number, chunk_ids in enumerate(chunks)
    ]
    jobs.add(job, messages)
    queue.send_many(messages)
    return job


def apply_rule_chunk(
    chunk: RuleChunk,
    deals: DealWriter,
    jobs: JobRepository,
    now: datetime,
    webhooks: MessageQueue | None = None,
) -> bool:
    """Apply one chunk and count it, then announce `job.finished` if it was the last; False when it had
    been counted already (nothing is done again)."""
    if jobs.chunk_done(chunk.account_id, chunk.job_id, chunk.chunk):
        return False
    found = deals.deals(chunk.account_id, chunk.kind, chunk.ids)
    failures: list[Failure] = []
    succeeded = 0
    for record_id in chunk.ids:
        code = _apply_one(chunk, found.get(record_id), deals, now)
        if code is None:
            succeeded += 1
        else:
            failures.append(Failure(record_id, code))
    counted = jobs.record_chunk(chunk.account_id, chunk.job_id, chunk.chunk, succeeded, failures, now)
    if counted and webhooks is not None:
        announce(counted, webhooks)
    logger.info(
        "bulk chunk applied",
        extra={"job_id": chunk.job_id, "chunk": chunk.chunk, "succeeded": succeeded, "failed": len(failures)},
    )
    return counted is not None


def _apply_one(chunk: RuleChunk, deal: Deal | None, deals: DealWriter, now: datetime) -> FailureCode | None:
    for _ in range(CONFLICT_RETRIES):
        if deal is None:
            return FailureCode.NOT_FOUND
        if deal.apporteur_id is None:
            return FailureCode.NO_APPORTEUR
        if deal.commissioning.communication_rule is chunk.rule:
            return None
        if deals.set_rule(deal, chunk.rule, now):
            return None
        deal = deals.deals(chunk.account_id, chunk.kind, [deal.id]).get(deal.id)
    return FailureCode.CONFLICT


RESUME_MESSAGE = "resume_stalled"


@dataclass(frozen=True)
class ResumeRequest:
    """What the tick queues on the bulk queue for a job (`JOB`) or a mailing (`MAILING`) that has not moved
    on for STALLED_AFTER: the worker re-queues what remains of it, as of the tick's time."""

    kind: str
    account_id: str
    thing_id: str
    as_of: datetime

    def to_message(self) -> dict[str, Any]:
        return {
            "type": RESUME_MESSAGE,
            "kind": self.kind,
            "account_id": self.account_id,
            "thing_id": self.thing_id,
            "as_of": iso(self.as_of),
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> ResumeRequest:
        kind, account_id, thing_id = message_fields(body, ("kind", "account_id", "thing_id"), "resume")
        if kind not in ("JOB", "MAILING"):
            raise InvalidInput("A resume message names an unknown kind.")
        return cls(kind, account_id, thing_id, message_time(body, "as_of", "resume"))


def resume_job(
    request: ResumeRequest, jobs: JobRepository, queue: MessageQueue, webhooks: MessageQueue | None = None
) -> int:
    """Queue again the chunks of a stalled job not counted yet; how many. A job done leaves the schedule; one
    that stalled MAX_RESUMES times in a row without a chunk counted gives its remaining ids up as failed
    (`not_processed`), so that it ends. Two resumes of one stall re-queue once (the claim)."""
    account_id, job_id = request.account_id, request.thing_id
    job = jobs.get(account_id, job_id)
    if job is None:
        return 0
    if job.chunks_done >= job.chunks:
        jobs.leave_schedule(account_id, job_id)
        return 0
    resumes = jobs.claim_stalled(account_id, job_id, request.as_of)
    if resumes is None:
        return 0
    pending = jobs.pending_chunks(account_id, job_id)
    if resumes > MAX_RESUMES:
        for message in pending:
            chunk = RuleChunk.from_message(message)
            failures = [Failure(record_id, FailureCode.NOT_PROCESSED) for record_id in chunk.ids]
            counted = jobs.record_chunk(account_id, job_id, chunk.chunk, 0, failures, request.as_of)
            if counted and webhooks is not None:
                announce(counted, webhooks)
        jobs.leave_schedule(account_id, job_id)
        logger.warning("bulk job given up", extra={"job_id": job_id, "chunks": len(pending)})
        return 0
    queue.send_many(pending)
    logger.info(
        "stalled bulk job resumed", extra={"job_id": job_id, "chunks": len(pending), "resume": resumes}
    )
    return len(pending)
