"""Partner communications end to end: who receives a client's emails, the manual email through the queue
and SES, the client's history, and bulk rule changes through `bulk_worker`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, token


def _open(platform: Api, plan: str = "premium", switch: bool = True) -> tuple[Api, str]:
    body = {"name": "Cabinet Martin", "plan": plan, "sender_email": "contact@martin.fr"}
    account_id = platform.post("/admin/accounts", body).body["id"]
    admin = platform.as_(token("admin", account_id))
    if switch:
        assert admin.patch("/account/settings", {"partner_communications_enabled": True}).status == 200
    drain()
    return platform.as_(token("manager", account_id)), account_id


def _create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


@pytest.fixture
def book(platform: Api) -> dict[str, Any]:
    """Client C (c@) prefers A (a@, rule apporteur on C's block); contract K with B (b@) on
    client_and_apporteur; contract L without apporteur."""
    staff, account_id = _open(platform)
    a = _create(staff, "/apporteurs", {"name": "Courtage Ouest", "email": "a@ouest.fr"})
    b = _create(staff, "/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"})
    c = _create(
        staff,
        "/clients",
        {
            "name": "Jean Dupont",
            "email": "jean@dupont.fr",
            "preferred_apporteur_id": a["id"],
            "commissioning": {"communication_rule": "apporteur"},
        },
    )
    k = _create(
        staff,
        "/contracts",
        {
            "client_id": c["id"],
            "reference": "HAB-1",
            "apporteur_id": b["id"],
            "commissioning": {"communication_rule": "client_and_apporteur"},
        },
    )
    lone = _create(staff, "/contracts", {"client_id": c["id"], "reference": "AUTO-2"})
    return {
        "staff": staff,
        "account_id": account_id,
        "A": a,
        "B": b,
        "C": c,
        "K": k,
        "L": lone,
        "platform": platform,
    }


def test_recipients_follow_the_client_rule_or_the_contract_rule(book: dict[str, Any]) -> None:
    staff, c = book["staff"], book["C"]
    client_rule = staff.get(f"/clients/{c['id']}/recipients").body
    assert client_rule["to"] == [{"name": "Courtage Ouest", "email": "a@ouest.fr", "party": "apporteur"}]
    assert (client_rule["cc"], client_rule["rule"], client_rule["decided_by"]) == ([], "apporteur", "client")
    contract_rule = staff.get(f"/clients/{c['id']}/recipients?contract_id={book['K']['id']}").body
    assert [r["email"] for r in contract_rule["to"]] == ["jean@dupont.fr"]
    assert [r["email"] for r in contract_rule["cc"]] == ["b@bernard.fr"]
    assert (contract_rule["rule"], contract_rule["decided_by"]) == ("client_and_apporteur", "contract")
    none = staff.get(f"/clients/{c['id']}/recipients?contract_id={book['L']['id']}").body
    assert ([r["party"] for r in none["to"]], none["rule"], none["decided_by"]) == (
        ["client"],
        None,
        "no_apporteur",
    )


def test_with_the_switch_off_the_client_receives_everything(platform: Api) -> None:
    staff, _ = _open(platform, switch=False)
    a = _create(staff, "/apporteurs", {"name": "A", "email": "a@a.fr"})
    c = _create(
        staff,
        "/clients",
        {
            "name": "C",
            "email": "c@c.fr",
            "preferred_apporteur_id": a["id"],
            "commissioning": {"communication_rule": "apporteur"},
        },
    )
    answer = staff.get(f"/clients/{c['id']}/recipients").body
    assert ([r["party"] for r in answer["to"]], answer["decided_by"], answer["rule"]) == (
        ["client"],
        "option_disabled",
        None,
    )


def test_after_a_downgrade_the_rules_stop_applying_though_the_switch_stays_on(book: dict[str, Any]) -> None:
    platform = book["platform"]
    assert platform.patch(f"/admin/accounts/{book['account_id']}", {"plan": "essential"}).status == 200
    answer = book["staff"].get(f"/clients/{book['C']['id']}/recipients").body
    assert answer["decided_by"] == "option_disabled"


def test_a_legal_notice_keeps_the_client_in_to_under_the_apporteur_rule(book: dict[str, Any]) -> None:
    answer = book["staff"].get(f"/clients/{book['C']['id']}/recipients?kind=formal_notice").body
    assert [r["party"] for r in answer["to"]] == ["client"]
    assert [r["party"] for r in answer["cc"]] == ["apporteur"]


def test_a_contract_of_another_client_is_refused(book: dict[str, Any]) -> None:
    staff = book["staff"]
    other = _create(staff, "/clients", {"name": "Autre"})
    answer = staff.get(f"/clients/{other['id']}/recipients?contract_id={book['K']['id']}")
    assert answer.status == 400
    assert answer.body["error"]["details"][0]["field"] == "contract_id"


def test_a_manual_email_is_addressed_by_the_rules_rendered_sent_and_kept_in_the_history(
    book: dict[str, Any],
) -> None:
    staff, c, k = book["staff"], book["C"], book["K"]
    answer = staff.post(
        f"/clients/{c['id']}/emails",
        {
            "subject": "Contrat {{ contract.reference }}",
            "body": "Bonjour {{ recipient.name }},\n\nVotre attestation est prête.",
            "contract_id": k["id"],
        },
    )
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "queued"
    assert [r["email"] for r in answer.body["to"]] == ["jean@dupont.fr"]
    assert [r["email"] for r in answer.body["cc"]] == ["b@bernard.fr"]
    drain()
    [email] = [m for m in sent_messages(REGION) if m["kind"] == "manual"]
    assert (email["to"], email["cc"], email["subject"]) == (
        ["jean@dupont.fr"],
        ["b@bernard.fr"],
        "Contrat HAB-1",
    )
    assert email["text"].startswith("Bonjour Jean Dupont,")
    assert email["reply_to"] == "contact@martin.fr"
    [entry] = staff.get(f"/clients/{c['id']}/communications").body["items"]
    assert entry["id"] == answer.body["communication_id"]
    assert (entry["kind"], entry["status"], entry["subject"]) == ("manual", "sent", "Contrat HAB-1")
    assert (entry["rule"], entry["decided_by"], entry["contract_id"]) == (
        "client_and_apporteur",
        "contract",
        k["id"],
    )
    assert entry["sent_at"] is not None


def test_an_email_nobody_can_receive_is_recorded_skipped_and_never_queued(platform: Api) -> None:
    staff, _ = _open(platform)
    mute = _create(staff, "/clients", {"name": "Sans adresse"})
    answer = staff.post(f"/clients/{mute['id']}/emails", {"subject": "Bonjour", "body": "Texte"})
    assert (answer.status, answer.body["status"], answer.body["to"]) == (202, "skipped", [])
    drain()
    assert [m for m in sent_messages(REGION) if m["kind"] == "manual"] == []
    [entry] = staff.get(f"/clients/{mute['id']}/communications").body["items"]
    assert (entry["status"], entry["skipped_parties"], entry["subject"]) == ("skipped", ["client"], "Bonjour")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "{{ installment.amount }}", "body": "b"}, "subject"),
        ({"subject": "s", "body": "{{ client.name.__class__ }}"}, "body"),
        ({"subject": "s", "body": "{% for x in y %}{% endfor %}"}, "body"),
        ({"subject": "s"}, "body"),
        ({"subject": "s", "body": "b", "contract_id": "nope"}, "contract_id"),
        ({"subject": "s", "body": "b", "cc": "x@y.fr"}, "cc"),
    ],
)
def test_a_bad_manual_email_is_refused_naming_the_field(
    book: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    answer = book["staff"].post(f"/clients/{book['C']['id']}/emails", body)
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_the_history_pages_newest_first(book: dict[str, Any]) -> None:
    staff, c = book["staff"], book["C"]
    ids = [
        staff.post(f"/clients/{c['id']}/emails", {"subject": f"n°{n}", "body": "b"}).body["communication_id"]
        for n in range(3)
    ]
    first = staff.get(f"/clients/{c['id']}/communications?limit=2").body
    second = staff.get(f"/clients/{c['id']}/communications?limit=2&cursor={first['next_cursor']}").body
    seen = [e["id"] for e in first["items"] + second["items"]]
    assert sorted(seen) == sorted(ids)
    assert [e["subject"] for e in first["items"] + second["items"]] == ["n°2", "n°1", "n°0"]


# ---- bulk changes ----


def _job(staff: Api, job_id: str) -> dict[str, Any]:
    answer = staff.get(f"/jobs/{job_id}")
    assert answer.status == 200
    return dict(answer.body)


def test_a_bulk_change_is_accepted_at_once_then_applied_with_per_id_failures(
    book: dict[str, Any], platform: Api
) -> None:
    staff, k, lone = book["staff"], book["K"], book["L"]
    foreign_staff, _ = _open(platform)
    foreign_client = _create(foreign_staff, "/clients", {"name": "X"})
    foreign = _create(foreign_staff, "/contracts", {"client_id": foreign_client["id"], "reference": "F"})
    ids = [k["id"], lone["id"], "unknown-id", foreign["id"], k["id"]]
    accepted = staff.post("/contracts/bulk-updates", {"ids": ids, "set": {"communication_rule": "apporteur"}})
    assert accepted.status == 202
    job_id = accepted.body["job_id"]
    assert _job(staff, job_id)["status"] == "queued"
    drain()
    job = _job(staff, job_id)
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("partially_failed", 4, 1, 3)
    assert sorted((f["id"], f["code"]) for f in job["failures"]) == sorted(
        [(lone["id"], "no_apporteur"), ("unknown-id", "not_found"), (foreign["id"], "not_found")]
    )
    changed = staff.get(f"/contracts/{k['id']}").body
    assert (changed["commissioning"]["communication_rule"], changed["version"]) == ("apporteur", 2)
    assert foreign_staff.get(f"/contracts/{foreign['id']}").body["version"] == 1


def test_a_redelivered_chunk_changes_and_counts_nothing_twice(
    book: dict[str, Any], client: RelaisTestClient, aws: Any
) -> None:
    staff, k = book["staff"], book["K"]
    job_id = staff.post(
        "/contracts/bulk-updates", {"ids": [k["id"]], "set": {"communication_rule": "client"}}
    ).body["job_id"]
    sqs = aws.client("sqs")
    url = aws.bulk_queue.url
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    record = {
        "messageId": "m-1",
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.bulk_queue.arn,
        "awsRegion": REGION,
    }
    for n in range(2):
        answer = client.lambda_.invoke(
            "bulk_worker", {"Records": [{**record, "messageId": f"m-{n}"}]}
        ).payload
        assert answer == {"batchItemFailures": []}
    job = _job(staff, job_id)
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("succeeded", 1, 1, 0)
    assert staff.get(f"/contracts/{k['id']}").body["version"] == 2
    assert json.loads(message["Body"])["type"] == "set_communication_rule"


def test_a_record_edited_meanwhile_is_read_again_not_overwritten_blindly(
    book: dict[str, Any], aws: Any
) -> None:
    from chalicelib.domain.partners import RecordKind
    from chalicelib.domain.recipients import CommunicationRule

    staff, k = book["staff"], book["K"]
    stale = aws.partners.get(book["account_id"], RecordKind.CONTRACT, k["id"])
    assert staff.patch(f"/contracts/{k['id']}", {"reference": "HAB-1 bis", "version": 1}).status == 200
    assert aws.partners.set_rule(stale, CommunicationRule.APPORTEUR, aws.now()) is False
    job_id = staff.post(
        "/contracts/bulk-updates", {"ids": [k["id"]], "set": {"communication_rule": "apporteur"}}
    ).body["job_id"]
    drain()
    assert _job(staff, job_id)["succeeded"] == 1
    after = staff.get(f"/contracts/{k['id']}").body
    assert (after["reference"], after["commissioning"]["communication_rule"]) == ("HAB-1 bis", "apporteur")


def test_a_bulk_change_names_its_ids_and_a_known_rule(book: dict[str, Any]) -> None:
    staff = book["staff"]
    for body, field in [
        ({"ids": [], "set": {"communication_rule": "client"}}, "ids"),
        ({"ids": ["x"], "set": {"communication_rule": "none"}}, "set.communication_rule"),
        ({"ids": ["x"]}, "set"),
        ({"ids": "x", "set": {"communication_rule": "client"}}, "ids"),
    ]:
        answer = staff.post("/projects/bulk-updates", body)
        assert answer.status == 400, body
        assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_more_than_ten_thousand_ids_is_too_large(book: dict[str, Any]) -> None:
    ids = [f"id-{n}" for n in range(10_001)]
    answer = book["staff"].post(
        "/contracts/bulk-updates", {"ids": ids, "set": {"communication_rule": "client"}}
    )
    assert answer.status == 413
    assert answer.body["error"]["code"] == "payload_too_large"


def test_ten_thousand_ids_are_accepted_at_once_in_a_hundred_chunks(book: dict[str, Any], aws: Any) -> None:
    ids = [f"id-{n}" for n in range(10_000)]
    answer = book["staff"].post(
        "/contracts/bulk-updates", {"ids": ids, "set": {"communication_rule": "client"}}
    )
    assert answer.status == 202
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.bulk_queue.url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "100"
    job = _job(book["staff"], answer.body["job_id"])
    assert (job["status"], job["total"]) == ("queued", 10_000)


def test_another_accounts_job_is_not_found(book: dict[str, Any], platform: Api) -> None:
    job_id = (
        book["staff"]
        .post("/contracts/bulk-updates", {"ids": ["x"], "set": {"communication_rule": "client"}})
        .body["job_id"]
    )
    other, _ = _open(platform)
    assert other.get(f"/jobs/{job_id}").status == 404


def _lose_bulk_messages(aws: Any) -> None:
    """What SQS does to a message that failed until its queue gave up on it (moved to the DLQ)."""
    sqs, url = aws.client("sqs"), aws.bulk_queue.url
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_bulk_job_whose_chunk_failed_for_good_is_resumed_by_the_tick_and_ends_succeeded(
    book: dict[str, Any], aws: Any
) -> None:
    from datetime import timedelta

    from chalicelib.handlers import dunning_tick

    staff, k = book["staff"], book["K"]
    job_id = staff.post(
        "/contracts/bulk-updates", {"ids": [k["id"]], "set": {"communication_rule": "apporteur"}}
    ).body["job_id"]
    _lose_bulk_messages(aws)
    drain()
    assert _job(staff, job_id)["status"] == "queued"
    assert dunning_tick.run(aws.now() + timedelta(minutes=10)) == 0
    # Fifteen minutes without a chunk counted: two ticks at once both hand it over, it is resumed once.
    later = aws.now() + timedelta(minutes=16)
    assert [dunning_tick.run(later), dunning_tick.run(later)] == [1, 1]
    drain()
    job = _job(staff, job_id)
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("succeeded", 1, 1, 0)
    assert staff.get(f"/contracts/{k['id']}").body["commissioning"]["communication_rule"] == "apporteur"
    # Done, it leaves the schedule at the next tick that sees it, and no tick hands it over again.
    dunning_tick.run(aws.now() + timedelta(hours=1))
    drain()
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0


def test_a_bulk_job_whose_chunk_fails_at_every_attempt_ends_with_its_ids_failed(
    book: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from chalicelib.domain.jobs import MAX_RESUMES
    from chalicelib.handlers import bulk_worker, dunning_tick

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("this chunk fails every time")

    monkeypatch.setattr(bulk_worker, "apply_rule_chunk", failing)
    staff, k = book["staff"], book["K"]
    job_id = staff.post(
        "/contracts/bulk-updates", {"ids": [k["id"]], "set": {"communication_rule": "apporteur"}}
    ).body["job_id"]
    # Each delivery of the chunk fails (and stays invisible until its queue gives up on it).
    for stall in range(1, MAX_RESUMES + 3):
        drain()
        dunning_tick.run(aws.now() + stall * timedelta(minutes=16))
    drain()
    job = _job(staff, job_id)
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("failed", 1, 0, 1)
    assert [(f["id"], f["code"]) for f in job["failures"]] == [(k["id"], "not_processed")]
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0


def test_an_email_to_a_client_comes_from_the_brokers_legal_name_and_ends_with_his_legal_mentions(
    book: dict[str, Any], platform: Api
) -> None:
    admin = platform.as_(token("admin", book["account_id"]))
    legal = {
        "legal_name": "Cabinet Martin SAS",
        "orias_number": "12345678",
        "rcs": "Paris B 123 456 789",
        "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
        "mediator": {"name": "La Médiation de l'Assurance", "url": "https://www.mediation-assurance.org"},
    }
    assert admin.patch("/account/legal", legal).status == 200
    staff, c = book["staff"], book["C"]
    body = {
        "subject": "Votre attestation",
        "body": "Bonjour,\n\nElle est prête.",
        "contract_id": book["K"]["id"],
    }
    assert staff.post(f"/clients/{c['id']}/emails", body).status == 202
    drain()
    [email] = [m for m in sent_messages(REGION) if m["kind"] == "manual"]
    assert email["from"].startswith('"Cabinet Martin SAS" <') or email["from"].startswith(
        "Cabinet Martin SAS <"
    )
    mentions = email["text"].split("\n--\n", 1)[1]
    assert "Cabinet Martin SAS" in mentions
    assert "ORIAS sous le n°\u00a012345678 (www.orias.fr)" in mentions
    assert "RCS Paris B 123 456 789" in mentions
    assert "12 rue de la Paix, 75002 Paris" in mentions
    assert "Médiateur" not in mentions, "the mediator is named on dunning notices only"
    assert "12 rue de la Paix, 75002 Paris" in email["html"]
