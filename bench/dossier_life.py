"""A dossier's whole life, counted: every AWS call from its creation to its last document approved, the
workers' included, so that docs/operations.md prices a dossier from a measured count, not a hand count.

The life: a procedure with a main role (one document) and a guarantor role (two), a dossier created with
its invitation email, a guarantor invited by email, each participant opening the portal once and uploading
each of his documents once (start, the browser's POST to S3, complete: the first bytes checked), the staff
reading the dossier and approving each document, and every queue drained as Lambda would drain it (the
emails, SES's Send events, the webhooks' fan-out). Setting up the account and the procedure is not counted.
The browser's own POST to S3 is not Relais's call and is left out; the queues' receives and deletes are
Lambda's event source mapping's, billed as SQS requests, and are counted apart in the detail.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, COUNTER, Call, _calls, _expect, _open_account, _quiet
from bench.environment import local_stage
from bench.figures import Figure
from chalicelib import wiring
from chalicelib.local.provision import provision
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, token

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EVENT_SOURCE = {"ReceiveMessage", "DeleteMessageBatch", "DeleteMessage", "GetQueueUrl"}
"""What Lambda's event source mapping calls on a queue for the function (the local pumps stand in)."""


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet(), mock_aws():
        wiring.reset()
        provision(wiring.container().client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        calls = _life(RelaisTestClient())
        wiring.reset()
    app = Counter({call: n for call, n in calls.items() if call[1] not in EVENT_SOURCE})
    event_source = Counter({call: n for call, n in calls.items() if call[1] in EVENT_SOURCE})
    return [
        Figure(
            name="dossier_life_aws_calls",
            value=sum(app.values()),
            target=None,
            better="lower",
            unit="calls",
            issue=17,
            detail=f"{_calls(app)}; Lambda's queue polling: {_calls(event_source)}",
        ),
        Figure(
            name="dossier_life_dynamodb_calls",
            value=sum(n for (service, _), n in app.items() if service == "dynamodb"),
            target=None,
            better="lower",
            unit="calls",
            issue=17,
            detail="3 documents, 2 participants invited by email, each document uploaded once and approved",
        ),
    ]


def _life(client: RelaisTestClient) -> Counter[Call]:
    platform = Api(client, token("platform_admin"))
    admin = platform.as_(token("admin", _open_account(platform, "platinum")))
    procedure = _expect(admin.post("/procedures", {"name": "Location"}), 201)["id"]
    guarantor = _expect(admin.post(f"/procedures/{procedure}/roles", {"name": "Garant"}), 201)["id"]
    _expect(admin.post(f"/procedures/{procedure}/documents", {"label": "Pièce d'identité"}), 201)
    for label in ("Bulletins de salaire", "Avis d'imposition"):
        body = {"label": label, "role_id": guarantor}
        _expect(admin.post(f"/procedures/{procedure}/documents", body), 201)
    drain()
    COUNTER.take()
    recipient = {"name": "Léa Locataire", "email": "lea@exemple.fr"}
    dossier = _expect(
        admin.post("/dossiers", {"procedure_id": procedure, "recipient": recipient, "notify": True}), 201
    )
    invited = _expect(
        admin.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": guarantor, "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True},
        ),
        201,
    )
    drain()
    for link in (dossier["portal_link"], invited["portal_link"]):
        _upload_each(Api(client, link.split("#token=")[1]))
    drain()
    documents = _expect(admin.get(f"/dossiers/{dossier['id']}"), 200)["documents"]
    for document in documents:
        review = f"/dossiers/{dossier['id']}/documents/{document['id']}/review"
        _expect(admin.post(review, {"decision": "approve"}), 200)
    drain()
    return COUNTER.take()


def _upload_each(portal: Api) -> None:
    """The participant opens the portal and sends each of his documents once."""
    page: dict[str, Any] = _expect(portal.get("/portal"), 200)
    for document in page["documents"]:
        if not document["mine"]:
            continue
        path = f"/portal/documents/{document['id']}/uploads"
        body = {"filename": "piece.pdf", "content_type": "application/pdf", "size": len(PDF)}
        started = _expect(portal.post(path, body), 201)
        with COUNTER.ignoring():
            _browser_posts(started["fields"]["key"])
        _expect(portal.post(f"{path}/{started['upload_id']}/complete"), 200)


def _browser_posts(key: str) -> None:
    """The participant's browser posting the file to the presigned form: S3's call, not Relais's."""
    container = wiring.container()
    container.client("s3").put_object(
        Bucket=container.settings.documents_bucket, Key=key, Body=PDF, ContentType="application/pdf"
    )
