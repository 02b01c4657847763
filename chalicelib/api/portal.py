"""The portal: what a main recipient or a contributor does with the link of an invitation. Every route
is behind `portal_authorizer`; a caller only ever sees its own role's documents (plus what its role's
rights add), and a document it may not see does not exist (404)."""

from __future__ import annotations

from typing import Annotated, Any

from chalice.app import Request, Response
from pydantic import Field, StrictInt, StrictStr

from chalicelib.api.accounts import logo_url
from chalicelib.api.authorizers import portal_authorizer
from chalicelib.api.collection import context, document_view, role_view
from chalicelib.api.requests import DisplayName, EmailAddress, StrictBody, parse_body, portal_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso
from chalicelib.domain.dossiers import Dossier, Visibility, files_seen_by, visible_document, visible_documents
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.domain.privacy import privacy_notice
from chalicelib.domain.procedures import MAIN
from chalicelib.services import accounts as account_service
from chalicelib.services import dossiers as service
from chalicelib.services.identity import bearer_token, hash_portal_secret
from chalicelib.wiring import container

portal = ApiBlueprint(__name__)


class UploadBody(StrictBody):
    filename: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    content_type: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    size: StrictInt


class PortalInviteBody(StrictBody):
    role_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    name: DisplayName
    email: EmailAddress


def _principal() -> PortalPrincipal:
    return portal_principal(portal.current_request)


def portal_document(dossier: Dossier, visibility: Visibility, participant_id: str) -> dict[str, Any]:
    """A document as one participant sees it: the files he sent himself, and the review's comment
    only on his own role's documents (of the others' he sees the status alone)."""
    document = visibility.document
    files = files_seen_by(dossier, document.id, participant_id) if visibility.with_files else ()
    view = document_view(dossier, document, files)
    if not visibility.mine and view["review"] is not None:
        view["review"] = None
    return {**view, "mine": visibility.mine}


def portal_documents(dossier: Dossier, principal: PortalPrincipal) -> list[dict[str, Any]]:
    return [
        portal_document(dossier, v, principal.participant_id)
        for v in visible_documents(dossier, principal.role_id)
    ]


def broker_view(account: Account, request: Request) -> dict[str, Any]:
    """The broker as its clients see it on the portal page (never "Relais")."""
    legal = account.legal
    address = None
    if legal is not None:
        address = ", ".join((*legal.address.lines, f"{legal.address.postal_code} {legal.address.city}"))
    return {
        "name": account.public_name,
        "legal_mentions": list(legal.mentions()) if legal else [],
        "contact": {
            "email": account.sender_email,
            "phone": legal.phone if legal else None,
            "address": address,
        },
        "logo_url": logo_url(request, account.id, account.logo_etag) if account.logo_etag else None,
        "brand_color": account.brand_color,
    }


def privacy_view(account: Account, dossier: Dossier, role_id: str) -> dict[str, Any]:
    notice = privacy_notice(
        account, dossier.procedure.name, None if role_id == MAIN else dossier.recipient.name
    )
    return {
        "controller": notice.controller,
        "contact_email": notice.contact_email,
        "purpose": notice.purpose,
        "retention": notice.retention,
        "retention_days": notice.retention_days,
        "rights": notice.rights,
        "dossier_of": notice.dossier_of,
    }


def portal_view(dossier: Dossier, principal: PortalPrincipal, account: Account) -> dict[str, Any]:
    name, _, role_id = dossier.participant_name(principal.participant_id)
    role = dossier.role(role_id)
    invitable = [
        role_view(r)
        for r in dossier.procedure.roles
        if role.permissions.can_invite and r.id not in (MAIN, role_id)
    ]
    return {
        "dossier": {
            "id": dossier.id,
            "reference": dossier.reference,
            "procedure_name": dossier.procedure.name,
            "due_date": dossier.due_date.isoformat() if dossier.due_date else None,
            "status": dossier.status.value,
        },
        "me": {
            "name": name,
            "role_id": role.id,
            "role_name": role.name,
            **{"permissions": role_view(role)["permissions"]},
        },
        "roles": [{"id": r["id"], "name": r["name"]} for r in invitable],
        "finished": role_id in dossier.finished_roles,
        "documents": portal_documents(dossier, principal),
        "broker": broker_view(account, portal.current_request),
        "privacy": privacy_view(account, dossier, role_id),
    }


