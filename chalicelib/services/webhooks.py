"""Webhook use cases: the endpoints an administrator manages, and the worker's two jobs, fanning an event out
to the endpoints that want it and attempting one delivery.

The webhooks queue carries two kinds of message. An event (`Event.to_message()`, written with the change
it reports) is fanned out: one Query of the account's endpoints, one delivery message per endpoint that
wants it (no item written yet), then the event leaves the `due` index. A delivery message is one attempt:
one read of the endpoint and the delivery, one POST, one conditional write of the outcome. A retry
shorter than 5 minutes travels as a delayed SQS message; every waiting retry also sits on the `due`
index, where `webhook_tick` finds it within a minute (the long ones, which SQS cannot delay, and any short
one whose message was lost).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso, parse_iso
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
    communication_id,
)
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
from chalicelib.domain.webhooks import (
    LONG_RETRY,
    MAX_BODY_BYTES,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    after_attempt,
    checked_description,
    checked_events,
    delivery_id,
    disable_reason,
    given_up,
    new_endpoint,
    new_secret,
    refused_body,
    signed_headers,
)
from chalicelib.observability import logger
from chalicelib.services.communications import RETRY_AFTER, skipped_events, write_screened
from chalicelib.services.communications import DeliveryRequest as EmailDelivery
from chalicelib.services.events import announce
from chalicelib.services.ports import AccountRepository, MessageQueue

DELIVERY_MESSAGE = "webhook_delivery"
"""The `kind` of a delivery message; an event's message has none."""
TICK_PAGE = 100
"""Due events, and due attempts, one page of `webhook_tick` queues per shard of the `due` index: a page
is 16 Queries, a BatchGetItem and at most 1,600 messages, well within its minute."""
TICK_PAGES = 10
"""Pages of due events a run takes from a shard whose pages come full (a 5,000-recipient mailing's
`communication.sent` events are about 320 a shard): a run queues at most 16,000 events."""
TICK_BUDGET = 30.0
"""Seconds after which a run starts no further page (the function's timeout is 50 s)."""
EARLY_TOLERANCE = timedelta(seconds=1)
MAX_SQS_DELAY = 900
UrlCheck = Callable[[str], str]
"""The normalized URL, or InvalidInput naming `url` (the URL rules of the stage, and where its host
resolves: `PinnedHttpTransport.check_url_resolves`)."""

_REASONS = {
    DisabledReason.GONE: "il a répondu 410 (Gone), ce qui demande à Relais de ne plus rien lui envoyer",
    DisabledReason.FAILING: "toutes ses livraisons échouent depuis cinq jours",
}


class PostResult(Protocol):
    @property
    def status(self) -> int | None: ...

    @property
    def duration_ms(self) -> int: ...

    @property
    def error(self) -> str | None: ...


