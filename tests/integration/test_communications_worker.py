"""The email pipeline end to end under moto: queue → communications_worker → SES → record."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.ses import SesMailer
from chalicelib.config import Queue, queue_name
from chalicelib.local import outbox
from chalicelib.local.stack import REGION
from chalicelib.services.communications import RETRY_AFTER
from chalicelib.wiring import Container
from tests.support import Api, RelaisTestClient, sqs_event


def _receive_all(services: Container) -> list[dict[str, Any]]:
    sqs = services.client("sqs")
    url = sqs.get_queue_url(QueueName=services.settings.communications_queue)["QueueUrl"]
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        messages += batch
    return messages


def _invoke(client: RelaisTestClient, bodies: list[str]) -> dict[str, Any]:
    return dict(
        client.lambda_.invoke(
            "communications_worker", sqs_event(queue_name(Queue.COMMUNICATIONS), bodies)
        ).payload
    )


@pytest.fixture
def welcome_message(platform: Api, aws: Container) -> str:
    """Open an account; return the body of the welcome message it queued."""
    assert (
        platform.post(
            "/admin/accounts", {"name": "Cabinet Roux", "plan": "premium", "sender_email": "roux@cabinet.fr"}
        ).status
        == 201
    )
    [message] = _receive_all(aws)
    return str(message["Body"])


def test_the_welcome_email_is_sent_in_french_to_the_sender_address_and_recorded(
    client: RelaisTestClient, aws: Container, welcome_message: str
) -> None:
    assert _invoke(client, [welcome_message]) == {"batchItemFailures": []}
    [email] = outbox.sent_messages(REGION)
    assert email["kind"] == "account_welcome"
    assert email["to"] == ["roux@cabinet.fr"]
    assert email["subject"] == "Bienvenue sur Relais, Cabinet Roux"
    assert "Le compte Cabinet Roux est ouvert sur Relais." in email["text"]
    assert "<p>Bonjour,</p>" in email["html"]
    assert email["from"] == "Relais <notifications@relais.example>"
    message = json.loads(welcome_message)
    record = aws.communications.get(message["account_id"], message["communication_id"])
    assert record is not None
    assert record.status.value == "sent"
    assert record.provider_message_id
    assert record.sent_at is not None
    assert record.subject == "Bienvenue sur Relais, Cabinet Roux"


def test_the_same_message_delivered_twice_sends_one_email(
    client: RelaisTestClient, welcome_message: str
) -> None:
    assert _invoke(client, [welcome_message, welcome_message]) == {"batchItemFailures": []}
    assert _invoke(client, [welcome_message]) == {"batchItemFailures": []}
    assert len(outbox.sent_messages(REGION)) == 1


class _ThrottledOnce:
    """An SES client that answers TooManyRequests to the first send, then behaves."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refusals = 1

    def send_email(self, **request: Any) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise ClientError(
                {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "SendEmail"
            )
        return self.real.send_email(**request)


def test_ses_throttling_returns_the_record_to_the_queue_and_the_retry_sends_it(
    client: RelaisTestClient, aws: Container, welcome_message: str
) -> None:
    aws.__dict__["mailer"] = SesMailer(_ThrottledOnce(aws.client("sesv2")), aws.settings.sender_address())
    event = sqs_event(queue_name(Queue.COMMUNICATIONS), [welcome_message])
    answer = client.lambda_.invoke("communications_worker", event).payload
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert outbox.sent_messages(REGION) == []
    message = json.loads(welcome_message)
    assert aws.communications.get(message["account_id"], message["communication_id"]).status.value == "queued"

    assert _invoke(client, [welcome_message]) == {"batchItemFailures": []}
    assert len(outbox.sent_messages(REGION)) == 1


def test_an_unreadable_message_fails_alone_and_the_rest_of_the_batch_is_delivered(
    client: RelaisTestClient, welcome_message: str
) -> None:
    garbled = [
        "{not json",
        json.dumps({"account_id": "A"}),
        json.dumps({"type": "scheduled_step", "account_id": "A", "contract_id": "K"}),
        json.dumps(
            {"type": "scheduled_step", "account_id": "A", "contract_id": "K", "kind": "X", "thing_id": "I"}
        ),
        json.dumps(
            {"type": "deadline", "account_id": "A", "dossier_id": "D", "automation_id": "T", "as_of": "hier"}
        ),
        json.dumps({"type": "carrier_pigeon"}),
    ]
    event = sqs_event(queue_name(Queue.COMMUNICATIONS), [welcome_message, *garbled])
    answer = client.lambda_.invoke("communications_worker", event).payload
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {record["messageId"] for record in event["Records"][1:]}
    assert len(outbox.sent_messages(REGION)) == 1


def test_a_lost_queue_message_is_queued_again_by_the_tick_and_delivered(
    client: RelaisTestClient, aws: Container, welcome_message: str
) -> None:
    from chalicelib.handlers import dunning_tick
    from chalicelib.local import pumps

    assert _receive_all(aws) == []
    assert pumps.drain() == 0
    assert dunning_tick.run(aws.now()) == 0
    assert dunning_tick.run(aws.now() + RETRY_AFTER + timedelta(seconds=1)) == 1
    pumps.drain()
    [email] = outbox.sent_messages(REGION)
    assert email["kind"] == "account_welcome"
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0


def test_the_scheduled_tick_handler_reads_the_event_time(
    client: RelaisTestClient, welcome_message: str
) -> None:
    from chalicelib.wiring import container

    later = container().now() + RETRY_AFTER + timedelta(minutes=1)
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    event["time"] = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.lambda_.invoke("dunning_tick", event).payload == {"queued": 1}


def test_a_crash_between_the_ses_call_and_the_log_write_neither_duplicates_nor_loses_the_email(
    client: RelaisTestClient, aws: Container, welcome_message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamodb.repositories import DynamoCommunicationRepository
    from chalicelib.domain.communications import CommunicationStatus
    from chalicelib.handlers import dunning_tick
    from chalicelib.local import pumps

    original = DynamoCommunicationRepository.settle

    def crash_once(self: Any, communication: Any, expected: Any = None, **_: Any) -> bool:
        monkeypatch.setattr(DynamoCommunicationRepository, "settle", original)
        raise ConnectionError("the Lambda died right after SES accepted the email")

    monkeypatch.setattr(DynamoCommunicationRepository, "settle", crash_once)
    message = json.loads(welcome_message)
    answer = _invoke(client, [welcome_message])
    assert len(answer["batchItemFailures"]) == 1
    assert len(outbox.sent_messages(REGION)) == 1
    stored = aws.communications.get(message["account_id"], message["communication_id"])
    assert stored is not None
    assert stored.status is CommunicationStatus.SENDING
    # SQS redelivers at once: the claim is held, nothing is sent, the message comes back later.
    assert len(_invoke(client, [welcome_message])["batchItemFailures"]) == 1
    # SES's Send event settles the email; every later delivery or re-queue finds it sent.
    pumps.drain()
    stored = aws.communications.get(message["account_id"], message["communication_id"])
    assert stored is not None
    assert stored.status is CommunicationStatus.SENT
    assert stored.provider_message_id
    assert _invoke(client, [welcome_message]) == {"batchItemFailures": []}
    assert dunning_tick.run(aws.now() + timedelta(days=1)) == 0
    pumps.drain()
    assert len(outbox.sent_messages(REGION)) == 1


def test_a_crash_before_ses_accepted_anything_is_sent_once_after_the_claim_lapses(
    client: RelaisTestClient, aws: Container, welcome_message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.domain.communications import CommunicationStatus
    from chalicelib.handlers import dunning_tick
    from chalicelib.local import pumps
    from chalicelib.services.communications import CLAIM_LEASE

    def die(self: Any, email: Any) -> str:
        raise ConnectionError("the Lambda died before SES answered")

    monkeypatch.setattr(SesMailer, "send", die)
    message = json.loads(welcome_message)
    assert len(_invoke(client, [welcome_message])["batchItemFailures"]) == 1
    monkeypatch.undo()
    assert outbox.sent_messages(REGION) == []
    later = aws.now() + CLAIM_LEASE + timedelta(minutes=1)
    aws.clock = lambda: later
    assert dunning_tick.run(later) == 1
    pumps.drain()
    assert len(outbox.sent_messages(REGION)) == 1
    stored = aws.communications.get(message["account_id"], message["communication_id"])
    assert stored is not None
    assert stored.status is CommunicationStatus.SENT


class _RefusingSes:
    """SES answering every send with one error, until told to let the real client through."""

    def __init__(self, real: Any, code: str, status: int) -> None:
        self.real, self.code, self.status = real, code, status
        self.refusing = True

    def send_email(self, **request: Any) -> Any:
        if self.refusing:
            raise ClientError(
                {"Error": {"Code": self.code}, "ResponseMetadata": {"HTTPStatusCode": self.status}},
                "SendEmail",
            )
        return self.real.send_email(**request)


@pytest.mark.parametrize("code", ["SendingPausedException", "AccountSuspendedException", "NotFoundException"])
def test_ses_refusing_the_whole_account_keeps_the_email_queued_and_it_goes_out_once_fixed(
    client: RelaisTestClient, aws: Container, welcome_message: str, code: str
) -> None:
    ses = _RefusingSes(aws.client("sesv2"), code, 400)
    aws.__dict__["mailer"] = SesMailer(ses, aws.settings.from_address)
    message = json.loads(welcome_message)
    assert len(_invoke(client, [welcome_message])["batchItemFailures"]) == 1
    stored = aws.communications.get(message["account_id"], message["communication_id"])
    assert stored is not None
    assert (stored.status.value, stored.status_reason) == ("queued", None)
    ses.refusing = False
    assert _invoke(client, [welcome_message]) == {"batchItemFailures": []}
    assert len(outbox.sent_messages(REGION)) == 1


def test_a_server_error_of_ses_is_retried_without_a_second_copy(
    client: RelaisTestClient, aws: Container, welcome_message: str
) -> None:
    class AcceptedThenFailed:
        """SES accepts the message, then answers 500: the worker cannot know it went out."""

        def __init__(self, real: Any) -> None:
            self.real = real

        def send_email(self, **request: Any) -> Any:
            self.real.send_email(**request)
            raise ClientError(
                {"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                "SendEmail",
            )

    real = aws.client("sesv2")
    aws.__dict__["mailer"] = SesMailer(AcceptedThenFailed(real), aws.settings.from_address)
    message = json.loads(welcome_message)
    assert len(_invoke(client, [welcome_message])["batchItemFailures"]) == 1
    assert len(outbox.sent_messages(REGION)) == 1
    # The message comes back at once: the claim is held, nothing is sent while SES's Send event may come.
    aws.__dict__["mailer"] = SesMailer(real, aws.settings.from_address)
    assert len(_invoke(client, [welcome_message])["batchItemFailures"]) == 1
    assert len(outbox.sent_messages(REGION)) == 1
    stored = aws.communications.get(message["account_id"], message["communication_id"])
    assert stored is not None
    assert stored.status.value == "sending"
