"""`mailing.finished` and `job.finished`: written once, by the write that ends the mailing or the job
(the last email settled, the last page fanned out, the fan-out given up, the last chunk counted), with
counts that add up, and announced on the webhooks queue; redeliveries say nothing again."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.events import ActorKind, SubjectKind
from chalicelib.domain.mailings import PAGE_SIZE
from chalicelib.local.pumps import drain
from tests.announced import account_events, announced, of_type, told_by_the_tick
from tests.support import Api, open_account

pytestmark = pytest.mark.usefixtures("webhooks_left_queued")


def _create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def _send(staff: Api, entity: str = "clients") -> str:
    body = {"name": "Offre", "subject": "Du nouveau", "body": "Bonjour.", "audience": {"entity": entity}}
    mailing_id = str(_create(staff, "/mailings", body)["id"])
    assert staff.post(f"/mailings/{mailing_id}/send").status == 202
    return mailing_id


def test_a_mailing_over_two_pages_says_it_finished_once_with_counts_that_add_up(
    platform: Api, aws: Any
) -> None:
    staff, account_id = open_account(platform)
    for n in range(PAGE_SIZE + 2):
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"})
    _create(staff, "/clients", {"name": "Sans adresse"})
    announced(aws)
    mailing_id = _send(staff)
    drain()
    events = account_events(account_id)
    [finished] = of_type(events, "mailing.finished")
    assert finished.data == {
        "mailing_id": mailing_id,
        "status": "sent",
        "total": PAGE_SIZE + 3,
        "sent": PAGE_SIZE + 2,
        "failed": 0,
        "skipped": 1,
    }
    assert (finished.subject.kind, finished.actor.kind) == (SubjectKind.ACCOUNT, ActorKind.SYSTEM)
    shown = staff.get(f"/mailings/{mailing_id}").body
    assert (shown["status"], shown["sent"], shown["skipped"]) == ("sent", PAGE_SIZE + 2, 1)
    # Each email sent is told on the account (a mailing is about no one contract), with its mailing.
    sent = [e for e in of_type(events, "communication.sent") if e.data["kind"] == "mailing"]
    assert len(sent) == PAGE_SIZE + 2
    assert {e.data["mailing_id"] for e in sent} == {mailing_id}
    # The worker announces none of the events its outcomes write: the next webhook tick queues them.
    at_once = announced(aws)
    assert [m for m in at_once if m["type"] == "communication.sent"] == []
    messages = at_once + told_by_the_tick(aws)
    assert [m["id"] for m in messages if m["type"] == "mailing.finished"] == [finished.id]
    mailing_sent = [
        m for m in messages if m["type"] == "communication.sent" and m["data"]["kind"] == "mailing"
    ]
    assert sorted(m["id"] for m in mailing_sent) == sorted(e.id for e in sent)


def test_a_redelivered_page_and_email_after_the_end_say_nothing_again(platform: Api, aws: Any) -> None:
    from chalicelib.services.communications import DeliveryRequest, deliver

    staff, account_id = open_account(platform)
    jean = _create(staff, "/clients", {"name": "Jean", "email": "jean@dupont.fr"})
    mailing_id = _send(staff)
    drain()
    _first_page_again(aws, account_id, mailing_id, announcing=True)
    [email] = staff.get(f"/clients/{jean['id']}/communications").body["items"]
    assert (
        deliver(
            DeliveryRequest(account_id, email["id"]),
            aws.communications,
            aws.mailer,
            aws.suppressions,
            aws.now(),
        )
        is None
    )
    drain()
    events = account_events(account_id)
    assert len(of_type(events, "mailing.finished")) == 1
    assert len([e for e in of_type(events, "communication.sent") if e.data["kind"] == "mailing"]) == 1


def test_a_mailing_whose_audience_nobody_can_receive_ends_with_its_last_page(platform: Api, aws: Any) -> None:
    staff, account_id = open_account(platform)
    _create(staff, "/clients", {"name": "Paul Sansmail"})
    mailing_id = _send(staff)
    drain()
    [finished] = of_type(account_events(account_id), "mailing.finished")
    assert finished.data == {
        "mailing_id": mailing_id,
        "status": "sent",
        "total": 1,
        "sent": 0,
        "failed": 0,
        "skipped": 1,
    }


def test_a_mailing_whose_fan_out_is_given_up_ends_partially_failed_once(
    platform: Api, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.domain.jobs import MAX_RESUMES
    from chalicelib.handlers import dunning_tick
    from chalicelib.services import mailings

    def failing(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("this page fails every time")

    monkeypatch.setattr(mailings, "fan_out_page", failing)
    staff, account_id = open_account(platform)
    _create(staff, "/clients", {"name": "Jean", "email": "jean@dupont.fr"})
    mailing_id = _send(staff)
    for stall in range(1, MAX_RESUMES + 4):
        drain()
        dunning_tick.run(aws.now() + stall * timedelta(minutes=16))
    drain()
    [finished] = of_type(account_events(account_id), "mailing.finished")
    assert finished.data["status"] == "partially_failed"
    assert (finished.data["mailing_id"], finished.data["total"]) == (mailing_id, 0)


def test_two_last_emails_settling_at_once_say_the_end_once_with_the_final_counts(
    platform: Api, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second email's first guess ("not the last") is refused; before it reads the mailing, the third
    email settles; what it read is then stale, so it guesses again, and ends the mailing with 3 sent."""
    from chalicelib.adapters.dynamodb import mailing_counts
    from chalicelib.adapters.dynamodb.models import MailingItem
    from chalicelib.domain.communications import CommunicationStatus
    from chalicelib.handlers import bulk_worker
    from chalicelib.services.communications import DeliveryRequest, deliver

    staff, account_id = open_account(platform)
    for n in range(3):
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"})
    mailing_id = _send(staff)
    sqs = aws.client("sqs")
    [page] = sqs.receive_message(QueueUrl=aws.bulk_queue.url)["Messages"]
    bulk_worker.handle({"Records": [_record(aws, page)]}, None)
    requests = [
        DeliveryRequest.from_message(json.loads(m["Body"]))
        for m in sqs.receive_message(QueueUrl=aws.communications_queue.url, MaxNumberOfMessages=10)[
            "Messages"
        ]
    ]
    first, second, third = requests

    def send(request: DeliveryRequest) -> CommunicationStatus | None:
        return deliver(request, aws.communications, aws.mailer, aws.suppressions, aws.now())

    assert send(first) is CommunicationStatus.SENT
    real_read, real_ends = mailing_counts._read, mailing_counts._ends
    guesses: list[str] = []

    def refused_first_guess(count: Any) -> Any:
        guesses.append("guess")
        return MailingItem.pk.exists() if len(guesses) == 1 else real_ends(count)

    def read_while_the_third_lands(pk: str) -> Any:
        current = real_read(pk)
        if len(guesses) == 1:
            monkeypatch.setattr(mailing_counts, "_ends", real_ends)
            monkeypatch.setattr(mailing_counts, "_read", real_read)
            assert send(third) is CommunicationStatus.SENT
        return current

    monkeypatch.setattr(mailing_counts, "_ends", refused_first_guess)
    monkeypatch.setattr(mailing_counts, "_read", read_while_the_third_lands)
    assert send(second) is CommunicationStatus.SENT
    [finished] = of_type(account_events(account_id), "mailing.finished")
    assert (finished.data["sent"], finished.data["total"], finished.data["status"]) == (3, 3, "sent")
    assert staff.get(f"/mailings/{mailing_id}").body["status"] == "sent"


