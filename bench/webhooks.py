"""What webhooks cost DynamoDB: the calls of one delivery attempt, and what a change pays per subscribed
endpoint.

Counted with the botocore hook of `bench/aws_calls.py`, on moto's in-process mock, the worker invoked through
app.py's registration with a receiver on 127.0.0.1. A delivery attempt should be one read (the endpoint and
the delivery together) and one conditional write of its outcome, whether it succeeds, starts the endpoint's
failure clock or stops it. A change writes its event once, in its own transaction, and the worker's fan-out
queues one message per endpoint without writing: the change's writes do not grow with the endpoints.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from bench.aws_calls import _HOOK, COUNTER, Call, _calls, _quiet
from bench.environment import local_stage
from bench.figures import Figure, table
from chalicelib import wiring
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.config import Queue, queue_name
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
from chalicelib.local.provision import provision
from chalicelib.local.stack import REGION
from chalicelib.services.events import announce
from chalicelib.services.webhooks import AttemptRequest
from tests.support import Api, RelaisTestClient, token

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
FEW, MANY = 1, 5
"""Endpoints subscribed when the change is measured first, then again."""


def run() -> list[Figure]:
    if _HOOK not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(_HOOK)
    with local_stage(), _quiet(), _receiver() as (url, answers):
        attempts, extra_writes, rows = _measure(url, answers)
    print(
        "Webhooks: DynamoDB calls of each delivery attempt, and a change's writes per subscribed endpoint",
        file=sys.stderr,
    )
    print(table(("what", "DynamoDB calls", "breakdown"), rows), end="\n\n", file=sys.stderr)
    return [
        Figure(
            name="webhook_dynamodb_calls_per_delivery",
            value=max(attempts),
            target=2,
            better="lower",
            unit="calls",
            issue=16,
            detail="the slowest attempt: one read of endpoint and delivery, one conditional write",
        ),
        Figure(
            name="webhook_extra_writes_per_endpoint",
            value=extra_writes,
            target=0,
            better="lower",
            unit="writes",
            issue=16,
            detail="the event is written once, with its change; the worker fans it out",
        ),
    ]


@contextmanager
def _receiver() -> Iterator[tuple[str, list[int]]]:
    """A receiver on loopback: its URL, and the statuses it answers in turn (200 once the list is empty)."""
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(answers.pop(0) if answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", answers
    finally:
        server.shutdown()
        server.server_close()


def _dynamodb(calls: Counter[Call]) -> Counter[Call]:
    return Counter({call: n for call, n in calls.items() if call[0] == "dynamodb"})


def _writes(calls: Counter[Call]) -> int:
    return sum(n for (_, operation), n in calls.items() if operation in WRITES)


def _measure(url: str, answers: list[int]) -> tuple[list[int], float, list[tuple[str, int, str]]]:
    with mock_aws():
        wiring.reset()
        services = wiring.container()
        provision(services.client, account_id=DEFAULT_ACCOUNT_ID, region=REGION)
        client = RelaisTestClient()
        platform = Api(client, token("platform_admin"))

        def open_account(endpoints: int) -> tuple[Api, str]:
            body = {"name": "Cabinet Banc d'Essai", "plan": "premium", "sender_email": "contact@banc.example"}
            account_id = platform.post("/admin/accounts", body).body["id"]
            admin = platform.as_(token("admin", account_id))
            subscribe(admin, endpoints)
            return admin, account_id

        def subscribe(admin: Api, count: int) -> None:
            for _ in range(count):
                answer = admin.post("/webhooks", {"url": url, "events": ["*"]})
                if answer.status != 201:
                    raise RuntimeError(f"no endpoint: {answer.body}")

        def change_and_fan_out(account_id: str) -> Counter[Call]:
            """A change writing one event in its transaction and announcing it, then the worker's fan-out."""
            event = Event(
                account_id,
                EventType.JOB_FINISHED,
                datetime.now(UTC),
                Subject(SubjectKind.ACCOUNT, account_id),
                {"job_id": "job_1"},
            )
            COUNTER.take()
            event_item(event).save()
            announce([event], services.webhooks_queue)
            change = COUNTER.take()
            _invoke(client, _received())
            return _dynamodb(change + COUNTER.take())

        admin, account_id = open_account(FEW)
        change_and_fan_out(account_id)  # warms the container up
        _forget_queued()
        few = change_and_fan_out(account_id)
        _forget_queued()
        subscribe(admin, MANY - FEW)
        many = change_and_fan_out(account_id)
        _forget_queued()
        extra = (_writes(many) - _writes(few)) / (MANY - FEW)
        rows: list[tuple[str, int, str]] = [
            (f"change + fan-out, {FEW} endpoint", sum(few.values()), _calls(few)),
            (f"change + fan-out, {MANY} endpoints", sum(many.values()), _calls(many)),
        ]

        _, account_id = open_account(1)
        change_and_fan_out(account_id)
        [first] = _received()["Records"]
        request = AttemptRequest.from_message(json.loads(first["body"]))
        attempts = []
        for number, (label, status) in enumerate(
            (
                ("attempt 1 answered 500 (the failure clock starts)", 500),
                ("attempt 2 answered 500 (the clock runs)", 500),
                ("attempt 3 answered 200 (the clock stops)", 200),
                ("attempt of a duplicate message (posts nothing)", 200),
            ),
            start=1,
        ):
            answers.append(status)
            attempt = replace(request, attempt=min(number, 3))
            COUNTER.take()
            _invoke(client, {"Records": [_record(json.dumps(attempt.to_message()))]})
            calls = _dynamodb(COUNTER.take())
            attempts.append(sum(calls.values()))
            rows.append((label, sum(calls.values()), _calls(calls)))
        answers.clear()
        wiring.reset()
    return attempts, extra, rows


def _queue_url() -> str:
    sqs = wiring.container().client("sqs")
    return str(sqs.get_queue_url(QueueName=queue_name(Queue.WEBHOOKS))["QueueUrl"])


def _forget_queued() -> None:
    """Drop the deliveries a fan-out queued: the change's figure is measured without them."""
    sqs, url = wiring.container().client("sqs"), _queue_url()
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _received() -> dict[str, Any]:
    """The one message waiting on the webhooks queue, received uncounted as Lambda's event source mapping
    would, as an SQS event."""
    sqs = wiring.container().client("sqs")
    messages = sqs.receive_message(QueueUrl=_queue_url(), MaxNumberOfMessages=1).get("Messages") or []
    if len(messages) != 1:
        raise RuntimeError(f"no message on {queue_name(Queue.WEBHOOKS)}")
    COUNTER.take()
    return {"Records": [_record(messages[0]["Body"])]}


def _record(body: str) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "bench",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:{queue_name(Queue.WEBHOOKS)}",
        "awsRegion": REGION,
    }


def _invoke(client: RelaisTestClient, event: dict[str, Any]) -> None:
    answer = client.lambda_.invoke("webhook_worker", event).payload
    if answer.get("batchItemFailures"):
        raise RuntimeError(f"the webhook worker failed: {answer}")
