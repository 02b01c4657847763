"""The events of a dossier's change, read off the dossier before and after it.

Every change of a dossier goes through one place (the service's commit), so deriving its events from the
two states, rather than having each use case name them, means no path can forget one: a document approved
by staff and the dossier it completes, an upload settled by the portal or by the S3 event, a contributor
invited by staff or by another participant. A change that lost its version race is derived again from the
newer dossier, so what the winner already reported is not reported twice.

Event ids sort by time, but the clock reads whole seconds: a dossier remembers its newest event's id, and
its next events take ids after it, so its activity reads in the order things happened.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.domain.dossiers import DocumentStatus, Dossier, DossierStatus, Upload, UploadStatus
from chalicelib.domain.events import Actor, Event, EventType, Subject, SubjectKind, next_event_id
from chalicelib.domain.procedures import MAIN


def record_events(
    before: Dossier | None, after: Dossier, actor: Actor, at: datetime
) -> tuple[Dossier, tuple[Event, ...]]:
    """The events that turning `before` (None: a new dossier) into `after` reports, in the order they
    read best (the dossier opened, people invited, files arrived, reviews, roles done, the dossier
    completed), and `after` remembering the newest one's id."""
    facts = _facts(before, after)
    if not facts:
        return after, ()
    common = {
        "dossier_id": after.id,
        "procedure_id": after.procedure.id,
        "reference": after.reference,
        "dossier_status": after.status.value,
    }
    subject = Subject(SubjectKind.DOSSIER, after.id)
    events = []
    previous = before.last_event_id if before is not None else ""
    for kind, data in facts:
        previous = next_event_id(at, previous)
        events.append(Event(after.account_id, kind, at, subject, {**common, **data}, actor, previous))
    return replace(after, last_event_id=previous), tuple(events)


Fact = tuple[EventType, dict[str, Any]]
"""One event to be: its type and what its `data` adds to the dossier's ids."""


def _facts(before: Dossier | None, after: Dossier) -> list[Fact]:
    facts: list[Fact] = []
    if before is None:
        facts.append((EventType.DOSSIER_CREATED, {}))
    known = {c.id for c in before.contributors} if before is not None else set()
    facts += [
        (EventType.CONTRIBUTOR_INVITED, {"contributor_id": c.id, "role_id": c.role_id})
        for c in after.contributors
        if c.id not in known
    ]
    facts += [_uploaded(after, upload) for upload in _newly_accepted(before, after)]
    facts += _reviews(before, after)
    finished = set(before.finished_roles) if before is not None else set()
    facts += [
        (EventType.CONTRIBUTOR_FINISHED, {"role_id": r, "contributor_id": _participant_of(after, r)})
        for r in after.finished_roles
        if r not in finished
    ]
    if after.status is DossierStatus.COMPLETED and (before is None or before.status is not after.status):
        facts.append((EventType.DOSSIER_COMPLETED, {}))
    return facts


def _newly_accepted(before: Dossier | None, after: Dossier) -> list[Upload]:
    """Files whose bytes passed the check in this change (a refused file is no document arriving)."""
    accepted = {u.id for u in before.uploads if u.status is UploadStatus.ACCEPTED} if before else set()
    return [u for u in after.uploads if u.status is UploadStatus.ACCEPTED and u.id not in accepted]


def _uploaded(dossier: Dossier, upload: Upload) -> Fact:
    document = dossier.document(upload.document_id)
    return (
        EventType.DOCUMENT_UPLOADED,
        {
            "document_id": document.id,
            "role_id": document.requirement.role_id,
            "document_status": document.status.value,
            "file_id": upload.id,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": upload.size,
        },
    )


def _reviews(before: Dossier | None, after: Dossier) -> list[Fact]:
    if before is None:
        return []
    earlier = {d.id: d for d in before.documents}
    changes: list[Fact] = []
    for document in after.documents:
        was = earlier.get(document.id)
        if was is None:
            continue
        about = {
            "document_id": document.id,
            "role_id": document.requirement.role_id,
            "document_status": document.status.value,
        }
        if document.status is DocumentStatus.APPROVED and was.status is not DocumentStatus.APPROVED:
            changes.append((EventType.DOCUMENT_APPROVED, about))
        elif document.rejections > was.rejections:
            comment = document.review.comment if document.review else None
            changes.append((EventType.DOCUMENT_REJECTED, {**about, "comment": comment or ""}))
    return changes


def _participant_of(dossier: Dossier, role_id: str) -> str:
    """Who holds a role: `main` (the recipient) or its one contributor."""
    if role_id == MAIN:
        return MAIN
    return next((c.id for c in dossier.contributors if c.role_id == role_id), "")
