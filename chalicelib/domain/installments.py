"""Installments (échéances) of a contract, their payments, and what dunning does to the contract.

An installment is `due` until payments cover its amount, then `paid`, which stops its dunning; a reversed
payment (a rejected direct debit) makes it `due` again. Its timeline is a small state machine, every step
of which is due at a moment in Paris time:

    call → reminders → letter prepared (`to_send`, or `blocked` until the client has a postal address)
    → letter sent (staff record it, or the provider's proof of deposit) → suspension, effective 00:00 on
    `first_day_after(sent_on, suspension_days)` → `termination_due` from 00:00 on the suspension's day +
    `termination_days` → terminated (staff confirm, or the tick with policy `automatic`).

Nothing is suspended while the letter is not sent. Beside the timeline, a letter the provider posted is
tracked once a day (`delivered`, `returned`); tracking never moves a step of the timeline. The contract
shows the furthest `dunning_stage` of its unpaid installments. Reinstatement is per contract: a suspended
contract becomes `active` again once none of its due installments is unpaid, and shows when the cover
resumes (noon, Paris time, the day after the payment that cleared it), or `suspension_voided` when every
suspended installment was paid before its suspension took effect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.dunning import (
    DocumentsPolicy,
    DueStep,
    DunningStage,
    SentStep,
    Step,
    TerminationMode,
    TimelineStep,
    UnpaidPolicy,
    furthest_stage,
    next_documents_step,
    remaining_ladder,
    stage_after,
)
from chalicelib.domain.errors import Conflict, FieldIssue, InvalidInput
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.legal_time import (
    cover_resumes_at,
    first_day_after,
    paris_date,
    paris_moment,
    sending_moment,
)
from chalicelib.domain.partners import ContractParties

K = CommunicationKind
LETTER_RETRY = timedelta(hours=1)
"""A blocked letter, or one the provider could not take or has not posted yet, is tried again by the
first tick this long after the last try."""
TRACKING_CHECKS = 30
"""How many times, once a day, the tick asks the provider where a posted letter stands before it stops
asking: a registered letter not claimed comes back within about three weeks."""
_TRACKING_NUMBER = re.compile(r"^[\x21-\x7e]{1,40}$")

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
class Reversal:
    at: datetime
    reason: str
    by: str


@dataclass(frozen=True)
class Payment:
    id: str
    paid_on: date
    amount: Decimal
    reversal: Reversal | None = None


class LetterStatus(StrEnum):
    TO_SEND = "to_send"
    SENT = "sent"
    DELIVERED = "delivered"
    RETURNED = "returned"
    BLOCKED = "blocked"


LETTER_POSTED = frozenset({LetterStatus.SENT, LetterStatus.DELIVERED, LetterStatus.RETURNED})


@dataclass(frozen=True)
class FormalNotice:
    """The registered letter of an installment: one per installment, its id made from the installment's."""

    letter_id: str
    status: LetterStatus
    channel: RegisteredMailChannel
    prepared_on: date
    """The Paris day the letter was prepared (or first blocked): no letter is sent before it."""
    attempted_at: datetime
    """The last time a tick prepared, re-checked, handed over or tracked it."""
    prepared_at: datetime | None = None
    sent_on: date | None = None
    tracking_number: str | None = None
    sha256: str | None = None
    document_key: str | None = None
    reason: str | None = None
    provider_id: str | None = None
    recorded_by: str | None = None
    checks: int = 0
    """How many times the tick asked the provider where the posted letter stands (failed asks count)."""


