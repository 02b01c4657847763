"""The broker's legal identity, insurers on products and postal addresses on clients (API.md "Broker
identity, insurers and postal addresses"): what the registered letter will need, validated at the door."""

from __future__ import annotations

from typing import Any

from tests.support import Api, open_account, token

IDENTITY = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "rcs": "Paris B 123 456 789",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
    "phone": "01 23 45 67 89",
    "mediator": {"name": "La Médiation de l'Assurance", "url": "https://www.mediation-assurance.org"},
    "payment_instructions": "Par virement, en rappelant le numéro du contrat.",
}
ADDRESS = {"lines": ["Appartement 12", "3 allée des Tilleuls"], "postal_code": "69003", "city": "Lyon"}


def _admin(platform: Api) -> tuple[Api, Api]:
    manager, account_id = open_account(platform)
    return platform.as_(token("admin", account_id)), manager


def _fields(answer: Any) -> set[str]:
    return {d["field"] for d in answer.body["error"]["details"]}


def test_an_admin_sets_the_legal_identity_and_the_account_shows_it(platform: Api) -> None:
    admin, manager = _admin(platform)
    answer = admin.patch("/account/legal", IDENTITY)
    assert answer.status == 200
    assert answer.body["legal"] == {**IDENTITY, "address": {**IDENTITY["address"], "country": "FR"}}
    assert manager.get("/account").body["legal"]["orias_number"] == "12345678"
    assert manager.patch("/account/legal", {"phone": "01 00 00 00 00"}).status == 403


def test_a_first_identity_needs_name_orias_and_address_each_named_when_missing(platform: Api) -> None:
    admin, _ = _admin(platform)
    missing = admin.patch("/account/legal", {"rcs": "Paris B 1"})
    assert missing.status == 400
    assert _fields(missing) == {"legal_name", "orias_number", "address"}
    assert admin.get("/account").body["legal"] is None


def test_wrong_orias_numbers_postal_codes_and_long_lines_are_each_named(platform: Api) -> None:
    admin, _ = _admin(platform)
    wrong = {
        **IDENTITY,
        "orias_number": "1234567",
        "address": {"lines": ["x" * 39], "postal_code": "7500", "city": "Paris"},
    }
    answer = admin.patch("/account/legal", wrong)
    assert answer.status == 400
    assert _fields(answer) == {"orias_number", "address.lines[0]", "address.postal_code"}
    injected = admin.patch("/account/legal", {**IDENTITY, "legal_name": "Martin\r\nBcc: x@y.fr"})
    assert (injected.status, _fields(injected)) == (400, {"legal_name"})


def test_a_patch_changes_what_it_sends_and_null_removes_an_optional_field(platform: Api) -> None:
    admin, _ = _admin(platform)
    assert admin.patch("/account/legal", IDENTITY).status == 200
    changed = admin.patch("/account/legal", {"mediator": None, "orias_number": "87654321"}).body["legal"]
    assert (changed["mediator"], changed["orias_number"], changed["rcs"]) == (
        None,
        "87654321",
        IDENTITY["rcs"],
    )
    refused = admin.patch("/account/legal", {"legal_name": None})
    assert (refused.status, _fields(refused)) == (400, {"legal_name"})


def test_the_registered_mail_channel_is_a_setting(platform: Api) -> None:
    admin, _ = _admin(platform)
    assert admin.get("/account").body["settings"]["registered_mail_channel"] == "manual"
    changed = admin.patch("/account/settings", {"registered_mail_channel": "provider"})
    assert changed.body["settings"] == {
        "partner_communications_enabled": True,
        "registered_mail_channel": "provider",
        "brand_color": None,
        "dossier_retention_days": 365,
    }
    assert admin.patch("/account/settings", {"registered_mail_channel": "pigeon"}).status == 400


def test_a_contract_shows_the_insurer_of_its_product(platform: Api) -> None:
    manager, _ = open_account(platform)
    insurer = {
        "name": "Mutuelle Exemple",
        "address": {"lines": ["1 place de l'Assurance"], "postal_code": "79000", "city": "Niort"},
    }
    product = manager.post("/products", {"name": "Multirisque habitation", "insurer": insurer}).body
    assert product["insurer"] == {
        "name": "Mutuelle Exemple",
        "address": {**insurer["address"], "country": "FR"},
    }
    client = manager.post("/clients", {"name": "Léa Martin"}).body
    contract = manager.post(
        "/contracts", {"client_id": client["id"], "reference": "MRH-1", "product_id": product["id"]}
    )
    assert contract.body["insurer"]["name"] == "Mutuelle Exemple"
    bare = manager.post("/contracts", {"client_id": client["id"], "reference": "MRH-2"}).body
    assert bare["insurer"] is None
    assert manager.get(f"/contracts/{contract.body['id']}").body["insurer"]["name"] == "Mutuelle Exemple"
    listed = {c["reference"]: c["insurer"] for c in manager.get("/contracts").body["items"]}
    assert listed == {"MRH-1": product["insurer"], "MRH-2": None}
    renamed = manager.patch(f"/products/{product['id']}", {"insurer": {"name": "Mutuelle Autre"}})
    assert renamed.body["insurer"] == {"name": "Mutuelle Autre", "address": None}
    assert manager.get(f"/contracts/{contract.body['id']}").body["insurer"]["name"] == "Mutuelle Autre"
    bad = manager.post(
        "/products", {"name": "X", "insurer": {"name": "Y", "address": {**ADDRESS, "postal_code": "ABCDE"}}}
    )
    assert (bad.status, _fields(bad)) == (400, {"insurer.address.postal_code"})


def test_a_client_has_a_french_postal_address_that_a_patch_changes_or_removes(platform: Api) -> None:
    manager, _ = open_account(platform)
    client = manager.post("/clients", {"name": "Léa Martin", "postal_address": ADDRESS})
    assert client.status == 201
    assert client.body["postal_address"] == {**ADDRESS, "country": "FR"}
    cid = client.body["id"]
    assert manager.patch(f"/clients/{cid}", {"postal_address": None}).body["postal_address"] is None
    for wrong, field in (
        ({**ADDRESS, "postal_code": "6900"}, "postal_address.postal_code"),
        ({**ADDRESS, "lines": []}, "postal_address.lines"),
        ({**ADDRESS, "lines": ["a", "b", "c", "d", "e"]}, "postal_address.lines"),
        ({**ADDRESS, "country": "BE"}, "postal_address.country"),
        ({**ADDRESS, "lines": ["3 allée des Tilleuls, bâtiment B, escalier 4"]}, "postal_address.lines[0]"),
    ):
        answer = manager.patch(f"/clients/{cid}", {"postal_address": wrong})
        assert answer.status == 400, wrong
        assert field in _fields(answer), (wrong, answer.body)
    assert manager.get(f"/clients/{cid}").body["postal_address"] is None
