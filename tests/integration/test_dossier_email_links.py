"""The portal link a dossier email carries (issue 17): derived from the email, stored hashed by the change
that writes the email, computed again by the worker, which writes no token; revoked with its
participant's other links; and an erased dossier's queued email is skipped by the erasure itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.dynamodb.models import PortalTokenItem
from chalicelib.config import Queue, queue_name
from chalicelib.domain.communications import DOSSIER_ERASED, CommunicationStatus
from chalicelib.domain.errors import StaleVersion
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from chalicelib.services.communications import DeliveryRequest
from chalicelib.services.identity import hash_portal_secret
from chalicelib.services.ports import StoredLink
from chalicelib.wiring import Container
from tests.support import Api, RelaisTestClient, open_account, sqs_event, token


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


def _dossier_with_invited_garant(platform: Api) -> tuple[Api, str, str, str]:
    """An admin, a dossier whose garant was just invited by email (queued, not sent yet): the admin's
    Api, the account's, the dossier's and the garant's ids."""
    _, account_id = open_account(platform, plan="platinum")
    drain()
    admin = platform.as_(token("admin", account_id))
    pid = _ok(admin.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}))["id"]
    garant_role = _ok(admin.post(f"/procedures/{pid}/roles", {"name": "Garant"}))["id"]
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    dossier_id = _ok(admin.post("/dossiers", {"procedure_id": pid, "recipient": recipient}))["id"]
    invited = {"role_id": garant_role, "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True}
    garant_id = _ok(admin.post(f"/dossiers/{dossier_id}/contributors", invited))["id"]
    return admin, account_id, dossier_id, garant_id


def _invitation() -> dict[str, Any]:
    [invitation] = [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"]
    return invitation


def _secret_of(email: dict[str, Any]) -> str:
    return str(email["text"].split("#token=")[1].split()[0])


def _token_items_of(aws: Container, dossier_id: str) -> list[dict[str, Any]]:
    """The portal-token items naming the dossier (a Scan: a test may look at the whole table)."""
    found = aws.client("dynamodb").scan(
        TableName=aws.settings.table_name,
        FilterExpression="begins_with(PK, :token) AND dossier_id = :dossier",
        ExpressionAttributeValues={":token": {"S": "PORTALTOKEN#"}, ":dossier": {"S": dossier_id}},
    )
    return list(found["Items"])


def _whole_table(aws: Container) -> str:
    return json.dumps(aws.client("dynamodb").scan(TableName=aws.settings.table_name)["Items"])


def _deliver_again(client: RelaisTestClient, account_id: str, communication_id: str) -> None:
    """The same delivery message once more, as SQS may hand it over (at-least-once)."""
    body = json.dumps(DeliveryRequest(account_id, communication_id).to_message())
    answer = client.lambda_.invoke(
        "communications_worker", sqs_event(queue_name(Queue.COMMUNICATIONS), [body])
    )
    assert answer.payload == {"batchItemFailures": []}


def test_the_link_of_an_invitation_opens_the_portal_for_the_garant_and_its_sending_writes_no_token(
    platform: Api, anonymous: Api, aws: Container, client: RelaisTestClient
) -> None:
    _, account_id, dossier_id, _ = _dossier_with_invited_garant(platform)
    stored_before_sending = _token_items_of(aws, dossier_id)
    drain()
    invitation = _invitation()
    secret = _secret_of(invitation)
    portal = anonymous.as_(secret).get("/portal")
    assert portal.status == 200, portal.body
    assert (portal.body["me"]["name"], portal.body["me"]["role_name"]) == ("Paul Garant", "Garant")
    assert _token_items_of(aws, dossier_id) == stored_before_sending
    assert f"PORTALTOKEN#{hash_portal_secret(secret)}" in {i["PK"]["S"] for i in stored_before_sending}
    assert secret not in _whole_table(aws)

    _deliver_again(client, account_id, invitation["communication_id"])
    assert len([m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"]) == 1
    assert _token_items_of(aws, dossier_id) == stored_before_sending
    again = aws.portal_links.link_for(account_id, invitation["communication_id"])
    assert again.endswith(f"#token={secret}"), "a retried send would carry the very same link"


def test_a_re_sent_invitation_revokes_the_link_the_first_email_carried(
    platform: Api, anonymous: Api, aws: Container
) -> None:
    admin, _, dossier_id, garant_id = _dossier_with_invited_garant(platform)
    drain()
    first = _secret_of(_invitation())
    assert anonymous.as_(first).get("/portal").status == 200
    _ok(admin.post(f"/dossiers/{dossier_id}/contributors/{garant_id}/invitation"), 202)
    assert anonymous.as_(first).get("/portal").status == 401
    assert PortalTokenItem.get(f"PORTALTOKEN#{hash_portal_secret(first)}", "PORTALTOKEN").revoked
    drain()
    resent = _secret_of([m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"][-1])
    assert anonymous.as_(resent).get("/portal").status == 200
    assert admin.call("DELETE", f"/dossiers/{dossier_id}/contributors/{garant_id}").status == 204
    assert anonymous.as_(resent).get("/portal").status == 401
    assert PortalTokenItem.get(f"PORTALTOKEN#{hash_portal_secret(resent)}", "PORTALTOKEN").revoked


def test_an_erased_dossiers_queued_invitation_is_skipped_by_the_erasure_and_never_sent(
    platform: Api, aws: Container, client: RelaisTestClient
) -> None:
    admin, account_id, dossier_id, _ = _dossier_with_invited_garant(platform)
    [queued] = [
        i["communication_id"]["S"]
        for i in aws.client("dynamodb").scan(TableName=aws.settings.table_name)["Items"]
        if i.get("kind", {}).get("S") == "contributor_invited"
    ]
    assert admin.call("DELETE", f"/dossiers/{dossier_id}").status == 204

    erased = aws.communications.get(account_id, queued)
    assert erased is not None
    assert (erased.status, erased.status_reason) == (CommunicationStatus.SKIPPED, DOSSIER_ERASED)
    assert (erased.to, erased.variables, erased.template) == ((), {}, None)
    [skipped] = [
        item
        for item in aws.client("dynamodb").scan(TableName=aws.settings.table_name)["Items"]
        if item.get("type", {}).get("S") == "communication.skipped"
    ]
    assert skipped["PK"]["S"].startswith(f"ACCOUNT#{account_id}#EVENTS#"), (
        "the account's log: the dossier's is gone"
    )
    data = json.loads(skipped["data"]["S"])
    assert (data["communication_id"], data["reason"]) == (queued, DOSSIER_ERASED)
    assert "Paul" not in json.dumps(skipped)

    drain()
    _deliver_again(client, account_id, queued)
    assert [m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"] == []
    after = aws.communications.get(account_id, queued)
    assert after is not None
    assert after.status is CommunicationStatus.SKIPPED


def _dossier_with_a_deadline(platform: Api) -> tuple[Api, str, str, str]:
    """A dossier due 2027-03-10 whose garant (invited without email) misses a document, and a
    `deadline_approaching` automation three days before: the admin, the account, dossier and garant ids."""
    _, account_id = open_account(platform, plan="platinum")
    drain()
    admin = platform.as_(token("admin", account_id))
    pid = _ok(admin.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}))["id"]
    garant_role = _ok(admin.post(f"/procedures/{pid}/roles", {"name": "Garant"}))["id"]
    _ok(admin.post(f"/procedures/{pid}/documents", {"label": "Avis d'imposition", "role_id": garant_role}))
    reminder = {
        "trigger": "deadline_approaching",
        "to": "all_roles",
        "days_before": 3,
        "subject": "Plus que 3 jours",
        "body": "{{ contributor.name }}, il manque des pièces : {{ dossier.portal_link }}",
    }
    _ok(admin.post(f"/procedures/{pid}/automations", reminder))
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    opened = {"procedure_id": pid, "recipient": recipient, "due_date": "2027-03-10"}
    dossier_id = _ok(admin.post("/dossiers", opened))["id"]
    invited = {"role_id": garant_role, "name": "Paul Garant", "email": "paul@exemple.fr"}
    garant_id = _ok(admin.post(f"/dossiers/{dossier_id}/contributors", invited))["id"]
    return admin, account_id, dossier_id, garant_id


def test_a_deadline_reminders_link_is_stored_when_it_fires_and_dies_with_its_removed_contributor(
    platform: Api, anonymous: Api, aws: Container
) -> None:
    admin, _, dossier_id, garant_id = _dossier_with_a_deadline(platform)
    assert admin.post("/_local/tick", {"time": "2027-03-07T08:00:00Z"}).status == 200
    drain()
    [reminder] = [
        m
        for m in sent_messages(REGION)
        if m["kind"] == "deadline_approaching" and m["to"] == ["paul@exemple.fr"]
    ]
    secret = _secret_of(reminder)
    assert anonymous.as_(secret).get("/portal").status == 200
    assert secret not in _whole_table(aws)
    assert admin.call("DELETE", f"/dossiers/{dossier_id}/contributors/{garant_id}").status == 204
    assert anonymous.as_(secret).get("/portal").status == 401
    assert PortalTokenItem.get(f"PORTALTOKEN#{hash_portal_secret(secret)}", "PORTALTOKEN").revoked


def test_a_deadline_meeting_a_changed_dossier_fires_nothing_and_stays_due_then_fires_once(
    platform: Api, aws: Container
) -> None:
    _, account_id, dossier_id, _ = _dossier_with_a_deadline(platform)
    found = aws.dossiers.get(account_id, dossier_id)
    assert found is not None
    dossier, version, tokens = found
    [automation] = dossier.procedure.automations
    principal = PortalPrincipal(account_id, dossier_id, "main", "h" * 64)
    link = StoredLink("h" * 64, principal, datetime(2027, 4, 1, tzinfo=UTC), "cm_reminder")
    live = {**tokens, "main": [*tokens.get("main", []), link.token_hash]}
    with pytest.raises(StaleVersion):
        aws.deadlines.fire(
            account_id, dossier_id, automation.id, [], links=(link,), tokens=live, version=version - 1
        )
    assert PortalTokenItem.count(f"PORTALTOKEN#{link.token_hash}") == 0
    assert aws.deadlines.fire(
        account_id, dossier_id, automation.id, [], links=(link,), tokens=live, version=version
    )
    assert aws.dossiers.get(account_id, dossier_id) == (dossier, version + 1, live)
    assert not aws.deadlines.fire(
        account_id, dossier_id, automation.id, [], links=(link,), tokens=live, version=version + 1
    )


def test_a_contributor_whose_links_expired_and_left_the_table_can_still_be_re_invited_and_removed(
    platform: Api, anonymous: Api, aws: Container
) -> None:
    admin, _, dossier_id, garant_id = _dossier_with_invited_garant(platform)
    drain()
    emailed = _secret_of(_invitation())
    # DynamoDB's TTL deletes a token's item a day after its link expired.
    PortalTokenItem(f"PORTALTOKEN#{hash_portal_secret(emailed)}", "PORTALTOKEN").delete()
    _ok(admin.post(f"/dossiers/{dossier_id}/contributors/{garant_id}/invitation"), 202)
    drain()
    resent = _secret_of([m for m in sent_messages(REGION) if m["kind"] == "contributor_invited"][-1])
    assert anonymous.as_(resent).get("/portal").status == 200
    assert admin.call("DELETE", f"/dossiers/{dossier_id}/contributors/{garant_id}").status == 204
    assert anonymous.as_(resent).get("/portal").status == 401
