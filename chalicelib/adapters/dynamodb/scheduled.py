"""Installments and expected documents of contracts: items in the contract's collection, on the sparse
`due` index while a step waits. A step is written with what it causes (the installment or document
moving on, the contract's status and stage, the email) in one TransactWriteItems, at the version read,
so a tick run twice or two ticks at once send each step once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import (
    DUE_SHARDS,
    EventItem,
    PartnerItem,
    ScheduledItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.partners import _to_item as partner_item
from chalicelib.adapters.dynamodb.repositories import NewCommunications
from chalicelib.domain.clock import iso, parse_iso
from chalicelib.domain.communications import Communication, CommunicationKind
from chalicelib.domain.dunning import SentStep, Step, TimelineStep
from chalicelib.domain.errors import StaleVersion
from chalicelib.domain.events import Event
from chalicelib.domain.installments import (
    ExpectedDocument,
    ExpectedStatus,
    FormalNotice,
    Installment,
    InstallmentStatus,
    LetterStatus,
    Money,
    Payment,
    Reversal,
    StepSubject,
)
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.partners import ContractParties, Deal

Scheduled = Installment | ExpectedDocument


def _pk(account_id: str, contract_id: str) -> str:
    return f"ACCOUNT#{account_id}#CONTRACT#{contract_id}"


def _sk(thing: Scheduled) -> str:
    return f"{'INSTALLMENT' if isinstance(thing, Installment) else 'EXPECTED'}#{thing.id}"


def _sent(raw: dict[str, Any] | None) -> SentStep | None:
    if not raw:
        return None
    kind = raw["kind"]
    step_kind = TimelineStep(kind) if kind in TimelineStep._value2member_map_ else CommunicationKind(kind)
    return SentStep(Step(step_kind, int(raw["number"])), date.fromisoformat(raw["on"]))


def _day(raw: Any) -> date | None:
    return date.fromisoformat(raw) if raw else None


def _moment(raw: Any) -> datetime | None:
    return parse_iso(raw) if raw else None


def _raw_notice(notice: FormalNotice | None) -> dict[str, Any] | None:
    if notice is None:
        return None
    return {
        "letter_id": notice.letter_id,
        "status": notice.status.value,
        "channel": notice.channel.value,
        "prepared_on": notice.prepared_on.isoformat(),
        "attempted_at": iso(notice.attempted_at),
        "prepared_at": iso(notice.prepared_at) if notice.prepared_at else None,
        "sent_on": notice.sent_on.isoformat() if notice.sent_on else None,
        "tracking_number": notice.tracking_number,
        "sha256": notice.sha256,
        "document_key": notice.document_key,
        "reason": notice.reason,
        "provider_id": notice.provider_id,
        "recorded_by": notice.recorded_by,
        "checks": notice.checks,
    }


def _notice(raw: dict[str, Any] | None) -> FormalNotice | None:
    if not raw:
        return None
    attempted_at = _moment(raw["attempted_at"])
    assert attempted_at is not None
    return FormalNotice(
        letter_id=raw["letter_id"],
        status=LetterStatus(raw["status"]),
        channel=RegisteredMailChannel(raw["channel"]),
        prepared_on=date.fromisoformat(raw["prepared_on"]),
        attempted_at=attempted_at,
        prepared_at=_moment(raw.get("prepared_at")),
        sent_on=_day(raw.get("sent_on")),
        tracking_number=raw.get("tracking_number"),
        sha256=raw.get("sha256"),
        document_key=raw.get("document_key"),
        reason=raw.get("reason"),
        provider_id=raw.get("provider_id"),
        recorded_by=raw.get("recorded_by"),
        checks=int(raw.get("checks") or 0),
    )


def _raw_payment(p: Payment) -> dict[str, Any]:
    raw: dict[str, Any] = {"id": p.id, "paid_on": p.paid_on.isoformat(), "amount": str(p.amount)}
    if p.reversal is not None:
        raw["reversal"] = {"at": iso(p.reversal.at), "reason": p.reversal.reason, "by": p.reversal.by}
    return raw


def _payment(raw: dict[str, Any], fallback_id: str) -> Payment:
    reversal = raw.get("reversal")
    return Payment(
        # Payments recorded before they had ids get a stable one from their place.
        raw.get("id") or fallback_id,
        date.fromisoformat(raw["paid_on"]),
        Decimal(raw["amount"]),
        Reversal(parse_iso(reversal["at"]), reversal["reason"], reversal["by"]) if reversal else None,
    )


def _raw_sent(sent: SentStep | None) -> dict[str, Any] | None:
    return (
        None
        if sent is None
        else {"kind": sent.step.kind.value, "number": sent.step.number, "on": sent.on.isoformat()}
    )


def _body(thing: Scheduled) -> dict[str, Any]:
    if isinstance(thing, Installment):
        return {
            "due_date": thing.due_date.isoformat(),
            "amount": str(thing.amount.amount),
            "currency": thing.amount.currency,
            "label": thing.label,
            "status": thing.status.value,
            "payments": [_raw_payment(p) for p in thing.payments],
            "last_sent": _raw_sent(thing.last_sent),
            "paid_on": thing.paid_on.isoformat() if thing.paid_on else None,
            "formal_notice": _raw_notice(thing.formal_notice),
            "suspended_on": thing.suspended_on.isoformat() if thing.suspended_on else None,
            "suspensions": thing.suspensions,
            "termination_due_on": thing.termination_due_on.isoformat() if thing.termination_due_on else None,
            "terminated_on": thing.terminated_on.isoformat() if thing.terminated_on else None,
        }
    return {
        "label": thing.label,
        "created_on": thing.created_on.isoformat(),
        "due_date": thing.due_date.isoformat() if thing.due_date else None,
        "status": thing.status.value,
        "last_sent": _raw_sent(thing.last_sent),
    }


def _from(item: ScheduledItem) -> Scheduled:
    body: dict[str, Any] = dict(item.body)
    contract_id = item.pk.rpartition("#CONTRACT#")[2]
    kind, _, thing_id = item.sk.partition("#")
    if kind == "INSTALLMENT":
        return Installment(
            id=thing_id,
            contract_id=contract_id,
            due_date=date.fromisoformat(body["due_date"]),
            amount=Money(Decimal(body["amount"]), body["currency"]),
            label=body.get("label"),
            status=InstallmentStatus(body["status"]),
            payments=tuple(_payment(p, f"{thing_id}-{n}") for n, p in enumerate(body["payments"])),
            last_sent=_sent(body.get("last_sent")),
            paid_on=_day(body.get("paid_on")),
            formal_notice=_notice(body.get("formal_notice")),
            suspended_on=_day(body.get("suspended_on")),
            suspensions=int(body.get("suspensions") or 0),
            termination_due_on=_day(body.get("termination_due_on")),
            terminated_on=_day(body.get("terminated_on")),
        )
    return ExpectedDocument(
        id=thing_id,
        contract_id=contract_id,
        label=body["label"],
        created_on=date.fromisoformat(body["created_on"]),
        due_date=date.fromisoformat(body["due_date"]) if body.get("due_date") else None,
        status=ExpectedStatus(body["status"]),
        last_sent=_sent(body.get("last_sent")),
    )


def _raw_parties(parties: ContractParties | None) -> dict[str, Any] | None:
    if parties is None:
        return None
    return {
        "client_id": parties.client_id,
        "product_id": parties.product_id,
        "apporteur_id": parties.apporteur_id,
    }


def _parties(raw: dict[str, Any] | None) -> ContractParties | None:
    if not raw:
        return None
    return ContractParties(raw["client_id"], raw.get("product_id"), raw.get("apporteur_id"))


def _item(
    account_id: str,
    thing: Scheduled,
    version: int,
    next_at: datetime | None,
    parties: ContractParties | None = None,
) -> ScheduledItem:
    pk = _pk(account_id, thing.contract_id)
    item = ScheduledItem(pk, _sk(thing), body=_body(thing), parties=_raw_parties(parties))
    if version:
        item.version = version
    if next_at is not None:
        shard = int(hashlib.sha256(f"{pk}#{_sk(thing)}".encode()).hexdigest()[:8], 16) % DUE_SHARDS
        item.due_pk = f"STEP#{shard}"
        item.due_sk = f"{iso(next_at)}#{account_id}#{thing.contract_id}#{thing.id}"
    return item


class DynamoScheduledRepository:
    def get(
        self, account_id: str, contract_id: str, kind: str, thing_id: str
    ) -> tuple[Scheduled, int] | None:
        try:
            item = ScheduledItem.get(_pk(account_id, contract_id), f"{kind}#{thing_id}")
        except DoesNotExist:
            return None
        return _from(item), int(item.version or 0)

    def cancel_pending(self, account_id: str, contract_id: str) -> int:
        """Take every pending step of the contract off the `due` index (one Query of its installments and
        expected documents, one write per pending step); returns how many. A step a tick moves on at the
        same moment keeps its new version: that tick saw the contract ended and scheduled nothing more."""
        cancelled = 0
        for item in ScheduledItem.query(_pk(account_id, contract_id)):
            if not item.due_pk:
                continue
            try:
                item.update(actions=[ScheduledItem.due_pk.remove(), ScheduledItem.due_sk.remove()])
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue
            cancelled += 1
        return cancelled

    def copy_parties(self, account_id: str, contract_id: str, parties: ContractParties) -> int:
        """Copy the contract's new parties onto its pending installments and expected documents (one Query
        of its collection, one write per pending item that names others); returns how many. An item a
        step moves on meanwhile keeps what that step copied: its next step reads what differs."""
        copied, raw = 0, _raw_parties(parties)
        for item in ScheduledItem.query(_pk(account_id, contract_id)):
            if not item.due_pk or item.parties == raw:
                continue
            try:
                item.update(actions=[ScheduledItem.parties.set(raw)])
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue
            copied += 1
        return copied

    def all_of(self, account_id: str, contract_id: str) -> list[tuple[Scheduled, int]]:
        """Every installment and expected document of the contract, each at the version read: one Query of
        its collection."""
        query = ScheduledItem.query(_pk(account_id, contract_id))
        return [(_from(item), int(item.version or 0)) for item in query]

    def page_of(
        self, account_id: str, contract_id: str, kind: str, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[Scheduled], dict[str, Any] | None]:
        """One page of a contract's installments (`INSTALLMENT`) or expected documents (`EXPECTED`), oldest
        first (ids are ULIDs): one Query of the contract's collection."""
        pk = _pk(account_id, contract_id)
        check_cursor(cursor, "PK", pk)
        query = ScheduledItem.query(
            pk, ScheduledItem.sk.startswith(f"{kind}#"), limit=limit, last_evaluated_key=cursor
        )
        return [_from(item) for item in query], query.last_evaluated_key

    def step_subject(self, account_id: str, contract_id: str, kind: str, thing_id: str) -> StepSubject | None:
        """The installment (with the contract's other installments: one Query of its collection) or the
        expected document (one GetItem) a step is about, with the contract's parties copied on it."""
        if kind != "INSTALLMENT":
            try:
                item = ScheduledItem.get(_pk(account_id, contract_id), f"{kind}#{thing_id}")
            except DoesNotExist:
                return None
            return StepSubject(_from(item), int(item.version or 0), _parties(item.parties))
        items = list(
            ScheduledItem.query(_pk(account_id, contract_id), ScheduledItem.sk.startswith("INSTALLMENT#"))
        )
        subject = next((item for item in items if item.sk == f"INSTALLMENT#{thing_id}"), None)
        if subject is None:
            return None
        others = tuple(i for i in map(_from, items) if isinstance(i, Installment) and i.id != thing_id)
        return StepSubject(_from(subject), int(subject.version or 0), _parties(subject.parties), others)

    def installments_of(self, account_id: str, contract_id: str) -> list[Installment]:
        query = ScheduledItem.query(_pk(account_id, contract_id), ScheduledItem.sk.startswith("INSTALLMENT#"))
        return [i for i in (_from(item) for item in query) if isinstance(i, Installment)]

    def commit(
        self,
        account_id: str,
        thing: Scheduled,
        version: int,
        next_at: datetime | None,
        contract: Deal | None = None,
        communication: tuple[Communication, datetime] | None = None,
        events: Sequence[Event] = (),
        parties: ContractParties | None = None,
    ) -> None:
        """Write the installment or document at `version` (0: new) with the contract's `parties`, the
        contract it changed, its email (screened: `NewCommunications`) and the events that tell it, all
        or nothing; StaleVersion when someone else moved it on first (a replayed step then writes no
        event); RecipientsSuppressed when an address of the email is on the suppression list."""
        transaction = TransactWrite(connection=transactions())
        emails = NewCommunications(transaction)
        try:
            with transaction:
                condition = ScheduledItem.pk.does_not_exist() if not version else None
                item = _item(account_id, thing, version, next_at, parties)
                transaction.save(item, condition=condition)
                if contract is not None:
                    transaction.save(partner_item(contract), condition=PartnerItem.pk.exists())
                if communication is not None:
                    emails.add(*communication)
                for event in events:
                    transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except TransactWriteError as exc:
            emails.raise_if_suppressed(exc)
            if condition_failed(exc):
                raise StaleVersion() from exc
            raise
