"""Privacy (RGPD), for account administrators: the suppression list and the unsubscriptions, seen page by
page and undone one entry at a time; erasures; and the account's audit trail, where each of these changes
(and each change of the account's settings, legal identity and logo) is recorded."""

from __future__ import annotations

from typing import Any

from chalice.app import Response

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
from chalicelib.api.requests import api_url_of, staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.events import Actor, staff
from chalicelib.services import dossiers
from chalicelib.services import privacy as service
from chalicelib.wiring import container

privacy = ApiBlueprint(__name__)


def _admin() -> tuple[str, Actor]:
    principal = staff_principal(privacy.current_request)
    return principal.require_account(admin_only=True), staff(principal.subject)


@privacy.route("/account/suppressions", methods=["GET"], authorizer=staff_authorizer)
def list_suppressions() -> dict[str, Any]:
    account_id, _ = _admin()
    limit, cursor = page_params(privacy.current_request)
    entries, position = service.list_suppressions(account_id, container().suppressions, limit, cursor)
    items = [
        {
            "address_hash": e.address_hash,
            "reason": e.reason,
            "communication_id": e.communication_id,
            "suppressed_at": iso(e.suppressed_at),
        }
        for e in entries
    ]
    return page(items, position)


@privacy.route("/account/suppressions/{address_hash}", methods=["DELETE"], authorizer=staff_authorizer)
def lift_suppression(address_hash: str) -> Response:
    account_id, subject = _admin()
    services = container()
    service.lift_suppression(account_id, address_hash, services.suppressions, subject, services.now())
    return Response(body="", status_code=204)


@privacy.route("/account/unsubscriptions", methods=["GET"], authorizer=staff_authorizer)
def list_unsubscriptions() -> dict[str, Any]:
    account_id, _ = _admin()
    limit, cursor = page_params(privacy.current_request)
    entries, position = service.list_unsubscriptions(account_id, container().unsubscriptions, limit, cursor)
    items = [
        {
            "id": e.id,
            "party": e.party,
            "party_id": e.party_id,
            "unsubscribed_at": iso(e.unsubscribed_at),
        }
        for e in entries
    ]
    return page(items, position)


@privacy.route(
    "/account/unsubscriptions/{unsubscription_id}", methods=["DELETE"], authorizer=staff_authorizer
)
def undo_unsubscription(unsubscription_id: str) -> Response:
    account_id, subject = _admin()
    services = container()
    service.undo_unsubscription(
        account_id, unsubscription_id, services.unsubscriptions, subject, services.now()
    )
    return Response(body="", status_code=204)


@privacy.route("/dossiers/{dossier_id}", methods=["DELETE"], authorizer=staff_authorizer)
def erase_dossier(dossier_id: str) -> Response:
    account_id, subject = _admin()
    services = container()
    # The context carries the portal page's address, which a deployed API handler knows from the request
    # unless PublicBaseUrl gives it RELAIS_API_URL.
    api_url = services.settings.api_url or api_url_of(privacy.current_request)
    dossiers.erase_dossier(
        account_id, dossier_id, services.documents, services.dossier_context(api_url), subject
    )
    return Response(body="", status_code=204)


@privacy.route("/clients/{client_id}", methods=["DELETE"], authorizer=staff_authorizer)
def erase_client(client_id: str) -> Response:
    account_id, subject = _admin()
    services = container()
    service.erase_client(
        account_id,
        client_id,
        services.partners,
        services.communications,
        subject,
        services.now(),
        services.contract_event_eraser,
    )
    return Response(body="", status_code=204)


@privacy.route("/account/activity", methods=["GET"], authorizer=staff_authorizer)
def account_activity() -> dict[str, Any]:
    account_id, _ = _admin()
    limit, cursor = page_params(privacy.current_request)
    entries, position = service.account_activity(account_id, container().audit_trail, limit, cursor)
    return page([entry.as_json() for entry in entries], position)
