"""Bounces and complaints end to end on moto: SES's mailbox simulator (played by the local stage) →
the ses-events queue → `ses_events` → the communication and the account's suppression list."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.config import Queue, queue_name
from chalicelib.domain.communications import Communication, CommunicationKind, CommunicationStatus, Recipient
from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from chalicelib.services.communications import queue_communication
from tests.support import Api, RelaisTestClient

BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


def _open(platform: Api, sender: str) -> str:
    body = {"name": "Cabinet Martin", "plan": "premium", "sender_email": sender}
    return str(platform.post("/admin/accounts", body).body["id"])


def _welcome_of(aws: Any, account_id: str) -> Communication:
    [message] = [m for m in sent_messages(REGION) if m["kind"] == "account_welcome"]
    communication = aws.communications.get(account_id, message["communication_id"])
    assert communication is not None
    return communication


def _another_email(aws: Any, account_id: str, to: str) -> Communication:
    now = aws.now()
    communication = Communication(
        id="cm_second",
        account_id=account_id,
        kind=CommunicationKind.ACCOUNT_WELCOME,
        sender_name="Relais",
        reply_to=None,
        to=(Recipient("Cabinet Martin", to, "account"),),
        created_at=now,
        variables={"account.name": "Cabinet Martin"},
    )
    queue_communication(communication, aws.communications, aws.communications_queue, now)
    drain()
    stored = aws.communications.get(account_id, "cm_second")
    assert stored is not None
    return stored


def test_an_email_to_the_bounce_simulator_is_sent_then_shows_bounced_and_the_next_one_is_skipped(
    platform: Api, aws: Any
) -> None:
    account_id = _open(platform, BOUNCE)
    drain()
    welcome = _welcome_of(aws, account_id)
    assert welcome.status is CommunicationStatus.BOUNCED
    assert welcome.status_reason == "bounce: Permanent/General"
    assert welcome.provider_message_id
    assert aws.suppressions.suppressed(account_id, [BOUNCE]) == {BOUNCE}
    second = _another_email(aws, account_id, BOUNCE)
    assert second.status is CommunicationStatus.SKIPPED
    assert len(sent_messages(REGION)) == 1


def test_an_email_to_the_complaint_simulator_shows_complained(platform: Api, aws: Any) -> None:
    account_id = _open(platform, COMPLAINT)
    drain()
    assert _welcome_of(aws, account_id).status is CommunicationStatus.COMPLAINED
    assert aws.suppressions.suppressed(account_id, [COMPLAINT]) == {COMPLAINT}


def test_suppression_is_per_account(platform: Api, aws: Any) -> None:
    first = _open(platform, BOUNCE)
    drain()
    second = _open(platform, "contact@martin.fr")
    drain()
    assert aws.suppressions.suppressed(first, [BOUNCE]) == {BOUNCE}
    assert aws.suppressions.suppressed(second, [BOUNCE]) == set()


def test_an_ordinary_address_is_delivered_and_nothing_comes_back(platform: Api, aws: Any) -> None:
    account_id = _open(platform, "contact@martin.fr")
    drain()
    assert _welcome_of(aws, account_id).status is CommunicationStatus.SENT


def test_the_deployed_handler_reads_an_eventbridge_event_and_reports_an_unreadable_record(
    client: RelaisTestClient, platform: Api, aws: Any
) -> None:
    account_id = _open(platform, "contact@martin.fr")
    drain()
    welcome = _welcome_of(aws, account_id)
    event = {
        "source": "aws.ses",
        "detail-type": "Email Complaint Received",
        "detail": {
            "eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "contact@martin.fr"}]},
            "mail": {"messageId": "x", "tags": {"account": [account_id], "communication": [welcome.id]}},
        },
    }
    records = [
        {"messageId": "m-1", "receiptHandle": "r-1", "body": json.dumps(event)},
        {"messageId": "m-2", "receiptHandle": "r-2", "body": "not json"},
    ]
    sqs_event = {
        "Records": [
            {
                **record,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue_name(Queue.SES_EVENTS)}",
                "awsRegion": REGION,
            }
            for record in records
        ]
    }
    answer = client.lambda_.invoke("ses_events", sqs_event).payload
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert aws.communications.get(account_id, welcome.id).status is CommunicationStatus.COMPLAINED
    assert aws.suppressions.suppressed(account_id, ["contact@martin.fr"]) == {"contact@martin.fr"}
