"""The worker's attempt, on fakes: what is posted, when, and what waits."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.webhook_http import PostOutcome
from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import CommunicationKind, CommunicationStatus
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
from chalicelib.domain.plans import Plan
from chalicelib.domain.webhooks import DeliveryStatus, DisabledReason, Endpoint, new_secret
from chalicelib.services.webhooks import AttemptContext, AttemptRequest, attempt, fan_out
from tests.fakes import FakeAccountRepository, FakeWebhookStore

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
EVENT = Event(
    "acc_1", EventType.DOSSIER_COMPLETED, NOW, Subject(SubjectKind.DOSSIER, "dos_1"), {"dossier_id": "dos_1"}
)


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, body: dict[str, Any], delay_seconds: int = 0) -> None:
        self.sent.append((body, delay_seconds))

    def send_many(self, bodies: Any) -> None:
        self.sent += [(b, 0) for b in bodies]


class Store(FakeWebhookStore):
    """The contract-checked fake, holding one endpoint, counting its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.add(Endpoint("acc_1", "whk_1", "http://127.0.0.1:9/x", ("*",), new_secret(), NOW))
        self.reads = 0

    def for_attempt(self, account_id: str, webhook_id: str, delivery_id: str) -> tuple[Any, Any]:
        self.reads += 1
        return super().for_attempt(account_id, webhook_id, delivery_id)


class Transport:
    def __init__(self, status: int) -> None:
        self.status = status
        self.posts: list[dict[str, str]] = []

    def post(self, url: str, headers: dict[str, str], body: bytes) -> PostOutcome:
        self.posts.append(headers)
        return PostOutcome(self.status, 3, None)


def _context(store: Store, transport: Transport, queue: Queue, now: datetime = NOW) -> AttemptContext:
    return AttemptContext(store, transport, queue, accounts=None, emails=queue, now=now)  # type: ignore[arg-type]


def _first() -> AttemptRequest:
    return AttemptRequest("acc_1", "whk_1", "dlv_1", 1, event=EVENT.to_message())


def test_a_failed_first_attempt_sends_its_retry_delayed_5_seconds_and_marked_with_its_moment() -> None:
    store, queue = Store(), Queue()
    attempt(_first(), _context(store, Transport(500), queue))
    [(message, delay)] = queue.sent
    assert delay == 5
    assert AttemptRequest.from_message(message).attempt == 2
    assert AttemptRequest.from_message(message).not_before == NOW + timedelta(seconds=5)


def test_a_delayed_retry_arriving_early_waits_the_rest_without_reading_or_posting() -> None:
    store, queue, transport = Store(), Queue(), Transport(200)
    early = AttemptRequest("acc_1", "whk_1", "dlv_1", 2, not_before=NOW + timedelta(seconds=5))
    assert attempt(early, _context(store, transport, queue)) is None
    assert (store.reads, transport.posts) == (0, [])
    [(message, delay)] = queue.sent
    assert (message, delay) == (early.to_message(), 6)


def test_a_retry_of_five_minutes_or_more_waits_on_the_due_index_not_in_the_queue() -> None:
    store, queue = Store(), Queue()
    attempt(_first(), _context(store, Transport(500), queue))
    queue.sent.clear()
    second = AttemptRequest("acc_1", "whk_1", "dlv_1", 2)
    attempt(second, _context(store, Transport(500), queue, NOW + timedelta(seconds=5)))
    assert queue.sent == []
    assert store.delivered["dlv_1"].next_attempt_at == NOW + timedelta(seconds=5, minutes=5)


def test_a_body_over_256_kb_fails_at_once_saying_why_without_a_post_or_a_retry() -> None:
    store, queue, transport = Store(), Queue(), Transport(200)
    huge = replace(EVENT, data={"note": "x" * 256 * 1024})
    request = AttemptRequest("acc_1", "whk_1", "dlv_1", 1, event=huge.to_message())
    assert attempt(request, _context(store, transport, queue)) is DeliveryStatus.FAILED
    assert (transport.posts, queue.sent) == ([], [])
    failed = store.delivered["dlv_1"]
    assert (failed.attempt, failed.next_attempt_at, failed.response_status) == (1, None, None)
    assert re.fullmatch(
        r"body too large: 2622\d\d bytes, more than the 262144 \(256 KB\) a delivery may post",
        failed.last_error or "",
    )
    assert store.get("acc_1", "whk_1").failing_since is None
    # The duplicate of that message finds the attempt made: still nothing posted.
    assert attempt(request, _context(store, transport, queue)) is None
    assert transport.posts == []


def test_a_duplicate_message_posts_nothing() -> None:
    store, queue, transport = Store(), Queue(), Transport(200)
    attempt(_first(), _context(store, transport, queue))
    attempt(_first(), _context(store, transport, queue))
    assert len(transport.posts) == 1
    assert transport.posts[0]["webhook-id"] == EVENT.id


def test_the_fan_out_queues_one_first_attempt_per_enabled_endpoint_that_wants_the_event() -> None:
    store, queue = Store(), Queue()
    base = store.get("acc_1", "whk_1")
    store.add(replace(base, id="whk_2", events=("document.uploaded",)))
    store.add(replace(base, id="whk_3", enabled=False))
    store.add(replace(base, id="whk_4", events=("dossier.completed",)))
    assert fan_out(EVENT, store, queue) == 2
    requests = [AttemptRequest.from_message(m) for m, _ in queue.sent]
    assert [(r.webhook_id, r.attempt) for r in requests] == [("whk_1", 1), ("whk_4", 1)]
    assert store.fanned == [EVENT.id]
    assert store.delivered == {}  # nothing written before the first attempt


def test_a_410_disables_the_endpoint_and_queues_the_accounts_email_once() -> None:
    store, queue, emails = Store(), Queue(), Queue()
    accounts = FakeAccountRepository()
    accounts.add(Account("acc_1", "Cabinet Martin", Plan.PREMIUM, frozenset(), "contact@martin.fr", NOW))
    context = AttemptContext(store, Transport(410), queue, accounts, emails, NOW)
    attempt(_first(), context)
    endpoint = store.get("acc_1", "whk_1")
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, DisabledReason.GONE)
    [notice] = store.notices
    assert notice.kind is CommunicationKind.WEBHOOK_DISABLED
    assert [r.email for r in notice.to] == ["contact@martin.fr"]
    assert [m["communication_id"] for m, _ in emails.sent] == [notice.id]


def test_a_410_disabling_an_endpoint_of_a_suppressed_address_records_its_email_skipped_and_queues_none() -> (
    None
):
    store, queue, emails = Store(), Queue(), Queue()
    store.suppressions.add("acc_1", "contact@martin.fr", "bounce: Permanent/General", None, NOW)
    accounts = FakeAccountRepository()
    accounts.add(Account("acc_1", "Cabinet Martin", Plan.PREMIUM, frozenset(), "contact@martin.fr", NOW))
    attempt(_first(), AttemptContext(store, Transport(410), queue, accounts, emails, NOW))
    assert store.get("acc_1", "whk_1").enabled is False
    [notice] = store.notices
    assert (notice.status, notice.skipped_parties) == (CommunicationStatus.SKIPPED, ("account",))
    assert emails.sent == []
    [told] = store.events
    assert (told.type, told.data["reason"]) == (
        EventType.COMMUNICATION_SKIPPED,
        "every recipient is on the suppression list (bounced or complained)",
    )
    assert told.to_message() in [message for message, _ in queue.sent]
