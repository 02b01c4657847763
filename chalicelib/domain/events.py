"""What happened, said once: the events the webhooks deliver and the activity logs show.

An event is written in the same DynamoDB transaction as the change it reports (nothing announced that did
not happen, nothing happened unannounced), in the partition of what it is about: a dossier's events beside
the dossier, a contract's beside the contract, so each activity log is one Query and an erased dossier takes
its events with it. The webhook worker fans each one out to the account's endpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain.clock import iso, parse_iso
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.ids import new_ulid, ulid_after


class EventType(StrEnum):
    DOSSIER_CREATED = "dossier.created"
    DOSSIER_COMPLETED = "dossier.completed"
    CONTRIBUTOR_INVITED = "contributor.invited"
    CONTRIBUTOR_FINISHED = "contributor.finished"
    DOCUMENT_UPLOADED = "document.uploaded"
    DOCUMENT_APPROVED = "document.approved"
    DOCUMENT_REJECTED = "document.rejected"
    COMMUNICATION_SENT = "communication.sent"
    COMMUNICATION_SKIPPED = "communication.skipped"
    COMMUNICATION_BOUNCED = "communication.bounced"
    COMMUNICATION_COMPLAINED = "communication.complained"
    FORMAL_NOTICE_PREPARED = "formal_notice.prepared"
    FORMAL_NOTICE_SENT = "formal_notice.sent"
    FORMAL_NOTICE_DELIVERED = "formal_notice.delivered"
    FORMAL_NOTICE_RETURNED = "formal_notice.returned"
    CONTRACT_SUSPENDED = "contract.suspended"
    CONTRACT_REINSTATED = "contract.reinstated"
    CONTRACT_TERMINATION_DUE = "contract.termination_due"
    CONTRACT_TERMINATED = "contract.terminated"
    MAILING_FINISHED = "mailing.finished"
    JOB_FINISHED = "job.finished"
    WEBHOOK_TEST = "webhook.test"
    """Sent by `POST /webhooks/{id}/test` to that endpoint only; never in an activity log."""


SUBSCRIBABLE = frozenset(t.value for t in EventType if t is not EventType.WEBHOOK_TEST)
"""The types an endpoint may list in `events` (or `["*"]` for all of them)."""


class ActorKind(StrEnum):
    STAFF = "staff"
    PARTICIPANT = "participant"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who made the change: a staff user (the token's subject), a portal participant (`main` or a
    contributor's id, with the name the dossier knows), or Relais itself (the tick, a worker, SES)."""

    kind: ActorKind
    id: str
    name: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "id": self.id, "name": self.name}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Actor:
        return cls(ActorKind(raw["kind"]), str(raw["id"]), str(raw.get("name") or ""))


SYSTEM = Actor(ActorKind.SYSTEM, "relais", "Relais")


def staff(subject: str, name: str = "") -> Actor:
    return Actor(ActorKind.STAFF, subject, name)


def participant(participant_id: str, name: str) -> Actor:
    return Actor(ActorKind.PARTICIPANT, participant_id, name)


class SubjectKind(StrEnum):
    DOSSIER = "dossier"
    CONTRACT = "contract"
    ACCOUNT = "account"
    """Events about nothing with an activity log of its own (a mailing, a bulk job, a mailing's email)."""


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    id: str


@dataclass(frozen=True)
class Event:
    """One event: `id` is the Standard Webhooks `webhook-id`, the same on every delivery and retry."""

    account_id: str
    type: EventType
    at: datetime
    subject: Subject
    data: dict[str, Any]
    actor: Actor = SYSTEM
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", new_event_id(self.at))

    def payload(self) -> dict[str, Any]:
        """The body a receiver gets: `{type, timestamp, data}` (Standard Webhooks)."""
        return {"type": self.type.value, "timestamp": iso(self.at), "data": self.data}

    def activity(self) -> dict[str, Any]:
        """One entry of an activity log (API.md)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "at": iso(self.at),
            "actor": self.actor.as_json(),
            "data": self.data,
        }

    def to_message(self) -> dict[str, Any]:
        """What travels on the webhooks queue: the whole event, so fanning it out reads nothing back."""
        return {
            "account_id": self.account_id,
            "id": self.id,
            "type": self.type.value,
            "at": iso(self.at),
            "subject": {"kind": self.subject.kind.value, "id": self.subject.id},
            "actor": self.actor.as_json(),
            "data": self.data,
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> Event:
        try:
            subject = body["subject"]
            return cls(
                account_id=str(body["account_id"]),
                type=EventType(body["type"]),
                at=parse_iso(body["at"]),
                subject=Subject(SubjectKind(subject["kind"]), str(subject["id"])),
                data=dict(body["data"]),
                actor=Actor.from_json(body["actor"]),
                id=str(body["id"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"An event message is malformed: {exc}") from exc


def new_event_id(at: datetime, written_ms: int | None = None) -> str:
    """`evt_` and a ULID of the event's moment, so a subject's events sort by time.

    Relais's clock reads whole seconds, so the dossier's own change and the worker's email about it often
    share `at`: within that second, the milliseconds of the real time the id is made (`written_ms`) order
    them as they were written. Outside it (a simulated clock, a skewed one) the id keeps to `at`'s second."""
    second_ms = int(at.timestamp()) * 1000
    written = int(time.time() * 1000) if written_ms is None else written_ms
    return f"evt_{new_ulid(min(max(written, second_ms), second_ms + 999))}"


def next_event_id(at: datetime, previous: str) -> str:
    """An id for an event at `at` that sorts after `previous` (a subject's newest event id, or "")."""
    candidate = new_event_id(at)
    if candidate > previous:
        return candidate
    return f"evt_{ulid_after(previous.removeprefix('evt_'))}"


def in_order(events: list[Event]) -> list[Event]:
    """The same events with ids that sort as the list does: events of one change share their moment,
    and ULIDs of one millisecond would otherwise sort at random in the activity log."""
    ordered, previous = [], ""
    for event in events:
        previous = next_event_id(event.at, previous)
        ordered.append(replace(event, id=previous))
    return ordered
