"""Webhook endpoints and deliveries in DynamoDB.

Endpoints live in their account's partition (`ACCOUNT#<a>` / `WEBHOOK#<id>`), beside a count of them
(`WEBHOOKS`) that the transaction adding or deleting one moves under a condition, so the limit of 20 holds
under concurrent creations. Deliveries live in their endpoint's partition (`ACCOUNT#<a>#WEBHOOK#<id>` /
`DELIVERY#<ULID>`), one item per (event, endpoint) rewritten by each attempt under the condition of the
attempt it follows: a duplicate queue message finds its attempt already recorded and changes nothing.
An attempt costs two calls: one TransactGetItems of the endpoint and the delivery, one conditional write
of the outcome (a TransactWriteItems when the endpoint's failure clock or state moves with it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactGet, TransactWrite

from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.events import event_from, event_item, event_key
from chalicelib.adapters.dynamodb.models import (
    DUE_SHARDS,
    DeliveryItem,
    EventItem,
    WebhookCountItem,
    WebhookItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.repositories import NewCommunications
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import Communication
from chalicelib.domain.errors import Conflict, FieldIssue, InvalidInput
from chalicelib.domain.events import Event
from chalicelib.domain.webhooks import (
    MAX_ENDPOINTS,
    Delivery,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
)

Cursor = dict[str, Any]
DueCursors = dict[int, Cursor]
"""Per shard of the `due` index, where its next page starts (see `due_events`)."""
DELIVERY_KEPT = timedelta(days=30)
"""How long a delivery stays listed after its last attempt (DynamoDB's TTL then removes it)."""
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _account_pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def _endpoint_sk(webhook_id: str) -> str:
    return f"WEBHOOK#{webhook_id}"


def _deliveries_pk(account_id: str, webhook_id: str) -> str:
    return f"ACCOUNT#{account_id}#WEBHOOK#{webhook_id}"


def _delivery_sk(delivery_id: str) -> str:
    return f"DELIVERY#{delivery_id}"


def _shard(value: str) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:8], 16) % DUE_SHARDS


def _endpoint_from(item: WebhookItem) -> Endpoint:
    return Endpoint(
        account_id=item.account_id,
        id=item.webhook_id,
        url=item.url,
        events=tuple(str(e) for e in item.events or []),
        secret=item.secret,
        created_at=item.created_at,
        description=item.description or "",
        enabled=bool(item.enabled),
        previous_secret=item.previous_secret,
        previous_secret_expires_at=item.previous_secret_expires_at,
        failing_since=item.failing_since,
        disabled_reason=DisabledReason(item.disabled_reason) if item.disabled_reason else None,
    )


def _endpoint_item(endpoint: Endpoint) -> WebhookItem:
    return WebhookItem(
        _account_pk(endpoint.account_id),
        _endpoint_sk(endpoint.id),
        account_id=endpoint.account_id,
        webhook_id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        enabled=endpoint.enabled,
        secret=endpoint.secret,
        previous_secret=endpoint.previous_secret,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        failing_since=endpoint.failing_since,
        disabled_reason=endpoint.disabled_reason.value if endpoint.disabled_reason else None,
        created_at=endpoint.created_at,
    )


def _delivery_from(item: DeliveryItem, account_id: str, webhook_id: str) -> Delivery:
    return Delivery(
        account_id=account_id,
        webhook_id=webhook_id,
        id=item.sk.removeprefix("DELIVERY#"),
        event_id=item.event_id,
        type=item.type,
        message=dict(item.message or {}),
        attempt=int(item.attempt),
        status=DeliveryStatus(item.status),
        response_status=int(item.response_status) if item.response_status is not None else None,
        duration_ms=int(item.duration_ms) if item.duration_ms is not None else None,
        attempted_at=item.attempted_at,
        next_attempt_at=item.next_attempt_at,
        last_error=item.last_error,
    )


def _delivery_item(delivery: Delivery) -> DeliveryItem:
    item = DeliveryItem(
        _deliveries_pk(delivery.account_id, delivery.webhook_id),
        _delivery_sk(delivery.id),
        event_id=delivery.event_id,
        type=delivery.type,
        message=delivery.message,
        attempt=delivery.attempt,
        status=delivery.status.value,
        response_status=delivery.response_status,
        duration_ms=delivery.duration_ms,
        attempted_at=delivery.attempted_at,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
    )
    if delivery.attempted_at is not None:
        item.ttl = int((delivery.attempted_at + DELIVERY_KEPT).timestamp())
    if delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at is not None:
        # Where the tick finds the next attempt: its moment, then what to ask for (see `due_deliveries`).
        item.due_pk = f"WHR#{_shard(delivery.id)}"
        item.due_sk = f"{iso(delivery.next_attempt_at)}#{delivery.id}#{delivery.attempt + 1}"
    return item


