"""Webhooks end to end on moto, with a real receiver on 127.0.0.1 (the local stage's rule): what the
broker's software receives is signed as Standard Webhooks says (its reference verifier checks it), is
retried on schedule with the same webhook-id, is never delivered twice, and stops at a 410."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.domain.clock import iso
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind, staff
from chalicelib.local import outbox
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from chalicelib.services.events import announce
from tests.support import Api, token

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A receiver on loopback whose answers the test sets: one status per request, the last repeated."""

    url: str
    answers: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)

    def answer(self) -> int:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.answer())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/relais"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def clock(aws: Any) -> list[datetime]:
    """The container's clock, which the test moves (`clock[0] = ...`)."""
    now = [T0]
    aws.clock = lambda: now[0]
    return now


def _account(platform: Api, name: str = "Cabinet Martin") -> tuple[Api, str]:
    body = {"name": name, "plan": "premium", "sender_email": "contact@martin.fr"}
    account_id = platform.post("/admin/accounts", body).body["id"]
    drain()
    # The webhook tick, within the minute, fans the welcome's `communication.sent` out (to no endpoint yet):
    # on a test's stopped clock, an endpoint created next is created in the welcome's very second.
    assert platform.post("/_local/tick", {}).status == 200
    return platform.as_(token("admin", account_id)), account_id


def _emit(aws: Any, account_id: str, kind: EventType = EventType.DOSSIER_COMPLETED) -> Event:
    """An event as a change writes it: its item (in the change's transaction), then its message."""
    event = Event(
        account_id,
        kind,
        aws.now(),
        Subject(SubjectKind.DOSSIER, "dos_1"),
        {"dossier_id": "dos_1"},
        actor=staff("user-admin"),
    )
    event_item(event).save()
    announce([event], aws.webhooks_queue)
    return event


def _create(admin: Api, url: str, events: list[str] | None = None) -> dict[str, Any]:
    created = admin.post("/webhooks", {"url": url, "events": events or ["*"], "description": "Notre CRM"})
    assert created.status == 201, created.body
    return dict(created.body)


def _verify(secret: str, received: Received) -> Any:
    return Webhook(secret).verify(received.body, received.headers)


def _deliveries(admin: Api, webhook_id: str) -> list[dict[str, Any]]:
    answer = admin.get(f"/webhooks/{webhook_id}/deliveries")
    assert answer.status == 200, answer.body
    return list(answer.body["items"])


def _tick(anonymous: Api, at: datetime) -> None:
    assert anonymous.post("/_local/tick", {"time": iso(at)}).status == 200