def letter_id_of(installment_id: str) -> str:
    """The letter's id: the installment's and `-MD` (mise en demeure), within a provider's 38 characters."""
    return f"{installment_id}-MD"


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
    """The last email of the ladder before the letter (call, reminders)."""
    paid_on: date | None = None
    formal_notice: FormalNotice | None = None
    suspended_on: date | None = None
    """The day the suspension took effect (00:00 Paris), while it stands."""
    suspensions: int = 0
    """How many suspension notices were sent (a reversed payment can re-open a reinstated installment)."""
    termination_due_on: date | None = None
    terminated_on: date | None = None

    @property
    def paid_amount(self) -> Decimal:
        return sum((p.amount for p in self.payments if p.reversal is None), Decimal(0))

    @property
    def amount_due(self) -> Money:
        """What remains to pay after the payments so far (reversed ones undone)."""
        return Money(self.amount.amount - self.paid_amount, self.amount.currency)

    @property
    def stage(self) -> DunningStage:
        if self.terminated_on is not None:
            return DunningStage.TERMINATED
        if self.termination_due_on is not None:
            return DunningStage.TERMINATION_DUE
        if self.suspended_on is not None:
            return DunningStage.SUSPENDED
        if self.formal_notice is not None:
            return DunningStage.FORMAL_NOTICE
        return stage_after(self.last_sent.step.kind) if self.last_sent else DunningStage.NONE

    def next_step(self, policy: UnpaidPolicy) -> DueStep | None:
        """The step the scheduler waits for, whatever the time; None when nothing can come by the tick
        alone (paid, terminated, a letter staff must post, a termination staff must confirm)."""
        if self.status is not InstallmentStatus.DUE or self.terminated_on or self.termination_due_on:
            return None
        if self.suspended_on is not None:
            day = self.suspended_on + timedelta(days=policy.termination_days)
            if policy.termination is TerminationMode.AUTOMATIC:
                return DueStep(Step(K.TERMINATION_NOTICE), day, effective_on=day)
            return DueStep(Step(TimelineStep.TERMINATION_DUE), day, at=paris_moment(day), effective_on=day)
        notice = self.formal_notice
        if notice is None:
            remaining = remaining_ladder(policy, self.due_date, self.last_sent)
            return remaining[0] if remaining else None
        if notice.sent_on is not None:
            day = first_day_after(notice.sent_on, policy.suspension_days)
            return DueStep(Step(K.SUSPENSION_NOTICE, self.suspensions), day, effective_on=day)
        if notice.status is LetterStatus.BLOCKED or notice.channel is RegisteredMailChannel.PROVIDER:
            # Never at night: a letter that leaves may send its `formal_notice` email at once.
            at = max(
                notice.attempted_at + LETTER_RETRY,
                sending_moment(paris_date(notice.attempted_at + LETTER_RETRY)),
            )
            return DueStep(Step(TimelineStep.LETTER), paris_date(at), at=at)
        return None

    def next_tracking_check(self) -> datetime | None:
        """When the tick next asks the provider where the letter it posted stands: 08:00 Paris the day
        after the last ask (or the deposit), while the letter is `sent`, at most `TRACKING_CHECKS` times,
        and only while the installment is dunned. A letter staff posted by hand is never tracked."""
        notice = self.formal_notice
        if (
            self.status is not InstallmentStatus.DUE
            or self.terminated_on is not None
            or notice is None
            or notice.status is not LetterStatus.SENT
            or notice.channel is not RegisteredMailChannel.PROVIDER
            or notice.provider_id is None
            or notice.checks >= TRACKING_CHECKS
        ):
            return None
        return sending_moment(paris_date(notice.attempted_at) + timedelta(days=1))

    def due_at(self, policy: UnpaidPolicy) -> datetime | None:
        """When the tick next has something to do for this installment: the earlier of its next step and
        its next tracking check (its place on the `due` index)."""
        step = self.next_step(policy)
        moments = [m for m in (step.moment if step else None, self.next_tracking_check()) if m is not None]
        return min(moments, default=None)

    def tracking_due(self, now: datetime) -> bool:
        check = self.next_tracking_check()
        return check is not None and check <= now

    def tracked(self, status: LetterStatus | None, at: datetime) -> Installment:
        """One tracking check asked at `at`: the letter takes the provider's answer (`delivered`,
        `returned`, or still `sent`); None, a provider that failed, changes nothing but the count, and the
        next day asks again. Its sending, not its delivery, starts the L113-3 period: no answer moves the
        timeline."""
        notice = self.formal_notice
        assert notice is not None
        checked = replace(notice, attempted_at=at, checks=notice.checks + 1)
        if status in (LetterStatus.DELIVERED, LetterStatus.RETURNED):
            checked = replace(checked, status=status)
        return replace(self, formal_notice=checked)

    def step_at(self, policy: UnpaidPolicy, now: datetime) -> DueStep | None:
        """What a tick at `now` does for this installment, or None. Before the letter, when several steps
        of the ladder are late only the most advanced applies (an installment entered 19 days late gets
        only its letter); after it each step follows the one before."""
        step = self.next_step(policy)
        if step is None or step.moment > now:
            return None
        if self.formal_notice is None:
            late = [s for s in remaining_ladder(policy, self.due_date, self.last_sent) if s.moment <= now]
            return late[-1]
        return step

    def letter_prepared(self, notice: FormalNotice) -> Installment:
        return replace(self, formal_notice=notice)

    def letter_sent(self, sent_on: date, tracking_number: str, by: str | None = None) -> Installment:
        """Staff record the posting of a letter `to_send` (409 otherwise); it cannot leave before the day
        it was prepared, and its tracking number is printable ASCII (400 otherwise)."""
        notice = self.formal_notice
        if self.status is not InstallmentStatus.DUE:
            raise Conflict(f"This installment is {self.status.value}: its letter is no longer sent.")
        if notice is None or notice.status is not LetterStatus.TO_SEND:
            state = "not prepared" if notice is None else notice.status.value
            raise Conflict(f"This installment's letter is {state}: only a letter to send can be recorded.")
        if notice.provider_id is not None and by is not None:
            # The provider holds it and will post it: a second, hand-posted letter would be one too many.
            raise Conflict(
                "This installment's letter was handed to the registered-mail provider, which posts it."
            )
        issues = []
        if sent_on < notice.prepared_on:
            issues.append(
                FieldIssue(
                    "sent_on", f"must not be before {notice.prepared_on.isoformat()}, when it was prepared"
                )
            )
        if not _TRACKING_NUMBER.match(tracking_number):
            issues.append(
                FieldIssue("tracking_number", "must be 1 to 40 printable ASCII characters, no space")
            )
        if issues:
            raise InvalidInput("This posting cannot be recorded.", issues)
        posted = replace(
            notice,
            status=LetterStatus.SENT,
            sent_on=sent_on,
            tracking_number=tracking_number,
            recorded_by=by,
            channel=notice.channel if by is None else RegisteredMailChannel.MANUAL,
        )
        return replace(self, formal_notice=posted)

    def suspended(self, day: date) -> Installment:
        return replace(self, suspended_on=day, suspensions=self.suspensions + 1)

    def termination_became_due(self, day: date) -> Installment:
        return replace(self, termination_due_on=day)

    def terminated(self, day: date) -> Installment:
        return replace(self, terminated_on=day)

    def reverse(self, payment_id: str, reason: str, by: str, at: datetime) -> Installment:
        """Undo one payment: what it cleared is due again and the dunning takes up where the timeline now
        stands. A suspension the payment had ended is not restored: the installment is suspended again
        only through the letter's rules (its next suspension step, due at once if its day has passed)."""
        payment = next((p for p in self.payments if p.id == payment_id), None)
        if payment is None:
            raise NotFoundPayment()
        if payment.reversal is not None:
            raise Conflict("This payment was already reversed.")
        payments = tuple(
            replace(p, reversal=Reversal(at, reason, by)) if p.id == payment_id else p for p in self.payments
        )
        if self.status is not InstallmentStatus.PAID:
            return replace(self, payments=payments)
        return replace(
            self,
            payments=payments,
            status=InstallmentStatus.DUE,
            paid_on=None,
            suspended_on=None,
            termination_due_on=None,
        )

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


