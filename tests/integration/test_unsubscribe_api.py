"""`/unsubscribe`: RFC 8058 one-click from a mail client, and the confirmation page for a person."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.unsubscribe import Addressee, unsubscribe_token
from chalicelib.services.unsubscribe import unsubscribe_link
from tests.support import Api

SECRET = "local-link-secret"
CLIENT = Addressee("01ACCOUNT", "client", "01CLIENT")
APPORTEUR = Addressee("01ACCOUNT", "apporteur", "01APPORTEUR")


def _path(addressee: Addressee = CLIENT) -> str:
    return unsubscribe_link("", SECRET, addressee)


def test_a_mail_clients_one_click_post_unsubscribes_the_addressee(anonymous: Api, aws: Any) -> None:
    answer = anonymous.call(
        "POST",
        _path(),
        raw=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200
    assert answer.body == {"unsubscribed": True}
    assert aws.unsubscriptions.unsubscribed("01ACCOUNT", [("client", "01CLIENT")]) == {("client", "01CLIENT")}


def test_an_empty_post_unsubscribes_too_and_twice_is_the_same_as_once(anonymous: Api, aws: Any) -> None:
    for _ in range(2):
        assert anonymous.call("POST", _path(), raw=b"").status == 200
    assert aws.unsubscriptions.unsubscribed("01ACCOUNT", [("client", "01CLIENT")]) == {("client", "01CLIENT")}


def test_a_person_sees_a_french_confirmation_page_whose_button_posts_to_the_same_link(
    anonymous: Api, aws: Any
) -> None:
    page = anonymous.get(_path(), headers={"Accept": "text/html"})
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Me désabonner" in page.body
    assert '<form method="post" action="">' in page.body
    assert 'name="List-Unsubscribe" value="One-Click"' in page.body
    assert "mises en demeure" in page.body
    assert aws.unsubscriptions.unsubscribed("01ACCOUNT", [("client", "01CLIENT")]) == set()
    done = anonymous.call(
        "POST",
        _path(),
        raw=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert done.status == 200
    assert "Désabonnement enregistré" in done.body


def test_an_apporteur_who_unsubscribes_stops_his_own_mailings_not_his_clients(
    anonymous: Api, aws: Any
) -> None:
    assert anonymous.call("POST", _path(APPORTEUR), raw=b"").status == 200
    parties = [("client", "01CLIENT"), ("apporteur", "01APPORTEUR")]
    assert aws.unsubscriptions.unsubscribed("01ACCOUNT", parties) == {("apporteur", "01APPORTEUR")}


def test_a_forged_or_missing_token_is_refused_in_json_for_programs_and_in_french_for_people(
    anonymous: Api, aws: Any
) -> None:
    forged = "/unsubscribe?token=" + unsubscribe_token("not-the-secret", CLIENT)
    answer = anonymous.call("POST", forged, raw=b"")
    assert answer.status == 400
    assert answer.body["error"]["code"] == "validation_error"
    assert answer.body["error"]["details"] == [{"field": "token", "issue": "not a valid unsubscribe token"}]
    missing = anonymous.get("/unsubscribe")
    assert missing.status == 400
    assert missing.body["error"]["details"] == [{"field": "token", "issue": "is required"}]
    page = anonymous.get(forged, headers={"Accept": "text/html"})
    assert page.status == 400
    assert "n’est pas valide" in page.body
    assert aws.unsubscriptions.unsubscribed("01ACCOUNT", [("client", "01CLIENT")]) == set()


def _page_of(anonymous: Api, addressee: Addressee) -> str:
    page = anonymous.get(_path(addressee), headers={"Accept": "text/html"})
    assert page.status == 200
    return str(page.body)


def test_the_page_names_the_broker_by_his_legal_name_and_speaks_of_information_emails(
    platform: Api, anonymous: Api
) -> None:
    from tests.support import open_account, token

    _, account_id = open_account(platform)
    admin = platform.as_(token("admin", account_id))
    assert admin.patch("/account/legal", LEGAL).status == 200
    page = _page_of(anonymous, Addressee(account_id, "client", "01CLIENT"))
    assert "emails d’information de Cabinet Martin SAS" in page
    assert "publipostage" not in page
    done = anonymous.call(
        "POST",
        _path(Addressee(account_id, "client", "01CLIENT")),
        raw=b"",
        headers={"Accept": "text/html"},
    )
    assert "Cabinet Martin SAS" in done.body


def test_an_apporteur_is_told_his_clients_keep_their_emails_and_a_client_that_his_contracts_go_on(
    anonymous: Api, aws: Any
) -> None:
    apporteur_page = _page_of(anonymous, APPORTEUR)
    assert "en tant qu’apporteur" in apporteur_page
    assert "Vos clients, eux, continueront de recevoir les leurs" in apporteur_page
    assert "vos garanties" not in apporteur_page
    client_page = _page_of(anonymous, CLIENT)
    assert "apporteur" not in client_page
    assert "gestion de vos garanties" in client_page


LEGAL = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
}


def test_every_unsubscribe_page_follows_french_typography(anonymous: Api, aws: Any) -> None:
    from tests.unit.test_typography import faults, visible

    pages = [_page_of(anonymous, CLIENT), _page_of(anonymous, APPORTEUR)]
    pages.append(anonymous.call("POST", _path(), raw=b"", headers={"Accept": "text/html"}).body)
    pages.append(anonymous.get("/unsubscribe?token=forged", headers={"Accept": "text/html"}).body)
    for page in pages:
        text = visible(page.split("<body>", 1)[1])
        assert faults(text) == []
        assert "'" not in text
