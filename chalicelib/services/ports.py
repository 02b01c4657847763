"""The ports the use cases talk through. Adapters implement them for AWS; tests implement them as fakes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from chalicelib.domain.accounts import Account, Logo
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.communications import Communication, CommunicationStatus, Recipient
from chalicelib.domain.deliverability import Suppression
from chalicelib.domain.dunning import DunningPolicy
from chalicelib.domain.events import Event
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.domain.legal import BrokerIdentity, PostalAddress
from chalicelib.domain.partners import Apporteur, Client, Deal, DealFilters, Product, RecordKind
from chalicelib.domain.unsubscribe import Addressee, Unsubscription


class AccountRepository(Protocol):
    def add(self, account: Account) -> Account:
        """Store a new account; returns it as stored (version 1). Conflict if the id exists."""
        ...

    def open(self, account: Account, welcome: Communication, retry_at: datetime) -> Account:
        """Store a new account and its welcome email together (both or neither); Conflict if it exists."""
        ...

    def get(self, account_id: str) -> Account | None: ...

    def save(self, account: Account, audit: AuditEntry | None = None) -> Account:
        """Write a changed account; raises StaleVersion if it changed since it was read. With `audit`, the
        entry that records the change is written with it (both or neither)."""
        ...


@dataclass(frozen=True)
class StoredLogo:
    logo: Logo
    etag: str
    """Changes with the bytes: browsers revalidate a cached logo with it."""


class LogoStore(Protocol):
    def put(self, account_id: str, logo: Logo) -> StoredLogo:
        """Store the account's logo, replacing any earlier one."""
        ...

    def get(self, account_id: str) -> StoredLogo | None: ...


class DunningPolicyRepository(Protocol):
    def get(self, account_id: str) -> DunningPolicy | None:
        """The account's policy, or None while it never saved one (the defaults apply)."""
        ...

    def save(self, account_id: str, policy: DunningPolicy) -> DunningPolicy:
        """Store the whole policy; StaleVersion when it changed since `policy.version` was read."""
        ...


RecordT = TypeVar("RecordT", Apporteur, Client, Product, Deal)
PartnerRecord = Apporteur | Client | Product | Deal
Cursor = dict[str, Any]


@dataclass(frozen=True)
class AccountRecords:
    """What one read of an account's records found; what is missing is None or left out."""

    account: Account | None
    records: dict[tuple[RecordKind, str], PartnerRecord]
    policy: DunningPolicy | None
    """The account's dunning policy when it was asked for and the account saved one."""


class PartnerRepository(Protocol):
    def add(self, record: RecordT) -> RecordT:
        """Store a new record; returns it as stored (version 1)."""
        ...

    def save(
        self, record: PartnerRecord, updated_at: datetime, events: Sequence[Event] = ()
    ) -> PartnerRecord:
        """Write a changed record, with the events that tell the change; StaleVersion when it changed
        since `record.version` was read."""
        ...

    def get(self, account_id: str, kind: RecordKind, record_id: str) -> PartnerRecord | None: ...

    def get_many(
        self, account_id: str, keys: Iterable[tuple[RecordKind, str]], with_account: bool = False
    ) -> tuple[Account | None, dict[tuple[RecordKind, str], PartnerRecord]]:
        """Several records (and, when asked, the account) in one read; missing ones are left out."""
        ...

    def account_records(
        self, account_id: str, keys: Iterable[tuple[RecordKind, str]], with_policy: bool
    ) -> AccountRecords:
        """The account, several records and, when asked, the account's dunning policy, in one read."""
        ...

    def filter_records(
        self, account_id: str, kind: RecordKind, filters: DealFilters, limit: int, cursor: Cursor | None
    ) -> tuple[list[PartnerRecord], Cursor | None]: ...

    def remove(
        self,
        account_id: str,
        record: tuple[RecordKind, str],
        dependents: Iterable[tuple[RecordKind, str]],
        audit: AuditEntry,
    ) -> None:
        """Erase the record and its dependents (the dependents first); the audit entry is written with
        the record's deletion, only while it exists. Idempotent."""
        ...