class WebhookTransport(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> PostResult: ...


class DelayingQueue(MessageQueue, Protocol):
    def send(self, body: dict[str, Any], delay_seconds: int = 0) -> None: ...


class WebhookStore(Protocol):
    def add(self, endpoint: Endpoint) -> None: ...

    def get(self, account_id: str, webhook_id: str) -> Endpoint | None: ...

    def page(
        self, account_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Endpoint], dict[str, Any] | None]: ...

    def all(self, account_id: str) -> list[Endpoint]: ...

    def change(self, endpoint: Endpoint, fields: frozenset[str]) -> bool: ...

    def remove(self, account_id: str, webhook_id: str) -> bool: ...

    def deliveries(
        self, account_id: str, webhook_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Delivery], dict[str, Any] | None]: ...

    def delivery(self, account_id: str, webhook_id: str, delivery_id: str) -> Delivery | None: ...

    def for_attempt(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> tuple[Endpoint | None, Delivery | None]: ...

    def record(
        self,
        before: Delivery,
        after: Delivery,
        endpoint: Endpoint | None = None,
        notice: Communication | None = None,
        notice_retry_at: datetime | None = None,
        notice_events: Sequence[Event] = (),
    ) -> bool:
        """Write an attempt's outcome (see DynamoWebhookStore.record); RecipientsSuppressed when the
        address of `notice` is on the suppression list."""
        ...

    def fanned_out(self, event: Event) -> None: ...

    def due_deliveries(self, now: datetime, per_shard: int) -> list[tuple[str, str, str, int]]:
        """(account, endpoint, delivery, attempt) of the attempts due at `now`: at most `per_shard` of
        each shard of the `due` index, the oldest of each."""
        ...

    def due_events(
        self, now: datetime, per_shard: int, after: dict[int, Any] | None = None
    ) -> tuple[list[Event], dict[int, Any]]:
        """The events due for their fan-out at `now` (their message was lost, or nobody announced them),
        as many per shard: of every shard (`after` None), or of the shards of `after` from where their
        last page ended. With them, where the next page starts of each shard whose page came full."""
        ...


@dataclass(frozen=True)
class AttemptRequest:
    """A delivery message: make attempt `attempt` of a delivery. The first attempt carries the event
    (its item does not exist yet); `manual` lets an administrator's retry follow a `failed` delivery;
    `not_before`, on a retry sent as a delayed message, is its moment (the tick's messages have none: the
    tick already chose what is due)."""

    account_id: str
    webhook_id: str
    delivery_id: str
    attempt: int
    event: dict[str, Any] | None = None
    manual: bool = False
    not_before: datetime | None = None

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "kind": DELIVERY_MESSAGE,
            "account_id": self.account_id,
            "webhook_id": self.webhook_id,
            "delivery_id": self.delivery_id,
            "attempt": self.attempt,
        }
        if self.event is not None:
            message["event"] = self.event
        if self.manual:
            message["manual"] = True
        if self.not_before is not None:
            message["not_before"] = iso(self.not_before)
        return message

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> AttemptRequest:
        try:
            event, not_before = body.get("event"), body.get("not_before")
            return cls(
                account_id=str(body["account_id"]),
                webhook_id=str(body["webhook_id"]),
                delivery_id=str(body["delivery_id"]),
                attempt=int(body["attempt"]),
                event=dict(event) if event is not None else None,
                manual=bool(body.get("manual", False)),
                not_before=parse_iso(str(not_before)) if not_before is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"A webhook delivery message is malformed: {exc}") from exc


# ---- endpoints (the API) ----


def create_endpoint(
    account_id: str,
    url: str,
    events: list[str],
    description: str,
    store: WebhookStore,
    check_url: UrlCheck,
    now: datetime,
) -> Endpoint:
    endpoint = new_endpoint(
        account_id,
        check_url(url),
        checked_events(events),
        checked_description(description),
        now,
    )
    store.add(endpoint)
    return endpoint


