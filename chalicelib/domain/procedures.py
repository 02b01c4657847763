"""Procedures: the template of a document collection (seed: "Créer des procédures jointes").

A procedure has the main recipient's role (`main`: the tenant, the borrower), contributor roles (guarantor,
co-borrower…) with their permissions, required documents (pièces justificatives) each assigned to one role,
and automations (an email on an event). Deleting a role sends its documents back to `main`. A dossier keeps
a snapshot of its procedure, so editing the procedure never changes a running dossier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.errors import Conflict, FieldIssue, InvalidInput, NotFound

MAIN = "main"
DEFAULT_TYPES = ("application/pdf", "image/jpeg", "image/png")
ACCEPTED_TYPES = frozenset({*DEFAULT_TYPES, "image/heic", "image/webp", "image/gif", "image/tiff"})
MAX_SIZE_MB = 25
MAX_ROLES = 20
MAX_DOCUMENTS = 100
MAX_AUTOMATIONS = 50


class Access(StrEnum):
    EDIT = "edit"
    VIEW = "view"


class Trigger(StrEnum):
    DOSSIER_CREATED = "dossier_created"
    CONTRIBUTOR_INVITED = "contributor_invited"
    DOCUMENT_REJECTED = "document_rejected"
    ROLE_FINISHED = "role_finished"
    DEADLINE_APPROACHING = "deadline_approaching"

    @property
    def kind(self) -> CommunicationKind:
        return CommunicationKind(self.value)


class Target(StrEnum):
    MAIN = "main"
    CONTRIBUTOR = "contributor"
    ALL_ROLES = "all_roles"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Permissions:
    access: Access = Access.EDIT
    can_invite: bool = False
    sees_shared_files: bool = False


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    permissions: Permissions = Permissions()


@dataclass(frozen=True)
class DocumentRequirement:
    id: str
    label: str
    description: str | None = None
    required: bool = True
    role_id: str = MAIN
    accepted_types: tuple[str, ...] = DEFAULT_TYPES
    max_size_mb: int = 10


@dataclass(frozen=True)
class Automation:
    id: str
    trigger: Trigger
    to: Target
    template: TemplateSource
    enabled: bool = True
    days_before: int | None = None


@dataclass(frozen=True)
class Procedure:
    id: str
    account_id: str
    name: str
    description: str | None
    roles: tuple[Role, ...]
    documents: tuple[DocumentRequirement, ...]
    automations: tuple[Automation, ...]
    created_at: datetime
    version: int = 0

    @classmethod
    def new(
        cls,
        procedure_id: str,
        account_id: str,
        name: str,
        description: str | None,
        main_role_name: str | None,
        now: datetime,
    ) -> Procedure:
        main = Role(MAIN, main_role_name or "Destinataire principal")
        return cls(procedure_id, account_id, name, description, (main,), (), (), now)

    def role(self, role_id: str) -> Role:
        for role in self.roles:
            if role.id == role_id:
                return role
        raise NotFound("No such role in this procedure.")

    def document(self, document_id: str) -> DocumentRequirement:
        for document in self.documents:
            if document.id == document_id:
                return document
        raise NotFound("No such document in this procedure.")

    def with_role(self, role: Role) -> Procedure:
        if len(self.roles) >= MAX_ROLES:
            raise Conflict(f"A procedure has at most {MAX_ROLES} roles.")
        return replace(self, roles=(*self.roles, role))

    def with_role_changed(self, role: Role) -> Procedure:
        self.role(role.id)
        return replace(self, roles=tuple(role if r.id == role.id else r for r in self.roles))

    def without_role(self, role_id: str) -> Procedure:
        """Its documents go back to the main recipient; `main` itself cannot be deleted."""
        if role_id == MAIN:
            raise Conflict("The main recipient's role cannot be deleted.")
        self.role(role_id)
        documents = tuple(replace(d, role_id=MAIN) if d.role_id == role_id else d for d in self.documents)
        return replace(self, roles=tuple(r for r in self.roles if r.id != role_id), documents=documents)

    def with_document(self, document: DocumentRequirement) -> Procedure:
        if len(self.documents) >= MAX_DOCUMENTS:
            raise Conflict(f"A procedure has at most {MAX_DOCUMENTS} documents.")
        self._check_role_of(document)
        return replace(self, documents=(*self.documents, document))

    def with_document_changed(self, document: DocumentRequirement) -> Procedure:
        self.document(document.id)
        self._check_role_of(document)
        return replace(self, documents=tuple(document if d.id == document.id else d for d in self.documents))

    def with_automation(self, automation: Automation) -> Procedure:
        if len(self.automations) >= MAX_AUTOMATIONS:
            raise Conflict(f"A procedure has at most {MAX_AUTOMATIONS} automations.")
        if automation.trigger is Trigger.DEADLINE_APPROACHING and automation.days_before is None:
            raise InvalidInput(
                "A deadline automation says how many days before the due date it writes.",
                [FieldIssue("days_before", "is required for deadline_approaching")],
            )
        return replace(self, automations=(*self.automations, automation))

    def automations_for(self, trigger: Trigger) -> tuple[Automation, ...]:
        return tuple(a for a in self.automations if a.trigger is trigger and a.enabled)

    def _check_role_of(self, document: DocumentRequirement) -> None:
        if document.role_id not in {r.id for r in self.roles}:
            raise InvalidInput(
                "The document is assigned to a role this procedure lacks.",
                [FieldIssue("role_id", "no such role")],
            )