def test_an_event_reaches_the_endpoint_signed_as_standard_webhooks_says(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True
    event = _emit(aws, account_id)
    drain()

    [received] = receiver.received
    assert _verify(endpoint["secret"], received) == {
        "type": "dossier.completed",
        "timestamp": iso(event.at),
        "data": {"dossier_id": "dos_1"},
    }
    assert received.headers["webhook-id"] == event.id
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(received.body.replace(b"dos_1", b"dos_2"), received.headers)
    [delivery] = _deliveries(admin, endpoint["id"])
    assert delivery["event_id"] == event.id
    assert (delivery["type"], delivery["attempt"], delivery["status"]) == (
        "dossier.completed",
        1,
        "succeeded",
    )
    assert delivery["response_status"] == 200
    assert delivery["next_attempt_at"] is None
    # The event left the `due` index: a tick long after queues nothing again.
    _tick(platform.as_(None), T0 + timedelta(days=2))
    assert len(receiver.received) == 1


def test_an_endpoint_gets_only_the_types_it_asked_for(platform: Api, aws: Any, receiver: Receiver) -> None:
    admin, account_id = _account(platform)
    _create(admin, receiver.url, ["document.uploaded"])
    _emit(aws, account_id, EventType.DOSSIER_COMPLETED)
    uploaded = _emit(aws, account_id, EventType.DOCUMENT_UPLOADED)
    drain()
    assert [r.headers["webhook-id"] for r in receiver.received] == [uploaded.id]


def test_after_a_rotation_both_secrets_sign_and_each_verifies(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, _ = _account(platform)
    endpoint = _create(admin, receiver.url)
    rotated = admin.post(f"/webhooks/{endpoint['id']}/secret")
    assert rotated.status == 200
    assert rotated.body["secret"] != endpoint["secret"]
    test = admin.post(f"/webhooks/{endpoint['id']}/test")
    assert test.status == 202
    drain()

    [received] = receiver.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert _verify(endpoint["secret"], received)["type"] == "webhook.test"
    assert _verify(rotated.body["secret"], received)["type"] == "webhook.test"
    assert "secret" not in admin.get(f"/webhooks/{endpoint['id']}").body
    assert all("secret" not in e for e in admin.get("/webhooks").body["items"])


def test_a_receiver_down_then_up_gets_the_retry_with_the_same_webhook_id(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [500, 200]
    event = _emit(aws, account_id)
    drain()

    [waiting] = _deliveries(admin, endpoint["id"])
    assert (waiting["attempt"], waiting["status"], waiting["response_status"]) == (1, "pending", 500)
    assert waiting["error"] == "HTTP 500"
    assert waiting["next_attempt_at"] == iso(T0 + timedelta(seconds=5))
    assert admin.get(f"/webhooks/{endpoint['id']}").body["failing_since"] == iso(T0)

    clock[0] = T0 + timedelta(seconds=5)
    _tick(platform.as_(None), clock[0])
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    assert _verify(endpoint["secret"], second)["data"] == {"dossier_id": "dos_1"}
    [delivered] = _deliveries(admin, endpoint["id"])
    assert (delivered["attempt"], delivered["status"], delivered["response_status"]) == (2, "succeeded", 200)
    assert admin.get(f"/webhooks/{endpoint['id']}").body["failing_since"] is None


def test_a_receiver_down_for_a_day_is_retried_on_schedule_then_gets_the_event_once(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [503]
    _emit(aws, account_id)
    drain()
    anonymous = platform.as_(None)
    waits = []
    for attempt in range(1, 7):
        [delivery] = _deliveries(admin, endpoint["id"])
        assert (delivery["attempt"], delivery["status"]) == (attempt, "pending")
        due = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
        waits.append(due - clock[0])
        _tick(anonymous, due - timedelta(seconds=1))  # not yet
        assert len(receiver.received) == attempt
        clock[0] = due
        if attempt == 6:
            receiver.answers = [200]
        _tick(anonymous, due)
        assert len(receiver.received) == attempt + 1
    assert waits == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
    ]
    [delivered] = _deliveries(admin, endpoint["id"])
    assert (delivered["attempt"], delivered["status"]) == (7, "succeeded")
    _tick(anonymous, clock[0] + timedelta(days=3))
    assert len(receiver.received) == 7
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_an_endpoint_answering_410_is_disabled_and_the_account_is_told(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [410]
    _emit(aws, account_id)
    drain()

    shown = admin.get(f"/webhooks/{endpoint['id']}").body
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "gone")
    [email] = [m for m in outbox.sent_messages(REGION) if m["kind"] == "webhook_disabled"]
    assert email["to"] == ["contact@martin.fr"]
    assert receiver.url in email["text"]
    _emit(aws, account_id)
    drain()
    assert len(receiver.received) == 1
    enabled = admin.patch(f"/webhooks/{endpoint['id']}", {"enabled": True})
    assert (enabled.body["enabled"], enabled.body["disabled_reason"], enabled.body["failing_since"]) == (
        True,
        None,
        None,
    )


def test_a_delivery_is_retried_by_hand_now_and_not_once_it_succeeded(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [500, 200]
    _emit(aws, account_id)
    drain()
    [waiting] = _deliveries(admin, endpoint["id"])

    retried = admin.post(f"/webhooks/{endpoint['id']}/deliveries/{waiting['id']}/retry")
    assert retried.status == 202
    drain()
    [delivered] = _deliveries(admin, endpoint["id"])
    assert (delivered["attempt"], delivered["status"]) == (2, "succeeded")
    again = admin.post(f"/webhooks/{endpoint['id']}/deliveries/{waiting['id']}/retry")
    assert again.status == 409
    assert admin.post(f"/webhooks/{endpoint['id']}/deliveries/dlv_nope/retry").status == 404


def test_a_duplicate_message_posts_once(platform: Api, aws: Any, receiver: Receiver) -> None:
    from chalicelib.handlers import webhook_worker

    admin, account_id = _account(platform)
    _create(admin, receiver.url)
    event = _emit(aws, account_id)
    # The event's message twice (a redelivery, the tick's re-queue): one delivery, one POST.
    announce([event], aws.webhooks_queue)
    drain()
    assert len(receiver.received) == 1

    test = admin.post(f"/webhooks/{_create(admin, receiver.url)['id']}/test").body
    sqs = aws.client("sqs")
    [message] = sqs.receive_message(QueueUrl=aws.webhooks_queue.url)["Messages"]
    records = [
        {"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": message["Body"], "attributes": {}}
        for _ in range(2)
    ]
    assert webhook_worker.handle({"Records": records}, None) == {"batchItemFailures": []}
    assert [r.headers["webhook-id"] for r in receiver.received[1:]] == [test["event_id"]]


def test_a_dead_receiver_never_holds_up_another_endpoint(platform: Api, aws: Any, receiver: Receiver) -> None:
    admin, account_id = _account(platform)
    dead = _create(admin, "http://127.0.0.1:9/refused")
    alive = _create(admin, receiver.url)
    _emit(aws, account_id)
    drain()
    assert len(receiver.received) == 1
    [failed] = _deliveries(admin, dead["id"])
    assert (failed["status"], failed["response_status"], failed["error"]) == (
        "pending",
        None,
        "connection refused",
    )
    assert _deliveries(admin, alive["id"])[0]["status"] == "succeeded"


def test_webhooks_are_for_administrators_of_their_own_account(platform: Api, receiver: Receiver) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    manager = platform.as_(token("manager", account_id))
    assert manager.get("/webhooks").status == 403
    assert manager.post("/webhooks", {"url": receiver.url, "events": ["*"]}).status == 403
    other, _ = _account(platform, "Cabinet Durand")
    for method, path in (
        ("GET", f"/webhooks/{endpoint['id']}"),
        ("PATCH", f"/webhooks/{endpoint['id']}"),
        ("DELETE", f"/webhooks/{endpoint['id']}"),
        ("POST", f"/webhooks/{endpoint['id']}/secret"),
        ("POST", f"/webhooks/{endpoint['id']}/test"),
        ("GET", f"/webhooks/{endpoint['id']}/deliveries"),
    ):
        body = {"enabled": False} if method == "PATCH" else None
        assert other.call(method, path, body).status == 404, (method, path)
    assert other.get("/webhooks").body["items"] == []
    assert admin.call("DELETE", f"/webhooks/{endpoint['id']}").status == 204
    assert admin.get(f"/webhooks/{endpoint['id']}").status == 404


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"url": "https://10.0.0.1/hooks", "events": ["*"]}, "url"),
        ({"url": "http://169.254.169.254/latest", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "http://crm.example.com/hooks", "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:8080/hooks", "events": ["dossier.exploded"]}, "events"),
        ({"url": "http://127.0.0.1:8080/hooks", "events": []}, "events"),
        ({"url": "http://127.0.0.1:8080/hooks", "events": ["*"], "description": "x" * 201}, "description"),
    ],
)
def test_bad_urls_events_and_descriptions_are_refused_naming_the_field(
    platform: Api, body: dict[str, Any], field_name: str
) -> None:
    admin, _ = _account(platform)
    refused = admin.post("/webhooks", body)
    assert refused.status == 400, refused.body
    assert field_name in {d["field"] for d in refused.body["error"]["details"]}


