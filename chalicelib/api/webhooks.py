"""Webhook endpoints, for account administrators (a manager gets 403): create, list, read, change, delete,
rotate the secret, send a test event, list deliveries and retry one. A secret is shown twice in its life:
when the endpoint is created and when it is rotated (API.md "Webhooks and the activity log")."""

from __future__ import annotations

from typing import Annotated, Any

from chalice.app import Response
from pydantic import Field, StrictBool, StrictStr

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
from chalicelib.api.requests import PatchBody, StrictBody, parse_body, sent_fields, staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.webhooks import MAX_DESCRIPTION, Delivery, Endpoint
from chalicelib.services import webhooks as service
from chalicelib.wiring import container

webhooks = ApiBlueprint(__name__)

EventTypes = Annotated[list[Annotated[StrictStr, Field(max_length=64)]], Field(min_length=1, max_length=30)]


class EndpointBody(StrictBody):
    url: StrictStr = Field(min_length=1, max_length=2048)
    events: EventTypes
    description: StrictStr = Field(default="", max_length=MAX_DESCRIPTION)


class EndpointPatch(PatchBody):
    url: StrictStr | None = Field(default=None, min_length=1, max_length=2048)
    events: EventTypes | None = None
    enabled: StrictBool | None = None
    description: StrictStr | None = Field(default=None, max_length=MAX_DESCRIPTION)


def endpoint_view(endpoint: Endpoint, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason.value if endpoint.disabled_reason else None,
        "failing_since": iso(endpoint.failing_since) if endpoint.failing_since else None,
        "created_at": iso(endpoint.created_at),
    }
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "type": delivery.type,
        "attempt": delivery.attempt,
        "status": delivery.status.value,
        "response_status": delivery.response_status,
        "duration_ms": delivery.duration_ms,
        "attempted_at": iso(delivery.attempted_at) if delivery.attempted_at else None,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.next_attempt_at else None,
        "error": delivery.last_error,
    }


def _admin() -> str:
    return staff_principal(webhooks.current_request).require_account(admin_only=True)


@webhooks.route("/webhooks", methods=["POST"], authorizer=staff_authorizer)
def create_webhook() -> Response:
    account_id = _admin()
    body = parse_body(webhooks.current_request, EndpointBody)
    services = container()
    endpoint = service.create_endpoint(
        account_id,
        body.url,
        body.events,
        body.description,
        services.webhooks,
        services.webhook_url_check,
        services.now(),
    )
    return Response(endpoint_view(endpoint, with_secret=True), status_code=201)


@webhooks.route("/webhooks", methods=["GET"], authorizer=staff_authorizer)
def list_webhooks() -> dict[str, Any]:
    account_id = _admin()
    limit, cursor = page_params(webhooks.current_request)
    found, position = service.list_endpoints(account_id, container().webhooks, limit, cursor)
    return page([endpoint_view(e) for e in found], position)


@webhooks.route("/webhooks/{webhook_id}", methods=["GET"], authorizer=staff_authorizer)
def get_webhook(webhook_id: str) -> dict[str, Any]:
    return endpoint_view(service.get_endpoint(_admin(), webhook_id, container().webhooks))


@webhooks.route("/webhooks/{webhook_id}", methods=["PATCH"], authorizer=staff_authorizer)
def change_webhook(webhook_id: str) -> dict[str, Any]:
    account_id = _admin()
    body = parse_body(webhooks.current_request, EndpointPatch)
    services = container()
    endpoint = service.change_endpoint(
        account_id, webhook_id, sent_fields(body), services.webhooks, services.webhook_url_check
    )
    return endpoint_view(endpoint)


@webhooks.route("/webhooks/{webhook_id}", methods=["DELETE"], authorizer=staff_authorizer)
def delete_webhook(webhook_id: str) -> Response:
    service.delete_endpoint(_admin(), webhook_id, container().webhooks)
    return Response(body="", status_code=204)


@webhooks.route("/webhooks/{webhook_id}/secret", methods=["POST"], authorizer=staff_authorizer)
def rotate_webhook_secret(webhook_id: str) -> dict[str, Any]:
    services = container()
    endpoint = service.rotate_secret(_admin(), webhook_id, services.webhooks, services.now())
    return endpoint_view(endpoint, with_secret=True)


@webhooks.route("/webhooks/{webhook_id}/test", methods=["POST"], authorizer=staff_authorizer)
def test_webhook(webhook_id: str) -> Response:
    services = container()
    event, delivery_id = service.send_test(
        _admin(), webhook_id, services.webhooks, services.webhooks_queue, services.now()
    )
    return Response({"event_id": event.id, "delivery_id": delivery_id}, status_code=202)


@webhooks.route("/webhooks/{webhook_id}/deliveries", methods=["GET"], authorizer=staff_authorizer)
def list_deliveries(webhook_id: str) -> dict[str, Any]:
    account_id = _admin()
    limit, cursor = page_params(webhooks.current_request)
    found, position = service.list_deliveries(account_id, webhook_id, container().webhooks, limit, cursor)
    return page([delivery_view(d) for d in found], position)


@webhooks.route(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", methods=["POST"], authorizer=staff_authorizer
)
def retry_delivery(webhook_id: str, delivery_id: str) -> Response:
    services = container()
    delivery = service.retry_delivery(
        _admin(), webhook_id, delivery_id, services.webhooks, services.webhooks_queue
    )
    return Response(delivery_view(delivery), status_code=202)
