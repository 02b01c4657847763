"""Document collection, staff side: procedures (roles, documents, automations) and dossiers
(contributors, invitations, reviews)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Annotated, Any

from chalice.app import Request, Response
from pydantic import Field, StrictBool, StrictInt, StrictStr

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.idempotency import replays_with_fresh_link
from chalicelib.api.pagination import page, page_params, query_param
from chalicelib.api.requests import (
    CalendarDate,
    DisplayName,
    EmailAddress,
    PatchBody,
    StrictBody,
    api_url_of,
    parse_body,
    sent_fields,
    staff_principal,
)
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import TemplateSource
from chalicelib.domain.dossiers import Contributor, Dossier, DossierDocument, DossierStatus, Person, Upload
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.events import Actor, staff
from chalicelib.domain.procedures import (
    ACCEPTED_TYPES,
    DEFAULT_TYPES,
    MAIN,
    MAX_SIZE_MB,
    Access,
    Automation,
    DocumentRequirement,
    Permissions,
    Procedure,
    Role,
    Target,
    Trigger,
)
from chalicelib.services import dossiers as dossier_service
from chalicelib.services import procedures as procedure_service
from chalicelib.wiring import container

collection = ApiBlueprint(__name__)

Label = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Description = Annotated[StrictStr, Field(max_length=2000)]


class ProcedureBody(StrictBody):
    nullable = frozenset({"description"})
    name: DisplayName
    description: Description | None = None
    main_role_name: DisplayName | None = None


class ProcedurePatch(PatchBody):
    nullable = frozenset({"description"})
    name: DisplayName | None = None
    description: Description | None = None
    main_role_name: DisplayName | None = None


class PermissionsBody(StrictBody):
    access: Access = Access.EDIT
    can_invite: StrictBool = False
    sees_shared_files: StrictBool = False


class RoleBody(StrictBody):
    name: DisplayName
    permissions: PermissionsBody = Field(default_factory=PermissionsBody)


class RolePatch(PatchBody):
    name: DisplayName | None = None
    permissions: PermissionsBody | None = None


class DocumentBody(StrictBody):
    nullable = frozenset({"description"})
    label: Label
    description: Description | None = None
    required: StrictBool = True
    role_id: StrictStr = "main"
    accepted_types: list[StrictStr] = Field(
        default_factory=lambda: list(DEFAULT_TYPES), min_length=1, max_length=10
    )
    max_size_mb: StrictInt = Field(default=10, ge=1, le=MAX_SIZE_MB)


class DocumentPatch(PatchBody):
    nullable = frozenset({"description"})
    label: Label | None = None
    description: Description | None = None
    required: StrictBool | None = None
    role_id: StrictStr | None = None
    accepted_types: list[StrictStr] | None = Field(default=None, min_length=1, max_length=10)
    max_size_mb: StrictInt | None = Field(default=None, ge=1, le=MAX_SIZE_MB)


class AutomationBody(StrictBody):
    trigger: Trigger
    to: Target
    subject: StrictStr = Field(max_length=500)
    body: StrictStr = Field(max_length=20_000)
    enabled: StrictBool = True
    days_before: StrictInt | None = Field(default=None, ge=1, le=365)


class RecipientBody(StrictBody):
    name: DisplayName
    email: EmailAddress


class DossierBody(StrictBody):
    nullable = frozenset({"due_date"})
    procedure_id: Label
    recipient: RecipientBody
    reference: DisplayName | None = None
    due_date: CalendarDate | None = None
    notify: StrictBool = False


class ContributorBody(StrictBody):
    role_id: Label
    name: DisplayName
    email: EmailAddress
    notify: StrictBool = False


class ReviewBody(StrictBody):
    decision: Annotated[StrictStr, Field(pattern="^(approve|reject)$")]
    comment: Annotated[StrictStr, Field(max_length=2000)] | None = None


def _check_types(types: list[str] | None) -> None:
    unknown = sorted(set(types or []) - ACCEPTED_TYPES)
    if unknown:
        raise InvalidInput(
            "Some file types are not accepted.",
            [FieldIssue("accepted_types", f"must be among: {', '.join(sorted(ACCEPTED_TYPES))}")],
        )


# ---- views ----


def role_view(role: Role) -> dict[str, Any]:
    p = role.permissions
    return {
        "id": role.id,
        "name": role.name,
        "permissions": {
            "access": p.access.value,
            "can_invite": p.can_invite,
            "sees_shared_files": p.sees_shared_files,
        },
    }


def requirement_view(d: DocumentRequirement) -> dict[str, Any]:
    return {
        "id": d.id,
        "label": d.label,
        "description": d.description,
        "required": d.required,
        "role_id": d.role_id,
        "accepted_types": list(d.accepted_types),
        "max_size_mb": d.max_size_mb,
    }


def automation_view(a: Automation) -> dict[str, Any]:
    return {
        "id": a.id,
        "trigger": a.trigger.value,
        "to": a.to.value,
        "subject": a.template.subject,
        "body": a.template.body,
        "enabled": a.enabled,
        "days_before": a.days_before,
    }


def procedure_view(p: Procedure) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "roles": [role_view(r) for r in p.roles],
        "documents": [requirement_view(d) for d in p.documents],
        "automations": [automation_view(a) for a in p.automations],
        "created_at": iso(p.created_at),
        "version": p.version,
    }


def file_view(u: Upload) -> dict[str, Any]:
    return {
        "id": u.id,
        "filename": u.filename,
        "content_type": u.content_type,
        "size": u.size,
        "status": u.status.value,
        "reason": u.reason,
        "uploaded_at": iso(u.uploaded_at) if u.uploaded_at else None,
    }


def document_view(
    dossier: Dossier, d: DossierDocument, files: Iterable[Upload] | None = None
) -> dict[str, Any]:
    """A document with `files` (every file of it, as staff see it, when None)."""
    role = dossier.role(d.requirement.role_id)
    shown = dossier.uploads_of(d.id) if files is None else files
    return {
        "id": d.id,
        "label": d.requirement.label,
        "description": d.requirement.description,
        "role_id": role.id,
        "role_name": role.name,
        "required": d.requirement.required,
        "status": d.status.value,
        "accepted_types": list(d.requirement.accepted_types),
        "max_size_mb": d.requirement.max_size_mb,
        "review": {"comment": d.review.comment, "at": iso(d.review.at)} if d.review else None,
        "files": [file_view(u) for u in shown if u.uploaded_at],
    }


def contributor_view(c: Contributor) -> dict[str, Any]:
    return {
        "id": c.id,
        "role_id": c.role_id,
        "name": c.name,
        "email": c.email,
        "invited_at": iso(c.invited_at),
    }


def dossier_view(dossier: Dossier) -> dict[str, Any]:
    return {
        "id": dossier.id,
        "reference": dossier.reference,
        "status": dossier.status.value,
        "procedure_id": dossier.procedure.id,
        "procedure_name": dossier.procedure.name,
        "recipient": {"name": dossier.recipient.name, "email": dossier.recipient.email},
        "due_date": dossier.due_date.isoformat() if dossier.due_date else None,
        "roles": [role_view(r) for r in dossier.procedure.roles],
        "documents": [document_view(dossier, d) for d in dossier.documents],
        "contributors": [contributor_view(c) for c in dossier.contributors],
        "finished_roles": list(dossier.finished_roles),
        "created_at": iso(dossier.created_at),
    }


def context() -> dossier_service.Context:
    services = container()
    api_url = services.settings.api_url or api_url_of(collection.current_request)
    return services.dossier_context(api_url)


def _account() -> str:
    return staff_principal(collection.current_request).require_account()


def _actor() -> Actor:
    """The staff user making a change, as its events name them."""
    return staff(staff_principal(collection.current_request).subject)


# ---- procedures ----


@collection.route("/procedures", methods=["POST"], authorizer=staff_authorizer)
def create_procedure() -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, ProcedureBody)
    services = container()
    procedure = procedure_service.create_procedure(
        account_id, body.name, body.description, body.main_role_name, services.procedures, services.now()
    )
    return Response(procedure_view(procedure), status_code=201)


@collection.route("/procedures", methods=["GET"], authorizer=staff_authorizer)
def list_procedures() -> dict[str, Any]:
    account_id = _account()
    limit, cursor = page_params(collection.current_request)
    found, position = container().procedures.list_procedures(account_id, limit, cursor)
    return page([procedure_view(p) for p in found], position)


@collection.route("/procedures/{procedure_id}", methods=["GET"], authorizer=staff_authorizer)
def get_procedure(procedure_id: str) -> dict[str, Any]:
    return procedure_view(procedure_service.get_procedure(_account(), procedure_id, container().procedures))


@collection.route("/procedures/{procedure_id}", methods=["PATCH"], authorizer=staff_authorizer)
def update_procedure(procedure_id: str) -> dict[str, Any]:

    account_id = _account()
    changes = sent_fields(parse_body(collection.current_request, ProcedurePatch))
    main_name = changes.pop("main_role_name", None)

    def change(p: Procedure) -> Procedure:
        changed = replace(p, **changes)
        return changed.with_role_changed(replace(p.role("main"), name=main_name)) if main_name else changed

    return procedure_view(
        procedure_service.change_procedure(account_id, procedure_id, change, container().procedures)
    )


@collection.route("/procedures/{procedure_id}/roles", methods=["POST"], authorizer=staff_authorizer)
def add_role(procedure_id: str) -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, RoleBody)
    services = container()
    p = body.permissions
    role = procedure_service.add_role(
        account_id,
        procedure_id,
        body.name,
        Permissions(p.access, p.can_invite, p.sees_shared_files),
        services.procedures,
        services.accounts,
        services.now(),
    )
    return Response(role_view(role), status_code=201)


@collection.route(
    "/procedures/{procedure_id}/roles/{role_id}", methods=["PATCH"], authorizer=staff_authorizer
)
def update_role(procedure_id: str, role_id: str) -> dict[str, Any]:

    account_id = _account()
    body = parse_body(collection.current_request, RolePatch)

    def change(procedure: Procedure) -> Procedure:
        role = procedure.role(role_id)
        if body.name is not None:
            role = replace(role, name=body.name)
        if body.permissions is not None:
            p = body.permissions
            role = replace(role, permissions=Permissions(p.access, p.can_invite, p.sees_shared_files))
        return procedure.with_role_changed(role)

    procedure = procedure_service.change_procedure(account_id, procedure_id, change, container().procedures)
    return role_view(procedure.role(role_id))


@collection.route(
    "/procedures/{procedure_id}/roles/{role_id}", methods=["DELETE"], authorizer=staff_authorizer
)
def delete_role(procedure_id: str, role_id: str) -> Response:
    account_id = _account()
    procedure_service.change_procedure(
        account_id, procedure_id, lambda p: p.without_role(role_id), container().procedures
    )
    return Response(body="", status_code=204)


@collection.route("/procedures/{procedure_id}/documents", methods=["POST"], authorizer=staff_authorizer)
def add_document(procedure_id: str) -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, DocumentBody)
    _check_types(body.accepted_types)
    document = DocumentRequirement(
        "",
        body.label,
        body.description,
        body.required,
        body.role_id,
        tuple(body.accepted_types),
        body.max_size_mb,
    )
    added = procedure_service.add_document(account_id, procedure_id, document, container().procedures)
    return Response(requirement_view(added), status_code=201)


@collection.route(
    "/procedures/{procedure_id}/documents/{document_id}", methods=["PATCH"], authorizer=staff_authorizer
)
def update_document(procedure_id: str, document_id: str) -> dict[str, Any]:

    account_id = _account()
    changes = sent_fields(parse_body(collection.current_request, DocumentPatch))
    _check_types(changes.get("accepted_types"))
    if "accepted_types" in changes:
        changes["accepted_types"] = tuple(changes["accepted_types"])

    def change(procedure: Procedure) -> Procedure:
        return procedure.with_document_changed(replace(procedure.document(document_id), **changes))

    procedure = procedure_service.change_procedure(account_id, procedure_id, change, container().procedures)
    return requirement_view(procedure.document(document_id))


@collection.route("/procedures/{procedure_id}/automations", methods=["POST"], authorizer=staff_authorizer)
def add_automation(procedure_id: str) -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, AutomationBody)
    automation = Automation(
        "", body.trigger, body.to, TemplateSource(body.subject, body.body), body.enabled, body.days_before
    )
    added = procedure_service.add_automation(account_id, procedure_id, automation, container().procedures)
    return Response(automation_view(added), status_code=201)


# ---- dossiers ----


@collection.route("/dossiers", methods=["POST"], authorizer=staff_authorizer)
def create_dossier() -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, DossierBody)
    opened = dossier_service.open_dossier(
        account_id,
        body.procedure_id,
        Person(body.recipient.name, body.recipient.email),
        body.reference,
        body.due_date,
        body.notify,
        context(),
        _actor(),
    )
    return Response(
        {**dossier_view(opened.dossier), "portal_link": opened.portal_link, "notified": opened.notified},
        status_code=201,
    )


@replays_with_fresh_link("/dossiers")
def _recipient_link(request: Request, answer: dict[str, Any]) -> str | None:
    account_id = staff_principal(request).require_account()
    return dossier_service.fresh_link(account_id, str(answer["id"]), MAIN, context())


@collection.route("/dossiers", methods=["GET"], authorizer=staff_authorizer)
def list_dossiers() -> dict[str, Any]:
    account_id = _account()
    request = collection.current_request
    limit, cursor = page_params(request, frozenset({"status", "procedure_id"}))
    status = query_param(request, "status")
    if status is not None and status not in {s.value for s in DossierStatus}:
        raise InvalidInput(
            "Unknown status.", [FieldIssue("status", "must be one of: in_progress, completed, archived")]
        )
    found, position = container().dossiers.list_dossiers(
        account_id, status, query_param(request, "procedure_id"), limit, cursor
    )
    return page([dossier_view(d) for d in found], position)


@collection.route("/dossiers/{dossier_id}", methods=["GET"], authorizer=staff_authorizer)
def get_dossier(dossier_id: str) -> dict[str, Any]:
    return dossier_view(dossier_service.get_dossier(_account(), dossier_id, context()))


@collection.route("/dossiers/{dossier_id}/contributors", methods=["POST"], authorizer=staff_authorizer)
def invite_contributor(dossier_id: str) -> Response:
    account_id = _account()
    body = parse_body(collection.current_request, ContributorBody)
    invited = dossier_service.invite_contributor(
        account_id, dossier_id, body.role_id, body.name, body.email, body.notify, context(), _actor()
    )
    answer = {
        **contributor_view(invited.contributor),
        "notified": invited.notified,
        "portal_link": invited.portal_link,
    }
    return Response(answer, status_code=201)


@replays_with_fresh_link("/dossiers/{dossier_id}/contributors")
def _contributor_link(request: Request, answer: dict[str, Any]) -> str | None:
    account_id = staff_principal(request).require_account()
    dossier_id = str((request.uri_params or {})["dossier_id"])
    return dossier_service.fresh_link(account_id, dossier_id, str(answer["id"]), context())


@collection.route(
    "/dossiers/{dossier_id}/contributors/{contributor_id}", methods=["DELETE"], authorizer=staff_authorizer
)
def remove_contributor(dossier_id: str, contributor_id: str) -> Response:
    dossier_service.remove_contributor(_account(), dossier_id, contributor_id, context())
    return Response(body="", status_code=204)


@collection.route(
    "/dossiers/{dossier_id}/contributors/{contributor_id}/invitation",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def resend_invitation(dossier_id: str, contributor_id: str) -> Response:
    dossier_service.resend_invitation(_account(), dossier_id, contributor_id, context())
    return Response({"resent": True}, status_code=202)


@collection.route("/dossiers/{dossier_id}/archive", methods=["POST"], authorizer=staff_authorizer)
def archive_dossier(dossier_id: str) -> dict[str, Any]:
    return dossier_view(dossier_service.archive_dossier(_account(), dossier_id, context()))


@collection.route(
    "/dossiers/{dossier_id}/documents/{document_id}/review", methods=["POST"], authorizer=staff_authorizer
)
def review_document(dossier_id: str, document_id: str) -> dict[str, Any]:
    account_id = _account()
    body = parse_body(collection.current_request, ReviewBody)
    dossier, document = dossier_service.review_document(
        account_id,
        dossier_id,
        document_id,
        body.decision == "approve",
        body.comment,
        context(),
        _actor(),
    )
    return {**document_view(dossier, document), "dossier_status": dossier.status.value}
