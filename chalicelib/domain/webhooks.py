"""Webhook endpoints and their deliveries: the rules, with no AWS in sight.

An account registers up to 20 endpoints; each wants some event types (or all of them, `*`) and signs what
it receives with its secret, as Standard Webhooks 1.0 says: `webhook-id` (the event id, the same on every
retry), `webhook-timestamp` (the real moment of the attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per live secret, space-separated: after a rotation
the previous secret signs alongside the new one for 24 hours, so a receiver can switch without losing a
message). A delivery that fails is tried again on a fixed schedule, then given up; an endpoint that answers
410, or has failed for five days, is disabled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.events import SUBSCRIBABLE
from chalicelib.domain.ids import new_ulid

MAX_ENDPOINTS = 20
"""Endpoints an account may have: the fan-out reads them all with one bounded Query per event."""
MAX_DESCRIPTION = 200
ALL_EVENTS = "*"

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
"""What Relais makes; a secret of 24 to 64 bytes is accepted when verifying (API.md)."""
SECRET_BYTES_ACCEPTED = range(24, 65)
ROTATION_OVERLAP = timedelta(hours=24)
"""How long the previous secret keeps signing after a rotation."""

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""The wait after attempt n fails is RETRY_DELAYS[n - 1]; after the last, the delivery is `failed`."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
LONG_RETRY = timedelta(minutes=5)
"""Retries this long or longer wait on the `due` index (SQS delays a message 15 minutes at most); shorter
ones travel as a delayed SQS message."""
DISABLE_AFTER = timedelta(days=5)
"""An endpoint failing this long since its first failure without a success in between is disabled."""
GONE = 410
MAX_BODY_BYTES = 256 * 1024
"""The largest body posted (issue 16): a larger one is refused by the transport on every attempt, so its
delivery fails at once instead of being retried for a day (`refused_body`)."""

WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DisabledReason(StrEnum):
    GONE = "gone"
    """The receiver answered 410 Gone: it asks for nothing more."""
    FAILING = "failing"
    """Every delivery failed for five days."""


def new_secret(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """`whsec_` and the standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: its base64 part decoded, 24 to 64 bytes."""
    refused = InvalidInput(
        "The secret is invalid.",
        [FieldIssue("secret", "must be whsec_ and the base64 of 24 to 64 bytes")],
    )
    if not secret.startswith(SECRET_PREFIX):
        raise refused
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise refused from exc
    if len(key) not in SECRET_BYTES_ACCEPTED:
        raise refused
    return key


def signature(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def signed_headers(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets, message_id, timestamp, body),
    }


def checked_events(events: list[str]) -> tuple[str, ...]:
    """The event types an endpoint asks for: known types, or `*` (every type, whatever else is listed);
    400 naming `events` otherwise."""
    if not events:
        raise InvalidInput("Name at least one event type.", [FieldIssue("events", "must not be empty")])
    if ALL_EVENTS in events:
        return (ALL_EVENTS,)
    unknown = [e for e in events if e not in SUBSCRIBABLE]
    if unknown:
        raise InvalidInput(
            "Some event types are unknown.",
            [FieldIssue("events", f"unknown event type: {e}") for e in unknown],
        )
    return tuple(dict.fromkeys(events))


def checked_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            "The description is too long.",
            [FieldIssue("description", f"must be at most {MAX_DESCRIPTION} characters")],
        )
    return description


@dataclass(frozen=True)
class Endpoint:
    account_id: str
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    description: str = ""
    enabled: bool = True
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    failing_since: datetime | None = None
    disabled_reason: DisabledReason | None = None
    version: int = 0

    def wants(self, event_type: str, at: datetime) -> bool:
        """Whether the endpoint takes an event of this type that happened `at`: one that happened before
        the endpoint existed is not its, even when its fan-out comes later (the webhook tick fans out the
        emails' outcomes up to a minute after them)."""
        wanted = ALL_EVENTS in self.events or event_type in self.events
        return self.enabled and wanted and at >= self.created_at.replace(microsecond=0)

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The current secret, and the previous one while its 24 hours last."""
        if self.previous_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def rotated(self, secret: str, now: datetime) -> Endpoint:
        return replace(
            self,
            secret=secret,
            previous_secret=self.secret,
            previous_secret_expires_at=now + ROTATION_OVERLAP,
        )

    def with_enabled(self, enabled: bool) -> Endpoint:
        """Enabling again starts afresh: the failures that disabled it no longer count."""
        if enabled == self.enabled:
            return self
        if enabled:
            return replace(self, enabled=True, failing_since=None, disabled_reason=None)
        return replace(self, enabled=False)


def new_endpoint(
    account_id: str, url: str, events: tuple[str, ...], description: str, now: datetime
) -> Endpoint:
    return Endpoint(
        account_id=account_id,
        id=f"whk_{new_ulid(int(now.timestamp() * 1000))}",
        url=url,
        events=events,
        secret=new_secret(),
        created_at=now,
        description=description,
    )


def delivery_id(event_id: str, endpoint_id: str, event_at: datetime) -> str:
    """The one delivery of an event to an endpoint: a ULID of the event's moment (so a list of deliveries
    sorts by event) whose random part is a digest of both ids, so a fan-out done twice makes one delivery."""
    digest = hashlib.sha256(f"{event_id}\x1f{endpoint_id}".encode()).digest()
    return f"dlv_{new_ulid(int(event_at.timestamp() * 1000), digest)}"


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint, through its attempts. `message` is the event's queue message, kept to
    send the same body again on every retry."""

    account_id: str
    webhook_id: str
    id: str
    event_id: str
    type: str
    message: dict[str, Any]
    attempt: int = 0
    status: DeliveryStatus = DeliveryStatus.PENDING
    response_status: int | None = None
    duration_ms: int | None = None
    attempted_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST gave: the answer's status (None without an answer), its time, and why it failed."""

    status: int | None
    duration_ms: int
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