def test_an_account_has_at_most_20_endpoints(platform: Api) -> None:
    admin, _ = _account(platform)
    created = [_create(admin, f"http://127.0.0.1:{8000 + n}/hooks") for n in range(20)]
    assert admin.post("/webhooks", {"url": "http://127.0.0.1:9000/hooks", "events": ["*"]}).status == 409
    assert admin.call("DELETE", f"/webhooks/{created[0]['id']}").status == 204
    _create(admin, "http://127.0.0.1:9000/hooks")
    first = admin.get("/webhooks?limit=15").body
    rest = admin.get(f"/webhooks?limit=15&cursor={first['next_cursor']}").body
    assert len(first["items"]) + len(rest["items"]) == 20


def test_a_lost_event_message_is_fanned_out_by_the_tick(platform: Api, aws: Any, receiver: Receiver) -> None:
    admin, account_id = _account(platform)
    _create(admin, receiver.url)
    event = Event(
        account_id, EventType.CONTRACT_SUSPENDED, aws.now(), Subject(SubjectKind.CONTRACT, "c1"), {}
    )
    event_item(event).save()  # written with its change; its SQS message never sent
    _tick(platform.as_(None), aws.now() + timedelta(minutes=1))
    assert receiver.received == []
    _tick(platform.as_(None), aws.now() + timedelta(minutes=6))
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["contract.suspended"]