class DynamoWebhookStore:
    def add(self, endpoint: Endpoint) -> None:
        """Store a new endpoint and count it; Conflict when the account already has the most it may."""
        pk = _account_pk(endpoint.account_id)
        counted = (WebhookCountItem.endpoints.does_not_exist()) | (WebhookCountItem.endpoints < MAX_ENDPOINTS)
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.update(
                    WebhookCountItem(pk, "WEBHOOKS"),
                    actions=[WebhookCountItem.endpoints.add(1)],
                    condition=counted,
                )
                transaction.save(_endpoint_item(endpoint), condition=WebhookItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise Conflict(f"An account has at most {MAX_ENDPOINTS} webhook endpoints.") from exc
            raise

    def get(self, account_id: str, webhook_id: str) -> Endpoint | None:
        try:
            return _endpoint_from(WebhookItem.get(_account_pk(account_id), _endpoint_sk(webhook_id)))
        except WebhookItem.DoesNotExist:
            return None

    def page(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Endpoint], Cursor | None]:
        pk = _account_pk(account_id)
        check_cursor(cursor, "PK", pk)
        if cursor is not None and not str(cursor["SK"].get("S", "")).startswith("WEBHOOK#"):
            raise InvalidInput(
                "The cursor does not belong to this list.", [FieldIssue("cursor", "not from this list")]
            )
        query = WebhookItem.query(
            pk, WebhookItem.sk.startswith("WEBHOOK#"), limit=limit, last_evaluated_key=cursor
        )
        endpoints = [_endpoint_from(item) for item in query]
        return endpoints, query.last_evaluated_key

    def all(self, account_id: str) -> list[Endpoint]:
        """Every endpoint of the account: one Query (there are at most MAX_ENDPOINTS)."""
        query = WebhookItem.query(
            _account_pk(account_id), WebhookItem.sk.startswith("WEBHOOK#"), limit=MAX_ENDPOINTS
        )
        return [_endpoint_from(item) for item in query]

    def change(self, endpoint: Endpoint, fields: frozenset[str]) -> bool:
        """Write the named fields of the endpoint (what a PATCH or a rotation changed, and nothing else, so
        that a concurrent rotation, PATCH or failure clock is not undone); False when the endpoint is gone."""
        values = {
            "url": endpoint.url,
            "events": list(endpoint.events),
            "description": endpoint.description,
            "enabled": endpoint.enabled,
            "secret": endpoint.secret,
            "previous_secret": endpoint.previous_secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at,
            "failing_since": endpoint.failing_since,
            "disabled_reason": endpoint.disabled_reason.value if endpoint.disabled_reason else None,
        }
        actions = [
            action
            for name in sorted(fields)
            for action in _set_or_remove(getattr(WebhookItem, name), values[name])
        ]
        if not actions:
            return True
        try:
            WebhookItem(_account_pk(endpoint.account_id), _endpoint_sk(endpoint.id)).update(
                actions=actions, condition=WebhookItem.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def remove(self, account_id: str, webhook_id: str) -> bool:
        """Delete the endpoint and uncount it; False when there was none. Its deliveries expire."""
        pk = _account_pk(account_id)
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.delete(
                    WebhookItem(pk, _endpoint_sk(webhook_id)), condition=WebhookItem.pk.exists()
                )
                transaction.update(
                    WebhookCountItem(pk, "WEBHOOKS"), actions=[WebhookCountItem.endpoints.add(-1)]
                )
        except TransactWriteError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def deliveries(
        self, account_id: str, webhook_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Delivery], Cursor | None]:
        """The endpoint's deliveries, newest event first."""
        pk = _deliveries_pk(account_id, webhook_id)
        check_cursor(cursor, "PK", pk)
        query = DeliveryItem.query(
            pk,
            DeliveryItem.sk.startswith("DELIVERY#"),
            limit=limit,
            last_evaluated_key=cursor,
            scan_index_forward=False,
        )
        found = [_delivery_from(item, account_id, webhook_id) for item in query]
        return found, query.last_evaluated_key

    def delivery(self, account_id: str, webhook_id: str, delivery_id: str) -> Delivery | None:
        try:
            item = DeliveryItem.get(_deliveries_pk(account_id, webhook_id), _delivery_sk(delivery_id))
        except DeliveryItem.DoesNotExist:
            return None
        return _delivery_from(item, account_id, webhook_id)

    def for_attempt(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> tuple[Endpoint | None, Delivery | None]:
        """The endpoint and the delivery as they stand, in one read."""
        with TransactGet(connection=transactions()) as transaction:
            endpoint_future = transaction.get(WebhookItem, _account_pk(account_id), _endpoint_sk(webhook_id))
            delivery_future = transaction.get(
                DeliveryItem, _deliveries_pk(account_id, webhook_id), _delivery_sk(delivery_id)
            )
        try:
            endpoint: Endpoint | None = _endpoint_from(endpoint_future.get())
        except WebhookItem.DoesNotExist:
            endpoint = None
        try:
            delivery: Delivery | None = _delivery_from(delivery_future.get(), account_id, webhook_id)
        except DeliveryItem.DoesNotExist:
            delivery = None
        return endpoint, delivery

    def record(
        self,
        before: Delivery,
        after: Delivery,
        endpoint: Endpoint | None = None,
        notice: Communication | None = None,
        notice_retry_at: datetime | None = None,
        notice_events: Sequence[Event] = (),
    ) -> bool:
        """Write the outcome of the attempt that followed `before`, only if the delivery still stands as
        `before` (False otherwise: another worker recorded it). With `endpoint`, its failure clock and
        state move in the same transaction; with `notice`, the email telling the account it was disabled
        is written too (screened: `NewCommunications`), once (the endpoint must still be enabled), with
        `notice_events`; RecipientsSuppressed when its address is on the suppression list."""
        item = _delivery_item(after)
        if before.attempt == 0:
            condition = DeliveryItem.pk.does_not_exist()
        else:
            condition = (DeliveryItem.attempt == before.attempt) & (
                DeliveryItem.status == before.status.value
            )
        if endpoint is None:
            try:
                item.save(condition=condition)
            except PutError as exc:
                if exc.cause_response_code == _CONDITION_FAILED:
                    return False
                raise
            return True
        # Starting or stopping the failure clock never writes `enabled`, so it cannot undo a concurrent
        # disabling or PATCH; disabling needs the endpoint still enabled, so that two failing deliveries
        # disable it, and tell the account, once.
        endpoint_condition = WebhookItem.pk.exists()
        actions = [*_set_or_remove(WebhookItem.failing_since, endpoint.failing_since)]
        if not endpoint.enabled:
            endpoint_condition &= WebhookItem.enabled == True  # noqa: E712 (a PynamoDB condition)
            actions += [
                WebhookItem.enabled.set(False),
                *_set_or_remove(
                    WebhookItem.disabled_reason,
                    endpoint.disabled_reason.value if endpoint.disabled_reason else None,
                ),
            ]
        transaction = TransactWrite(connection=transactions())
        notices = NewCommunications(transaction)
        try:
            with transaction:
                transaction.save(item, condition=condition)
                transaction.update(
                    WebhookItem(_account_pk(endpoint.account_id), _endpoint_sk(endpoint.id)),
                    actions=actions,
                    condition=endpoint_condition,
                )
                if notice is not None and notice_retry_at is not None:
                    notices.add(notice, notice_retry_at)
                    for event in notice_events:
                        transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            notices.raise_if_suppressed(exc)
            if condition_failed(exc):
                return False
            raise
        return True

    def fanned_out(self, event: Event) -> None:
        """Take the event off the `due` index: its deliveries are queued. An event whose item is gone
        (its dossier erased meanwhile) is left gone."""
        pk, sk = event_key(event)
        try:
            EventItem(pk, sk).update(
                actions=[EventItem.due_pk.remove(), EventItem.due_sk.remove()],
                condition=EventItem.pk.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != _CONDITION_FAILED:
                raise

    def due_deliveries(self, now: datetime, per_shard: int) -> list[tuple[str, str, str, int]]:
        """(account_id, webhook_id, delivery_id, attempt) of the attempts due at `now`, oldest first: one
        Query of at most `per_shard` items on each shard."""
        found: list[tuple[str, tuple[str, str, str, int]]] = []
        upper = f"{iso(now)}#~"
        for shard in range(DUE_SHARDS):
            for item in DeliveryItem.due_index.query(
                f"WHR#{shard}", DeliveryItem.due_sk <= upper, limit=per_shard
            ):
                account_id, _, webhook_id = item.pk.removeprefix("ACCOUNT#").partition("#WEBHOOK#")
                attempt = str(item.due_sk).rsplit("#", 1)[-1]
                delivery_id = item.sk.removeprefix("DELIVERY#")
                found.append((str(item.due_sk), (account_id, webhook_id, delivery_id, int(attempt))))
        found.sort(key=lambda entry: entry[0])
        return [key for _, key in found]

    def due_events(
        self, now: datetime, per_shard: int, after: DueCursors | None = None
    ) -> tuple[list[Event], DueCursors]:
        """Events waiting for their fan-out at `now` (their queue message was lost, or nobody announced
        them), oldest first: one Query of at most `per_shard` keys on each shard (None), or on each shard
        of `after` from where its last page ended, then BatchGetItem (100 keys a call). With them, where
        the next page of each shard whose page came full starts."""
        keys: list[tuple[str, tuple[str, str]]] = []
        upper = f"{iso(now)}#~"
        cursors: DueCursors = {}
        starts: dict[int, Cursor | None] = (
            dict.fromkeys(range(DUE_SHARDS)) if after is None else dict(after.items())
        )
        for shard, start in starts.items():
            query = EventItem.due_index.query(
                f"WH#{shard}", EventItem.due_sk <= upper, limit=per_shard, last_evaluated_key=start
            )
            for item in query:
                keys.append((str(item.due_sk), (item.pk, item.sk)))
            if query.last_evaluated_key:
                cursors[shard] = query.last_evaluated_key
        keys.sort(key=lambda entry: entry[0])
        wanted = [key for _, key in keys]
        return ([event_from(item) for item in EventItem.batch_get(wanted)] if wanted else []), cursors


def _set_or_remove(attribute: Any, value: Any) -> list[Any]:
    return [attribute.set(value)] if value is not None else [attribute.remove()]
