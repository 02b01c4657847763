"""SES's bounce or complaint may be handled before the worker that sent the email writes its outcome (SES
accepted the email, the worker has not settled it yet): the email still shows the feedback, is counted
`sent` in its mailing once, the mailing ends once, and each event is written once, whatever the order;
the same SES event twice, or the same delivery message twice, changes nothing more."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.config import Queue, queue_name
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
    TemplateSource,
)
from chalicelib.domain.events import SubjectKind
from chalicelib.handlers import bulk_worker, ses_events
from chalicelib.local.stack import REGION
from chalicelib.services.communications import DeliveryRequest, deliver, queue_communication
from chalicelib.services.ports import Mailer, OutgoingEmail
from tests.announced import account_events, activity, of_type
from tests.support import Api, open_account

BOUNCED_CLIENT = "c1@exemple.fr"
FEEDBACK_STATUS = {"Bounce": CommunicationStatus.BOUNCED, "Complaint": CommunicationStatus.COMPLAINED}


def _ses_record(email: OutgoingEmail, message_id: str, event_type: str, address: str) -> dict[str, Any]:
    """One SES event as EventBridge puts it on the ses-events queue, as one SQS record."""
    mail = {
        "messageId": message_id,
        "tags": {
            "account": [email.account_id],
            "communication": [email.communication_id],
            **({"mailing": [email.mailing_id]} if email.mailing_id else {}),
        },
        "commonHeaders": {"subject": email.subject},
    }
    detail: dict[str, Any] = {"eventType": event_type, "mail": mail}
    if event_type == "Bounce":
        detail["bounce"] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address}],
        }
    elif event_type == "Complaint":
        detail["complaint"] = {"complainedRecipients": [{"emailAddress": address}]}
    else:
        detail["send"] = {}
    body = {"source": "aws.ses", "detail-type": f"Email {event_type}", "detail": detail}
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "r",
        "body": json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue_name(Queue.SES_EVENTS)}",
        "awsRegion": REGION,
    }


def _handle(*records: dict[str, Any]) -> None:
    assert ses_events.handle({"Records": list(records)}, None) == {"batchItemFailures": []}


class FeedbackRace:
    """SES, as seen from the worker: it accepts each email; the one to `address` comes back as a bounce or
    a complaint that, with `first`, is handled before `send` returns (before the worker settles)."""

    def __init__(self, mailer: Mailer, address: str, event_type: str, first: bool) -> None:
        self._mailer, self._address, self._event_type, self._first = mailer, address, event_type, first
        self.feedback: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []

    def send(self, email: OutgoingEmail) -> str:
        message_id = self._mailer.send(email)
        self.accepted.append(_ses_record(email, message_id, "Send", ""))
        if any(str(r.email) == self._address for r in (*(email.envelope or ()), *email.to)):
            self.feedback.append(_ses_record(email, message_id, self._event_type, self._address))
            if self._first:
                _handle(self.feedback[-1])
        return message_id

    def after_the_worker(self) -> None:
        """What SES says once the worker settled: the feedback it held back, then every Send event."""
        if not self._first:
            _handle(*self.feedback)
        _handle(*self.accepted)


def _create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def _mailing_requests(aws: Any, staff: Api) -> tuple[str, list[DeliveryRequest]]:
    """A mailing to three clients, fanned out: its id and the three delivery messages, not yet handled."""
    body = {"name": "Offre", "subject": "Du nouveau", "body": "Bonjour.", "audience": {"entity": "clients"}}
    mailing_id = str(_create(staff, "/mailings", body)["id"])
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    sqs = aws.client("sqs")
    [page] = sqs.receive_message(QueueUrl=aws.bulk_queue.url)["Messages"]
    record = {
        "messageId": page["MessageId"],
        "receiptHandle": page["ReceiptHandle"],
        "body": page["Body"],
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.bulk_queue.arn,
        "awsRegion": aws.settings.region,
    }
    assert bulk_worker.handle({"Records": [record]}, None) == {"batchItemFailures": []}
    messages = sqs.receive_message(QueueUrl=aws.communications_queue.url, MaxNumberOfMessages=10)["Messages"]
    return mailing_id, [DeliveryRequest.from_message(json.loads(m["Body"])) for m in messages]


@pytest.mark.parametrize("event_type", ["Bounce", "Complaint"])
@pytest.mark.parametrize("feedback_first", [True, False], ids=["feedback_first", "worker_first"])
def test_a_mailings_email_bounced_before_its_worker_settled_counts_once_and_the_mailing_ends_once(
    platform: Api, aws: Any, event_type: str, feedback_first: bool
) -> None:
    staff, account_id = open_account(platform)
    clients = [
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"}) for n in range(3)
    ]
    mailing_id, requests = _mailing_requests(aws, staff)
    ses = FeedbackRace(aws.ses_mailer, BOUNCED_CLIENT, event_type, feedback_first)

    def work(request: DeliveryRequest) -> CommunicationStatus | None:
        return deliver(request, aws.communications, ses, aws.suppressions, aws.now())

    assert [work(request) for request in requests] == [CommunicationStatus.SENT] * 3
    ses.after_the_worker()
    # The same delivery message again, the same SES events again: nothing moves.
    assert [work(request) for request in requests] == [None] * 3
    ses.after_the_worker()
    if feedback_first:
        _handle(*ses.feedback)

    shown = staff.get(f"/mailings/{mailing_id}").body
    assert (shown["status"], shown["total"], shown["sent"], shown["failed"], shown["skipped"]) == (
        "sent",
        3,
        3,
        0,
        0,
    )
    [email] = staff.get(f"/clients/{clients[1]['id']}/communications").body["items"]
    assert email["status"] == FEEDBACK_STATUS[event_type].value
    stored = aws.communications.get(account_id, email["id"])
    assert stored.sent_at is not None
    assert stored.provider_message_id
    assert stored.status_reason.startswith(event_type.lower())
    events = account_events(account_id)
    [finished] = of_type(events, "mailing.finished")
    assert (finished.data["sent"], finished.data["total"], finished.data["status"]) == (3, 3, "sent")
    assert len([e for e in of_type(events, "communication.sent") if e.data["kind"] == "mailing"]) == 3
    [feedback] = of_type(events, f"communication.{FEEDBACK_STATUS[event_type].value}")
    assert (feedback.data["communication_id"], feedback.data["mailing_id"]) == (email["id"], mailing_id)
    assert aws.suppressions.suppressed(account_id, [BOUNCED_CLIENT]) == {BOUNCED_CLIENT}


class WorkerDied(Exception):
    """The worker's Lambda ended between SES's answer and the outcome's write (a timeout, a crash)."""


