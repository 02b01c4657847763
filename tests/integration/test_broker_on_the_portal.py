"""Issue 15, items 1 and 9: the portal shows the broker (name, logo, colour, legal mentions, contact), never
"Relais"; it carries the privacy notice; a dead link still names whom to ask for a new one."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, token

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)
BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
IDENTITY = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
    "phone": "01 23 45 67 89",
}


def _ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body) if answer.body else {}


@pytest.fixture
def broker(platform: Api) -> dict[str, Any]:
    body = {"name": "Martin", "plan": "platinum", "sender_email": "contact@martin.fr"}
    account_id = platform.post("/admin/accounts", body).body["id"]
    drain()
    admin = platform.as_(token("admin", account_id))
    _ok(admin.patch("/account/legal", IDENTITY))
    pid = _ok(admin.post("/procedures", {"name": "Demande de location", "main_role_name": "Locataire"}), 201)[
        "id"
    ]
    garant = _ok(admin.post(f"/procedures/{pid}/roles", {"name": "Garant"}), 201)
    _ok(admin.post(f"/procedures/{pid}/documents", {"label": "Bulletins", "role_id": garant["id"]}), 201)
    dossier = _ok(
        admin.post(
            "/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa Martin", "email": "lea@ex.fr"}}
        ),
        201,
    )
    contributor = _ok(
        admin.post(
            f"/dossiers/{dossier['id']}/contributors",
            {"role_id": garant["id"], "name": "Paul Garant", "email": "paul@ex.fr"},
        ),
        201,
    )
    return {
        "admin": admin,
        "account_id": account_id,
        "dossier": dossier,
        "main": platform.as_(dossier["portal_link"].split("#token=")[1]),
        "garant": platform.as_(contributor["portal_link"].split("#token=")[1]),
        "contributor": contributor,
    }


def test_the_portal_names_the_broker_with_its_legal_mentions_and_contact(broker: dict[str, Any]) -> None:
    view = _ok(broker["main"].get("/portal"))
    assert view["broker"] == {
        "name": "Cabinet Martin SAS",
        "legal_mentions": [
            "Cabinet Martin SAS",
            "Intermédiaire en assurance immatriculé à l’ORIAS sous le n°\u00a012345678 (www.orias.fr)",
            "12 rue de la Paix, 75002 Paris",
            "Tél. 01 23 45 67 89",
        ],
        "contact": {
            "email": "contact@martin.fr",
            "phone": "01 23 45 67 89",
            "address": "12 rue de la Paix, 75002 Paris",
        },
        "logo_url": None,
        "brand_color": None,
    }


def test_the_privacy_notice_names_the_controller_purpose_retention_rights(broker: dict[str, Any]) -> None:
    main = _ok(broker["main"].get("/portal"))["privacy"]
    assert main["controller"] == "Cabinet Martin SAS"
    assert "«\u00a0Demande de location\u00a0»" in main["purpose"]
    assert main["retention_days"] == 365
    assert "365\u00a0jours" in main["retention"]
    assert "contact@martin.fr" in main["rights"]
    assert "CNIL" in main["rights"]
    assert main["dossier_of"] is None
    garant = _ok(broker["garant"].get("/portal"))["privacy"]
    assert garant["dossier_of"] == "Léa Martin"


def test_the_retention_setting_reaches_the_notice_and_stays_in_bounds(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    changed = _ok(admin.patch("/account/settings", {"dossier_retention_days": 730}))
    assert changed["settings"]["dossier_retention_days"] == 730
    assert _ok(broker["main"].get("/portal"))["privacy"]["retention_days"] == 730
    for wrong in (29, 3651, "365", None):
        assert admin.patch("/account/settings", {"dossier_retention_days": wrong}).status == 400


def test_a_brand_colour_must_carry_white_text_and_null_removes_it(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    pale = admin.patch("/account/settings", {"brand_color": "#FFCC00"})
    assert pale.status == 400
    assert pale.body["error"]["details"] == [
        {"field": "brand_color", "issue": "contrast with white below 4.5:1"}
    ]
    assert (
        _ok(admin.patch("/account/settings", {"brand_color": "#1f4e79"}))["settings"]["brand_color"]
        == "#1F4E79"
    )
    assert _ok(broker["main"].get("/portal"))["broker"]["brand_color"] == "#1F4E79"
    assert _ok(admin.patch("/account/settings", {"brand_color": None}))["settings"]["brand_color"] is None
    manager = admin.as_(token("manager", broker["account_id"]))
    assert manager.patch("/account/settings", {"brand_color": "#000000"}).status == 403


def test_a_logo_is_stored_and_served_from_the_api_with_caching_headers(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    answer = _ok(admin.put("/account/logo", raw=PNG, headers={"Content-Type": "image/png"}))
    logo_url = _ok(broker["main"].get("/portal"))["broker"]["logo_url"]
    assert logo_url == answer["logo_url"]
    path = f"/logos/{broker['account_id']}"
    assert f"{path}?v=" in logo_url
    served = admin.client.http.request("GET", path, headers={"Accept": BROWSER_ACCEPT})
    assert (served.status_code, served.body) == (200, PNG)
    assert served.headers["Content-Type"] == "image/png"
    assert "max-age" in served.headers["Cache-Control"]
    again = admin.client.http.request(
        "GET",
        path,
        headers={"Accept": BROWSER_ACCEPT, "If-None-Match": served.headers["ETag"]},
    )
    assert again.status_code == 304


def test_the_account_shows_the_address_of_its_logo_once_one_is_sent(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    assert _ok(admin.get("/account"))["logo_url"] is None
    sent = _ok(admin.put("/account/logo", raw=PNG, headers={"Content-Type": "image/png"}))
    manager = admin.as_(token("manager", broker["account_id"]))
    shown = _ok(manager.get("/account"))["logo_url"]
    assert shown == sent["logo_url"] == _ok(broker["main"].get("/portal"))["broker"]["logo_url"]
    assert f"/logos/{broker['account_id']}?v=" in shown


def test_a_default_email_signs_with_the_name_it_comes_from(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    pid = broker["dossier"]["procedure_id"]
    recipient = {"name": "Marc Petit", "email": "marc@ex.fr"}
    _ok(admin.post("/dossiers", {"procedure_id": pid, "recipient": recipient, "notify": True}), 201)
    drain()
    [email] = [m for m in sent_messages(REGION) if m["to"] == ["marc@ex.fr"]]
    assert "Cabinet Martin SAS" in email["from"]
    assert email["subject"].startswith("Cabinet Martin SAS\u00a0: votre dossier")
    body = email["text"].split("\n--\n", 1)[0]
    assert body.rstrip().endswith("Bien cordialement,\nCabinet Martin SAS")


def test_a_logo_is_refused_unless_png_or_jpeg_by_its_bytes_and_under_200_kb(broker: dict[str, Any]) -> None:
    admin = broker["admin"]
    assert (
        admin.put("/account/logo", raw=b"GIF89a" + b"\x00" * 20, headers={"Content-Type": "image/png"}).status
        == 415
    )
    assert admin.put("/account/logo", raw=PNG, headers={"Content-Type": "image/jpeg"}).status == 400
    assert admin.put("/account/logo", raw=PNG, headers={"Content-Type": "image/gif"}).status == 415
    big = PNG + b"\x00" * (200 * 1024)
    assert admin.put("/account/logo", raw=big, headers={"Content-Type": "image/png"}).status == 413
    manager = admin.as_(token("manager", broker["account_id"]))
    assert manager.put("/account/logo", raw=PNG, headers={"Content-Type": "image/png"}).status == 403
    assert admin.get(f"/logos/{broker['account_id']}").status == 404


def test_a_dead_link_still_names_the_broker_to_contact_and_a_forged_one_nothing(
    broker: dict[str, Any], anonymous: Api
) -> None:
    admin, garant = broker["admin"], broker["garant"]
    removed = admin.call(
        "DELETE", f"/dossiers/{broker['dossier']['id']}/contributors/{broker['contributor']['id']}"
    )
    assert removed.status == 204
    assert garant.get("/portal").status == 401
    assert _ok(garant.get("/portal-link/broker")) == {
        "name": "Cabinet Martin SAS",
        "contact": {"email": "contact@martin.fr", "phone": "01 23 45 67 89"},
    }
    assert anonymous.as_("x" * 43).get("/portal-link/broker").status == 401
    assert anonymous.get("/portal-link/broker").status == 401
