"""What a contract's dunning tells the broker's software: its registered letter prepared, sent, delivered
or returned (`formal_notice.*`), the contract suspended, reinstated, due for termination or terminated
(`contract.*`). Each is read off the change itself (the installment and the contract before and after),
so a step, a staff action and a PATCH say the same thing the same way, and a change that moved nothing
says nothing. The events go to the contract's activity log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from chalicelib.domain.clock import iso
from chalicelib.domain.events import SYSTEM, Actor, Event, EventType, Subject, SubjectKind, in_order
from chalicelib.domain.installments import (
    LETTER_POSTED,
    ContractStatus,
    FormalNotice,
    Installment,
    LetterStatus,
)
from chalicelib.domain.legal_time import paris_date
from chalicelib.domain.partners import Deal

TERMINATION_DUE = "termination_due"


def dunning_events(
    contract: Deal,
    changed: Deal,
    before: Installment | None,
    after: Installment | None,
    at: datetime,
    actor: Actor = SYSTEM,
) -> list[Event]:
    """The events of one change of a contract (`contract` → `changed`) and of one of its installments
    (`before` → `after`, None when no installment changed), oldest first: the letter's, then the
    contract's."""
    facts: list[tuple[EventType, dict[str, Any]]] = []
    if before is not None and after is not None:
        facts += _letter_facts(before.formal_notice, after.formal_notice)
    facts += _contract_facts(contract, changed, after, at)
    base: dict[str, Any] = {"contract_id": changed.id, "client_id": changed.client_id}
    if after is not None:
        base["installment_id"] = after.id
    subject = Subject(SubjectKind.CONTRACT, changed.id)
    events = [
        Event(changed.account_id, event_type, at, subject, {**base, **data}, actor)
        for event_type, data in facts
    ]
    return in_order(events)


def _letter_facts(
    before: FormalNotice | None, after: FormalNotice | None
) -> list[tuple[EventType, dict[str, Any]]]:
    if after is None or after.status is LetterStatus.BLOCKED:
        return []
    was = before.status if before is not None else None
    facts: list[tuple[EventType, dict[str, Any]]] = []
    if was in (None, LetterStatus.BLOCKED):
        facts.append(
            (
                EventType.FORMAL_NOTICE_PREPARED,
                _letter(after) | {"prepared_on": after.prepared_on.isoformat(), "sha256": after.sha256},
            )
        )
    if was not in LETTER_POSTED and after.status in LETTER_POSTED:
        facts.append((EventType.FORMAL_NOTICE_SENT, _letter(after) | _posting(after)))
    for status, event_type in (
        (LetterStatus.DELIVERED, EventType.FORMAL_NOTICE_DELIVERED),
        (LetterStatus.RETURNED, EventType.FORMAL_NOTICE_RETURNED),
    ):
        if after.status is status and was is not status:
            facts.append((event_type, _letter(after) | _posting(after)))
    return facts


def _letter(notice: FormalNotice) -> dict[str, Any]:
    return {"letter_id": notice.letter_id, "channel": notice.channel.value, "status": notice.status.value}


def _posting(notice: FormalNotice) -> dict[str, Any]:
    return {
        "sent_on": notice.sent_on.isoformat() if notice.sent_on else None,
        "tracking_number": notice.tracking_number,
        "provider_id": notice.provider_id,
    }


def _contract_facts(
    contract: Deal, changed: Deal, installment: Installment | None, at: datetime
) -> list[tuple[EventType, dict[str, Any]]]:
    status, was = changed.status, contract.status
    today = paris_date(at)
    facts: list[tuple[EventType, dict[str, Any]]] = []
    if status == ContractStatus.SUSPENDED and was != ContractStatus.SUSPENDED:
        day = installment.suspended_on if installment is not None else None
        facts.append((EventType.CONTRACT_SUSPENDED, _effective(day or today)))
    if status == ContractStatus.ACTIVE and was == ContractStatus.SUSPENDED:
        resumes = changed.cover_resumes_at
        facts.append(
            (
                EventType.CONTRACT_REINSTATED,
                {
                    "cover_resumes_at": iso(resumes) if resumes else None,
                    "suspension_voided": changed.suspension_voided,
                },
            )
        )
    if (
        changed.dunning_stage == TERMINATION_DUE
        and contract.dunning_stage != TERMINATION_DUE
        and status in (ContractStatus.ACTIVE, ContractStatus.SUSPENDED)
    ):
        day = installment.termination_due_on if installment is not None else None
        facts.append((EventType.CONTRACT_TERMINATION_DUE, _effective(day or today)))
    if status == ContractStatus.TERMINATED and was != ContractStatus.TERMINATED:
        day = installment.terminated_on if installment is not None else None
        facts.append((EventType.CONTRACT_TERMINATED, _effective(day or today)))
    return facts


def _effective(day: date) -> dict[str, Any]:
    return {"effective_on": day.isoformat()}
