"""An email's fate, told once: `communication.sent` / `.skipped` when the worker settles it,
`.bounced` / `.complained` when SES reports back, each written with the change it reports; SES's reports
are announced on the webhooks queue at once, the worker's outcomes are queued by the next webhook tick
(the worker sends nothing there); in the contract's or the dossier's activity log when the email is
about one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import Queue, queue_name
from chalicelib.domain.events import ActorKind, SubjectKind
from chalicelib.local.pumps import drain
from tests.announced import account_events, activity, announced, of_type, told_by_the_tick
from tests.support import Api, RelaisTestClient, sqs_event, token

pytestmark = pytest.mark.usefixtures("webhooks_left_queued")

BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


def _open(platform: Api, sender: str = "contact@martin.fr") -> tuple[Api, str]:
    body = {"name": "Cabinet Martin", "plan": "premium", "sender_email": sender}
    account_id = str(platform.post("/admin/accounts", body).body["id"])
    return platform.as_(token("admin", account_id)), account_id


def _contract(staff: Api, email: str | None = "jean@dupont.fr") -> tuple[str, str]:
    client = staff.post("/clients", {"name": "Jean Dupont", "email": email}).body
    contract = staff.post("/contracts", {"client_id": client["id"], "reference": "HAB-1"}).body
    return str(client["id"]), str(contract["id"])


def test_the_welcome_email_sent_is_told_once_on_the_account_and_announced(
    client: RelaisTestClient, platform: Api, aws: Any
) -> None:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name(Queue.COMMUNICATIONS))["QueueUrl"]
    _, account_id = _open(platform)
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    # The same delivery message twice (at-least-once): one email, one event.
    client.lambda_.invoke(
        "communications_worker", sqs_event(queue_name(Queue.COMMUNICATIONS), [message["Body"]])
    )
    client.lambda_.invoke(
        "communications_worker", sqs_event(queue_name(Queue.COMMUNICATIONS), [message["Body"]])
    )
    [sent] = of_type(account_events(account_id), "communication.sent")
    welcome_id = json.loads(message["Body"])["communication_id"]
    assert sent.data == {
        "communication_id": welcome_id,
        "kind": "account_welcome",
        "status": "sent",
        "skipped_parties": [],
    }
    assert sent.actor.kind is ActorKind.SYSTEM
    assert sent.subject.kind is SubjectKind.ACCOUNT
    assert announced(aws) == []
    assert [(m["type"], m["id"]) for m in told_by_the_tick(aws)] == [("communication.sent", sent.id)]


def test_an_email_about_a_contract_is_in_the_contracts_activity(platform: Api, aws: Any) -> None:
    staff, account_id = _open(platform)
    client_id, contract_id = _contract(staff)
    email = staff.post(
        f"/clients/{client_id}/emails", {"contract_id": contract_id, "subject": "Bonjour", "body": "Texte"}
    ).body
    drain()
    [sent] = activity(aws, account_id, SubjectKind.CONTRACT, contract_id)
    assert sent.type.value == "communication.sent"
    assert sent.data == {
        "communication_id": email["communication_id"],
        "kind": "manual",
        "status": "sent",
        "contract_id": contract_id,
        "client_id": client_id,
        "skipped_parties": [],
    }


def test_an_email_whose_only_addressee_is_suppressed_is_told_skipped_with_the_party_not_the_address(
    platform: Api, aws: Any
) -> None:
    staff, account_id = _open(platform)
    client_id, contract_id = _contract(staff)
    aws.suppressions.add(account_id, "jean@dupont.fr", "bounce: Permanent/General", None, aws.now())
    staff.post(f"/clients/{client_id}/emails", {"contract_id": contract_id, "subject": "A", "body": "B"})
    drain()
    [skipped] = activity(aws, account_id, SubjectKind.CONTRACT, contract_id)
    assert skipped.type.value == "communication.skipped"
    assert skipped.data["skipped_parties"] == ["client"]
    assert skipped.data["reason"] == "every recipient is on the suppression list (bounced or complained)"
    assert "jean@dupont.fr" not in json.dumps(skipped.data)


def test_a_bounce_is_told_once_even_when_ses_reports_it_twice(
    client: RelaisTestClient, platform: Api, aws: Any
) -> None:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name(Queue.SES_EVENTS))["QueueUrl"]
    _, account_id = _open(platform, BOUNCE)
    drain()
    events = account_events(account_id)
    assert sorted(e.type.value for e in events) == ["communication.bounced", "communication.sent"]
    [bounced] = of_type(events, "communication.bounced")
    assert bounced.data["bounce_type"] == "Permanent"
    assert bounced.data["parties"] == ["account"]
    assert bounced.data["status"] == "bounced"
    assert bounced.actor.kind is ActorKind.SYSTEM
    # The bounce notification again, as SNS or EventBridge may deliver it twice.
    bounce = _bounce_of(aws, account_id, bounced.data["communication_id"])
    client.lambda_.invoke("ses_events", sqs_event(queue_name(Queue.SES_EVENTS), [json.dumps(bounce)]))
    assert not sqs.receive_message(QueueUrl=url).get("Messages")
    assert len(of_type(account_events(account_id), "communication.bounced")) == 1
    assert [m["type"] for m in announced(aws)] == ["communication.bounced"]
    assert [m["type"] for m in told_by_the_tick(aws)] == ["communication.sent"]


def _bounce_of(aws: Any, account_id: str, communication_id: str) -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": BOUNCE}],
        },
        "mail": {"messageId": "x", "tags": {"account": [account_id], "communication": [communication_id]}},
    }


def test_a_complaint_is_told_with_the_party_who_complained(platform: Api, aws: Any) -> None:
    _, account_id = _open(platform, COMPLAINT)
    drain()
    [complained] = of_type(account_events(account_id), "communication.complained")
    assert complained.data["parties"] == ["account"]
    assert complained.data["kind"] == "account_welcome"
    assert "bounce_type" not in complained.data


def test_a_dossier_email_is_in_the_dossiers_activity(platform: Api, aws: Any) -> None:
    staff, account_id = _open(platform)
    drain()
    pid = staff.post("/procedures", {"name": "Prêt"}).body["id"]
    automation = {
        "trigger": "dossier_created",
        "to": "main",
        "subject": "Votre dossier",
        "body": "Votre lien : {{ dossier.portal_link }}",
    }
    assert staff.post(f"/procedures/{pid}/automations", automation).status == 201
    dossier = staff.post("/dossiers", {"procedure_id": pid, "recipient": {"name": "Léa", "email": "l@e.fr"}})
    drain()
    dossier_id = dossier.body["id"]
    sent = of_type(activity(aws, account_id, SubjectKind.DOSSIER, dossier_id), "communication.sent")
    assert [e.data["dossier_id"] for e in sent] == [dossier_id]
    assert sent[0].data["kind"] == "dossier_created"


def test_an_email_nobody_can_receive_is_told_skipped_at_once_by_the_staff_user_who_wrote_it(
    platform: Api, aws: Any
) -> None:
    staff, account_id = _open(platform)
    client_id, contract_id = _contract(staff, email=None)
    announced(aws)
    answer = staff.post(
        f"/clients/{client_id}/emails", {"contract_id": contract_id, "subject": "A", "body": "B"}
    )
    assert answer.body["status"] == "skipped"
    [skipped] = activity(aws, account_id, SubjectKind.CONTRACT, contract_id)
    assert (skipped.type.value, skipped.actor.kind, skipped.actor.id) == (
        "communication.skipped",
        ActorKind.STAFF,
        "user-admin",
    )
    assert skipped.data["reason"] == "no recipient has an email address"
    assert [m["id"] for m in announced(aws)] == [skipped.id]


def test_an_email_settled_by_ses_send_event_after_its_worker_died_is_told_sent_once(
    client: RelaisTestClient, platform: Api, aws: Any, monkeypatch: Any
) -> None:
    from chalicelib.adapters.dynamodb.repositories import DynamoCommunicationRepository

    original = DynamoCommunicationRepository.settle

    def crash_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(DynamoCommunicationRepository, "settle", original)
        raise ConnectionError("the Lambda died right after SES accepted the email")

    monkeypatch.setattr(DynamoCommunicationRepository, "settle", crash_once)
    _, account_id = _open(platform)
    for _ in range(3):
        drain()
    [sent] = of_type(account_events(account_id), "communication.sent")
    assert sent.data["kind"] == "account_welcome"
    assert [m["type"] for m in announced(aws)] == ["communication.sent"]


def test_a_settled_emails_event_is_due_at_once_for_the_tick_and_an_announced_one_after_its_grace(
    aws: Any,
) -> None:
    from datetime import timedelta

    from chalicelib.adapters.dynamodb.events import FANOUT_GRACE
    from chalicelib.domain.communications import (
        Communication,
        CommunicationKind,
        CommunicationStatus,
        Recipient,
        communication_event,
    )

    now = aws.now()

    def settled(comm_id: str, announced: bool) -> str:
        email = Communication(
            id=comm_id,
            account_id="acc_1",
            kind=CommunicationKind.ACCOUNT_WELCOME,
            sender_name="Relais",
            reply_to=None,
            to=(Recipient("Cabinet Martin", "lea@martin.fr", "account"),),
            created_at=now,
            variables={"account.name": "Cabinet Martin"},
        )
        aws.communications.add(email, retry_at=now)
        claimed = aws.communications.claim("acc_1", comm_id, now, timedelta(minutes=15))
        sent = claimed.sent("Bienvenue", "ses-1", now)
        event = communication_event(sent, now)
        assert event is not None
        written = aws.communications.settle(
            sent, expected=CommunicationStatus.SENDING, events=[event], at=now, announced=announced
        )
        assert written == [event]
        return event.id

    by_the_tick = settled("cm_worker", announced=False)
    by_its_writer = settled("cm_writer", announced=True)
    due_now, _ = aws.webhooks.due_events(now, 100)
    assert [e.id for e in due_now] == [by_the_tick]
    due_later, _ = aws.webhooks.due_events(now + FANOUT_GRACE, 100)
    assert sorted(e.id for e in due_later) == sorted([by_the_tick, by_its_writer])
