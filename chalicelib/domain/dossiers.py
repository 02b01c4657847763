"""Dossiers: one running collection of a procedure's documents for a main recipient and contributors.

A dossier keeps a snapshot of its procedure. Each participant (the main recipient, or a contributor invited
into one role) sees, through the portal, only what its role allows (EXAMPLES.md "Contributor visibility"):
its own role's documents with their files; the main recipient also sees the contributors' documents'
statuses, without their files; a role with `sees_shared_files` sees the others' documents, without their
files. A document not visible to the caller does not exist for it (404); a visible one it may not change
is 403. Statuses: `missing → pending_review → approved`; a rejection returns it to `missing` with the
comment kept. The dossier is `completed` when every required document is approved.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from chalicelib.domain.errors import Conflict, FieldIssue, Forbidden, InvalidInput, NotFound
from chalicelib.domain.procedures import MAIN, Access, DocumentRequirement, Permissions, Procedure, Role


class DocumentStatus(StrEnum):
    MISSING = "missing"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"


class DossierStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ARCHIVED = "archived"


MAX_FILES_PER_DOCUMENT = 20
"""Files one document takes for one review (pending or accepted since its last rejection): enough for
every honest retry, and a bound on the dossier's one item, which a client sending uploads in a loop would
otherwise outgrow. Files a rejection sent back, and files the content check refused, no longer count."""
MAX_PENDING_PER_PARTICIPANT = 3
"""Uploads one participant may have started and not completed on one document at once."""
MAX_REFUSED_KEPT = 5
"""Uploads refused by the content check that a document keeps on record (the newest); older ones are
dropped when another upload starts, so that a client looping on a wrong file cannot fill the dossier."""
PARTICIPANT_UPLOAD_BYTES = 40_000
"""What one participant's uploads may take of the dossier's item (as stored, JSON-escaped), so that
the other participants and the staff's reviews always keep room in its 400 KB."""
MAX_FILENAME_BYTES = 255
"""A file name at most, in UTF-8 bytes (what file systems allow): 255 Latin letters, fewer accented
letters or emoji."""
STALE_UPLOAD = timedelta(hours=1)
"""An upload started this long ago and never completed will not arrive (its presigned POST lived 15
minutes): it no longer counts, and the next upload of its document drops it."""


class UploadStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class Contributor:
    id: str
    role_id: str
    name: str
    email: str
    invited_at: datetime


@dataclass(frozen=True)
class Review:
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class Upload:
    id: str
    document_id: str
    filename: str
    content_type: str
    size: int
    key: str
    status: UploadStatus
    created_at: datetime
    reason: str | None = None
    uploaded_at: datetime | None = None
    uploaded_by: str | None = None
    """The participant who sent it (`main` or a contributor's id); None for files recorded before
    Relais kept it, which only staff see."""
    version: str | None = None
    """The S3 version of the object whose bytes were checked: the only one ever served."""
    round: int = 0
    """How many times its document had been rejected when it was started: a later rejection sends it
    back with the rest, and it no longer counts toward the next review."""

    def footprint(self) -> int:
        """About what this upload takes of the dossier's stored JSON (non-ASCII is escaped there)."""
        variable = (self.filename, self.content_type, self.reason or "", self.key)
        return 400 + sum(_escaped_length(text) for text in variable)


def _escaped_length(text: str) -> int:
    return sum(1 if ord(c) < 0x80 else 6 if ord(c) < 0x10000 else 12 for c in text)


def check_filename(filename: str) -> None:
    """A name a person gave a file: printable, no path, not over MAX_FILENAME_BYTES."""
    issue = None
    if not filename.strip():
        issue = "must not be blank"
    elif len(filename.encode()) > MAX_FILENAME_BYTES:
        issue = (
            f"must be at most {MAX_FILENAME_BYTES} bytes in UTF-8 (fewer characters when accented or emoji)"
        )
    elif any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c == "/" for c in filename):
        issue = "must not contain line breaks, control characters or /"
    if issue:
        raise InvalidInput("This file name cannot be accepted.", [FieldIssue("filename", issue)])


@dataclass(frozen=True)
class DossierDocument:
    requirement: DocumentRequirement
    status: DocumentStatus = DocumentStatus.MISSING
    review: Review | None = None
    rejections: int = 0

    @property
    def id(self) -> str:
        return self.requirement.id


