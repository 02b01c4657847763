"""Privacy (RGPD): the suppression list keeps only a hash of each address, and an account administrator
sees and undoes it and the unsubscriptions (`/account/suppressions`, `/account/unsubscriptions`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from chalicelib.adapters.dynamodb.models import SuppressionItem
from chalicelib.domain.unsubscribe import Addressee
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, open_account, token

BOUNCED = "Jean.Dupont@Exemple.fr"


def _hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@pytest.fixture
def admin(platform: Api) -> tuple[Api, str]:
    _, account_id = open_account(platform)
    return platform.as_(token("admin", account_id)), account_id


def _stored_items(account_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=REGION).Table(SuppressionItem.Meta.table_name)
    return list(
        table.query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": f"ACCOUNT#{account_id}"}
        )["Items"]
    )


def test_a_suppressed_address_is_stored_only_as_its_hash_and_still_suppresses(
    admin: tuple[Api, str], aws: Any
) -> None:
    _, account_id = admin
    aws.suppressions.add(account_id, "jean.dupont@exemple.fr", "complaint", "cm_1", datetime.now(UTC))
    assert aws.suppressions.suppressed(account_id, ["jean.dupont@exemple.fr"]) == {"jean.dupont@exemple.fr"}
    stored = " ".join(str(item) for item in _stored_items(account_id))
    assert "jean.dupont" not in stored
    assert _hash(BOUNCED) in stored


def test_a_record_written_before_hashing_still_suppresses_is_listed_by_hash_and_replaced_when_added_again(
    admin: tuple[Api, str], aws: Any
) -> None:
    staff, account_id = admin
    address = "old@exemple.fr"
    SuppressionItem(
        f"ACCOUNT#{account_id}",
        f"SUPPRESSED#{address}",
        address=address,
        reason="bounce: Permanent/General",
        suppressed_at=datetime(2026, 1, 5, tzinfo=UTC),
    ).save()
    assert aws.suppressions.suppressed(account_id, [address]) == {address}
    listed = staff.get("/account/suppressions").body["items"]
    assert [e["address_hash"] for e in listed] == [_hash(address)]
    aws.suppressions.add(account_id, address, "complaint", None, datetime.now(UTC))
    assert address not in " ".join(str(item) for item in _stored_items(account_id))
    assert aws.suppressions.suppressed(account_id, [address]) == {address}


def test_a_record_written_before_hashing_is_lifted_by_the_hash_the_list_shows(
    admin: tuple[Api, str], aws: Any
) -> None:
    staff, account_id = admin
    aws.suppressions.add(account_id, "new@exemple.fr", "complaint", None, datetime.now(UTC))
    for address in ("old@exemple.fr", "older@exemple.fr"):
        SuppressionItem(
            f"ACCOUNT#{account_id}",
            f"SUPPRESSED#{address}",
            address=address,
            reason="bounce: Permanent/General",
            suppressed_at=datetime(2026, 1, 5, tzinfo=UTC),
        ).save()
    listed = {e["address_hash"] for e in staff.get("/account/suppressions").body["items"]}
    assert _hash("old@exemple.fr") in listed
    assert staff.call("DELETE", f"/account/suppressions/{_hash('Old@Exemple.fr')}").status == 204
    assert aws.suppressions.suppressed(account_id, ["old@exemple.fr", "older@exemple.fr"]) == {
        "older@exemple.fr"
    }
    assert "SUPPRESSED#old@exemple.fr" not in {item["SK"] for item in _stored_items(account_id)}
    assert staff.call("DELETE", f"/account/suppressions/{_hash('old@exemple.fr')}").status == 404
    activity = staff.get("/account/activity").body["items"]
    assert [e["data"] for e in activity if e["type"] == "suppression.removed"] == [
        {"address_hash": _hash("old@exemple.fr")}
    ]


def test_an_admin_lists_the_suppression_list_page_by_page_and_lifts_an_address(
    admin: tuple[Api, str], aws: Any
) -> None:
    staff, account_id = admin
    for n in range(3):
        aws.suppressions.add(
            account_id, f"c{n}@exemple.fr", "bounce: Permanent/General", None, datetime.now(UTC)
        )
    first = staff.get("/account/suppressions?limit=2").body
    second = staff.get(f"/account/suppressions?limit=2&cursor={first['next_cursor']}").body
    hashes = [e["address_hash"] for e in first["items"] + second["items"]]
    assert sorted(hashes) == sorted(_hash(f"c{n}@exemple.fr") for n in range(3))
    assert first["items"][0]["reason"] == "bounce: Permanent/General"
    assert staff.call("DELETE", f"/account/suppressions/{_hash('c1@exemple.fr')}").status == 204
    activity = staff.get("/account/activity").body["items"]
    assert [e["data"] for e in activity if e["type"] == "suppression.removed"] == [
        {"address_hash": _hash("c1@exemple.fr")}
    ]
    assert aws.suppressions.suppressed(account_id, ["c1@exemple.fr", "c2@exemple.fr"]) == {"c2@exemple.fr"}
    again = staff.call("DELETE", f"/account/suppressions/{_hash('c1@exemple.fr')}")
    assert again.status == 404
    assert again.body["error"]["code"]


def test_an_admin_sees_who_unsubscribed_and_lets_them_receive_mailings_again(
    admin: tuple[Api, str], aws: Any
) -> None:
    staff, account_id = admin
    aws.unsubscriptions.add(Addressee(account_id, "client", "01CLIENT"), datetime.now(UTC))
    aws.unsubscriptions.add(Addressee(account_id, "apporteur", "01APPORTEUR"), datetime.now(UTC))
    listed = staff.get("/account/unsubscriptions").body
    assert sorted(e["id"] for e in listed["items"]) == ["apporteur_01APPORTEUR", "client_01CLIENT"]
    assert listed["next_cursor"] is None
    assert staff.call("DELETE", "/account/unsubscriptions/client_01CLIENT").status == 204
    assert aws.unsubscriptions.unsubscribed(
        account_id, [("client", "01CLIENT"), ("apporteur", "01APPORTEUR")]
    ) == {("apporteur", "01APPORTEUR")}
    assert staff.call("DELETE", "/account/unsubscriptions/client_01CLIENT").status == 404
    assert staff.call("DELETE", "/account/unsubscriptions/nobody").status == 404


def test_only_an_account_administrator_sees_or_undoes_the_lists(platform: Api) -> None:
    manager, _ = open_account(platform)
    assert manager.get("/account/suppressions").status == 403
    assert manager.get("/account/unsubscriptions").status == 403
    assert manager.call("DELETE", f"/account/suppressions/{_hash(BOUNCED)}").status == 403
    assert manager.call("DELETE", "/account/unsubscriptions/client_01X").status == 403


def _created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def test_an_admin_erases_a_client_his_projects_and_his_emails_content_and_keeps_his_contracts(
    admin: tuple[Api, str],
) -> None:
    staff, _ = admin
    jean = _created(
        staff, "/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr", "postal_address": None}
    )
    contract = _created(staff, "/contracts", {"client_id": jean["id"], "reference": "AUTO-2"})
    project = _created(staff, "/projects", {"client_id": jean["id"], "reference": "PRJ-1"})
    sent = staff.post(f"/clients/{jean['id']}/emails", {"subject": "Bonjour", "body": "Votre dossier."})
    assert sent.status in (201, 202), sent.body
    drain()
    assert "jean@dupont.fr" in str(staff.get(f"/clients/{jean['id']}/communications").body)
    assert staff.call("DELETE", f"/clients/{jean['id']}").status == 204
    assert staff.get(f"/clients/{jean['id']}").status == 404
    assert staff.get(f"/projects/{project['id']}").status == 404
    kept = staff.get(f"/contracts/{contract['id']}")
    assert (kept.status, kept.body["reference"]) == (200, "AUTO-2")
    history = staff.get(f"/clients/{jean['id']}/communications")
    assert "jean@dupont.fr" not in str(history.body)
    assert staff.call("DELETE", f"/clients/{jean['id']}").status == 404


def test_a_client_whose_contract_is_being_dunned_cannot_be_erased(platform: Api) -> None:
    manager, account_id = open_account(platform)
    staff = platform.as_(token("admin", account_id))
    jean = _created(staff, "/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"})
    contract = _created(staff, "/contracts", {"client_id": jean["id"], "reference": "AUTO-2"})
    due = {"amount": {"amount": "84.20", "currency": "EUR"}, "due_date": "2027-03-01"}
    assert staff.post(f"/contracts/{contract['id']}/installments", due).status == 201
    staff.post("/_local/tick", {"time": "2027-02-14T08:00:00Z"})
    assert staff.get(f"/contracts/{contract['id']}").body["dunning_stage"] != "none"
    refused = staff.call("DELETE", f"/clients/{jean['id']}")
    assert refused.status == 409
    assert "AUTO-2" in refused.body["error"]["message"]
    assert manager.call("DELETE", f"/clients/{jean['id']}").status == 403
    assert staff.get(f"/clients/{jean['id']}").status == 200