def retry_delay(attempt: int) -> timedelta | None:
    """The wait before the next try after attempt `attempt` (1-based) failed; None: give up."""
    return RETRY_DELAYS[attempt - 1] if 1 <= attempt <= len(RETRY_DELAYS) else None


def after_attempt(delivery: Delivery, outcome: AttemptOutcome, now: datetime) -> Delivery:
    """The delivery once attempt `delivery.attempt + 1` made at `now` gave `outcome`."""
    attempt = delivery.attempt + 1
    error = None if outcome.succeeded else (outcome.error or f"HTTP {outcome.status}")
    if outcome.succeeded:
        status, next_at = DeliveryStatus.SUCCEEDED, None
    else:
        delay = retry_delay(attempt)
        status = DeliveryStatus.PENDING if delay is not None else DeliveryStatus.FAILED
        next_at = now + delay if delay is not None else None
    return replace(
        delivery,
        attempt=attempt,
        status=status,
        response_status=outcome.status,
        duration_ms=outcome.duration_ms,
        attempted_at=now,
        next_attempt_at=next_at,
        last_error=error,
    )


def refused_body(delivery: Delivery, size: int, now: datetime) -> Delivery:
    """The delivery once attempt `delivery.attempt + 1` found its body over MAX_BODY_BYTES: nothing was
    posted, and no retry could post it, so it fails now, saying why."""
    return replace(
        delivery,
        attempt=delivery.attempt + 1,
        status=DeliveryStatus.FAILED,
        response_status=None,
        duration_ms=0,
        attempted_at=now,
        next_attempt_at=None,
        last_error=(
            f"body too large: {size} bytes, more than the {MAX_BODY_BYTES} (256 KB) a delivery may post"
        ),
    )


def given_up(delivery: Delivery, reason: str) -> Delivery:
    """A delivery that will not be tried again without a POST (its endpoint was disabled)."""
    return replace(delivery, status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=reason)


def disable_reason(
    outcome: AttemptOutcome, failing_since: datetime | None, now: datetime
) -> DisabledReason | None:
    """Whether this outcome disables the endpoint: a 410 at once; a failure five days after the first
    failure that no success has cleared."""
    if outcome.status == GONE:
        return DisabledReason.GONE
    if not outcome.succeeded and failing_since is not None and now - failing_since >= DISABLE_AFTER:
        return DisabledReason.FAILING
    return None
