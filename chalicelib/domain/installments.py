"""Installments (échéances) of a contract, their payments, and what dunning does to the contract.

An installment is `due` until payments cover its amount, then `paid`, which stops its dunning. The contract
shows the furthest `dunning_stage` of its unpaid installments; the suspension notice suspends it and the
termination notice terminates it. Reinstatement is per contract: a suspended contract becomes `active`
again once none of its due installments is unpaid, and shows when the cover resumes (noon, Paris time, the
day after the payment that cleared it). A payment below the amount leaves the installment `due`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.dunning import (
    DocumentsPolicy,
    DueStep,
    DunningStage,
    SentStep,
    Step,
    UnpaidPolicy,
    cover_resumes_at,
    furthest_stage,
    next_documents_step,
    next_unpaid_step,
    stage_after,
)
from chalicelib.domain.errors import Conflict, FieldIssue, InvalidInput
from chalicelib.domain.ids import new_ulid

MAX_AMOUNT = Decimal("100000000")
CURRENCIES = frozenset({"EUR", "XPF", "CHF", "GBP", "USD"})


class InstallmentStatus(StrEnum):
    DUE = "due"
    PAID = "paid"
    CANCELLED = "cancelled"


class ContractStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = "EUR"

    def as_json(self) -> dict[str, str]:
        return {"amount": f"{self.amount:.2f}", "currency": self.currency}


def parse_money(amount: object, currency: object, field: str) -> Money:
    """A positive amount given as a decimal string with at most two decimals, in a known currency."""
    issues = []
    value = Decimal(0)
    if not isinstance(amount, str):
        issues.append(FieldIssue(f"{field}.amount", 'must be a decimal string such as "84.20"'))
    else:
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            issues.append(FieldIssue(f"{field}.amount", 'must be a decimal string such as "84.20"'))
        else:
            if not value.is_finite() or value <= 0 or value >= MAX_AMOUNT:
                issues.append(FieldIssue(f"{field}.amount", "must be above 0 and below 100000000"))
            elif value.as_tuple().exponent < -2:  # type: ignore[operator]
                issues.append(FieldIssue(f"{field}.amount", "must have at most two decimals"))
    if currency not in CURRENCIES:
        issues.append(FieldIssue(f"{field}.currency", f"must be one of: {', '.join(sorted(CURRENCIES))}"))
    if issues:
        raise InvalidInput("The amount is invalid.", issues)
    return Money(value.quantize(Decimal("0.01")), str(currency))


@dataclass(frozen=True)
class Payment:
    id: str
    paid_on: date
    amount: Decimal


@dataclass(frozen=True)
class Installment:
    id: str
    contract_id: str
    due_date: date
    amount: Money
    label: str | None = None
    status: InstallmentStatus = InstallmentStatus.DUE
    payments: tuple[Payment, ...] = ()
    last_sent: SentStep | None = None
    paid_on: date | None = None

    @property
    def paid_amount(self) -> Decimal:
        return sum((p.amount for p in self.payments), Decimal(0))

    @property
    def amount_due(self) -> Money:
        """What remains to pay after the payments so far."""
        return Money(self.amount.amount - self.paid_amount, self.amount.currency)

    @property
    def stage(self) -> DunningStage:
        return stage_after(self.last_sent.step.kind) if self.last_sent else DunningStage.NONE

    def next_step(self, policy: UnpaidPolicy) -> DueStep | None:
        """The step the scheduler waits for; None once paid, cancelled or terminated."""
        if self.status is not InstallmentStatus.DUE:
            return None
        return next_unpaid_step(policy, self.due_date, self.last_sent)

    def pay(self, paid_on: date, amount: Decimal | None, currency: str | None = None) -> Installment:
        """Record a payment (what remains due when `amount` is None); paid once nothing remains due.
        A payment named in another currency than the installment's is refused, never converted, and so is
        one above what remains due: an overpayment is a mistake to correct, not a credit to keep."""
        if self.status is not InstallmentStatus.DUE:
            raise Conflict(f"This installment is {self.status.value}: it takes no payment.")
        if currency is not None and currency != self.amount.currency:
            raise InvalidInput(
                "The payment is not in the installment's currency.",
                [
                    FieldIssue(
                        "amount.currency", f"must be {self.amount.currency}, the installment's currency"
                    )
                ],
            )
        remaining = self.amount_due
        if amount is not None and amount > remaining.amount:
            raise InvalidInput(
                "The payment is above what remains due on this installment.",
                [
                    FieldIssue(
                        "amount",
                        f"must be at most {remaining.amount:.2f} {remaining.currency}, what remains due",
                    )
                ],
            )
        payment = Payment(new_ulid(), paid_on, remaining.amount if amount is None else amount)
        paid = replace(self, payments=(*self.payments, payment))
        if paid.paid_amount >= self.amount.amount:
            return replace(paid, status=InstallmentStatus.PAID, paid_on=paid_on)
        return paid

    def step_sent(self, step: Step, on: date) -> Installment:
        return replace(self, last_sent=SentStep(step, on))


@dataclass(frozen=True)
class ContractDunning:
    """What the contract shows of its installments' dunning."""

    status: ContractStatus
    dunning_stage: DunningStage
    cover_resumes_at: datetime | None


def contract_after(
    status: ContractStatus,
    installments: list[Installment],
    today: date,
    sent_now: CommunicationKind | None = None,
) -> ContractDunning:
    """The contract once its installments are as given (a step was just sent, or a payment recorded).

    A termination notice terminates; a suspension notice suspends an active contract; a suspended
    contract none of whose installments due by `today` is unpaid is active again, its cover resuming at
    noon (Paris) the day after the payment that cleared it. Terminated and cancelled contracts stay.
    """
    unpaid = [i for i in installments if i.status is InstallmentStatus.DUE]
    stage = furthest_stage([i.stage for i in unpaid])
    if status in (ContractStatus.TERMINATED, ContractStatus.CANCELLED):
        return ContractDunning(status, stage, None)
    if sent_now is CommunicationKind.TERMINATION_NOTICE:
        return ContractDunning(ContractStatus.TERMINATED, DunningStage.TERMINATED, None)
    if sent_now is CommunicationKind.SUSPENSION_NOTICE:
        return ContractDunning(ContractStatus.SUSPENDED, stage, None)
    if status is ContractStatus.SUSPENDED and not any(i.due_date <= today for i in unpaid):
        cleared = max((i.paid_on for i in installments if i.paid_on is not None), default=None)
        resumes = cover_resumes_at(cleared) if cleared is not None else None
        return ContractDunning(ContractStatus.ACTIVE, stage, resumes)
    return ContractDunning(status, stage, None)


class ExpectedStatus(StrEnum):
    EXPECTED = "expected"
    RECEIVED = "received"


@dataclass(frozen=True)
class ExpectedDocument:
    """A document the broker waits for on a contract: called at the first tick, reminded per policy."""

    id: str
    contract_id: str
    label: str
    created_on: date
    due_date: date | None = None
    status: ExpectedStatus = ExpectedStatus.EXPECTED
    last_sent: SentStep | None = None

    def next_step(self, policy: DocumentsPolicy) -> DueStep | None:
        """The call or reminder the scheduler waits for; None once received."""
        if self.status is not ExpectedStatus.EXPECTED:
            return None
        return next_documents_step(policy, self.created_on, self.last_sent)

    def received(self) -> ExpectedDocument:
        return replace(self, status=ExpectedStatus.RECEIVED)

    def step_sent(self, step: Step, on: date) -> ExpectedDocument:
        return replace(self, last_sent=SentStep(step, on))
