"""Issue 15, item 12: each privacy change and each change of the account itself is in the account's audit
trail (`GET /account/activity`, administrators only, oldest first), written with the change, naming who
made it, and holding ids and hashes only."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.unsubscribe import Addressee
from chalicelib.local.pumps import drain
from tests.support import Api, open_account, token

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)
IDENTITY = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
}


def _hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def _ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


@pytest.fixture
def admin(platform: Api) -> tuple[Api, str]:
    _, account_id = open_account(platform)
    return platform.as_(token("admin", account_id)), account_id


def _activity(api: Api) -> list[dict[str, Any]]:
    """The whole trail, page after page of two."""
    entries: list[dict[str, Any]] = []
    path = "/account/activity?limit=2"
    while True:
        page = _ok(api.get(path))
        entries += page["items"]
        if page["next_cursor"] is None:
            return entries
        path = f"/account/activity?limit=2&cursor={page['next_cursor']}"


def _of(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["type"] == kind]


def test_lifting_a_suppression_and_undoing_an_unsubscription_are_in_the_activity_with_who_did_it(
    admin: tuple[Api, str], aws: Any
) -> None:
    staff, account_id = admin
    aws.suppressions.add(account_id, "jean@exemple.fr", "complaint", None, datetime.now(UTC))
    aws.unsubscriptions.add(Addressee(account_id, "client", "01CLIENT"), datetime.now(UTC))
    assert staff.call("DELETE", f"/account/suppressions/{_hash('jean@exemple.fr')}").status == 204
    assert staff.call("DELETE", "/account/unsubscriptions/client_01CLIENT").status == 204
    assert staff.call("DELETE", "/account/unsubscriptions/client_01CLIENT").status == 404
    entries = _activity(staff)
    [lifted] = _of(entries, "suppression.removed")
    assert lifted["data"] == {"address_hash": _hash("jean@exemple.fr")}
    assert lifted["actor"] == {"kind": "staff", "id": "user-admin", "name": ""}
    [undone] = _of(entries, "unsubscription.removed")
    assert undone["data"] == {
        "unsubscription_id": "client_01CLIENT",
        "party": "client",
        "party_id": "01CLIENT",
    }
    assert entries.index(lifted) < entries.index(undone), "oldest first"
    assert "jean@exemple.fr" not in json.dumps(entries)
    assert len({e["id"] for e in entries}) == len(entries)


def test_the_activity_is_for_account_administrators_only(admin: tuple[Api, str]) -> None:
    staff, account_id = admin
    manager = staff.as_(token("manager", account_id))
    assert manager.get("/account/activity").status == 403
    assert staff.get("/account/activity?limit=0").status == 400
    assert staff.get("/account/activity?cursor=nonsense").status == 400


def test_changes_of_settings_legal_identity_and_logo_are_recorded_and_a_patch_that_changes_nothing_is_not(
    admin: tuple[Api, str],
) -> None:
    staff, _ = admin
    before = len(_activity(staff))
    _ok(staff.patch("/account/settings", {"brand_color": "#1F4E79", "dossier_retention_days": 400}))
    _ok(staff.patch("/account/settings", {"dossier_retention_days": 400}))
    _ok(staff.patch("/account/legal", IDENTITY))
    _ok(staff.patch("/account/legal", {"phone": "01 23 45 67 89"}))
    logo = _ok(staff.put("/account/logo", raw=PNG, headers={"Content-Type": "image/png"}))
    _ok(staff.put("/account/logo", raw=PNG, headers={"Content-Type": "image/png"}))
    entries = _activity(staff)[before:]
    assert [e["type"] for e in entries] == [
        "settings.changed",
        "legal_identity.changed",
        "legal_identity.changed",
        "logo.changed",
    ]
    assert entries[0]["data"] == {"changes": {"brand_color": "#1F4E79", "dossier_retention_days": 400}}
    assert entries[1]["data"]["fields"] == ["address", "legal_name", "orias_number"]
    assert entries[2]["data"] == {"fields": ["phone"]}
    assert entries[3]["data"]["content_type"] == "image/png"
    assert entries[3]["data"]["etag"][:12] in logo["logo_url"]
    assert all(e["actor"]["kind"] == "staff" for e in entries)


def test_erasing_a_client_is_recorded_once_by_his_id_without_his_name_or_address(
    admin: tuple[Api, str],
) -> None:
    staff, _ = admin
    jean = _ok(staff.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}), 201)
    _ok(staff.post("/projects", {"client_id": jean["id"], "reference": "PRJ-1"}), 201)
    assert staff.call("DELETE", f"/clients/{jean['id']}").status == 204
    assert staff.call("DELETE", f"/clients/{jean['id']}").status == 404
    [erased] = _of(_activity(staff), "client.erased")
    assert erased["data"] == {
        "client_id": jean["id"],
        "projects_erased": 1,
        "communications_emptied": 0,
        "contract_events_erased": 0,
    }
    assert "Dupont" not in json.dumps(erased)
    assert "jean@" not in json.dumps(erased)


def _dossier(staff: Api) -> tuple[str, str, str]:
    """A dossier of one document; its id, the document's id and the main recipient's portal secret."""
    pid = _ok(staff.post("/procedures", {"name": "Adhésion", "main_role_name": "Adhérent"}), 201)["id"]
    doc = _ok(staff.post(f"/procedures/{pid}/documents", {"label": "Pièce d'identité"}), 201)["id"]
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    dossier = _ok(staff.post("/dossiers", {"procedure_id": pid, "recipient": recipient}), 201)
    return dossier["id"], doc, dossier["portal_link"].split("#token=")[1]


def test_an_admins_erasure_of_a_dossier_is_recorded_once(admin: tuple[Api, str]) -> None:
    staff, _ = admin
    dossier_id, _, _ = _dossier(staff)
    assert staff.call("DELETE", f"/dossiers/{dossier_id}").status == 204
    assert staff.call("DELETE", f"/dossiers/{dossier_id}").status == 404
    [erased] = _of(_activity(staff), "dossier.erased")
    assert erased["data"] == {"dossier_id": dossier_id, "file_versions_erased": 0}
    assert erased["actor"]["kind"] == "staff"
    assert "Léa" not in json.dumps(erased)


def test_the_retention_erasure_is_recorded_with_relais_as_its_actor(admin: tuple[Api, str], aws: Any) -> None:
    staff, _ = admin
    dossier_id, doc, secret = _dossier(staff)
    portal = staff.as_(secret)
    form = {"filename": "id.pdf", "content_type": "application/pdf", "size": len(PDF)}
    started = _ok(portal.post(f"/portal/documents/{doc}/uploads", form), 201)
    aws.client("s3").put_object(
        Bucket=aws.settings.documents_bucket,
        Key=started["fields"]["key"],
        Body=PDF,
        ContentType="application/pdf",
    )
    _ok(portal.post(f"/portal/documents/{doc}/uploads/{started['upload_id']}/complete"))
    _ok(staff.post(f"/dossiers/{dossier_id}/documents/{doc}/review", {"decision": "approve"}))
    drain()
    staff.post("/_local/tick", {"time": (aws.now() + timedelta(days=366)).isoformat()})
    drain()
    assert staff.get(f"/dossiers/{dossier_id}").status == 404
    [erased] = _of(_activity(staff), "dossier.erased")
    assert erased["actor"] == {"kind": "system", "id": "relais", "name": "Relais"}
    assert erased["data"] == {"dossier_id": dossier_id, "file_versions_erased": 1}


def _token_items_of(aws: Any, dossier_id: str) -> list[dict[str, Any]]:
    """The portal-token items naming the dossier (a Scan: a test may look at the whole table)."""
    found = aws.client("dynamodb").scan(
        TableName=aws.settings.table_name,
        FilterExpression="begins_with(PK, :token) AND dossier_id = :dossier",
        ExpressionAttributeValues={":token": {"S": "PORTALTOKEN#"}, ":dossier": {"S": dossier_id}},
    )
    return list(found["Items"])


def test_erasing_a_dossier_deletes_every_link_it_minted_revoked_and_sent_by_email_too(
    platform: Api, aws: Any
) -> None:
    _, account_id = open_account(platform, plan="platinum")
    staff = platform.as_(token("admin", account_id))
    pid = _ok(staff.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}), 201)
    garant = _ok(staff.post(f"/procedures/{pid['id']}/roles", {"name": "Garant"}), 201)
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    dossier = _ok(staff.post("/dossiers", {"procedure_id": pid["id"], "recipient": recipient}), 201)
    invited = {"role_id": garant["id"], "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True}
    contributor = _ok(staff.post(f"/dossiers/{dossier['id']}/contributors", invited), 201)
    drain()
    _ok(staff.post(f"/dossiers/{dossier['id']}/contributors/{contributor['id']}/invitation"), 202)
    drain()
    links = _token_items_of(aws, dossier["id"])
    assert len(links) >= 4, "the main link, the garant's first, the one his email carried, the re-sent one"
    assert any(item.get("revoked", {}).get("BOOL") for item in links)
    assert staff.call("DELETE", f"/dossiers/{dossier['id']}").status == 204
    assert _token_items_of(aws, dossier["id"]) == []