@portal.route("/portal-link/broker", methods=["GET"])
def broker_of_dead_link() -> dict[str, Any]:
    """Whom to ask for a new link, when this one no longer opens the dossier: the broker's public name and
    contact only. The token (in the Authorization header, never in a URL) must be one a broker minted."""
    secret = bearer_token(portal.current_request.headers.get("authorization", ""))
    services = container()
    contact = account_service.broker_of_link(
        hash_portal_secret(secret), services.portal_tokens, services.accounts
    )
    return {"name": contact.name, "contact": {"email": contact.email, "phone": contact.phone}}


@portal.route("/portal", methods=["GET"], authorizer=portal_authorizer)
def show_portal() -> dict[str, Any]:
    principal = _principal()
    dossier, broker = service.portal_page(principal, context())
    return portal_view(dossier, principal, broker)


@portal.route("/portal/documents/{document_id}/uploads", methods=["POST"], authorizer=portal_authorizer)
def start_upload(document_id: str) -> Response:
    principal = _principal()
    body = parse_body(portal.current_request, UploadBody)
    started = service.start_upload(
        principal, document_id, body.filename, body.content_type, body.size, container().documents, context()
    )
    answer = {
        "upload_id": started.upload.id,
        "url": started.url,
        "fields": started.fields,
        "expires_at": iso(started.expires_at),
    }
    return Response(answer, status_code=201)


@portal.route(
    "/portal/documents/{document_id}/uploads/{upload_id}/complete",
    methods=["POST"],
    authorizer=portal_authorizer,
)
def complete_upload(document_id: str, upload_id: str) -> dict[str, Any]:
    principal = _principal()
    dossier, _, upload = service.complete_upload(
        principal.account_id,
        principal.dossier_id,
        document_id,
        upload_id,
        container().documents,
        context(),
        principal,
    )
    if upload.reason:
        raise InvalidInput(
            "The file does not match its declared type: save it in an accepted format, then upload it again.",
            [FieldIssue("file", upload.reason)],
        )
    visibility = visible_document(dossier, principal.role_id, document_id)
    return portal_document(dossier, visibility, principal.participant_id)


@portal.route(
    "/portal/documents/{document_id}/files/{file_id}", methods=["GET"], authorizer=portal_authorizer
)
def download(document_id: str, file_id: str) -> Response:
    url = service.download_url(_principal(), document_id, file_id, container().documents, context())
    headers: Any = portal.current_request.headers or {}
    accept = str(headers.get("accept", ""))
    if "application/json" in accept:
        # The portal page cannot follow a redirect with its bearer token; it asks for the URL instead.
        return Response({"url": url}, status_code=200, headers={"Cache-Control": "no-store"})
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@portal.route("/portal/contributors", methods=["POST"], authorizer=portal_authorizer)
def invite() -> Response:
    principal = _principal()
    body = parse_body(portal.current_request, PortalInviteBody)
    invited = service.portal_invite(principal, body.role_id, body.name, body.email, context())
    contributor = invited.contributor
    answer = {
        "id": contributor.id,
        "role_id": contributor.role_id,
        "name": contributor.name,
        "email": contributor.email,
        "invited_at": iso(contributor.invited_at),
        "notified": invited.notified,
    }
    return Response(answer, status_code=201)


@portal.route("/portal/finish", methods=["POST"], authorizer=portal_authorizer)
def finish() -> dict[str, Any]:
    principal = _principal()
    ctx = context()
    dossier = service.finish(principal, ctx)
    return portal_view(dossier, principal, service.portal_broker(principal, ctx))