class NotFoundPayment(LookupError):
    """No payment of this installment has that id."""


@dataclass(frozen=True)
class ContractDunning:
    """What the contract shows of its installments' dunning."""

    status: ContractStatus
    dunning_stage: DunningStage
    cover_resumes_at: datetime | None
    suspension_voided: bool = False


def contract_after(
    status: ContractStatus,
    installments: list[Installment],
    today: date,
    sent_now: CommunicationKind | None = None,
) -> ContractDunning:
    """The contract once its installments are as given (a step was just taken, or a payment recorded).

    A termination terminates; a suspension suspends an active contract; a suspended contract none of whose
    installments due by `today` is unpaid is active again, its cover resuming at noon (Paris) the day after
    the payment that cleared it, unless every suspended installment was paid before its suspension took
    effect: then the suspension is void (no `cover_resumes_at`, `suspension_voided`). Terminated and
    cancelled contracts stay.
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
        suspended = [i for i in installments if i.suspended_on is not None and i.paid_on is not None]
        if suspended and all(i.paid_on < i.suspended_on for i in suspended):  # type: ignore[operator]
            return ContractDunning(ContractStatus.ACTIVE, stage, None, suspension_voided=True)
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


@dataclass(frozen=True)
class StepSubject:
    """An installment or expected document as a dunning step reads it: at its version, with the parties
    of its contract as they were when it was last written (None on one written before they were copied),
    and, for an installment, the contract's other installments (its step moves the contract by all)."""

    thing: Installment | ExpectedDocument
    version: int
    parties: ContractParties | None
    others: tuple[Installment, ...] = ()
