"""Hand-written fakes of the ports. The contract suite runs them against the DynamoDB repositories,
so they cannot drift from the real behaviour."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.accounts import Account
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.communications import Communication, CommunicationStatus
from chalicelib.domain.deliverability import Suppression, address_hash, normalize_address
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event
from chalicelib.services.ports import (
    Cursor,
    DeliveryInFlight,
    MailerThrottled,
    MailRejected,
    OutgoingEmail,
    RecipientsSuppressed,
)


def _page(items: list[Any], limit: int, cursor: Cursor | None) -> tuple[list[Any], Cursor | None]:
    """A page of a list already in its order; the cursor is the offset of the next page."""
    start = int(cursor["offset"]) if cursor else 0
    end = start + limit
    return items[start:end], {"offset": end} if end < len(items) else None


class FakeAccountRepository:
    def __init__(self, communications: FakeCommunicationRepository | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self.communications = communications if communications is not None else FakeCommunicationRepository()
        self.audit: list[AuditEntry] = []

    def open(self, account: Account, welcome: Communication, retry_at: datetime) -> Account:
        if account.id in self.accounts:
            raise Conflict("An account with this id already exists.")
        self.communications.store(welcome, retry_at)
        return self.add(account)

    def add(self, account: Account) -> Account:
        if account.id in self.accounts:
            raise Conflict("An account with this id already exists.")
        self.accounts[account.id] = replace(account, version=1)
        return self.accounts[account.id]

    def get(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def save(self, account: Account, audit: AuditEntry | None = None) -> Account:
        current = self.accounts.get(account.id)
        if current is None or current.version != account.version:
            raise StaleVersion()
        saved = replace(account, version=account.version + 1)
        self.accounts[account.id] = saved
        if audit is not None:
            self.audit.append(audit)
        return saved


def _screened(communication: Communication, suppressions: FakeSuppressionList) -> Communication:
    """A new communication as the DynamoDB stores write it (`NewCommunications`): a queued one screened
    as of its decision, or RecipientsSuppressed."""
    if communication.status is not CommunicationStatus.QUEUED:
        return communication
    recipients = (*communication.deliverable_to, *communication.deliverable_cc)
    addresses = [normalize_address(str(r.email)) for r in recipients]
    suppressed = suppressions.suppressed(communication.account_id, addresses)
    if suppressed:
        raise RecipientsSuppressed(frozenset(suppressed))
    return replace(communication, screened=True, screened_at=communication.created_at)


class FakeCommunicationRepository:
    """`add` screens a queued communication against `suppressions` (an empty list by default), as the
    DynamoDB store's transaction does."""

    def __init__(self, suppressions: FakeSuppressionList | None = None) -> None:
        self.communications: dict[tuple[str, str], Communication] = {}
        self.retry_at: dict[tuple[str, str], datetime] = {}
        self.claimed_at: dict[tuple[str, str], datetime] = {}
        self.events: list[Event] = []
        self.left_to_the_tick: list[Event] = []
        """Events settled with `announced=False`: the DynamoDB store puts them due at once on the `due`
        index, for the webhook tick's fan-out."""
        self.suppressions = suppressions if suppressions is not None else FakeSuppressionList()

    def add(self, communication: Communication, retry_at: datetime, events: Sequence[Event] = ()) -> bool:
        return self.store(_screened(communication, self.suppressions), retry_at, events)

    def store(self, communication: Communication, retry_at: datetime, events: Sequence[Event] = ()) -> bool:
        """Write it as it is, unscreened (an account's welcome, in the transaction that opens it)."""
        key = (communication.account_id, communication.id)
        if key in self.communications:
            return False
        self.communications[key] = communication
        self.events.extend(events)
        if communication.status is CommunicationStatus.QUEUED:
            self.retry_at[key] = retry_at
        return True

    def get(self, account_id: str, communication_id: str) -> Communication | None:
        return self.communications.get((account_id, communication_id))

    def client_history(
        self, account_id: str, client_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Communication], Cursor | None]:
        """Newest first, as the client index reads them."""
        history = sorted(
            (c for (a, _), c in self.communications.items() if a == account_id and c.client_id == client_id),
            key=lambda c: (c.created_at, c.id),
            reverse=True,
        )
        return _page(history, limit, cursor)

    def forget(self, account_id: str, communication_id: str) -> None:
        key = (account_id, communication_id)
        self.communications[key] = replace(
            self.communications[key], to=(), cc=(), variables={}, template=None, subject=None, party_ids={}
        )

    def claim(
        self, account_id: str, communication_id: str, now: datetime, lease: timedelta
    ) -> Communication | None:
        key = (account_id, communication_id)
        current = self.communications.get(key)
        if current is None:
            return None
        if current.status is CommunicationStatus.SENDING:
            if self.claimed_at[key] >= now - lease:
                raise DeliveryInFlight(communication_id)
        elif current.status is not CommunicationStatus.QUEUED:
            return None
        claimed = replace(current, status=CommunicationStatus.SENDING)
        self.communications[key], self.claimed_at[key] = claimed, now
        return claimed

    def statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], CommunicationStatus]:
        return {key: self.communications[key].status for key in keys if key in self.communications}

    def release(self, account_id: str, communication_id: str, delivered_to: tuple[str, ...] = ()) -> None:
        key = (account_id, communication_id)
        current = self.communications[key]
        if current.status is CommunicationStatus.SENDING:
            delivered = tuple(sorted({*current.delivered_to, *delivered_to}))
            self.communications[key] = replace(
                current,
                status=CommunicationStatus.QUEUED,
                delivered_to=delivered,
                screened=False,
                screened_at=None,
            )

    def settle(
        self,
        communication: Communication,
        expected: CommunicationStatus | None = None,
        events: Sequence[Event] = (),
        at: datetime | None = None,
        announced: bool = True,
    ) -> list[Event] | None:
        key = (communication.account_id, communication.id)
        current = self.communications[key]
        if (
            expected is CommunicationStatus.SENDING
            and communication.status is CommunicationStatus.SENT
            and current.awaits_its_sending
        ):
            communication = current.sent_after_feedback(communication)
        elif expected is not None and current.status is not expected:
            return None
        self.communications[key] = communication
        self.retry_at.pop(key, None)
        self.events.extend(events)
        if not announced:
            self.left_to_the_tick.extend(events)
        return list(events)

    def record_delivered(
        self, account_id: str, communication_id: str, addresses: tuple[str, ...]
    ) -> Communication | None:
        key = (account_id, communication_id)
        current = self.communications.get(key)
        if current is None or not (
            current.status is CommunicationStatus.SENDING or current.awaits_its_sending
        ):
            return None
        delivered = tuple(sorted({*current.delivered_to, *addresses}))
        self.communications[key] = replace(current, delivered_to=delivered)
        return self.communications[key]

    def accept(
        self,
        account_id: str,
        communication_id: str,
        mailing_id: str | None,
        provider_message_id: str,
        subject: str | None,
        at: datetime,
        events: Sequence[Event] = (),
    ) -> list[Event] | None:
        key = (account_id, communication_id)
        current = self.communications.get(key)
        if current is None:
            return None
        sent = current.sent(subject or current.subject or "", provider_message_id, at)
        return self.settle(sent, expected=CommunicationStatus.SENDING, events=events)

    def due_for_retry(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted((at, key) for key, at in self.retry_at.items() if at <= now)
        return [key for _, key in due[:limit]]

    def postpone(self, account_id: str, communication_id: str, retry_at: datetime) -> None:
        key = (account_id, communication_id)
        communication = self.communications.get(key)
        waiting = (CommunicationStatus.QUEUED, CommunicationStatus.SENDING)
        if communication is not None and communication.status in waiting:
            self.retry_at[key] = retry_at


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any]) -> None:
        self.messages.append(body)

    def send_many(self, bodies: Iterable[dict[str, Any]]) -> None:
        self.messages.extend(bodies)