def test_a_mailings_email_bounced_then_accepted_by_ses_after_its_worker_died_counts_once(
    platform: Api, aws: Any
) -> None:
    staff, account_id = open_account(platform)
    clients = [
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"}) for n in range(3)
    ]
    mailing_id, requests = _mailing_requests(aws, staff)
    ses = FeedbackRace(aws.ses_mailer, BOUNCED_CLIENT, "Bounce", first=False)

    class DyingWorkerSes:
        def send(self, email: OutgoingEmail) -> str:
            message_id = ses.send(email)
            if ses.feedback and ses.feedback[-1]["body"].count(email.communication_id):
                raise WorkerDied()
            return message_id

    def work(request: DeliveryRequest) -> CommunicationStatus | None:
        return deliver(request, aws.communications, DyingWorkerSes(), aws.suppressions, aws.now())

    outcomes = []
    for request in requests:
        try:
            outcomes.append(work(request))
        except WorkerDied:
            outcomes.append(None)
    assert sorted(map(str, outcomes)) == ["None", "sent", "sent"]
    # SES's bounce is handled before its Send event, twice each; the message comes back: nothing moves.
    for _ in range(2):
        _handle(*ses.feedback)
        _handle(*ses.accepted)
    assert [work(request) for request in requests] == [None] * 3

    shown = staff.get(f"/mailings/{mailing_id}").body
    assert (shown["status"], shown["total"], shown["sent"]) == ("sent", 3, 3)
    [email] = staff.get(f"/clients/{clients[1]['id']}/communications").body["items"]
    assert email["status"] == "bounced"
    events = account_events(account_id)
    assert len(of_type(events, "mailing.finished")) == 1
    assert len(of_type(events, "communication.bounced")) == 1
    assert len([e for e in of_type(events, "communication.sent") if e.data["kind"] == "mailing"]) == 3


@pytest.mark.parametrize(
    ("kind", "subject_kind", "subject_field"),
    [
        (CommunicationKind.UNPAID_CALL, SubjectKind.CONTRACT, "contract_id"),
        (CommunicationKind.DOSSIER_CREATED, SubjectKind.DOSSIER, "dossier_id"),
    ],
)
@pytest.mark.parametrize("feedback_first", [True, False], ids=["feedback_first", "worker_first"])
def test_a_dunning_or_dossier_email_bounced_before_its_worker_settled_ends_bounced_with_each_event_once(
    platform: Api,
    aws: Any,
    kind: CommunicationKind,
    subject_kind: SubjectKind,
    subject_field: str,
    feedback_first: bool,
) -> None:
    _, account_id = open_account(platform)
    now = aws.now()
    communication = Communication(
        id="cm_race",
        account_id=account_id,
        kind=kind,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
        created_at=now,
        template=TemplateSource("Votre dossier", "Bonjour."),
        **{subject_field: "sj_race"},
    )
    queue_communication(communication, aws.communications, aws.communications_queue, now)
    sqs = aws.client("sqs")
    [message] = sqs.receive_message(QueueUrl=aws.communications_queue.url)["Messages"]
    request = DeliveryRequest.from_message(json.loads(message["Body"]))
    ses = FeedbackRace(aws.ses_mailer, "jean@dupont.fr", "Bounce", feedback_first)

    def work() -> CommunicationStatus | None:
        return deliver(request, aws.communications, ses, aws.suppressions, aws.now())

    assert work() is CommunicationStatus.SENT
    ses.after_the_worker()
    assert work() is None
    ses.after_the_worker()

    stored = aws.communications.get(account_id, "cm_race")
    assert stored.status is CommunicationStatus.BOUNCED
    assert stored.status_reason == "bounce: Permanent/General"
    assert stored.sent_at is not None
    assert (stored.subject, bool(stored.provider_message_id)) == ("Votre dossier", True)
    logged = activity(aws, account_id, subject_kind, "sj_race")
    [sent] = of_type(logged, "communication.sent")
    [bounced] = of_type(logged, "communication.bounced")
    assert len(logged) == 2
    assert sent.at <= bounced.at