@dataclass(frozen=True)
class Dossier:
    id: str
    account_id: str
    procedure: Procedure
    reference: str
    recipient: Person
    due_date: date | None
    created_at: datetime
    status: DossierStatus = DossierStatus.IN_PROGRESS
    documents: tuple[DossierDocument, ...] = ()
    contributors: tuple[Contributor, ...] = ()
    uploads: tuple[Upload, ...] = ()
    finished_roles: tuple[str, ...] = ()
    link_generations: tuple[tuple[str, int], ...] = ()
    last_event_id: str = ""
    """The id of the newest event the dossier reported: its next ones sort after it (dossier_events)."""

    def generation_of(self, participant_id: str) -> int:
        return dict(self.link_generations).get(participant_id, 0)

    def with_new_links(self, participant_id: str) -> Dossier:
        """Every link of the participant dies; only links of the next generation open the portal."""
        generations = dict(self.link_generations)
        generations[participant_id] = generations.get(participant_id, 0) + 1
        return replace(self, link_generations=tuple(sorted(generations.items())))

    def admits(self, participant_id: str, generation: int) -> bool:
        """Whether a link of this participant and generation still opens the dossier."""
        if participant_id != MAIN and all(c.id != participant_id for c in self.contributors):
            return False
        return generation == self.generation_of(participant_id)

    @classmethod
    def open(
        cls,
        dossier_id: str,
        procedure: Procedure,
        reference: str,
        recipient: Person,
        due_date: date | None,
        now: datetime,
    ) -> Dossier:
        documents = tuple(DossierDocument(requirement) for requirement in procedure.documents)
        return cls(
            dossier_id,
            procedure.account_id,
            procedure,
            reference,
            recipient,
            due_date,
            now,
            documents=documents,
        )

    def document(self, document_id: str) -> DossierDocument:
        for document in self.documents:
            if document.id == document_id:
                return document
        raise NotFound("No such document in this dossier.")

    def contributor(self, contributor_id: str) -> Contributor:
        for contributor in self.contributors:
            if contributor.id == contributor_id:
                return contributor
        raise NotFound("No such contributor in this dossier.")

    def role(self, role_id: str) -> Role:
        return self.procedure.role(role_id)

    def participant_name(self, participant_id: str) -> tuple[str, str, str]:
        """(name, email, role id) of the main recipient (`main`) or of a contributor."""
        if participant_id == MAIN:
            return self.recipient.name, self.recipient.email, MAIN
        contributor = self.contributor(participant_id)
        return contributor.name, contributor.email, contributor.role_id

    def with_contributor(self, contributor: Contributor) -> Dossier:
        """One contributor per role; never in `main` (that is the recipient's)."""
        if contributor.role_id == MAIN:
            raise InvalidInput(
                "The main role belongs to the dossier's recipient.",
                [FieldIssue("role_id", "must be a contributor role")],
            )
        try:
            self.role(contributor.role_id)
        except NotFound as exc:
            raise InvalidInput(
                "This procedure has no such role.", [FieldIssue("role_id", "no such role")]
            ) from exc
        if any(c.role_id == contributor.role_id for c in self.contributors):
            raise Conflict("This role already has a contributor in this dossier.")
        return replace(self, contributors=(*self.contributors, contributor))

    def archived(self) -> Dossier:
        """Staff close the dossier for good (finished elsewhere, abandoned); its retention then runs."""
        if self.status is DossierStatus.ARCHIVED:
            raise Conflict("This dossier is already archived.")
        return replace(self, status=DossierStatus.ARCHIVED)

    def without_contributor(self, contributor_id: str) -> Dossier:
        self.contributor(contributor_id)
        return replace(self, contributors=tuple(c for c in self.contributors if c.id != contributor_id))

    def uploads_of(self, document_id: str) -> tuple[Upload, ...]:
        return tuple(u for u in self.uploads if u.document_id == document_id)

    def with_upload(self, upload: Upload, now: datetime) -> Dossier:
        """The dossier with one more upload started by `upload.uploaded_by`. Stale uploads are dropped,
        and the document's oldest refused ones beyond MAX_REFUSED_KEPT; 409 when the document already
        takes MAX_FILES_PER_DOCUMENT files for its review, when the participant has
        MAX_PENDING_PER_PARTICIPANT uploads under way on it, or when his files would take more than his
        share of the dossier (PARTICIPANT_UPLOAD_BYTES)."""
        document = self.document(upload.document_id)
        kept = _without_refused_beyond_limit(
            tuple(u for u in self.uploads if not _stale(u, now)), upload.document_id
        )
        of_document = [u for u in kept if u.document_id == upload.document_id]
        if sum(1 for u in of_document if counts_for_review(document, u)) >= MAX_FILES_PER_DOCUMENT:
            raise Conflict(
                f"This document already holds {MAX_FILES_PER_DOCUMENT} files: "
                "wait for the review, or ask your manager to reject or approve it."
            )
        mine = [u for u in kept if u.uploaded_by == upload.uploaded_by]
        pending = [
            u for u in mine if u.document_id == upload.document_id and u.status is UploadStatus.PENDING
        ]
        if len(pending) >= MAX_PENDING_PER_PARTICIPANT:
            raise Conflict(
                f"{MAX_PENDING_PER_PARTICIPANT} files of this document are already being sent: "
                "let them finish, then send the next one."
            )
        if sum(u.footprint() for u in mine) + upload.footprint() > PARTICIPANT_UPLOAD_BYTES:
            raise Conflict(
                "You have sent as many files as this dossier can keep for you: "
                "ask your manager to review them."
            )
        return replace(self, uploads=(*kept, upload))

    def reviewed(
        self, document_id: str, approve: bool, comment: str | None, now: datetime
    ) -> tuple[Dossier, DossierDocument]:
        """Approve, or reject back to `missing` with the comment; the dossier completes when every
        required document is approved."""
        document = self.document(document_id)
        if document.status is DocumentStatus.APPROVED:
            raise Conflict("This document is already approved.")
        if approve:
            if not any(
                u.status is UploadStatus.ACCEPTED and counts_for_review(document, u) for u in self.uploads
            ):
                raise Conflict(
                    "This document holds no accepted file to approve: wait for a file that passes the checks."
                )
            changed = replace(document, status=DocumentStatus.APPROVED, review=Review(comment, now))
        else:
            if not comment:
                raise InvalidInput(
                    "Say why the document is refused.", [FieldIssue("comment", "is required to reject")]
                )
            changed = replace(
                document,
                status=DocumentStatus.MISSING,
                review=Review(comment, now),
                rejections=document.rejections + 1,
            )
        documents = tuple(changed if d.id == document_id else d for d in self.documents)
        dossier = replace(self, documents=documents)
        approved = all(d.status is DocumentStatus.APPROVED for d in documents if d.requirement.required)
        if approved and dossier.status is DossierStatus.IN_PROGRESS:
            dossier = replace(dossier, status=DossierStatus.COMPLETED)
        return dossier, changed

    def missing_required(self, role_id: str) -> tuple[DossierDocument, ...]:
        return tuple(
            d
            for d in self.documents
            if d.requirement.role_id == role_id
            and d.requirement.required
            and d.status is DocumentStatus.MISSING
        )


