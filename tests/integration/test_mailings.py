"""Mailings end to end: create, preview, send once, fan-out through `bulk_worker` in pages, one email per
entity addressed by its rule, each addressee's copy with his own RFC 8058 unsubscribe link, live counts
with unknown, suppressed, unsubscribed and email-less recipients, and tenant isolation."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.domain.mailings import PAGE_SIZE
from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, open_account, token


def _create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def _mailing(api: Api, audience: dict[str, Any], subject: str = "Du nouveau, {{ client.name }}") -> str:
    body = {
        "name": "Offre habitation",
        "subject": subject,
        "body": "Bonjour {{ recipient.name }},\n\nNotre offre {{ contract.reference }} est là.",
        "audience": audience,
    }
    if audience["entity"] != "contracts":
        body["body"] = "Bonjour {{ recipient.name }},\n\nNotre nouvelle offre est là."
    return str(_create(api, "/mailings", body)["id"])


def _emails() -> list[dict[str, Any]]:
    return [m for m in sent_messages(REGION) if m["kind"] == "mailing"]


@pytest.fixture
def book(platform: Api) -> dict[str, Any]:
    """Apporteur B (b@); clients Jean (jean@) and Paul (no email); contracts HAB-1 (Jean, with B on
    client_and_apporteur), AUTO-2 (Jean, no apporteur), VIE-3 (Paul, no apporteur, suspended)."""
    staff, account_id = open_account(platform)
    b = _create(staff, "/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"})
    jean = _create(staff, "/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"})
    paul = _create(staff, "/clients", {"name": "Paul Sansmail"})
    hab = _create(
        staff,
        "/contracts",
        {
            "client_id": jean["id"],
            "reference": "HAB-1",
            "apporteur_id": b["id"],
            "commissioning": {"communication_rule": "client_and_apporteur"},
        },
    )
    auto = _create(staff, "/contracts", {"client_id": jean["id"], "reference": "AUTO-2"})
    vie = _create(staff, "/contracts", {"client_id": paul["id"], "reference": "VIE-3", "status": "suspended"})
    return {"staff": staff, "account_id": account_id, "B": b, "jean": jean, "paul": paul} | {
        "HAB": hab,
        "AUTO": auto,
        "VIE": vie,
        "platform": platform,
    }


def test_a_contracts_mailing_writes_once_per_contract_by_its_rule_with_live_counts(
    book: dict[str, Any],
) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    draft = staff.get(f"/mailings/{mailing_id}").body
    assert (draft["status"], draft["total"], draft["sent"]) == ("draft", 0, 0)
    sent = staff.post(f"/mailings/{mailing_id}/send")
    assert sent.status == 202
    assert sent.body["status"] == "sending"
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    # HAB-1 and AUTO-2 reach Jean (HAB-1 with B in Cc); VIE-3's client has no email: skipped.
    assert (done["status"], done["total"], done["sent"], done["failed"], done["skipped"]) == (
        "sent",
        3,
        2,
        0,
        1,
    )
    emails = _emails()
    by_reference = {re.search(r"(HAB-1|AUTO-2)", e["text"]).group(1): e for e in emails}  # type: ignore[union-attr]
    assert sorted(by_reference) == ["AUTO-2", "HAB-1"]
    hab_copies = [e for e in emails if "HAB-1" in e["text"]]
    # Each addressee gets his own copy, under the same To and Cc.
    assert sorted(e["delivered_to"][0] for e in hab_copies) == [
        "Cabinet Bernard <b@bernard.fr>",
        "Jean Dupont <jean@dupont.fr>",
    ]
    for copy in hab_copies:
        assert (copy["to"], copy["cc"]) == (["jean@dupont.fr"], ["b@bernard.fr"])
    history = staff.get(f"/clients/{book['paul']['id']}/communications").body["items"]
    assert [(h["kind"], h["status"], h["skipped_parties"]) for h in history] == [
        ("mailing", "skipped", ["client"])
    ]


def test_each_copy_carries_its_addressees_one_click_unsubscribe_and_the_link_works(
    book: dict[str, Any], anonymous: Api
) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    copies = {e["delivered_to"][0]: e for e in _emails()}
    apporteur_copy = copies["Cabinet Bernard <b@bernard.fr>"]
    client_copy = copies["Jean Dupont <jean@dupont.fr>"]
    header = apporteur_copy["headers"]["List-Unsubscribe"]
    assert header.startswith("<http://")
    assert "/unsubscribe?token=" in header
    assert apporteur_copy["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header != client_copy["headers"]["List-Unsubscribe"]
    link = header.strip("<>")
    assert f'href="{link}"' in apporteur_copy["html"].replace("&amp;", "&")
    assert link in apporteur_copy["text"]
    one_click = anonymous.call(
        "POST",
        f"{urlsplit(link).path}?{urlsplit(link).query}",
        raw=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status == 200
    # The apporteur left; the next mailing reaches the client alone.
    again = _mailing(staff, {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}})
    assert staff.post(f"/mailings/{again}/send").status == 202
    drain()
    later = [e for e in _emails() if e["communication_id"] not in {client_copy["communication_id"]}]
    assert [(e["to"], e["cc"]) for e in later] == [(["jean@dupont.fr"], [])]


def test_unsubscribed_clients_are_skipped_by_mailings_but_still_get_dunning(
    book: dict[str, Any], anonymous: Api, aws: Any
) -> None:
    staff, jean = book["staff"], book["jean"]
    from chalicelib.domain.unsubscribe import Addressee
    from chalicelib.services.unsubscribe import unsubscribe_link

    link = unsubscribe_link("", "local-link-secret", Addressee(book["account_id"], "client", jean["id"]))
    assert anonymous.call("POST", link, raw=b"").status == 200
    mailing_id = _mailing(staff, {"entity": "clients"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["total"], done["sent"], done["skipped"]) == (2, 0, 2)
    assert _emails() == []
    # Dunning is not a mailing: the unpaid call still reaches him.
    due = {"amount": {"amount": "84.20", "currency": "EUR"}, "due_date": "2027-03-01"}
    assert staff.post(f"/contracts/{book['AUTO']['id']}/installments", due).status == 201
    staff.post("/_local/tick", {"time": "2027-02-14T08:00:00Z"})
    calls = [m for m in sent_messages(REGION) if m["kind"] == "unpaid_call"]
    assert [m["to"] for m in calls] == [["jean@dupont.fr"]]


def test_counts_with_unknown_ids_and_suppressed_addresses(book: dict[str, Any], aws: Any) -> None:
    staff = book["staff"]
    aws.suppressions.add(book["account_id"], "jean@dupont.fr", "complaint", None, datetime.now(UTC))
    ids = [book["HAB"]["id"], book["AUTO"]["id"], book["VIE"]["id"], "01UNKNOWN", "01ALSOUNKNOWN"]
    mailing_id = _mailing(staff, {"entity": "contracts", "filters": {"ids": ids}})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    # HAB-1: Jean suppressed, B in Cc takes the To; AUTO-2: Jean suppressed, nobody; VIE-3: no email.
    assert (done["status"], done["total"], done["sent"], done["failed"], done["skipped"]) == (
        "partially_failed",
        5,
        1,
        2,
        2,
    )
    assert [(e["to"], e["cc"]) for e in _emails()] == [(["b@bernard.fr"], [])]


def test_filters_select_the_audience_like_the_lists(book: dict[str, Any]) -> None:
    staff = book["staff"]
    suspended = _mailing(staff, {"entity": "contracts", "filters": {"status": "suspended"}})
    with_b = _mailing(staff, {"entity": "contracts", "filters": {"apporteur_id": book["B"]["id"]}})
    none = _mailing(staff, {"entity": "contracts", "filters": {"communication_rule": "none"}})
    for mailing_id in (suspended, with_b, none):
        assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    totals = {m: staff.get(f"/mailings/{m}").body["total"] for m in (suspended, with_b, none)}
    assert totals == {suspended: 1, with_b: 1, none: 2}


def test_a_mailing_is_sent_once_and_its_fan_out_spans_pages(platform: Api) -> None:
    staff, _ = open_account(platform)
    count = PAGE_SIZE + 3
    for n in range(count):
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"})
    mailing_id = _mailing(staff, {"entity": "clients"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    again = staff.post(f"/mailings/{mailing_id}/send")
    assert again.status == 409
    assert again.body["error"]["code"] == "conflict"
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"]) == ("sent", count, count)
    assert len(_emails()) == count
    assert staff.post(f"/mailings/{mailing_id}/send").status == 409


def test_a_redelivered_page_writes_and_counts_nothing_twice(book: dict[str, Any], aws: Any) -> None:
    from chalicelib.services.mailings import MailingPage, fan_out_page

    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "clients"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    page = MailingPage(book["account_id"], mailing_id, 0)
    fan_out_page(
        page,
        aws.mailings,
        aws.accounts,
        aws.partners,
        aws.unsubscriptions,
        aws.suppressions,
        aws.communications_queue,
        aws.bulk_queue,
        aws.now(),
    )
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["total"], done["sent"], done["skipped"]) == (2, 1, 1)
    assert len(_emails()) == 1


def test_preview_shows_one_entitys_email_as_it_would_go(book: dict[str, Any]) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    preview = staff.post(f"/mailings/{mailing_id}/preview", {"entity_id": book["HAB"]["id"]})
    assert preview.status == 200, preview.body
    assert [r["email"] for r in preview.body["to"]] == ["jean@dupont.fr"]
    assert [r["email"] for r in preview.body["cc"]] == ["b@bernard.fr"]
    assert preview.body["subject"] == "Du nouveau, Jean Dupont"
    assert "Notre offre HAB-1 est là." in preview.body["text"]
    first = staff.post(f"/mailings/{mailing_id}/preview")
    assert first.status == 200
    assert staff.post(f"/mailings/{mailing_id}/preview", {"entity_id": book["jean"]["id"]}).status == 404
    assert staff.post(f"/mailings/{mailing_id}/preview", {"entity_id": "01NOPE"}).status == 404
    assert _emails() == []


def test_bad_mailings_are_refused_with_the_field_named(book: dict[str, Any]) -> None:
    staff = book["staff"]
    base = {"name": "X", "subject": "Objet", "body": "Corps"}
    cases = [
        (
            {**base, "audience": {"entity": "clients", "filters": {"status": "active"}}},
            "audience.filters.status",
        ),
        (
            {**base, "audience": {"entity": "clients"}, "body": "{{ contract.reference }}"},
            "body",
        ),
        (
            {**base, "audience": {"entity": "contracts", "filters": {"status": "won"}}},
            "audience.filters.status",
        ),
        ({**base, "audience": {"entity": "people"}}, "audience.entity"),
        ({**base, "audience": {"entity": "contracts", "filters": {"ids": []}}}, "audience.filters.ids"),
        ({**base, "audience": {"entity": "contracts"}, "extra": 1}, "extra"),
    ]
    for body, field in cases:
        answer = staff.post("/mailings", body)
        assert answer.status == 400, (body, answer.body)
        assert field in [d["field"] for d in answer.body["error"]["details"]], answer.body
    # As a bulk change: 10,000 distinct ids at most (a repeated id counts once), 413 beyond.
    many = [f"01ID{n:022d}" for n in range(10_000)]
    audience = {"entity": "contracts", "filters": {"ids": many + many[:50]}}
    assert staff.post("/mailings", {**base, "audience": audience}).status == 201
    audience = {"entity": "contracts", "filters": {"ids": [*many, "01ID-ONE-MORE"]}}
    too_many = staff.post("/mailings", {**base, "audience": audience})
    assert (too_many.status, too_many.body["error"]["code"]) == (413, "payload_too_large")
    audience = {"entity": "contracts", "filters": {"ids": ["9" * 64]}}
    not_an_id = staff.post("/mailings", {**base, "audience": audience})
    assert (not_an_id.status, not_an_id.body["error"]["details"][0]["field"]) == (
        400,
        "audience.filters.ids.0",
    )


def test_another_accounts_mailing_does_not_exist(book: dict[str, Any]) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    other, _ = open_account(book["platform"], "Cabinet Autre")
    for answer in (
        other.get(f"/mailings/{mailing_id}"),
        other.post(f"/mailings/{mailing_id}/send"),
        other.post(f"/mailings/{mailing_id}/preview"),
    ):
        assert answer.status == 404
        assert answer.body["error"]["code"] == "not_found"
    # Nor may a mailing name another account's records: they count as unknown (failed).
    theirs = _mailing(other, {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}})
    assert other.post(f"/mailings/{theirs}/send").status == 202
    drain()
    assert other.get(f"/mailings/{theirs}").body["failed"] == 1
    assert _emails() == []


def test_a_throttled_mailing_email_is_retried_never_dropped_and_counted_once(
    book: dict[str, Any], aws: Any
) -> None:
    from datetime import timedelta

    from botocore.exceptions import ClientError

    from chalicelib.adapters.ses import SesMailer
    from chalicelib.handlers import dunning_tick
    from chalicelib.services.communications import RETRY_AFTER

    real = aws.client("sesv2")
    throttled: list[str] = []

    class ThrottledOnce:
        def send_email(self, **request: Any) -> Any:
            if not throttled:
                throttled.append(request["Destination"]["ToAddresses"][0])
                raise ClientError({"Error": {"Code": "TooManyRequestsException"}}, "SendEmail")
            return real.send_email(**request)

    aws.__dict__["mailer"] = SesMailer(ThrottledOnce(), aws.settings.sender_address())
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts", "filters": {"ids": [book["AUTO"]["id"]]}})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    # SES said "slow down": nothing went out, the claim was given back, the mailing is still sending.
    assert throttled == ["Jean Dupont <jean@dupont.fr>"]
    assert _emails() == []
    waiting = staff.get(f"/mailings/{mailing_id}").body
    assert (waiting["status"], waiting["total"], waiting["sent"]) == ("sending", 1, 0)
    # Its message comes back (here: the tick re-queues it at its retry time) and the email goes out once.
    assert dunning_tick.run(aws.now() + RETRY_AFTER + timedelta(seconds=1)) == 1
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"], done["failed"]) == ("sent", 1, 1, 0)
    assert [e["to"] for e in _emails()] == [["jean@dupont.fr"]]


def test_the_mailings_are_listed_newest_first_with_their_counts_and_only_to_their_account(
    book: dict[str, Any], aws: Any
) -> None:
    staff = book["staff"]
    aws.clock = lambda: datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    first = _mailing(staff, {"entity": "contracts"})
    aws.clock = lambda: datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
    second = _mailing(staff, {"entity": "clients"})
    assert staff.post(f"/mailings/{first}/send").status == 202
    drain()
    listed = staff.get("/mailings")
    assert listed.status == 200
    assert [(m["id"], m["status"]) for m in listed.body["items"]] == [(second, "draft"), (first, "sent")]
    assert listed.body["items"][1]["total"] == 3
    one = staff.get("/mailings?limit=1").body
    assert [m["id"] for m in one["items"]] == [second]
    assert [m["id"] for m in staff.get(f"/mailings?limit=1&cursor={one['next_cursor']}").body["items"]] == [
        first
    ]

    other, _ = open_account(book["platform"], "Cabinet Autre")
    assert other.get("/mailings").body == {"items": [], "next_cursor": None}
    stolen = other.get(f"/mailings?cursor={one['next_cursor']}")
    assert (stolen.status, stolen.body["error"]["code"]) == (400, "validation_error")
    assert staff.get("/mailings?status=draft").status == 400


def test_a_draft_is_changed_or_deleted_until_it_is_sent_and_never_after(book: dict[str, Any]) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    changed = staff.patch(
        f"/mailings/{mailing_id}", {"name": "Offre auto", "subject": "Pour {{ client.name }}", "version": 1}
    )
    assert changed.status == 200, changed.body
    assert (changed.body["name"], changed.body["subject"]) == ("Offre auto", "Pour {{ client.name }}")
    assert "{{ contract.reference }}" in changed.body["body"]
    assert changed.body["version"] == 2
    # The template is checked against the audience it would have: clients have no contract.reference.
    refused = staff.patch(f"/mailings/{mailing_id}", {"audience": {"entity": "clients"}, "version": 2})
    assert refused.status == 400
    assert refused.body["error"]["details"][0]["field"] == "body"
    narrowed = staff.patch(
        f"/mailings/{mailing_id}",
        {"audience": {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}}, "version": 2},
    )
    assert narrowed.body["audience"] == {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}}
    assert staff.patch(f"/mailings/{mailing_id}", {"colour": "red", "version": 3}).status == 400
    assert staff.get(f"/mailings/{mailing_id}").body["name"] == "Offre auto"

    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    for answer in (
        staff.patch(f"/mailings/{mailing_id}", {"name": "Trop tard", "version": 3}),
        staff.call("DELETE", f"/mailings/{mailing_id}"),
    ):
        assert (answer.status, answer.body["error"]["code"]) == (409, "conflict")
    drain()
    assert [m["subject"] for m in _emails()] == ["Pour Jean Dupont", "Pour Jean Dupont"]

    draft = _mailing(staff, {"entity": "clients"})
    other, _ = open_account(book["platform"], "Cabinet Autre")
    assert other.call("DELETE", f"/mailings/{draft}").status == 404
    assert other.patch(f"/mailings/{draft}", {"name": "X", "version": 1}).status == 404
    assert staff.call("DELETE", f"/mailings/{draft}").status == 204
    assert staff.get(f"/mailings/{draft}").status == 404
    assert [m["id"] for m in staff.get("/mailings").body["items"]] == [mailing_id]


def test_two_edits_of_one_draft_read_at_the_same_version_keep_the_first_and_refuse_the_second(
    book: dict[str, Any],
) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "clients"})
    read = staff.get(f"/mailings/{mailing_id}").body
    assert (read["status"], read["version"]) == ("draft", 1)
    first = staff.patch(f"/mailings/{mailing_id}", {"name": "Offre de printemps", "version": read["version"]})
    assert (first.status, first.body["version"]) == (200, 2), first.body
    second = staff.patch(
        f"/mailings/{mailing_id}", {"subject": "Nouveau sujet, {{ client.name }}", "version": read["version"]}
    )
    assert (second.status, second.body["error"]["code"]) == (409, "conflict")
    shown = staff.get(f"/mailings/{mailing_id}").body
    assert (shown["name"], shown["subject"], shown["version"]) == (
        "Offre de printemps",
        "Du nouveau, {{ client.name }}",
        2,
    )
    unversioned = staff.patch(f"/mailings/{mailing_id}", {"name": "Sans version"})
    assert unversioned.status == 400
    assert [d["field"] for d in unversioned.body["error"]["details"]] == ["version"]


def test_an_edit_that_loses_the_race_after_reading_the_draft_is_refused_by_the_store(
    book: dict[str, Any], aws: Any
) -> None:
    """Both edits read version 1; the other one writes first, between this one's read and its write."""
    from chalicelib.domain.errors import StaleVersion

    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "clients"})
    account_id = staff.get("/account").body["id"]
    read = aws.mailings.get(account_id, mailing_id)
    assert staff.patch(f"/mailings/{mailing_id}", {"name": "La première", "version": 1}).status == 200
    with pytest.raises(StaleVersion):
        aws.mailings.replace_draft(replace(read, name="La seconde"), read.version)
    assert staff.get(f"/mailings/{mailing_id}").body["name"] == "La première"


