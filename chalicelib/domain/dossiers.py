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
"""Files one document keeps until it is approved: enough for every honest retry, and a bound on the
dossier's one item, which a client sending uploads in a loop would otherwise outgrow."""
STALE_UPLOAD = timedelta(days=1)
"""An upload started this long ago and never completed will not arrive (its presigned POST lived
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


@dataclass(frozen=True)
class DossierDocument:
    requirement: DocumentRequirement
    status: DocumentStatus = DocumentStatus.MISSING
    review: Review | None = None

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

    def without_contributor(self, contributor_id: str) -> Dossier:
        self.contributor(contributor_id)
        return replace(self, contributors=tuple(c for c in self.contributors if c.id != contributor_id))

    def uploads_of(self, document_id: str) -> tuple[Upload, ...]:
        return tuple(u for u in self.uploads if u.document_id == document_id)

    def with_upload(self, upload: Upload, now: datetime) -> Dossier:
        """The dossier with one more upload started, its document's stale ones dropped; 409 once the
        document holds MAX_FILES_PER_DOCUMENT files."""

        def stale(u: Upload) -> bool:
            return (
                u.document_id == upload.document_id
                and u.status is UploadStatus.PENDING
                and now - u.created_at > STALE_UPLOAD
            )

        kept = tuple(u for u in self.uploads if not stale(u))
        if sum(1 for u in kept if u.document_id == upload.document_id) >= MAX_FILES_PER_DOCUMENT:
            raise Conflict(
                f"This document already holds {MAX_FILES_PER_DOCUMENT} files: "
                "wait for the review, or ask your manager to reject or approve it."
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
            changed = replace(document, status=DocumentStatus.APPROVED, review=Review(comment, now))
        else:
            if not comment:
                raise InvalidInput(
                    "Say why the document is refused.", [FieldIssue("comment", "is required to reject")]
                )
            changed = replace(document, status=DocumentStatus.MISSING, review=Review(comment, now))
        documents = tuple(changed if d.id == document_id else d for d in self.documents)
        dossier = replace(self, documents=documents)
        if all(d.status is DocumentStatus.APPROVED for d in documents if d.requirement.required):
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