def _record(aws: Any, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.bulk_queue.arn,
        "awsRegion": aws.settings.region,
    }


def _job(staff: Api, job_id: str) -> dict[str, Any]:
    return dict(staff.get(f"/jobs/{job_id}").body)


def test_a_bulk_job_says_it_finished_once_with_its_counts(platform: Api, aws: Any) -> None:
    staff, account_id = open_account(platform)
    b = _create(staff, "/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"})
    jean = _create(staff, "/clients", {"name": "Jean", "email": "jean@dupont.fr"})
    ids = [
        _create(
            staff, "/contracts", {"client_id": jean["id"], "reference": f"K-{n}", "apporteur_id": b["id"]}
        )["id"]
        for n in range(3)
    ]
    ids += [f"unknown-{n}" for n in range(150)]
    announced(aws)
    accepted = staff.post("/contracts/bulk-updates", {"ids": ids, "set": {"communication_rule": "apporteur"}})
    job_id = accepted.body["job_id"]
    drain()
    [finished] = of_type(account_events(account_id), "job.finished")
    assert finished.data == {
        "job_id": job_id,
        "kind": "contract_communication_rule",
        "status": "partially_failed",
        "total": 153,
        "succeeded": 3,
        "failed": 150,
    }
    job = _job(staff, job_id)
    assert (job["succeeded"] + job["failed"], job["status"]) == (job["total"], "partially_failed")
    assert [m["type"] for m in announced(aws)] == ["job.finished"]


def test_a_redelivered_last_chunk_says_nothing_again(platform: Api, aws: Any) -> None:
    from chalicelib.domain.jobs import Failure, FailureCode

    staff, account_id = open_account(platform)
    job_id = staff.post(
        "/contracts/bulk-updates", {"ids": ["unknown"], "set": {"communication_rule": "client"}}
    ).body["job_id"]
    drain()
    again = aws.jobs.record_chunk(
        account_id, job_id, 0, 0, [Failure("unknown", FailureCode.NOT_FOUND)], aws.now()
    )
    assert again is None
    [finished] = of_type(account_events(account_id), "job.finished")
    assert finished.data["status"] == "failed"


