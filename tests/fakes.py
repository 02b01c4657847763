"""Hand-written fakes of the ports. The contract suite runs them against the DynamoDB repositories,
so they cannot drift from the real behaviour."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import Communication, CommunicationStatus
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event
from chalicelib.services.ports import DeliveryInFlight, MailerThrottled, MailRejected, OutgoingEmail


class FakeAccountRepository:
    def __init__(self, communications: FakeCommunicationRepository | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self.communications = communications if communications is not None else FakeCommunicationRepository()

    def open(self, account: Account, welcome: Communication, retry_at: datetime) -> Account:
        if account.id in self.accounts:
            raise Conflict("An account with this id already exists.")
        self.communications.add(welcome, retry_at)
        return self.add(account)

    def add(self, account: Account) -> Account:
        if account.id in self.accounts:
            raise Conflict("An account with this id already exists.")
        self.accounts[account.id] = replace(account, version=1)
        return self.accounts[account.id]

    def get(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def save(self, account: Account) -> Account:
        current = self.accounts.get(account.id)
        if current is None or current.version != account.version:
            raise StaleVersion()
        saved = replace(account, version=account.version + 1)
        self.accounts[account.id] = saved
        return saved


class FakeCommunicationRepository:
    def __init__(self) -> None:
        self.communications: dict[tuple[str, str], Communication] = {}
        self.retry_at: dict[tuple[str, str], datetime] = {}
        self.claimed_at: dict[tuple[str, str], datetime] = {}
        self.events: list[Event] = []

    def add(self, communication: Communication, retry_at: datetime, events: Sequence[Event] = ()) -> bool:
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
                current, status=CommunicationStatus.QUEUED, delivered_to=delivered
            )

    def settle(
        self,
        communication: Communication,
        expected: CommunicationStatus | None = None,
        events: Sequence[Event] = (),
        at: datetime | None = None,
    ) -> list[Event] | None:
        key = (communication.account_id, communication.id)
        if expected is not None and self.communications[key].status is not expected:
            return None
        self.communications[key] = communication
        self.retry_at.pop(key, None)
        self.events.extend(events)
        return list(events)

    def record_delivered(
        self, account_id: str, communication_id: str, addresses: tuple[str, ...]
    ) -> Communication | None:
        key = (account_id, communication_id)
        current = self.communications.get(key)
        if current is None or current.status is not CommunicationStatus.SENDING:
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
        if current is None or current.status is not CommunicationStatus.SENDING:
            return None
        return self.settle(
            current.sent(subject or current.subject or "", provider_message_id, at), events=events
        )

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
        self.reasons: dict[tuple[str, str], str] = {}
        for address in addresses:
            self.reasons[("A1", address)] = "bounce: Permanent/General"

    def add(
        self, account_id: str, address: str, reason: str, communication_id: str | None, at: datetime
    ) -> None:
        self.reasons[(account_id, address)] = reason

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        return {a for a in addresses if (account_id, a) in self.reasons}
