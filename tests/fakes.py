"""Hand-written fakes of the ports. The contract suite runs them against the DynamoDB repositories,
so they cannot drift from the real behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import Communication, CommunicationStatus
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.services.ports import MailerThrottled, MailRejected, OutgoingEmail


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

    def add(self, communication: Communication, retry_at: datetime) -> bool:
        key = (communication.account_id, communication.id)
        if key in self.communications:
            return False
        self.communications[key] = communication
        if communication.status is CommunicationStatus.QUEUED:
            self.retry_at[key] = retry_at
        return True

    def get(self, account_id: str, communication_id: str) -> Communication | None:
        return self.communications.get((account_id, communication_id))

    def settle(self, communication: Communication) -> None:
        key = (communication.account_id, communication.id)
        self.communications[key] = communication
        self.retry_at.pop(key, None)

    def due_for_retry(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted((at, key) for key, at in self.retry_at.items() if at <= now)
        return [key for _, key in due[:limit]]

    def postpone(self, account_id: str, communication_id: str, retry_at: datetime) -> None:
        key = (account_id, communication_id)
        communication = self.communications.get(key)
        if communication is not None and communication.status is CommunicationStatus.QUEUED:
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
