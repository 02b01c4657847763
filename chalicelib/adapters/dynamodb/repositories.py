"""Repositories over the PynamoDB models: the AWS side of the ports in `chalicelib.services.ports`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.audit import audit_item
from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.mailing_counts import MailingCount, write_counted
from chalicelib.adapters.dynamodb.models import (
    DUE_SHARDS,
    AccountItem,
    AuditEntryItem,
    CommunicationItem,
    DossierLinkItem,
    EventItem,
    PortalTokenItem,
    SuppressionItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.suppressions import suppression_keys
from chalicelib.domain.accounts import DEFAULT_RETENTION_DAYS, Account
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso, parse_iso
from chalicelib.domain.communications import (
    FEEDBACK_STATUSES,
    FINAL_STATUSES,
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
    TemplateSource,
)
from chalicelib.domain.deliverability import normalize_address
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.domain.legal import BrokerIdentity, RegisteredMailChannel
from chalicelib.domain.plans import Plan, Trial
from chalicelib.services.ports import DeliveryInFlight, RecipientsSuppressed, StoredLink


def _account_pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


COMMUNICATION_SHARDS = 16


def communication_key(account_id: str, communication_id: str) -> tuple[str, str]:
    """An account's communications are spread over 16 partitions by a hash of their id."""
    shard = int(hashlib.sha256(communication_id.encode()).hexdigest()[:8], 16) % COMMUNICATION_SHARDS
    return f"ACCOUNT#{account_id}#COMMS#{shard}", f"COMM#{communication_id}"


def mailing_pk(account_id: str, mailing_id: str) -> str:
    return f"ACCOUNT#{account_id}#MAILING#{mailing_id}"


