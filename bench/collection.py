"""Document collection: DynamoDB calls of the portal view (the authorizer's token lookup included) and of
the staff's dossier view, each the warm call of two (see `bench.partners` for the counting). The portal view
reads three items in two calls: the link's token, then the dossier with its account (the broker the page
shows, issue 15)."""

from __future__ import annotations

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, _expect, _open_account, _quiet
from bench.environment import local_stage
from bench.figures import Figure
from bench.partners import _twice
from chalicelib import wiring
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, token


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet(), mock_aws():
        wiring.reset()
        provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        client = RelaisTestClient()
        platform = Api(client, token("platform_admin"))
        admin = platform.as_(token("admin", _open_account(platform, "platinum")))
        pid = _expect(admin.post("/procedures", {"name": "Location"}), 201)["id"]
        role = _expect(admin.post(f"/procedures/{pid}/roles", {"name": "Garant"}), 201)["id"]
        for label in ("Pièce d'identité", "Bulletins de salaire", "Avis d'imposition"):
            _expect(admin.post(f"/procedures/{pid}/documents", {"label": label, "role_id": role}), 201)
        dossier = _expect(
            admin.post("/dossiers", {"procedure_id": pid, "recipient": {"name": "L", "email": "l@e.fr"}}), 201
        )
        invited = _expect(
            admin.post(
                f"/dossiers/{dossier['id']}/contributors", {"role_id": role, "name": "P", "email": "p@e.fr"}
            ),
            201,
        )
        portal = Api(client, invited["portal_link"].split("#token=")[1])
        portal_calls = _twice(lambda: _expect(portal.get("/portal"), 200))
        dossier_calls = _twice(lambda: _expect(admin.get(f"/dossiers/{dossier['id']}"), 200))
        wiring.reset()
    return [
        Figure(
            name="portal_view_dynamodb_calls",
            value=portal_calls,
            target=2,
            better="lower",
            unit="calls",
            issue=5,
            detail="the token, then the dossier with the account (the broker the page shows since issue 15)",
        ),
        Figure(
            name="dossier_view_dynamodb_calls",
            value=dossier_calls,
            target=1,
            better="lower",
            unit="calls",
            issue=5,
        ),
    ]