class FakeMailer:
    """Records what it sends; can be told to throttle the next calls or to reject everything."""

    def __init__(self, throttle_next: int = 0, reject_with: str | None = None) -> None:
        self.sent: list[OutgoingEmail] = []
        self.throttle_next = throttle_next
        self.reject_with = reject_with

    def send(self, email: OutgoingEmail) -> str:
        if self.throttle_next > 0:
            self.throttle_next -= 1
            raise MailerThrottled("TooManyRequestsException")
        if self.reject_with:
            raise MailRejected(self.reject_with)
        self.sent.append(email)
        return f"ses-{len(self.sent)}"


class FakeSuppressionList:
    def __init__(self, *addresses: str) -> None:
        self.records: dict[tuple[str, str], Suppression] = {}
        self.audit: list[AuditEntry] = []
        for address in addresses:
            self.add("A1", address, "bounce: Permanent/General", None, datetime(2026, 1, 1))

    def add(
        self, account_id: str, address: str, reason: str, communication_id: str | None, at: datetime
    ) -> None:
        self.records[(account_id, address_hash(address))] = Suppression(
            address_hash(address), reason, communication_id, at
        )

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        return {a for a in addresses if (account_id, address_hash(a)) in self.records}

    def entries(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Suppression], Cursor | None]:
        """By hash, as the table's sort key orders them."""
        listed = sorted((d, s) for (a, d), s in self.records.items() if a == account_id)
        return _page([s for _, s in listed], limit, cursor)

    def remove(self, account_id: str, digest: str, audit: AuditEntry) -> bool:
        if self.records.pop((account_id, digest), None) is None:
            return False
        self.audit.append(audit)
        return True


