"""Mailings (publipostage by email): create a draft, preview it for one entity, send it once, follow its
counts. The fan-out itself runs in `bulk_worker` (chalicelib/services/mailings.py)."""

from __future__ import annotations

from typing import Annotated, Any

from chalice.app import Response
from pydantic import Field, StrictInt, StrictStr

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
from chalicelib.api.partners import recipients_view
from chalicelib.api.requests import PatchBody, StrictBody, parse_body, staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import TemplateSource
from chalicelib.domain.mailings import Audience, AudienceEntity, Mailing
from chalicelib.services import mailings as service
from chalicelib.wiring import container

mailings = ApiBlueprint(__name__)

RecordId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
NamedId = Annotated[StrictStr, Field(min_length=1, max_length=26)]
"""A record named in `ids`: the ids of this API are 26-character ULIDs, and the bound keeps 10,000 of them
inside the mailing's one DynamoDB item (400 KB) with its template."""


class FiltersBody(StrictBody):
    communication_rule: StrictStr | None = None
    apporteur_id: RecordId | None = None
    product_id: RecordId | None = None
    status: StrictStr | None = None
    ids: Annotated[list[NamedId], Field(min_length=1)] | None = None


class AudienceBody(StrictBody):
    entity: AudienceEntity
    filters: FiltersBody = FiltersBody()


class MailingBody(StrictBody):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    subject: StrictStr = Field(max_length=500)
    body: StrictStr = Field(max_length=20_000)
    audience: AudienceBody


class MailingPatch(PatchBody):
    """What a draft changes, at the `version` read; `audience`, when sent, replaces the whole audience."""

    version: StrictInt
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    subject: StrictStr | None = Field(default=None, max_length=500)
    body: StrictStr | None = Field(default=None, max_length=20_000)
    audience: AudienceBody | None = None


class PreviewBody(StrictBody):
    entity_id: RecordId | None = None


def mailing_view(mailing: Mailing) -> dict[str, Any]:
    audience = mailing.audience
    filters: dict[str, Any] = {
        "communication_rule": audience.communication_rule,
        "apporteur_id": audience.apporteur_id,
        "product_id": audience.product_id,
        "status": audience.status,
        "ids": list(audience.ids) if audience.ids is not None else None,
    }
    return {
        "id": mailing.id,
        "name": mailing.name,
        "subject": mailing.template.subject,
        "body": mailing.template.body,
        "audience": {
            "entity": audience.entity.value,
            "filters": {k: v for k, v in filters.items() if v is not None},
        },
        "status": mailing.status.value,
        "total": mailing.total,
        "sent": mailing.sent,
        "failed": mailing.failed,
        "skipped": mailing.skipped,
        "incomplete": mailing.incomplete,
        "created_at": iso(mailing.created_at),
        "send_requested_at": iso(mailing.send_requested_at) if mailing.send_requested_at else None,
        "version": mailing.version,
    }


def _audience(body: AudienceBody) -> Audience:
    filters = body.filters
    return Audience(
        entity=body.entity,
        communication_rule=filters.communication_rule,
        apporteur_id=filters.apporteur_id,
        product_id=filters.product_id,
        status=filters.status,
        ids=tuple(filters.ids) if filters.ids is not None else None,
    )


def _account() -> str:
    return staff_principal(mailings.current_request).require_account()


@mailings.route("/mailings", methods=["POST"], authorizer=staff_authorizer)
def create_mailing() -> Response:
    account_id = _account()
    body = parse_body(mailings.current_request, MailingBody)
    services = container()
    mailing = service.create_mailing(
        account_id,
        body.name,
        TemplateSource(subject=body.subject, body=body.body),
        _audience(body.audience),
        services.mailings,
        services.now(),
    )
    return Response(mailing_view(mailing), status_code=201)


@mailings.route("/mailings", methods=["GET"], authorizer=staff_authorizer)
def list_mailings() -> dict[str, Any]:
    account_id = _account()
    request = mailings.current_request
    limit, cursor = page_params(request)
    found, position = service.list_mailings(account_id, limit, cursor, container().mailings)
    return page([mailing_view(m) for m in found], position)


@mailings.route("/mailings/{mailing_id}", methods=["GET"], authorizer=staff_authorizer)
def get_mailing(mailing_id: str) -> dict[str, Any]:
    return mailing_view(service.get_mailing(_account(), mailing_id, container().mailings))


@mailings.route("/mailings/{mailing_id}", methods=["PATCH"], authorizer=staff_authorizer)
def edit_mailing(mailing_id: str) -> dict[str, Any]:
    account_id = _account()
    body = parse_body(mailings.current_request, MailingPatch)
    mailing = service.edit_draft(
        account_id,
        mailing_id,
        body.name,
        body.subject,
        body.body,
        _audience(body.audience) if body.audience is not None else None,
        body.version,
        container().mailings,
    )
    return mailing_view(mailing)


@mailings.route("/mailings/{mailing_id}", methods=["DELETE"], authorizer=staff_authorizer)
def delete_mailing(mailing_id: str) -> Response:
    service.delete_draft(_account(), mailing_id, container().mailings)
    return Response(body="", status_code=204)


@mailings.route("/mailings/{mailing_id}/preview", methods=["POST"], authorizer=staff_authorizer)
def preview_mailing(mailing_id: str) -> dict[str, Any]:
    account_id = _account()
    request = mailings.current_request
    body = parse_body(request, PreviewBody) if (request.raw_body or b"").strip() else PreviewBody()
    services = container()
    preview = service.preview_mailing(
        account_id,
        mailing_id,
        body.entity_id,
        services.mailings,
        services.accounts,
        services.partners,
        services.unsubscriptions,
        services.suppressions,
        services.now(),
    )
    return {
        "to": recipients_view(preview.resolution.to),
        "cc": recipients_view(preview.resolution.cc),
        "skipped_parties": list(preview.resolution.skipped_parties),
        "subject": preview.rendered.subject,
        "text": preview.rendered.text,
        "html": preview.rendered.html,
    }


@mailings.route("/mailings/{mailing_id}/send", methods=["POST"], authorizer=staff_authorizer)
def send_mailing(mailing_id: str) -> Response:
    account_id = _account()
    services = container()
    mailing = service.send_mailing(
        account_id, mailing_id, services.mailings, services.bulk_queue, services.now()
    )
    return Response(mailing_view(mailing), status_code=202)