def _lose_bulk_messages(aws: Any) -> None:
    """What SQS does to a message that failed until its queue gave up on it (moved to the DLQ)."""
    sqs, url = aws.client("sqs"), aws.bulk_queue.url
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_mailing_whose_page_failed_for_good_is_resumed_by_the_tick_and_ends_sent(
    book: dict[str, Any], aws: Any
) -> None:
    from datetime import timedelta

    from chalicelib.handlers import dunning_tick

    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    _lose_bulk_messages(aws)
    drain()
    assert staff.get(f"/mailings/{mailing_id}").body["status"] == "sending"
    assert dunning_tick.run(aws.now() + timedelta(minutes=10)) == 0
    later = aws.now() + timedelta(minutes=16)
    assert [dunning_tick.run(later), dunning_tick.run(later)] == [1, 1]
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert done["status"] == "sent"
    assert done["total"] == done["sent"] + done["failed"] + done["skipped"] == len(_emails()) > 0
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0


def test_a_mailing_whose_page_fails_at_every_attempt_ends_partially_failed(
    book: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from chalicelib.domain.jobs import MAX_RESUMES
    from chalicelib.handlers import dunning_tick
    from chalicelib.services import mailings

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("this page fails every time")

    monkeypatch.setattr(mailings, "fan_out_page", failing)
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    for stall in range(1, MAX_RESUMES + 3):
        drain()
        dunning_tick.run(aws.now() + stall * timedelta(minutes=16))
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"], done["failed"], done["skipped"]) == (
        "partially_failed",
        0,
        0,
        0,
        0,
    )
    assert done["incomplete"] is True
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0