def test_an_email_sent_reaches_the_endpoint_by_the_next_webhook_tick_once(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, _ = _account(platform)
    endpoint = _create(admin, receiver.url, ["communication.sent"])
    client_id = admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}).body["id"]
    email = admin.post(f"/clients/{client_id}/emails", {"subject": "Bonjour", "body": "Texte"}).body
    drain()
    assert [m["kind"] for m in outbox.sent_messages(REGION)][-1] == "manual"
    assert receiver.received == []  # the worker announced nothing: the tick fans its event out
    _tick(platform.as_(None), aws.now())
    [received] = receiver.received
    told = _verify(endpoint["secret"], received)
    assert (told["type"], told["data"]["communication_id"], told["data"]["status"]) == (
        "communication.sent",
        email["communication_id"],
        "sent",
    )
    _tick(platform.as_(None), aws.now() + timedelta(minutes=10))
    assert len(receiver.received) == 1


def test_an_endpoint_created_after_an_email_left_is_not_told_of_it_by_the_tick(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, _ = _account(platform)
    client_id = admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}).body["id"]
    admin.post(f"/clients/{client_id}/emails", {"subject": "Bonjour", "body": "Texte"})
    drain()
    time.sleep(1)  # an endpoint's `created_at` is to the second: one created in the email's second takes it
    _create(admin, receiver.url, ["communication.sent"])
    _tick(platform.as_(None), aws.now() + timedelta(minutes=1))
    assert receiver.received == []
    later = admin.post(f"/clients/{client_id}/emails", {"subject": "Encore", "body": "Texte"}).body
    drain()
    _tick(platform.as_(None), aws.now() + timedelta(minutes=1))
    assert [json.loads(r.body)["data"]["communication_id"] for r in receiver.received] == [
        later["communication_id"]
    ]


def test_the_tick_reads_on_the_shards_whose_page_came_full(aws: Any) -> None:
    from chalicelib.services.webhooks import queue_due
    from tests.fakes import FakeQueue

    now = aws.now()
    events = [
        Event("acc_1", EventType.COMMUNICATION_SENT, now, Subject(SubjectKind.ACCOUNT, "acc_1"), {"n": n})
        for n in range(40)
    ]
    for event in events:
        event_item(event, announced=False).save()  # as the communications worker writes them
    one_page, all_pages, out_of_time = FakeQueue(), FakeQueue(), FakeQueue()
    # 40 events on 16 shards, one a page: one page leaves some in every shard that has more than one.
    assert queue_due(aws.webhooks, one_page, now, per_shard=1, pages=1) < 40
    assert queue_due(aws.webhooks, out_of_time, now, per_shard=1, budget=0) == len(one_page.messages)
    assert queue_due(aws.webhooks, all_pages, now, per_shard=1) == 40
    assert sorted(m["id"] for m in all_pages.messages) == sorted(e.id for e in events)


