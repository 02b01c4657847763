"""Activity logs of dossiers and contracts, for staff (admin and manager): a page of `{id, type, at, actor,
data}`, oldest first (API.md "Webhooks and the activity log")."""

from __future__ import annotations

from typing import Any

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
from chalicelib.api.requests import staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.services import activity as service
from chalicelib.wiring import container

activity = ApiBlueprint(__name__)


def _account() -> str:
    return staff_principal(activity.current_request).require_account()


@activity.route("/dossiers/{dossier_id}/activity", methods=["GET"], authorizer=staff_authorizer)
def dossier_activity(dossier_id: str) -> dict[str, Any]:
    account_id = _account()
    limit, cursor = page_params(activity.current_request)
    services = container()
    events, position = service.dossier_activity(
        account_id, dossier_id, limit, cursor, services.dossiers, services.activity
    )
    return page([e.activity() for e in events], position)


@activity.route("/contracts/{contract_id}/activity", methods=["GET"], authorizer=staff_authorizer)
def contract_activity(contract_id: str) -> dict[str, Any]:
    account_id = _account()
    limit, cursor = page_params(activity.current_request)
    services = container()
    events, position = service.contract_activity(
        account_id, contract_id, limit, cursor, services.partners, services.activity
    )
    return page([e.activity() for e in events], position)