def _store_template_saved_before_the_size_cap(account_id: str, mailing_id: str) -> None:
    """Write straight to the table a body that no longer passes validation (each filter multiplies by 11)."""
    from chalicelib.adapters.dynamodb.models import MailingItem
    from chalicelib.adapters.dynamodb.repositories import mailing_pk

    body = "Bonjour {{ client.name" + '|replace("", "XXXXXXXXXX")' * 5 + " }}"
    MailingItem(mailing_pk(account_id, mailing_id), "MAILING").update(
        actions=[MailingItem.template.set({"subject": "Offre {{ client.name }}", "body": body})]
    )


def test_a_mailing_whose_template_renders_too_large_fails_each_email_with_a_reason_and_the_rest_go_on(
    book: dict[str, Any],
) -> None:
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    _store_template_saved_before_the_size_cap(book["account_id"], mailing_id)
    preview = staff.post(f"/mailings/{mailing_id}/preview", {"entity_id": book["HAB"]["id"]})
    assert preview.status == 400, preview.body
    assert "262144 characters" in preview.body["error"]["message"]
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"], done["failed"], done["skipped"]) == (
        "partially_failed",
        3,
        0,
        2,
        1,
    )
    assert _emails() == []
    history = staff.get(f"/clients/{book['jean']['id']}/communications").body["items"]
    assert {(h["status"], h["subject"]) for h in history} == {("failed", None)}
    welcome = [m for m in sent_messages(REGION) if m["kind"] == "account_welcome"]
    assert welcome, "the other emails of the account still went out"