class FakeWebhookStore:
    """Endpoints and deliveries in dicts, with the DynamoDB store's conditions (tests/contract)."""

    def __init__(self, suppressions: FakeSuppressionList | None = None) -> None:
        from chalicelib.domain.webhooks import Delivery, Endpoint

        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.delivered: dict[str, Delivery] = {}
        self.notices: list[Communication] = []
        self.events: list[Event] = []
        self.fanned: list[str] = []
        self.suppressions = suppressions if suppressions is not None else FakeSuppressionList()

    def add(self, endpoint: Any) -> None:
        from chalicelib.domain.webhooks import MAX_ENDPOINTS

        if len(self.all(endpoint.account_id)) >= MAX_ENDPOINTS:
            raise Conflict(f"An account has at most {MAX_ENDPOINTS} webhook endpoints.")
        self.endpoints[(endpoint.account_id, endpoint.id)] = endpoint

    def get(self, account_id: str, webhook_id: str) -> Any:
        return self.endpoints.get((account_id, webhook_id))

    def page(self, account_id: str, limit: int, cursor: dict[str, Any] | None) -> tuple[list[Any], None]:
        return self.all(account_id)[:limit], None

    def all(self, account_id: str) -> list[Any]:
        return sorted((e for (a, _), e in self.endpoints.items() if a == account_id), key=lambda e: e.id)

    def change(self, endpoint: Any, fields: frozenset[str]) -> bool:
        stored = self.get(endpoint.account_id, endpoint.id)
        if stored is None:
            return False
        self.endpoints[(endpoint.account_id, endpoint.id)] = replace(
            stored, **{name: getattr(endpoint, name) for name in fields}
        )
        return True

    def remove(self, account_id: str, webhook_id: str) -> bool:
        return self.endpoints.pop((account_id, webhook_id), None) is not None

    def deliveries(
        self, account_id: str, webhook_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Any], None]:
        mine = [
            d for d in self.delivered.values() if (d.account_id, d.webhook_id) == (account_id, webhook_id)
        ]
        return sorted(mine, key=lambda d: d.id, reverse=True)[:limit], None

    def delivery(self, account_id: str, webhook_id: str, delivery_id: str) -> Any:
        found = self.delivered.get(delivery_id)
        return found if found and (found.account_id, found.webhook_id) == (account_id, webhook_id) else None

    def for_attempt(self, account_id: str, webhook_id: str, delivery_id: str) -> tuple[Any, Any]:
        return self.get(account_id, webhook_id), self.delivery(account_id, webhook_id, delivery_id)

    def record(
        self,
        before: Any,
        after: Any,
        endpoint: Any = None,
        notice: Communication | None = None,
        notice_retry_at: datetime | None = None,
        notice_events: Sequence[Event] = (),
    ) -> bool:
        existing = self.delivered.get(before.id)
        if before.attempt == 0:
            if existing is not None:
                return False
        elif existing is None or (existing.attempt, existing.status) != (before.attempt, before.status):
            return False
        if endpoint is not None:
            stored = self.get(endpoint.account_id, endpoint.id)
            if stored is None or (not endpoint.enabled and not stored.enabled):
                return False
            if notice is not None:
                notice = _screened(notice, self.suppressions)
            changed = replace(stored, failing_since=endpoint.failing_since)
            if not endpoint.enabled:
                changed = replace(changed, enabled=False, disabled_reason=endpoint.disabled_reason)
            self.endpoints[(endpoint.account_id, endpoint.id)] = changed
            if notice is not None:
                self.notices.append(notice)
                self.events.extend(notice_events)
        self.delivered[after.id] = after
        return True

    def fanned_out(self, event: Any) -> None:
        self.fanned.append(event.id)

    def due_deliveries(self, now: datetime, per_shard: int) -> list[tuple[str, str, str, int]]:
        """One shard: at most `per_shard` of the due attempts, the oldest."""
        from chalicelib.domain.webhooks import DeliveryStatus

        due = sorted(
            (d for d in self.delivered.values() if d.status is DeliveryStatus.PENDING and d.next_attempt_at),
            key=lambda d: d.next_attempt_at,
        )
        return [(d.account_id, d.webhook_id, d.id, d.attempt + 1) for d in due if d.next_attempt_at <= now][
            :per_shard
        ]

    def due_events(
        self, now: datetime, per_shard: int, after: dict[int, Any] | None = None
    ) -> tuple[list[Any], dict[int, Any]]:
        return [], {}