class CommunicationRepository(Protocol):
    def add(self, communication: Communication, retry_at: datetime, events: Sequence[Event] = ()) -> bool:
        """Store a queued communication once (with the events that tell it, in the same write); False when
        one with the same id already exists. `retry_at` is when the tick should queue it again if no
        worker has dealt with it by then. A queued one is stored `screened`: RecipientsSuppressed when
        one of its addresses is on the account's suppression list (nothing is written)."""
        ...

    def get(self, account_id: str, communication_id: str) -> Communication | None: ...

    def client_history(
        self, account_id: str, client_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Communication], Cursor | None]: ...

    def claim(
        self, account_id: str, communication_id: str, now: datetime, lease: timedelta
    ) -> Communication | None:
        """Take a queued communication for sending (status `sending`) and return it; None when there is
        nothing to send; raises DeliveryInFlight while another worker's claim is younger than `lease`."""
        ...

    def forget(self, account_id: str, communication_id: str) -> None:
        """Delete what the email would have said and to whom (its recipients, variables and template)."""
        ...

    def settle(
        self,
        communication: Communication,
        expected: CommunicationStatus | None = None,
        events: Sequence[Event] = (),
        at: datetime | None = None,
        announced: bool = True,
    ) -> list[Event] | None:
        """Record a status and take it off the retry schedule, with its events, in one write; with
        `expected`, only from that status (None when it had moved on), and then a mailing's counts move
        with it. The events written, to announce: `mailing.finished` too when this ended a mailing.
        `announced=False` says nobody will: the events are then due for the webhook tick's fan-out at once.
        A `sent` outcome expected from `sending` also lands, once, on an email whose bounce or complaint
        came first (`Communication.awaits_its_sending`): it keeps that status and counts as sent."""
        ...

    def statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], CommunicationStatus]:
        """The status of each (account, communication) in one read per hundred; unknown ones left out."""
        ...

    def release(self, account_id: str, communication_id: str, delivered_to: tuple[str, ...] = ()) -> None:
        """Give a claim back (`sending` → `queued`), so that the next try need not wait; `delivered_to`
        names the addresses whose copy was already accepted (added to those recorded), which the next try
        leaves out. The screening done when it was written goes with the claim: the next try screens."""
        ...

    def record_delivered(
        self, account_id: str, communication_id: str, addresses: tuple[str, ...]
    ) -> Communication | None:
        """SES accepted the copies sent to `addresses` (normalized) of a communication still `sending` (or
        awaiting its sending after a bounce): add them to its `delivered_to` and return it as it now
        stands; None when it is settled."""
        ...

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
        """SES's Send event: settle as `sent` a communication still `sending`, with its events (or record
        the sending of one whose bounce or complaint came first, as `settle` does); None otherwise."""
        ...

    def due_for_retry(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(account_id, communication_id) of queued communications whose retry time has come."""
        ...

    def postpone(self, account_id: str, communication_id: str, retry_at: datetime) -> None: ...


class SuppressionList(Protocol):
    """Addresses an account may no longer write to (a permanent bounce or a complaint)."""

    def add(
        self, account_id: str, address: str, reason: str, communication_id: str | None, at: datetime
    ) -> None: ...

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        """Which of these normalized addresses are suppressed."""
        ...

    def entries(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Suppression], Cursor | None]: ...

    def remove(self, account_id: str, digest: str, audit: AuditEntry) -> bool:
        """Take the address of this hash off the list, with the audit entry (both or neither); False when
        it was not on it."""
        ...


class UnsubscriptionRepository(Protocol):
    def add(self, addressee: Addressee, at: datetime) -> bool:
        """Record that the addressee left the account's mailings; False when it already had."""
        ...

    def unsubscribed(self, account_id: str, parties: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (party, id) pairs no longer receive the account's mailings."""
        ...

    def entries(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Unsubscription], Cursor | None]: ...

    def remove(self, account_id: str, party: str, party_id: str, audit: AuditEntry) -> bool:
        """The addressee receives the account's mailings again, with the audit entry (both or neither);
        False when it had not unsubscribed."""
        ...


class AuditTrail(Protocol):
    def page(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[AuditEntry], Cursor | None]:
        """A page of the account's audit trail, oldest first."""
        ...


@dataclass(frozen=True)
class StoredLink:
    """A portal link as the table keeps it: the SHA-256 of its secret, whom it admits, until when, and
    the dossier email that carries it, if one does."""

    token_hash: str
    principal: PortalPrincipal
    expires_at: datetime
    communication_id: str | None = None


class PortalTokenRepository(Protocol):
    def find_active(self, token_hash: str, now: datetime) -> PortalPrincipal | None:
        """The principal of a live link (known, not revoked, not expired), else None."""
        ...

    def account_of(self, token_hash: str) -> str | None:
        """The account a link was minted by, live or dead (revoked, expired), while its item exists."""
        ...


@dataclass(frozen=True)
class ScheduledKey:
    """One step whose moment has come, as the `due` index names it: a `deadline_approaching` automation
    of a dossier (`DEADLINE`, parent the dossier) or an installment's or expected document's step
    (`INSTALLMENT`, `EXPECTED`, parent the contract)."""

    kind: str
    account_id: str
    parent_id: str
    thing_id: str


class DueSteps(Protocol):
    def due(self, now: datetime, limit: int) -> list[ScheduledKey]:
        """The `limit` oldest steps due at `now`, every kind at once, across every shard."""
        ...


class MessageQueue(Protocol):
    def send(self, body: dict[str, Any]) -> None: ...

    def send_many(self, bodies: Iterable[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class OutgoingEmail:
    account_id: str
    communication_id: str
    kind: str
    sender_name: str
    reply_to: str | None
    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    subject: str
    text: str
    html: str
    sent_at: datetime
    mailing_id: str | None = None
    """Tagged on the SES message, so that its Send event can move the mailing's counts."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers (a mailing's `List-Unsubscribe` and `List-Unsubscribe-Post`)."""
    envelope: tuple[Recipient, ...] | None = None
    """Who actually receives this copy, when not everyone in To and Cc (a mailing sends each addressee
    his own copy, with his own unsubscribe link, under the same To and Cc headers)."""


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send one email and return the provider's message id.
        Raises MailerThrottled when asked to slow down, MailerUnavailable when the account may not send,
        MailerOutcomeUnknown when the provider failed without saying whether it accepted the message,
        and MailRejected for a final refusal of this message or addressee."""
        ...


class DeliveryInFlight(Exception):
    """Another worker holds the communication's claim and may be calling SES right now: try later."""


class RecipientsSuppressed(Exception):
    """A new communication was not written: some of its addresses are on the account's suppression list.
    The transaction that writes a communication checks each of its addresses, so that the worker need not
    look them up; the writer re-addresses it (`domain.recipients.readdressed`) and writes again."""

    def __init__(self, addresses: frozenset[str]) -> None:
        super().__init__(f"{len(addresses)} address(es) on the suppression list")
        self.addresses = addresses
        """The normalized addresses whose suppression item exists."""


class MailerThrottled(Exception):
    """The provider asked us to slow down: try the same message again later."""


class MailerUnavailable(Exception):
    """The provider refuses to send anything for the account now (sending paused, account suspended,
    configuration set or permission missing): the sender's problem, not the address's. Nothing was sent;
    the email stays queued and is tried again once someone has fixed the account."""


class MailerOutcomeUnknown(Exception):
    """The provider failed on its side (a 5xx): it may have accepted the message or not. The claim is
    kept: the provider's Send event settles the email if it did, else the claim's lease lapses and a
    retry sends it, so a retry never risks a second copy."""


class MailRejected(Exception):
    """The provider refused this message, or this addressee, for good (a malformed or refused address)."""


# ---- the registered letter ----
# The `RegisteredMail` port: how a formal notice's registered letter leaves when the account's channel is
# `provider` (an online registered-letter service prints, posts and tracks it).
#
# Relais hands over the PDF it prepared and the addresses; the provider answers with its own id for the
# letter and, once it has deposited the letter with the post, the proof of deposit (the day it was sent and
# its tracking number). A deposit is idempotent by Relais's letter id: handing the same letter twice (a
# retried tick, a crashed worker) never posts two letters. A provider that times out or refuses raises
# `RegisteredMailUnavailable`; the letter then stays `to_send` and the tick hands it over again later.


class LetterTrackingStatus(StrEnum):
    ACCEPTED = "accepted"
    """Taken by the provider, not yet deposited with the post."""
    SENT = "sent"
    """Deposited with the post: `sent_on` and `tracking_number` are known."""
    DELIVERED = "delivered"
    RETURNED = "returned"
    """Not delivered (refused, not claimed, address unknown): the proof comes back to the sender."""


@dataclass(frozen=True)
class LetterToSend:
    letter_id: str
    """Relais's id of the letter: the provider's idempotency key and its reference."""
    pdf: bytes
    recipient_name: str
    recipient_address: PostalAddress
    sender: BrokerIdentity
    account_id: str = ""
    contract_id: str = ""
    installment_id: str = ""
    document_key: str = ""
    """Where Relais keeps the PDF (for the local stage's list of letters; a provider ignores these)."""


@dataclass(frozen=True)
class LetterTracking:
    provider_id: str
    status: LetterTrackingStatus
    sent_on: date | None = None
    tracking_number: str | None = None


class RegisteredMailUnavailable(Exception):
    """The provider timed out, failed or refused the request: nothing was counted as sent."""


class RegisteredMail(Protocol):
    def deposit(self, letter: LetterToSend, now: datetime) -> LetterTracking:
        """Hand the letter over (idempotent by `letter.letter_id`) and say where it stands."""
        ...

    def track(self, provider_id: str, now: datetime) -> LetterTracking:
        """Where a letter handed over earlier stands now."""
        ...


class LetterStore(Protocol):
    """Where prepared letters are kept: privately, encrypted at rest, under the account's prefix."""

    def put_letter(self, key: str, pdf: bytes) -> None: ...

    def get_letter(self, key: str) -> bytes: ...

    def letter_url(self, key: str, filename: str) -> str:
        """A short-lived link for staff to download the letter."""
        ...