def test_a_mailing_body_that_multiplies_its_size_is_refused_when_saved(book: dict[str, Any]) -> None:
    answer = book["staff"].post(
        "/mailings",
        {
            "name": "Offre",
            "subject": "Offre",
            "body": "{{ client.name" + '|replace("", "XXXXXXXXXX")' * 6 + " }}",
            "audience": {"entity": "clients"},
        },
    )
    assert answer.status == 400
    [issue] = answer.body["error"]["details"]
    assert issue["field"] == "body"
    assert "262144 characters" in issue["issue"]


def test_a_copy_is_neither_lost_nor_sent_twice_when_the_worker_dies_between_two_copies(
    book: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from chalicelib.adapters.ses import SesMailer
    from chalicelib.handlers import dunning_tick
    from chalicelib.services.communications import CLAIM_LEASE

    original = SesMailer.send

    def die_before_the_apporteurs_copy(self: SesMailer, email: Any) -> str:
        if email.envelope[0].email == "b@bernard.fr":
            raise ConnectionError("the Lambda died between the two copies")
        return original(self, email)

    monkeypatch.setattr(SesMailer, "send", die_before_the_apporteurs_copy)
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    # Jean's copy went out and its Send event was handled: it settles Jean's copy, not the whole email.
    assert [e["delivered_to"][0] for e in _emails()] == ["Jean Dupont <jean@dupont.fr>"]
    waiting = staff.get(f"/mailings/{mailing_id}").body
    assert (waiting["status"], waiting["sent"]) == ("sending", 0)
    monkeypatch.undo()
    later = aws.now() + CLAIM_LEASE + timedelta(minutes=1)
    aws.clock = lambda: later
    dunning_tick.run(later)
    drain()
    # The retry sends only the copy SES had not accepted.
    assert [e["delivered_to"][0] for e in _emails()] == [
        "Jean Dupont <jean@dupont.fr>",
        "Cabinet Bernard <b@bernard.fr>",
    ]
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"], done["failed"]) == ("sent", 1, 1, 0)


def test_a_worker_dying_after_every_copy_went_out_is_settled_by_the_send_events_and_counted_once(
    book: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from chalicelib.adapters.dynamodb.repositories import DynamoCommunicationRepository
    from chalicelib.handlers import dunning_tick
    from chalicelib.services.communications import CLAIM_LEASE

    def die(self: Any, communication: Any, expected: Any = None) -> bool:
        raise ConnectionError("the Lambda died after SES accepted both copies")

    monkeypatch.setattr(DynamoCommunicationRepository, "settle", die)
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts", "filters": {"ids": [book["HAB"]["id"]]}})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    monkeypatch.undo()
    assert len(_emails()) == 2
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["status"], done["total"], done["sent"]) == ("sent", 1, 1)
    later = aws.now() + CLAIM_LEASE + timedelta(minutes=1)
    aws.clock = lambda: later
    dunning_tick.run(later)
    drain()
    assert len(_emails()) == 2
    assert staff.get(f"/mailings/{mailing_id}").body["sent"] == 1


def test_the_preview_shows_the_legal_mentions_and_the_unsubscribe_footer_the_addressee_gets(
    book: dict[str, Any], platform: Api
) -> None:
    admin = platform.as_(token("admin", book["account_id"]))
    legal = {
        "legal_name": "Cabinet Martin SAS",
        "orias_number": "12345678",
        "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
    }
    assert admin.patch("/account/legal", legal).status == 200
    staff = book["staff"]
    mailing_id = _mailing(staff, {"entity": "contracts"})
    preview = staff.post(f"/mailings/{mailing_id}/preview", {"entity_id": book["HAB"]["id"]}).body
    for part in (preview["text"], preview["html"]):
        assert "ORIAS sous le n°\u00a012345678" in part
        assert "Se désabonner" in part
        assert "/unsubscribe?token=" in part
    assert preview["text"].index("ORIAS") < preview["text"].index("Se désabonner")


def test_a_projects_mailing_reaches_only_clients_who_agreed_to_marketing_the_others_are_skipped(
    platform: Api,
) -> None:
    staff, _ = open_account(platform)
    agreed = _create(
        staff, "/clients", {"name": "Anne Accord", "email": "anne@accord.fr", "marketing_consent": True}
    )
    silent = _create(staff, "/clients", {"name": "Sam Silence", "email": "sam@silence.fr"})
    assert (agreed["marketing_consent"], silent["marketing_consent"]) == (True, False)
    for client in (agreed, silent):
        _create(staff, "/projects", {"client_id": client["id"], "reference": f"PRJ-{client['name']}"})
    mailing_id = _mailing(staff, {"entity": "projects"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["total"], done["sent"], done["skipped"]) == (2, 1, 1)
    assert [e["to"] for e in _emails()] == [["anne@accord.fr"]]
    history = staff.get(f"/clients/{silent['id']}/communications").body["items"]
    assert [(h["kind"], h["status"]) for h in history] == [("mailing", "skipped")]


def test_a_client_who_withdraws_consent_is_skipped_by_the_next_projects_mailing(platform: Api) -> None:
    staff, _ = open_account(platform)
    client = _create(
        staff, "/clients", {"name": "Anne Accord", "email": "anne@accord.fr", "marketing_consent": True}
    )
    _create(staff, "/projects", {"client_id": client["id"], "reference": "PRJ-1"})
    withdrawn = staff.patch(f"/clients/{client['id']}", {"marketing_consent": False})
    assert withdrawn.status == 200, withdrawn.body
    assert withdrawn.body["marketing_consent"] is False
    assert staff.patch(f"/clients/{client['id']}", {"marketing_consent": None}).status == 400
    mailing_id = _mailing(staff, {"entity": "projects"})
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    drain()
    done = staff.get(f"/mailings/{mailing_id}").body
    assert (done["total"], done["sent"], done["skipped"]) == (1, 0, 1)
    assert _emails() == []