class _JobConditionRefusedOnce:
    """DynamoDB refusing, once, the transaction that counts a job's last chunk on the job's own condition
    (the chunk's item and the event were fine): its answer when another count lands on the job between
    that chunk's read of the job and its write."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        body = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
        if self.refused or "job.finished" not in body:
            return None
        items = json.loads(body)["TransactItems"]
        assert list(items[-1]) == ["Update"]
        assert items[-1]["Update"]["Key"]["SK"] == {"S": "JOB"}
        self.refused += 1
        reasons = [{"Code": "None"}] * (len(items) - 1) + [{"Code": "ConditionalCheckFailed"}]
        error = {"Code": "TransactionCanceledException", "Message": "refused by the test"}
        return _Refused(), {"Error": error, "CancellationReasons": reasons}


class _Refused:
    """What botocore needs of an HTTP answer to raise the parsed error."""

    def __init__(self) -> None:
        self.status_code = 400
        self.headers: dict[str, str] = {}


def test_a_last_chunk_refused_on_the_job_counts_again_and_ends_the_job_once(platform: Api, aws: Any) -> None:
    """The write that ends the job is refused on the job's condition, as when two last chunks race (the
    job's update comes after the event's put in that transaction): the chunk reads the job again and ends
    it once, with counts that add up, rather than failing its whole batch."""
    from chalicelib.adapters.dynamodb.models import transactions
    from chalicelib.domain.jobs import CHUNK_SIZE, Failure, FailureCode

    staff, account_id = open_account(platform)
    ids = [f"unknown-{n}" for n in range(CHUNK_SIZE + 1)]
    body = {"ids": ids, "set": {"communication_rule": "client"}}
    job_id = staff.post("/contracts/bulk-updates", body).body["job_id"]
    chunks = [ids[:CHUNK_SIZE], ids[CHUNK_SIZE:]]
    refuse = _JobConditionRefusedOnce()
    events = transactions().client.meta.events
    events.register("before-call.dynamodb.TransactWriteItems", refuse)
    try:
        counted = [
            aws.jobs.record_chunk(
                account_id, job_id, n, 0, [Failure(i, FailureCode.NOT_FOUND) for i in chunk], aws.now()
            )
            for n, chunk in enumerate(chunks)
        ]
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", refuse)

    assert refuse.refused == 1
    assert counted[0] == []
    assert [event.type.value for event in counted[1] or []] == ["job.finished"]
    [finished] = of_type(account_events(account_id), "job.finished")
    assert finished.data == {
        "job_id": job_id,
        "kind": "contract_communication_rule",
        "status": "failed",
        "total": CHUNK_SIZE + 1,
        "succeeded": 0,
        "failed": CHUNK_SIZE + 1,
    }
    job = _job(staff, job_id)
    assert (job["status"], job["succeeded"], job["failed"]) == ("failed", 0, job["total"])


def test_a_redelivered_page_does_not_queue_the_next_page_again(platform: Api, aws: Any) -> None:
    """Each copy of a page queuing the next one would multiply the copies down the pages (a 1,000-recipient
    mailing delivered twice over runs its last page a million times); the tick resumes a fan-out whose next
    page was never queued."""
    staff, account_id = open_account(platform)
    for n in range(PAGE_SIZE + 1):
        _create(staff, "/clients", {"name": f"Client {n}", "email": f"c{n}@exemple.fr"})
    mailing_id = _send(staff)
    drain()
    _first_page_again(aws, account_id, mailing_id)
    assert aws.client("sqs").receive_message(QueueUrl=aws.bulk_queue.url).get("Messages", []) == []
    drain()
    shown = staff.get(f"/mailings/{mailing_id}").body
    assert (shown["status"], shown["total"], shown["sent"]) == ("sent", PAGE_SIZE + 1, PAGE_SIZE + 1)


def _first_page_again(aws: Any, account_id: str, mailing_id: str, announcing: bool = False) -> None:
    """The mailing's first page fanned out once more, as a redelivered message does (its events
    announced on the webhooks queue when `announcing`)."""
    from chalicelib.services.mailings import MailingPage, fan_out_page

    fan_out_page(
        MailingPage(account_id, mailing_id, 0),
        aws.mailings,
        aws.accounts,
        aws.partners,
        aws.unsubscriptions,
        aws.suppressions,
        aws.communications_queue,
        aws.bulk_queue,
        aws.now(),
        aws.webhooks_queue if announcing else None,
    )
