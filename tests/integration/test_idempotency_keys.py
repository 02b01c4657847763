"""`Idempotency-Key` on POSTs: a retried creating request answers the first result, creates nothing twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, token

NEW_ACCOUNT = {"name": "Cabinet Léa Martin", "plan": "essential", "sender_email": "contact@martin.fr"}


def _accounts_of(aws: Any) -> list[dict[str, Any]]:
    """Every account item of the table (a Scan is fine in a test, never in the app)."""
    table = aws.client("dynamodb")
    items = table.scan(TableName=aws.settings.table_name)["Items"]
    return [item for item in items if item["SK"]["S"] == "ACCOUNT"]


def test_a_retried_creation_with_the_same_key_answers_the_first_account_and_sends_one_welcome(
    platform: Api, aws: Any
) -> None:
    first = platform.post("/admin/accounts", NEW_ACCOUNT, headers={"Idempotency-Key": "create-martin-1"})
    again = platform.post("/admin/accounts", NEW_ACCOUNT, headers={"Idempotency-Key": "create-martin-1"})
    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(_accounts_of(aws)) == 1
    drain()
    assert [m["kind"] for m in sent_messages(REGION)] == ["account_welcome"]


def test_without_a_key_two_identical_posts_create_two_accounts(platform: Api, aws: Any) -> None:
    assert platform.post("/admin/accounts", NEW_ACCOUNT).status == 201
    assert platform.post("/admin/accounts", NEW_ACCOUNT).status == 201
    assert len(_accounts_of(aws)) == 2


def test_the_same_key_with_another_body_is_a_conflict_and_creates_nothing(platform: Api, aws: Any) -> None:
    assert platform.post("/admin/accounts", NEW_ACCOUNT, headers={"Idempotency-Key": "k-1"}).status == 201
    other = platform.post(
        "/admin/accounts", {**NEW_ACCOUNT, "name": "Autre cabinet"}, headers={"Idempotency-Key": "k-1"}
    )
    assert other.status == 409
    assert other.body["error"]["code"] == "conflict"
    assert len(_accounts_of(aws)) == 1


def test_a_refused_request_is_not_remembered_so_the_corrected_one_goes_through(
    platform: Api, aws: Any
) -> None:
    refused = platform.post(
        "/admin/accounts", {**NEW_ACCOUNT, "plan": "gold"}, headers={"Idempotency-Key": "k-2"}
    )
    assert refused.status == 400
    corrected = platform.post("/admin/accounts", NEW_ACCOUNT, headers={"Idempotency-Key": "k-2"})
    assert corrected.status == 201
    assert len(_accounts_of(aws)) == 1


def test_keys_are_scoped_to_the_caller_so_two_accounts_may_use_the_same_one(platform: Api, aws: Any) -> None:
    ids = [platform.post("/admin/accounts", NEW_ACCOUNT).body["id"] for _ in range(2)]
    answers = [
        platform.as_(token("admin", account_id)).post(
            "/account/trials", {"feature": "contributors"}, headers={"Idempotency-Key": "start-trial"}
        )
        for account_id in ids
    ]
    assert [a.status for a in answers] == [201, 201]
    assert all("Idempotent-Replayed" not in a.headers for a in answers)


@pytest.mark.parametrize("key", ["", "a" * 256, "clé-accentuée", "with space"])
def test_a_malformed_key_is_refused_before_anything_is_done(platform: Api, aws: Any, key: str) -> None:
    answer = platform.post("/admin/accounts", NEW_ACCOUNT, headers={"Idempotency-Key": key})
    assert answer.status == 400
    assert answer.body["error"]["details"][0]["field"] == "Idempotency-Key"
    assert _accounts_of(aws) == []


def test_idempotency_records_are_spread_over_sharded_partitions(platform: Api, aws: Any) -> None:
    for n in range(12):
        body = {**NEW_ACCOUNT, "name": f"Cabinet {n}"}
        assert platform.post("/admin/accounts", body, headers={"Idempotency-Key": f"k-{n}"}).status == 201
    drain()
    items = aws.client("dynamodb").scan(TableName=aws.settings.table_name)["Items"]
    partitions = {item["PK"]["S"] for item in items if item["PK"]["S"].startswith("IDEMPOTENCY#")}
    requests = {p for p in partitions if p.startswith("IDEMPOTENCY#requests#")}
    assert len(requests) > 1
    assert partitions == requests
    # Deliveries are claimed on the communications themselves, spread over 16 partitions per account.
    welcomes = {item["PK"]["S"] for item in items if item["SK"]["S"].startswith("COMM#")}
    assert len(welcomes) > 1


def _everything_stored(aws: Any) -> str:
    table = aws.client("dynamodb")
    return json.dumps(table.scan(TableName=aws.settings.table_name)["Items"])


def test_a_replayed_dossier_or_invitation_carries_a_fresh_link_and_no_secret_is_ever_stored(
    platform: Api, anonymous: Api, aws: Any
) -> None:
    account = platform.post("/admin/accounts", {**NEW_ACCOUNT, "plan": "platinum"}).body
    staff = platform.as_(token("manager", account["id"]))
    procedure = staff.post("/procedures", {"name": "Location"}).body
    role = staff.post(f"/procedures/{procedure['id']}/roles", {"name": "Garant"}).body
    body = {"procedure_id": procedure["id"], "recipient": {"name": "Léa", "email": "lea@exemple.fr"}}
    first = staff.post("/dossiers", body, headers={"Idempotency-Key": "dossier-1"})
    again = staff.post("/dossiers", body, headers={"Idempotency-Key": "dossier-1"})
    assert (first.status, again.status, again.headers.get("Idempotent-Replayed")) == (201, 201, "true")
    assert again.body["id"] == first.body["id"]
    did = first.body["id"]
    invitation = {"role_id": role["id"], "name": "Paul", "email": "paul@exemple.fr"}
    invited = staff.post(f"/dossiers/{did}/contributors", invitation, headers={"Idempotency-Key": "inv-1"})
    reinvited = staff.post(f"/dossiers/{did}/contributors", invitation, headers={"Idempotency-Key": "inv-1"})
    assert (invited.status, reinvited.status) == (201, 201)
    assert reinvited.body["id"] == invited.body["id"]
    links = [a.body["portal_link"] for a in (first, again, invited, reinvited)]
    assert len(set(links)) == 4
    stored = _everything_stored(aws)
    assert "#token=" not in stored
    for link in links:
        secret = link.split("#token=")[1]
        assert secret not in stored
        assert anonymous.as_(secret).get("/portal").status == 200
    # A participant who left in between gets no link on the replay.
    assert staff.call("DELETE", f"/dossiers/{did}/contributors/{invited.body['id']}").status == 204
    late = staff.post(f"/dossiers/{did}/contributors", invitation, headers={"Idempotency-Key": "inv-1"})
    assert (late.status, late.body["portal_link"]) == (201, None)