def _condition_failed(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


class DynamoAccountRepository:
    _SK = "ACCOUNT"

    def add(self, account: Account) -> Account:
        item = self._to_item(account)
        try:
            item.save(condition=AccountItem.pk.does_not_exist())
        except PutError as exc:
            if _condition_failed(exc):
                raise Conflict("An account with this id already exists.") from exc
            raise
        return replace(account, version=int(item.version or 0))

    def open(self, account: Account, welcome: Communication, retry_at: datetime) -> Account:
        """The account and its welcome email in one TransactWriteItems: both or neither."""
        item = self._to_item(account)
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.save(item, condition=AccountItem.pk.does_not_exist())
                transaction.save(
                    communication_item(welcome, retry_at), condition=CommunicationItem.pk.does_not_exist()
                )
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise Conflict("An account with this id already exists.") from exc
            raise
        return replace(account, version=1)

    def get(self, account_id: str) -> Account | None:
        try:
            item = AccountItem.get(_account_pk(account_id), self._SK)
        except DoesNotExist:
            return None
        return self.to_domain(item)

    def save(self, account: Account, audit: AuditEntry | None = None) -> Account:
        """Write the account at its version; with `audit`, the entry that records the change in the same
        transaction."""
        item = self._to_item(account)
        if audit is None:
            try:
                item.save()
            except PutError as exc:
                if _condition_failed(exc):
                    raise StaleVersion() from exc
                raise
            return replace(account, version=int(item.version or 0))
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.save(item)
                transaction.save(audit_item(audit), condition=AuditEntryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise StaleVersion() from exc
            raise
        return replace(account, version=int(item.version or 0))

    def _to_item(self, account: Account) -> AccountItem:
        """A new account (version 0) is written with no version: PynamoDB then expects none to exist."""
        item = AccountItem(
            _account_pk(account.id),
            self._SK,
            name=account.name,
            plan=account.plan.value,
            boosters=sorted(account.boosters),
            sender_email=account.sender_email,
            partner_communications_enabled=account.partner_communications_enabled,
            trials={
                feature: {"started_at": iso(t.started_at), "ends_at": iso(t.ends_at)}
                for feature, t in account.trials.items()
            },
            created_at=account.created_at,
            legal=account.legal.as_json() if account.legal else None,
            registered_mail_channel=account.registered_mail_channel.value,
            brand_color=account.brand_color,
            dossier_retention_days=account.dossier_retention_days,
            logo_etag=account.logo_etag,
        )
        if account.version:
            item.version = account.version
        return item

    @staticmethod
    def to_domain(item: AccountItem) -> Account:
        trials: dict[str, Any] = item.trials or {}
        return Account(
            id=item.pk.removeprefix("ACCOUNT#"),
            name=item.name,
            plan=Plan(item.plan),
            boosters=frozenset(item.boosters or []),
            sender_email=item.sender_email,
            created_at=item.created_at,
            partner_communications_enabled=bool(item.partner_communications_enabled),
            trials={
                feature: Trial(feature, parse_iso(t["started_at"]), parse_iso(t["ends_at"]))
                for feature, t in trials.items()
            },
            version=int(item.version or 0),
            legal=BrokerIdentity.from_json(item.legal) if item.legal else None,
            registered_mail_channel=RegisteredMailChannel(
                item.registered_mail_channel or RegisteredMailChannel.MANUAL
            ),
            brand_color=item.brand_color,
            dossier_retention_days=int(item.dossier_retention_days or DEFAULT_RETENTION_DAYS),
            logo_etag=item.logo_etag,
        )


def _due_shard(communication_id: str) -> str:
    return f"DUE#{int(hashlib.sha256(communication_id.encode()).hexdigest()[:8], 16) % DUE_SHARDS}"


def _due_sort_key(at: datetime, account_id: str, communication_id: str) -> str:
    return f"{iso(at)}#{account_id}#{communication_id}"


def _recipients(raw: list[dict[str, Any]]) -> tuple[Recipient, ...]:
    return tuple(Recipient(name=r["name"], email=r.get("email"), party=r["party"]) for r in raw)


def _raw_recipients(recipients: tuple[Recipient, ...]) -> list[dict[str, Any]]:
    return [{"name": r.name, "email": r.email, "party": r.party} for r in recipients]


def _communication_from(item: CommunicationItem, account_id: str) -> Communication:
    return Communication(
        id=item.communication_id,
        account_id=account_id,
        kind=CommunicationKind(item.kind),
        sender_name=item.sender_name,
        reply_to=item.reply_to,
        to=_recipients(item.to or []),
        cc=_recipients(item.cc or []),
        created_at=item.created_at,
        variables=dict(item.variables or {}),
        status=CommunicationStatus(item.status),
        subject=item.subject,
        sent_at=item.sent_at,
        provider_message_id=item.provider_message_id,
        status_reason=item.status_reason,
        template=TemplateSource(**item.template) if item.template else None,
        client_id=item.client_id,
        contract_id=item.contract_id,
        rule=item.rule,
        decided_by=item.decided_by,
        skipped_parties=tuple(item.skipped_parties or ()),
        portal_participant=item.portal_participant,
        mailing_id=item.mailing_id,
        party_ids=dict(item.party_ids or {}),
        delivered_to=tuple(sorted(item.delivered_to or ())),
        dossier_id=item.dossier_id,
        screened=bool(item.screened),
        screened_at=item.screened_at,
    )


def client_history_key(account_id: str, client_id: str) -> str:
    return f"ACCOUNT#{account_id}#COMMS#CLIENT#{client_id}"


def _raw_template(template: TemplateSource | None) -> dict[str, str] | None:
    return None if template is None else {"subject": template.subject, "body": template.body}


class NewCommunications:
    """The items that write new communications in one TransactWriteItems (`add` each to `transaction`),
    and which of their addresses cancelled it.

    A queued communication is written `screened` as of its decision (`created_at`, the moment of this
    transaction), with one ConditionCheck per key its addresses' suppression items may have (hashed, and
    plain from before the hashing: both keys the worker's lookup reads) that none exists; each address
    once per transaction, as DynamoDB refuses two operations on one item. PynamoDB sends the
    ConditionChecks first, in the order added, and the transactions that write communications add no
    other: the cancellation reason at index i is the check of the i-th key checked."""

    def __init__(self, transaction: TransactWrite) -> None:
        self._transaction = transaction
        self._checked: list[str] = []
        """The address of each ConditionCheck, in the order added."""

    def add(self, communication: Communication, retry_at: datetime) -> None:
        if communication.status is CommunicationStatus.QUEUED:
            communication = replace(communication, screened=True, screened_at=communication.created_at)
            for recipient in (*communication.deliverable_to, *communication.deliverable_cc):
                self._check(communication.account_id, normalize_address(str(recipient.email)))
        self._transaction.save(
            communication_item(communication, retry_at), condition=CommunicationItem.pk.does_not_exist()
        )

    def _check(self, account_id: str, address: str) -> None:
        if address in self._checked:
            return
        for key in suppression_keys(account_id, address):
            self._transaction.condition_check(
                SuppressionItem, *key, condition=SuppressionItem.pk.does_not_exist()
            )
            self._checked.append(address)

    def raise_if_suppressed(self, exc: TransactWriteError) -> None:
        """RecipientsSuppressed naming the addresses whose check failed, read at every index; nothing when
        another condition cancelled the transaction."""
        reasons = list(exc.cancellation_reasons or [])
        suppressed = frozenset(
            address
            for address, reason in zip(self._checked, reasons, strict=False)
            if reason is not None and reason.code == "ConditionalCheckFailed"
        )
        if suppressed:
            raise RecipientsSuppressed(suppressed) from exc


def communication_item(communication: Communication, retry_at: datetime) -> CommunicationItem:
    """The item of a new communication (also written inside the transactions of the changes causing it)."""
    item = CommunicationItem(
        *communication_key(communication.account_id, communication.id),
        communication_id=communication.id,
        kind=communication.kind.value,
        status=communication.status.value,
        status_reason=communication.status_reason,
        sender_name=communication.sender_name,
        reply_to=communication.reply_to,
        to=_raw_recipients(communication.to),
        cc=_raw_recipients(communication.cc),
        variables=communication.variables,
        subject=communication.subject,
        template=_raw_template(communication.template),
        created_at=communication.created_at,
        client_id=communication.client_id,
        contract_id=communication.contract_id,
        rule=communication.rule,
        decided_by=communication.decided_by,
        skipped_parties=list(communication.skipped_parties) or None,
        portal_participant=communication.portal_participant,
        mailing_id=communication.mailing_id,
        party_ids=communication.party_ids or None,
        dossier_id=communication.dossier_id,
        screened=communication.screened or None,
        screened_at=communication.screened_at,
    )
    if communication.status is CommunicationStatus.QUEUED:
        # Only a queued communication waits on the retry schedule (a decided-skipped one never will).
        item.due_pk = _due_shard(communication.id)
        item.due_sk = _due_sort_key(retry_at, communication.account_id, communication.id)
    if communication.client_id:
        item.gsi3_pk = client_history_key(communication.account_id, communication.client_id)
        item.gsi3_sk = f"{iso(communication.created_at)}#{communication.id}"
    return item


_COUNTERS = {
    CommunicationStatus.SENT: "sent",
    CommunicationStatus.FAILED: "failed",
    CommunicationStatus.SKIPPED: "skipped",
}


def _forgetting() -> list[Any]:
    """The actions that empty a communication of what it says and whom it is to (RGPD)."""
    return [
        CommunicationItem.to.set([]),
        CommunicationItem.cc.set([]),
        CommunicationItem.variables.set({}),
        CommunicationItem.template.remove(),
        CommunicationItem.subject.remove(),
        CommunicationItem.party_ids.remove(),
    ]


def _write_outcome(
    item: CommunicationItem,
    actions: list[Any],
    condition: Any,
    status: CommunicationStatus,
    mailing_id: str | None,
    conditional: bool,
    events: Sequence[Event],
    at: datetime,
    announced: bool = True,
) -> list[Event] | None:
    """Write a communication's status with its events; a mailing's final outcome also moves its counts,
    in the same transaction, so that only the one write that wins the condition counts (and the one that
    ends the mailing says so). The events written, or None when the condition (`conditional`) did not
    hold. Without an event nor a count it stays one UpdateItem. `announced=False`: the caller announces
    none of the events, which are then due for the tick's fan-out at once (`event_item`)."""
    account_id = item.pk.split("#")[1]
    written = list(events)
    if mailing_id and status in FINAL_STATUSES:

        def own(transaction: TransactWrite) -> int:
            transaction.update(item, actions=actions, condition=condition)
            return 1

        count = MailingCount(adds={_COUNTERS[status]: 1}, unsettled=-1)
        return write_counted(
            own,
            mailing_pk(account_id, mailing_id),
            account_id,
            mailing_id,
            count,
            written,
            at,
            announced=announced,
        )
    try:
        if not written:
            item.update(actions=actions, condition=condition)
            return written
        with TransactWrite(connection=transactions()) as transaction:
            transaction.update(item, actions=actions, condition=condition)
            for event in written:
                transaction.save(
                    event_item(event, announced=announced), condition=EventItem.pk.does_not_exist()
                )
    except UpdateError as exc:
        if conditional and _condition_failed(exc):
            return None
        raise
    except TransactWriteError as exc:
        if condition_failed(exc):
            return None
        raise
    return written


_AWAITING_ITS_SENDING = (
    CommunicationItem.status.is_in(*(status.value for status in FEEDBACK_STATUSES))
    & CommunicationItem.sent_at.does_not_exist()
)
"""The item of an email whose bounce or complaint came before its sending was recorded
(`Communication.awaits_its_sending`)."""


def _record_sending_after_feedback(
    item: CommunicationItem,
    actions: list[Any],
    mailing_id: str | None,
    events: Sequence[Event],
    at: datetime,
    announced: bool = True,
) -> list[Event] | None:
    """Record the sending (`actions`, which set `sent_at`, never the status) of an email that awaits it,
    off the retry schedule, counted `sent` in its mailing, once; None when it does not await it."""
    actions = [*actions, CommunicationItem.due_pk.remove(), CommunicationItem.due_sk.remove()]
    return _write_outcome(
        item,
        actions,
        _AWAITING_ITS_SENDING,
        CommunicationStatus.SENT,
        mailing_id,
        True,
        events,
        at,
        announced,
    )


class DynamoCommunicationRepository:
    def add(self, communication: Communication, retry_at: datetime, events: Sequence[Event] = ()) -> bool:
        """One TransactWriteItems: the communication, screened (`NewCommunications`), and its events."""
        transaction = TransactWrite(connection=transactions())
        written = NewCommunications(transaction)
        try:
            with transaction:
                written.add(communication, retry_at)
                for event in events:
                    transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            written.raise_if_suppressed(exc)
            if condition_failed(exc):
                return False
            raise
        return True

    def get(self, account_id: str, communication_id: str) -> Communication | None:
        try:
            item = CommunicationItem.get(*communication_key(account_id, communication_id))
        except DoesNotExist:
            return None
        return _communication_from(item, account_id)

    def client_history(
        self, account_id: str, client_id: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Communication], dict[str, Any] | None]:
        """A client's communications, newest first: one Query on GSI3."""
        partition = client_history_key(account_id, client_id)
        check_cursor(cursor, "GSI3PK", partition)
        query = CommunicationItem.by_client.query(
            partition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=cursor,
        )
        items = [_communication_from(item, account_id) for item in query]
        return items, query.last_evaluated_key

    def claim(
        self, account_id: str, communication_id: str, now: datetime, lease: timedelta
    ) -> Communication | None:
        """Take a queued communication for sending, in one conditional write that also reads it.

        None when there is nothing to send (unknown, or already settled). DeliveryInFlight when another
        worker claimed it less than `lease` ago: it may be calling SES, so this one must not. A claim
        older than the lease is taken over: that worker died before SES accepted the email, else SES's
        Send event would have settled it (`record_acceptance`)."""
        item = CommunicationItem(*communication_key(account_id, communication_id))
        claimable = (CommunicationItem.status == CommunicationStatus.QUEUED.value) | (
            (CommunicationItem.status == CommunicationStatus.SENDING.value)
            & (CommunicationItem.claimed_at < now - lease)
        )
        try:
            item.update(
                actions=[
                    CommunicationItem.status.set(CommunicationStatus.SENDING.value),
                    CommunicationItem.claimed_at.set(now),
                ],
                condition=CommunicationItem.pk.exists() & claimable,
            )
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise
            current = self.get(account_id, communication_id)
            if current is not None and current.status is CommunicationStatus.SENDING:
                raise DeliveryInFlight(communication_id) from exc
            return None
        return _communication_from(item, account_id)

    def forget(self, account_id: str, communication_id: str) -> None:
        CommunicationItem(*communication_key(account_id, communication_id)).update(
            actions=_forgetting(), condition=CommunicationItem.pk.exists()
        )

    def skip_erased(self, erased: Communication, events: Sequence[Event], at: datetime) -> list[Event] | None:
        """Settle a queued email of an erased dossier (`erased_with_its_dossier`): skipped, its content
        forgotten, with its events, in one write that holds only while it is still queued (None when a
        worker claimed it first)."""
        item = CommunicationItem(*communication_key(erased.account_id, erased.id))
        actions: list[Any] = [
            CommunicationItem.status.set(erased.status.value),
            CommunicationItem.status_reason.set(erased.status_reason or ""),
            CommunicationItem.due_pk.remove(),
            CommunicationItem.due_sk.remove(),
            *_forgetting(),
        ]
        condition = CommunicationItem.status == CommunicationStatus.QUEUED.value
        return _write_outcome(item, actions, condition, erased.status, None, True, events, at)

    def settle(
        self,
        communication: Communication,
        expected: CommunicationStatus | None = None,
        events: Sequence[Event] = (),
        at: datetime | None = None,
        announced: bool = True,
    ) -> list[Event] | None:
        """Record a status and take the communication off the retry schedule, with the events that say so,
        in one write. With `expected`, only if it still has that status (None otherwise): the move from
        `sending` to an outcome happens once, and only then are a mailing's counts moved, in the same
        transaction. The events written (`mailing.finished` too when this outcome ended a mailing).
        `announced=False`: the caller will not announce them; they are due for the tick's fan-out at once.

        A `sent` outcome expected from `sending` also lands on an email whose bounce or complaint came
        first (`Communication.awaits_its_sending`): then it keeps that status and its reason, and records
        and counts only the sending, once (the condition wants no `sent_at` yet)."""
        written = self._settle(communication, expected, events, at, announced)
        if (
            written is None
            and expected is CommunicationStatus.SENDING
            and communication.status is CommunicationStatus.SENT
        ):
            return self._settle_after_feedback(communication, events, at, announced)
        return written

    def _settle(
        self,
        communication: Communication,
        expected: CommunicationStatus | None,
        events: Sequence[Event],
        at: datetime | None,
        announced: bool,
    ) -> list[Event] | None:
        item = CommunicationItem(*communication_key(communication.account_id, communication.id))
        optional = [
            (CommunicationItem.subject, communication.subject),
            (CommunicationItem.provider_message_id, communication.provider_message_id),
            (CommunicationItem.status_reason, communication.status_reason),
        ]
        actions: list[Any] = [
            CommunicationItem.status.set(communication.status.value),
            CommunicationItem.due_pk.remove(),
            CommunicationItem.due_sk.remove(),
        ]
        actions += [attr.set(value) if value is not None else attr.remove() for attr, value in optional]
        if communication.sent_at is not None:
            actions.append(CommunicationItem.sent_at.set(communication.sent_at))
        if communication.skipped_parties:
            actions.append(CommunicationItem.skipped_parties.set(list(communication.skipped_parties)))
        condition = CommunicationItem.pk.exists()
        if expected is not None:
            condition = condition & (CommunicationItem.status == expected.value)
        counted = communication.mailing_id if expected is not None else None
        moment = at or (events[0].at if events else datetime.now(UTC))
        return _write_outcome(
            item,
            actions,
            condition,
            communication.status,
            counted,
            expected is not None,
            events,
            moment,
            announced,
        )

    def _settle_after_feedback(
        self, sent: Communication, events: Sequence[Event], at: datetime | None, announced: bool
    ) -> list[Event] | None:
        """The sending of an email SES's feedback already marked: its status and reason stay."""
        item = CommunicationItem(*communication_key(sent.account_id, sent.id))
        moment = at or (events[0].at if events else datetime.now(UTC))
        actions: list[Any] = [CommunicationItem.sent_at.set(sent.sent_at or moment)]
        if sent.subject is not None:
            actions.append(CommunicationItem.subject.set(sent.subject))
        if sent.provider_message_id is not None:
            actions.append(CommunicationItem.provider_message_id.set(sent.provider_message_id))
        if sent.skipped_parties:
            actions.append(CommunicationItem.skipped_parties.set(list(sent.skipped_parties)))
        return _record_sending_after_feedback(item, actions, sent.mailing_id, events, moment, announced)

    def statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], CommunicationStatus]:
        """The status of each (account, communication), by BatchGetItem (100 keys a call); unknown ones
        are left out."""
        wanted = sorted({communication_key(account_id, comm_id) for account_id, comm_id in keys})
        found = {}
        for item in CommunicationItem.batch_get(wanted, attributes_to_get=["PK", "SK", "status"]):
            found[(item.pk.split("#")[1], item.sk.removeprefix("COMM#"))] = CommunicationStatus(item.status)
        return found

    def release(self, account_id: str, communication_id: str, delivered_to: tuple[str, ...] = ()) -> None:
        """Give a claim back (SES throttled us): the next try may send at once, to the addresses not in
        `delivered_to` (those whose copy SES accepted before it throttled)."""
        item = CommunicationItem(*communication_key(account_id, communication_id))
        actions: list[Any] = [
            CommunicationItem.status.set(CommunicationStatus.QUEUED.value),
            CommunicationItem.claimed_at.remove(),
            # The screening done at its writing is spent: the next try looks the addresses up.
            CommunicationItem.screened.remove(),
            CommunicationItem.screened_at.remove(),
        ]
        if delivered_to:
            actions.append(CommunicationItem.delivered_to.add(set(delivered_to)))
        try:
            item.update(
                actions=actions,
                condition=CommunicationItem.status == CommunicationStatus.SENDING.value,
            )
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise

    def record_delivered(
        self, account_id: str, communication_id: str, addresses: tuple[str, ...]
    ) -> Communication | None:
        """Add the addresses whose copy SES accepted to a communication still `sending`, or awaiting its
        sending after a bounce or a complaint (one ADD to a string set, so concurrent Send events and
        replays all land) and return it as it now stands; None when it is settled."""
        item = CommunicationItem(*communication_key(account_id, communication_id))
        try:
            item.update(
                actions=[CommunicationItem.delivered_to.add(set(addresses))],
                condition=(CommunicationItem.status == CommunicationStatus.SENDING.value)
                | _AWAITING_ITS_SENDING,
            )
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise
            return None
        return _communication_from(item, account_id)

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
        """SES accepted the email (its Send event): settle it `sent` if it is still `sending`, that is if
        its worker died before writing the outcome, with its events; if its bounce or complaint came
        first, record the sending under that status, as `settle` does. None when it had been settled
        already."""
        item = CommunicationItem(*communication_key(account_id, communication_id))
        sending: list[Any] = [
            CommunicationItem.provider_message_id.set(provider_message_id),
            CommunicationItem.sent_at.set(at),
        ]
        if subject:
            sending.append(CommunicationItem.subject.set(subject))
        actions: list[Any] = [
            CommunicationItem.status.set(CommunicationStatus.SENT.value),
            *sending,
            CommunicationItem.due_pk.remove(),
            CommunicationItem.due_sk.remove(),
        ]
        condition = CommunicationItem.status == CommunicationStatus.SENDING.value
        written = _write_outcome(
            item, actions, condition, CommunicationStatus.SENT, mailing_id, True, events, at
        )
        if written is not None:
            return written
        return _record_sending_after_feedback(item, sending, mailing_id, events, at)

    def due_for_retry(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """The `limit` longest-waiting communications past their retry time, across every shard."""
        waiting: list[str] = []
        upper = f"{iso(now)}#~"
        for shard in range(DUE_SHARDS):
            query = CommunicationItem.due_index.query(
                f"DUE#{shard}", CommunicationItem.due_sk <= upper, limit=limit
            )
            waiting.extend(str(item.due_sk) for item in query)
        # The index holds keys only: its sort key `<at>#<account>#<communication>` names both.
        return [tuple(key.split("#")[-2:]) for key in sorted(waiting)[:limit]]  # type: ignore[misc]

    def postpone(self, account_id: str, communication_id: str, retry_at: datetime) -> None:
        item = CommunicationItem(*communication_key(account_id, communication_id))
        try:
            item.update(
                actions=[CommunicationItem.due_sk.set(_due_sort_key(retry_at, account_id, communication_id))],
                condition=CommunicationItem.status.is_in(
                    CommunicationStatus.QUEUED.value, CommunicationStatus.SENDING.value
                ),
            )
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise


def portal_token_item(token_hash: str, principal: PortalPrincipal, expires_at: datetime) -> PortalTokenItem:
    """Keyed by the secret's SHA-256 only: the table never holds a usable link."""
    return PortalTokenItem(
        f"PORTALTOKEN#{token_hash}",
        "PORTALTOKEN",
        account_id=principal.account_id,
        dossier_id=principal.dossier_id,
        role_id=principal.role_id,
        participant_id=principal.participant_id,
        generation=principal.generation,
        expires_at=expires_at,
        ttl=int(expires_at.timestamp()) + 86400,
    )


def dossier_link_item(
    token_hash: str, principal: PortalPrincipal, expires_at: datetime, communication_id: str | None = None
) -> DossierLinkItem:
    """The link's trace in its dossier's partition, so that erasing the dossier finds every token item
    (and every still-queued email carrying one, `communication_id`)."""
    return DossierLinkItem(
        f"ACCOUNT#{principal.account_id}#DOSSIER#{principal.dossier_id}",
        f"PORTALTOKEN#{token_hash}",
        ttl=int(expires_at.timestamp()) + 86400,
        communication_id=communication_id,
    )


def save_link(transaction: TransactWrite, link: StoredLink) -> None:
    """A portal link's token item and its trace in the dossier's partition, in the transaction of the
    change that mints it."""
    transaction.save(portal_token_item(link.token_hash, link.principal, link.expires_at))
    transaction.save(
        dossier_link_item(link.token_hash, link.principal, link.expires_at, link.communication_id)
    )


class DynamoPortalTokenRepository:
    _SK = "PORTALTOKEN"

    def find_active(self, token_hash: str, now: datetime) -> PortalPrincipal | None:
        try:
            item = PortalTokenItem.get(f"PORTALTOKEN#{token_hash}", self._SK)
        except DoesNotExist:
            return None
        if item.revoked or item.expires_at <= now:
            return None
        return PortalPrincipal(
            item.account_id,
            item.dossier_id,
            item.role_id,
            token_hash,
            item.participant_id or "main",
            int(item.generation or 0),
        )

    def account_of(self, token_hash: str) -> str | None:
        try:
            item = PortalTokenItem.get(f"PORTALTOKEN#{token_hash}", self._SK)
        except DoesNotExist:
            return None
        return str(item.account_id)

    def revoke(self, token_hash: str) -> None:
        item = PortalTokenItem(f"PORTALTOKEN#{token_hash}", self._SK)
        try:
            item.update(actions=[PortalTokenItem.revoked.set(True)], condition=PortalTokenItem.pk.exists())
        except UpdateError as exc:
            if not _condition_failed(exc):
                raise