def get_endpoint(account_id: str, webhook_id: str, store: WebhookStore) -> Endpoint:
    endpoint = store.get(account_id, webhook_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def list_endpoints(
    account_id: str, store: WebhookStore, limit: int, cursor: dict[str, Any] | None
) -> tuple[list[Endpoint], dict[str, Any] | None]:
    return store.page(account_id, limit, cursor)


def change_endpoint(
    account_id: str,
    webhook_id: str,
    changes: dict[str, Any],
    store: WebhookStore,
    check_url: UrlCheck,
) -> Endpoint:
    """Apply a PATCH (`url`, `events`, `enabled`, `description`, each optional)."""
    endpoint = get_endpoint(account_id, webhook_id, store)
    changed = endpoint
    if "url" in changes:
        changed = replace(changed, url=check_url(changes["url"]))
    if "events" in changes:
        changed = replace(changed, events=checked_events(changes["events"]))
    if "description" in changes:
        changed = replace(changed, description=checked_description(changes["description"]))
    if "enabled" in changes:
        changed = changed.with_enabled(bool(changes["enabled"]))
    fields = frozenset(name for name in _ENDPOINT_FIELDS if getattr(changed, name) != getattr(endpoint, name))
    if fields and not store.change(changed, fields):
        raise NotFound("No such webhook endpoint.")
    return changed


_ENDPOINT_FIELDS = ("url", "events", "description", "enabled", "failing_since", "disabled_reason")
_ROTATED_FIELDS = frozenset({"secret", "previous_secret", "previous_secret_expires_at"})


def delete_endpoint(account_id: str, webhook_id: str, store: WebhookStore) -> None:
    if not store.remove(account_id, webhook_id):
        raise NotFound("No such webhook endpoint.")


def rotate_secret(account_id: str, webhook_id: str, store: WebhookStore, now: datetime) -> Endpoint:
    """A new secret; the previous one keeps signing alongside for 24 hours."""
    rotated = get_endpoint(account_id, webhook_id, store).rotated(new_secret(), now)
    if not store.change(rotated, _ROTATED_FIELDS):
        raise NotFound("No such webhook endpoint.")
    return rotated


def send_test(
    account_id: str, webhook_id: str, store: WebhookStore, queue: MessageQueue, now: datetime
) -> tuple[Event, str]:
    """Queue a `webhook.test` event for this endpoint only (never fanned out, never in an activity log);
    returns it and its delivery's id."""
    endpoint = get_endpoint(account_id, webhook_id, store)
    if not endpoint.enabled:
        raise Conflict("This webhook endpoint is disabled; enable it before testing it.")
    event = Event(
        account_id,
        EventType.WEBHOOK_TEST,
        now,
        Subject(SubjectKind.ACCOUNT, account_id),
        {"webhook_id": endpoint.id},
    )
    request = _first_attempt(event, endpoint)
    queue.send(request.to_message())
    return event, request.delivery_id


def list_deliveries(
    account_id: str, webhook_id: str, store: WebhookStore, limit: int, cursor: dict[str, Any] | None
) -> tuple[list[Delivery], dict[str, Any] | None]:
    """The endpoint's deliveries, newest event first (404 for an endpoint of another account)."""
    get_endpoint(account_id, webhook_id, store)
    return store.deliveries(account_id, webhook_id, limit, cursor)


def retry_delivery(
    account_id: str, webhook_id: str, delivery_id: str, store: WebhookStore, queue: MessageQueue
) -> Delivery:
    """An administrator's retry, now: a pending or failed delivery is attempted again (409 once it
    succeeded, or while its endpoint is disabled)."""
    endpoint = get_endpoint(account_id, webhook_id, store)
    delivery = store.delivery(account_id, webhook_id, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery.")
    if delivery.status is DeliveryStatus.SUCCEEDED:
        raise Conflict("This delivery already succeeded.")
    if not endpoint.enabled:
        raise Conflict("This webhook endpoint is disabled; enable it before retrying its deliveries.")
    queue.send(
        AttemptRequest(account_id, webhook_id, delivery_id, delivery.attempt + 1, manual=True).to_message()
    )
    return delivery


# ---- the worker ----


def _first_attempt(event: Event, endpoint: Endpoint) -> AttemptRequest:
    return AttemptRequest(
        event.account_id,
        endpoint.id,
        delivery_id(event.id, endpoint.id, event.at),
        1,
        event=event.to_message(),
    )


def fan_out(event: Event, store: WebhookStore, queue: MessageQueue) -> int:
    """One delivery message per enabled endpoint that wants the event, then the event leaves the `due`
    index; returns how many were queued. Done twice (a redelivered message, the tick's re-queue), it
    queues the same deliveries, whose ids make them one."""
    wanting = [e for e in store.all(event.account_id) if e.wants(event.type.value, event.at)]
    queue.send_many(_first_attempt(event, endpoint).to_message() for endpoint in wanting)
    store.fanned_out(event)
    return len(wanting)


def _body(event_message: dict[str, Any]) -> bytes:
    """The bytes signed and sent: the event's `{type, timestamp, data}`, compact JSON."""
    payload = Event.from_message(event_message).payload()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _expected(request: AttemptRequest, delivery: Delivery | None) -> bool:
    """Whether this attempt is the one to make now: the next of the delivery as it stands (a duplicate
    or late message finds it made already)."""
    if delivery is None:
        return request.attempt == 1 and request.event is not None
    if request.attempt != delivery.attempt + 1:
        return False
    if delivery.status is DeliveryStatus.PENDING:
        return True
    return request.manual and delivery.status is DeliveryStatus.FAILED


@dataclass(frozen=True)
class AttemptContext:
    store: WebhookStore
    transport: WebhookTransport
    queue: DelayingQueue
    accounts: AccountRepository
    emails: MessageQueue
    now: datetime
    wall_clock: Callable[[], float] = time.time
    """The real time, for `webhook-timestamp`: receivers check it against their own clock."""


def attempt(request: AttemptRequest, ctx: AttemptContext) -> DeliveryStatus | None:
    """Make one attempt of a delivery and record it; None when there was nothing to do (a duplicate
    message, a deleted endpoint)."""
    if request.not_before is not None and request.not_before - ctx.now > EARLY_TOLERANCE:
        # A delayed message that came early (SQS's delay and our clock disagree): wait the rest.
        remaining = int((request.not_before - ctx.now).total_seconds()) + 1
        ctx.queue.send(request.to_message(), delay_seconds=min(remaining, MAX_SQS_DELAY))
        return None
    endpoint, delivery = ctx.store.for_attempt(request.account_id, request.webhook_id, request.delivery_id)
    if not _expected(request, delivery):
        return None
    before = delivery or _new_delivery(request)
    if endpoint is None or not endpoint.enabled:
        # Nothing is posted; a delivery already listed leaves the retry schedule, with the reason.
        if delivery is None:
            return None
        after = given_up(delivery, "endpoint deleted" if endpoint is None else "endpoint disabled")
        ctx.store.record(delivery, after)
        return after.status
    body = _body(before.message)
    if len(body) > MAX_BODY_BYTES:
        # The receiver is not at fault: its failure clock does not move.
        refused = refused_body(before, len(body), ctx.now)
        if not ctx.store.record(before, refused):
            return None
        logger.warning(
            "webhook body too large", extra={"delivery_id": request.delivery_id, "bytes": len(body)}
        )
        return refused.status
    headers = signed_headers(endpoint.signing_secrets(ctx.now), before.event_id, int(ctx.wall_clock()), body)
    posted = ctx.transport.post(endpoint.url, headers, body)
    outcome = AttemptOutcome(posted.status, posted.duration_ms, posted.error)
    after = after_attempt(before, outcome, ctx.now)
    recorded = _record(before, after, endpoint, outcome, ctx)
    if not recorded:
        logger.info("webhook attempt already recorded", extra={"delivery_id": request.delivery_id})
        return None
    if after.status is DeliveryStatus.PENDING and after.next_attempt_at is not None:
        wait = after.next_attempt_at - ctx.now
        if wait < LONG_RETRY:
            next_request = AttemptRequest(
                request.account_id,
                request.webhook_id,
                request.delivery_id,
                after.attempt + 1,
                not_before=after.next_attempt_at,
            )
            ctx.queue.send(next_request.to_message(), delay_seconds=max(0, int(wait.total_seconds())))
    return after.status


def _new_delivery(request: AttemptRequest) -> Delivery:
    event = Event.from_message(request.event or {})
    return Delivery(
        account_id=request.account_id,
        webhook_id=request.webhook_id,
        id=request.delivery_id,
        event_id=event.id,
        type=event.type.value,
        message=event.to_message(),
    )


def _record(
    before: Delivery, after: Delivery, endpoint: Endpoint, outcome: AttemptOutcome, ctx: AttemptContext
) -> bool:
    """Write the outcome; with it, the endpoint's failure clock when it starts or stops, and the
    endpoint's disabling and its email when this outcome disables it."""
    reason = disable_reason(outcome, endpoint.failing_since, ctx.now)
    if reason is not None:
        disabled = replace(
            endpoint, enabled=False, disabled_reason=reason, failing_since=endpoint.failing_since or ctx.now
        )
        decided = _disabled_notice(endpoint, reason, ctx)
        if decided is None:
            return ctx.store.record(before, after, disabled)

        def write(notices: tuple[Communication, ...]) -> tuple[Communication, list[Event], bool]:
            [notice] = notices
            told = skipped_events(notices, ctx.now)
            return (
                notice,
                told,
                ctx.store.record(before, after, disabled, notice, ctx.now + RETRY_AFTER, told),
            )

        notice, told, recorded = write_screened((decided,), write)
        if recorded:
            if notice.status is CommunicationStatus.QUEUED:
                ctx.emails.send(EmailDelivery(notice.account_id, notice.id).to_message())
            else:
                announce(told, ctx.queue)
            logger.info(
                "webhook endpoint disabled", extra={"webhook_id": endpoint.id, "reason": reason.value}
            )
        return recorded
    if outcome.succeeded and endpoint.failing_since is not None:
        return ctx.store.record(before, after, replace(endpoint, failing_since=None))
    if not outcome.succeeded and endpoint.failing_since is None:
        return ctx.store.record(before, after, replace(endpoint, failing_since=ctx.now))
    return ctx.store.record(before, after)


def _disabled_notice(endpoint: Endpoint, reason: DisabledReason, ctx: AttemptContext) -> Communication | None:
    account: Account | None = ctx.accounts.get(endpoint.account_id)
    if account is None:
        return None
    return Communication(
        id=communication_id(
            account.id,
            f"webhook:{endpoint.id}",
            f"{CommunicationKind.WEBHOOK_DISABLED.value}:{ctx.now.isoformat()}",
        ),
        account_id=account.id,
        kind=CommunicationKind.WEBHOOK_DISABLED,
        sender_name="Relais",
        reply_to=None,
        to=(Recipient(name=account.name, email=account.sender_email, party="account"),),
        created_at=ctx.now,
        variables={
            "account.name": account.name,
            "webhook.id": endpoint.id,
            "webhook.url": endpoint.url,
            "webhook.description": endpoint.description,
            "webhook.reason": _REASONS[reason],
        },
    )


# ---- the tick ----


def queue_due(
    store: WebhookStore,
    queue: MessageQueue,
    now: datetime,
    per_shard: int = TICK_PAGE,
    pages: int = TICK_PAGES,
    budget: float = TICK_BUDGET,
) -> int:
    """Queue the events waiting for their fan-out (their message was lost, or nobody announced them: the
    communications worker's) and the delivery attempts whose moment has come; returns how many messages.

    One page of at most `per_shard` of each per shard of the `due` index, the oldest first. The shards
    whose page of events came full are read on, a page at a time, up to `pages` pages in all, while the
    run is younger than `budget` seconds: a big mailing's events leave within a few minutes. What is left
    waits for the next minute's tick. Two runs at once queue the same attempts twice; the worker posts an
    attempt only while the delivery still stands before it, so the second copy handled after the first
    posts nothing (see `attempt`); an event fanned out twice makes the same deliveries (`delivery_id`)."""
    started = time.monotonic()
    events, more = store.due_events(now, per_shard)
    attempts = store.due_deliveries(now, per_shard)
    queue.send_many(
        [
            *(event.to_message() for event in events),
            *(AttemptRequest(a, w, d, n).to_message() for a, w, d, n in attempts),
        ]
    )
    queued_events = len(events)
    for _ in range(pages - 1):
        if not more or time.monotonic() - started >= budget:
            break
        events, more = store.due_events(now, per_shard, more)
        queue.send_many(event.to_message() for event in events)
        queued_events += len(events)
    if queued_events or attempts:
        logger.info(
            "webhooks queued by the tick",
            extra={"events": queued_events, "attempts": len(attempts), "shards_left_full": len(more)},
        )
    return queued_events + len(attempts)


def is_attempt(body: dict[str, Any]) -> bool:
    return body.get("kind") == DELIVERY_MESSAGE