def test_an_endpoint_failing_for_five_days_is_disabled_and_the_account_is_told(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [500]
    _emit(aws, account_id)
    drain()
    clock[0] = T0 + timedelta(days=4, hours=23)
    _emit(aws, account_id)
    drain()
    assert admin.get(f"/webhooks/{endpoint['id']}").body["enabled"] is True

    clock[0] = T0 + timedelta(days=5)
    _emit(aws, account_id)
    drain()
    shown = admin.get(f"/webhooks/{endpoint['id']}").body
    assert (shown["enabled"], shown["disabled_reason"], shown["failing_since"]) == (False, "failing", iso(T0))
    assert [m["to"] for m in outbox.sent_messages(REGION) if m["kind"] == "webhook_disabled"] == [
        ["contact@martin.fr"]
    ]
    # Its waiting retries give up without a POST; a test is refused until it is enabled again.
    posts = len(receiver.received)
    _tick(platform.as_(None), T0 + timedelta(days=6))
    assert len(receiver.received) == posts
    assert {d["status"] for d in _deliveries(admin, endpoint["id"])} == {"failed"}
    assert admin.post(f"/webhooks/{endpoint['id']}/test").status == 409


def test_a_delivery_failed_after_eight_attempts_can_be_retried_by_hand(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [500]
    _emit(aws, account_id)
    drain()
    for _ in range(7):
        [delivery] = _deliveries(admin, endpoint["id"])
        clock[0] = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
        _tick(platform.as_(None), clock[0])
    [failed] = _deliveries(admin, endpoint["id"])
    assert (failed["attempt"], failed["status"], failed["next_attempt_at"]) == (8, "failed", None)
    _tick(platform.as_(None), clock[0] + timedelta(days=1))
    assert len(receiver.received) == 8

    receiver.answers = [200]
    assert admin.post(f"/webhooks/{endpoint['id']}/deliveries/{failed['id']}/retry").status == 202
    drain()
    [delivered] = _deliveries(admin, endpoint["id"])
    assert (delivered["attempt"], delivered["status"]) == (9, "succeeded")
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_hanging_receiver_times_out_and_a_redirect_is_not_followed(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    from chalicelib.adapters.webhook_http import PinnedHttpTransport

    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(1)  # accepts the connection, never answers
    aws.webhook_transport = PinnedHttpTransport(local_stage=True, timeout_s=0.5)
    try:
        admin, account_id = _account(platform)
        slow = _create(admin, f"http://127.0.0.1:{hanging.getsockname()[1]}/relais")
        moved = _create(admin, receiver.url)
        receiver.answers = [302]
        _emit(aws, account_id)
        drain()
    finally:
        hanging.close()
    [timed_out] = _deliveries(admin, slow["id"])
    assert (timed_out["status"], timed_out["error"]) == ("pending", "timeout")
    [redirected] = _deliveries(admin, moved["id"])
    assert (redirected["status"], redirected["response_status"], redirected["error"]) == (
        "pending",
        302,
        "redirect not followed",
    )


def test_a_name_resolving_into_a_private_range_is_refused_at_creation(platform: Api, aws: Any) -> None:
    from chalicelib.adapters.webhook_http import PinnedHttpTransport

    def resolver(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]

    aws.webhook_url_check = PinnedHttpTransport(local_stage=True, resolver=resolver).check_url_resolves
    admin, _ = _account(platform)
    refused = admin.post("/webhooks", {"url": "https://crm.cabinet-martin.fr/relais", "events": ["*"]})
    assert refused.status == 400
    assert [d["field"] for d in refused.body["error"]["details"]] == ["url"]


def test_make_run_delivers_to_a_receiver_on_localhost_and_local_tick_runs_the_retries_due(
    receiver: Receiver,
) -> None:
    import time

    from tests.support import http_call, local_stack

    def wait_for(posts: int) -> None:
        deadline = time.monotonic() + 20
        while len(receiver.received) < posts and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(receiver.received) == posts

    receiver.answers = [500, 500, 200]
    with local_stack() as stack:
        # Not `*`: the demo account's welcome email, sent by the pump meanwhile, would be announced too.
        wanted = {"url": receiver.url, "events": ["dossier.completed"]}
        status, created = http_call(f"{stack.api_url}/webhooks", "POST", stack.admin_token, wanted)
        assert status == 201, created
        hook = f"{stack.api_url}/webhooks/{created['id']}"

        def recorded(attempt: int) -> dict[str, Any]:
            """The delivery once the worker wrote the outcome of `attempt` (just after its POST)."""
            deadline = time.monotonic() + 20
            while True:
                _, page = http_call(f"{hook}/deliveries", token=stack.admin_token)
                [delivery] = page["items"]
                if delivery["attempt"] >= attempt or time.monotonic() > deadline:
                    return dict(delivery)
                time.sleep(0.2)

        assert http_call(f"{hook}/test", "POST", stack.admin_token)[0] == 202
        wait_for(2)  # the first attempt, then the 5-second retry, by the queue pump alone
        delivery = recorded(2)
        assert (delivery["attempt"], delivery["status"]) == (2, "pending")
        later = datetime.fromisoformat(delivery["next_attempt_at"].replace("Z", "+00:00"))
        status, _ = http_call(f"{stack.api_url}/_local/tick", "POST", body={"time": iso(later)})
        assert status == 200
        wait_for(3)
        delivery = recorded(3)
        assert (delivery["attempt"], delivery["status"]) == (3, "succeeded")
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert all(_verify(created["secret"], r)["type"] == "webhook.test" for r in receiver.received)


def test_an_idempotent_replay_of_a_creation_keeps_no_secret_and_makes_no_second_endpoint(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, _ = _account(platform)
    body = {"url": receiver.url, "events": ["*"]}
    first = admin.post("/webhooks", body, headers={"Idempotency-Key": "create-crm-hook"})
    replay = admin.post("/webhooks", body, headers={"Idempotency-Key": "create-crm-hook"})
    assert first.status == replay.status == 201
    assert first.body["secret"].startswith("whsec_")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert (replay.body["id"], replay.body["secret"]) == (first.body["id"], None)
    assert len(admin.get("/webhooks").body["items"]) == 1


def test_a_batch_posts_side_by_side_so_hanging_receivers_do_not_add_up(platform: Api, aws: Any) -> None:
    import time

    from chalicelib.adapters.webhook_http import PinnedHttpTransport
    from chalicelib.handlers import webhook_worker

    hanging = [socket.socket() for _ in range(4)]
    for listener in hanging:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
    aws.webhook_transport = PinnedHttpTransport(local_stage=True, timeout_s=1.0)
    try:
        admin, account_id = _account(platform)
        for listener in hanging:
            _create(admin, f"http://127.0.0.1:{listener.getsockname()[1]}/relais")
        _emit(aws, account_id)
        sqs = aws.client("sqs")
        [fan_out] = sqs.receive_message(QueueUrl=aws.webhooks_queue.url)["Messages"]
        record = {"messageId": "m-0", "receiptHandle": "r", "body": fan_out["Body"], "attributes": {}}
        assert webhook_worker.handle({"Records": [record]}, None) == {"batchItemFailures": []}
        deliveries = sqs.receive_message(QueueUrl=aws.webhooks_queue.url, MaxNumberOfMessages=10)["Messages"]
        records = [
            {"messageId": f"m-{n}", "receiptHandle": "r", "body": m["Body"], "attributes": {}}
            for n, m in enumerate(deliveries, start=1)
        ]
        started = time.monotonic()
        assert webhook_worker.handle({"Records": records}, None) == {"batchItemFailures": []}
        assert time.monotonic() - started < 3  # four 1-second timeouts, side by side
    finally:
        for listener in hanging:
            listener.close()
    endpoints = admin.get("/webhooks").body["items"]
    assert len(endpoints) == 4
    for endpoint in endpoints:
        assert [d["error"] for d in _deliveries(admin, endpoint["id"])] == ["timeout"]


def test_an_unreadable_message_fails_alone_in_its_batch(platform: Api, aws: Any, receiver: Receiver) -> None:
    from chalicelib.handlers import webhook_worker

    admin, account_id = _account(platform)
    _create(admin, receiver.url)
    event = Event(account_id, EventType.JOB_FINISHED, aws.now(), Subject(SubjectKind.ACCOUNT, account_id), {})
    records = [
        {"messageId": "bad", "receiptHandle": "r", "body": "{not json", "attributes": {}},
        {"messageId": "good", "receiptHandle": "r", "body": json.dumps(event.to_message()), "attributes": {}},
    ]
    assert webhook_worker.handle({"Records": records}, None) == {
        "batchItemFailures": [{"itemIdentifier": "bad"}]
    }
    drain()
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["job.finished"]


SCHEDULED = {
    "version": "0",
    "id": "scheduled",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "1",
    "region": REGION,
    "resources": [],
    "detail": {},
}


def _down_twice(platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]) -> tuple[str, Event]:
    """An endpoint whose receiver failed the first attempt and its 5-second retry: the third attempt
    waits on the `due` index, 5 minutes later. Returns the endpoint's id and the event."""
    from chalicelib.handlers import webhook_tick

    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    receiver.answers = [500, 500, 200]
    event = _emit(aws, account_id)
    drain()
    clock[0] = T0 + timedelta(seconds=5)
    assert webhook_tick.run(clock[0]) == 1
    drain()
    [waiting] = _deliveries(admin, endpoint["id"])
    assert (waiting["attempt"], waiting["status"]) == (2, "pending")
    assert waiting["next_attempt_at"] == iso(T0 + timedelta(minutes=5, seconds=5))
    return endpoint["id"], event


def test_a_retry_due_in_5_minutes_is_posted_by_the_minute_tick_not_an_hour_later(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime], client: Any
) -> None:
    from chalicelib.handlers import dunning_tick

    webhook_id, event = _down_twice(platform, aws, receiver, clock)
    due = T0 + timedelta(minutes=5, seconds=5)
    clock[0] = due
    # The hourly tick no longer queues webhooks: the retry is the minute tick's, and queued once.
    assert dunning_tick.run(due) == 0
    ticked = client.lambda_.invoke("webhook_tick", {**SCHEDULED, "time": iso(due)})
    assert ticked.payload == {"queued": 1}
    drain()

    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {event.id}
    admin = platform.as_(token("admin", event.account_id))
    [delivered] = _deliveries(admin, webhook_id)
    assert (delivered["attempt"], delivered["status"], delivered["response_status"]) == (3, "succeeded", 200)
    assert client.lambda_.invoke("webhook_tick", {**SCHEDULED, "time": iso(due)}).payload == {"queued": 0}


def test_a_retry_queued_twice_by_two_ticks_at_once_is_posted_once(
    platform: Api, aws: Any, receiver: Receiver, clock: list[datetime]
) -> None:
    from chalicelib.handlers import webhook_tick, webhook_worker

    webhook_id, event = _down_twice(platform, aws, receiver, clock)
    clock[0] = T0 + timedelta(minutes=5, seconds=5)
    # Two runs before the worker took anything: both queue the same attempt.
    assert [webhook_tick.run(clock[0]), webhook_tick.run(clock[0])] == [1, 1]
    sqs = aws.client("sqs")
    queued = sqs.receive_message(QueueUrl=aws.webhooks_queue.url, MaxNumberOfMessages=10)["Messages"]
    copies = [m for m in queued if json.loads(m["Body"])["attempt"] == 3]
    assert len(copies) == 2
    # Each copy in a batch of its own (two invocations, one after the other): the second finds attempt 3
    # recorded and posts nothing.
    for n, copy in enumerate(copies):
        record = {"messageId": f"copy-{n}", "receiptHandle": "r", "body": copy["Body"], "attributes": {}}
        assert webhook_worker.handle({"Records": [record]}, None) == {"batchItemFailures": []}

    assert len(receiver.received) == 3
    admin = platform.as_(token("admin", event.account_id))
    [delivered] = _deliveries(admin, webhook_id)
    assert (delivered["attempt"], delivered["status"]) == (3, "succeeded")


def test_a_body_over_256_kb_fails_at_once_without_a_post_or_a_retry(
    platform: Api, aws: Any, receiver: Receiver
) -> None:
    admin, account_id = _account(platform)
    endpoint = _create(admin, receiver.url)
    event = Event(
        account_id,
        EventType.JOB_FINISHED,
        aws.now(),
        Subject(SubjectKind.ACCOUNT, account_id),
        {"note": "x" * (256 * 1024)},
    )
    event_item(event).save()
    announce([event], aws.webhooks_queue)
    drain()

    assert receiver.received == []
    [failed] = _deliveries(admin, endpoint["id"])
    assert (failed["attempt"], failed["status"], failed["next_attempt_at"]) == (1, "failed", None)
    assert failed["error"].startswith("body too large: ")
    assert "256 KB" in failed["error"]
    # Not the receiver's fault: its failure clock does not start, and nothing is tried again.
    assert admin.get(f"/webhooks/{endpoint['id']}").body["failing_since"] is None
    _tick(platform.as_(None), T0 + timedelta(days=2))
    assert receiver.received == []