def _stale(upload: Upload, now: datetime) -> bool:
    return upload.status is UploadStatus.PENDING and now - upload.created_at > STALE_UPLOAD


def _without_refused_beyond_limit(uploads: tuple[Upload, ...], document_id: str) -> tuple[Upload, ...]:
    refused = [u.id for u in uploads if u.document_id == document_id and u.status is UploadStatus.REJECTED]
    dropped = set(refused[:-MAX_REFUSED_KEPT]) if len(refused) > MAX_REFUSED_KEPT else set()
    return tuple(u for u in uploads if u.id not in dropped)


def counts_for_review(document: DossierDocument, upload: Upload) -> bool:
    """Whether an upload is one of the document's files for its coming review: under way or accepted,
    and sent since the document's last rejection (a rejected document starts afresh)."""
    return (
        upload.document_id == document.id
        and upload.status is not UploadStatus.REJECTED
        and upload.round == document.rejections
    )


@dataclass(frozen=True)
class Visibility:
    """What a participant's role lets it see of one document."""

    document: DossierDocument
    mine: bool
    with_files: bool


def permissions_of(dossier: Dossier, role_id: str) -> Permissions:
    return dossier.role(role_id).permissions


def visible_documents(dossier: Dossier, role_id: str) -> list[Visibility]:
    permissions = permissions_of(dossier, role_id)
    seen = []
    for document in dossier.documents:
        mine = document.requirement.role_id == role_id
        if mine:
            seen.append(Visibility(document, True, True))
        elif role_id == MAIN or permissions.sees_shared_files:
            seen.append(Visibility(document, False, False))
    return seen


def files_seen_by(dossier: Dossier, document_id: str, participant_id: str) -> tuple[Upload, ...]:
    """The files of a document that a participant sees: those he sent himself. A contributor who
    replaces another in the same role sees none of his predecessor's (staff see them all)."""
    return tuple(u for u in dossier.uploads_of(document_id) if u.uploaded_by == participant_id)


def visible_document(dossier: Dossier, role_id: str, document_id: str) -> Visibility:
    """The document as the role sees it; NotFound when it may not see it at all."""
    for visibility in visible_documents(dossier, role_id):
        if visibility.document.id == document_id:
            return visibility
    raise NotFound("No such document.")


def uploadable_document(dossier: Dossier, role_id: str, document_id: str) -> DossierDocument:
    """A document the role may upload to: its own, with edit access, not yet approved."""
    visibility = visible_document(dossier, role_id, document_id)
    if not visibility.mine or permissions_of(dossier, role_id).access is not Access.EDIT:
        raise Forbidden("This role may not upload this document.")
    if visibility.document.status is DocumentStatus.APPROVED:
        raise Conflict("This document is already approved: it takes no new file.")
    return visibility.document


def check_upload(requirement: DocumentRequirement, content_type: str, size: int) -> None:
    issues = []
    if content_type not in requirement.accepted_types:
        issues.append(FieldIssue("content_type", f"must be one of: {', '.join(requirement.accepted_types)}"))
    if size <= 0:
        issues.append(FieldIssue("size", "must be above 0"))
    elif size > requirement.max_size_mb * 1024 * 1024:
        issues.append(FieldIssue("size", f"must be at most {requirement.max_size_mb} MB"))
    if issues:
        raise InvalidInput("This file cannot be accepted for this document.", issues)
