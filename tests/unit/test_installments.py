"""Installments, payments and what dunning does to the contract (suspension, termination, reinstatement)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.communications import CommunicationKind as K
from chalicelib.domain.dunning import DueStep, DunningStage, Step, UnpaidPolicy
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.domain.installments import (
    ContractStatus,
    FormalNotice,
    Installment,
    InstallmentStatus,
    LetterStatus,
    Money,
    contract_after,
    parse_money,
)
from chalicelib.domain.legal import RegisteredMailChannel

POLICY = UnpaidPolicy()


def _installment(due: date = date(2027, 3, 1), amount: str = "84.20") -> Installment:
    return Installment(id="I1", contract_id="C1", due_date=due, amount=Money(Decimal(amount)))


def test_a_new_installment_waits_for_its_call_fifteen_days_before_the_due_date() -> None:
    installment = _installment()
    assert installment.stage is DunningStage.NONE
    assert installment.next_step(POLICY) == DueStep(Step(K.UNPAID_CALL), date(2027, 2, 14))


def test_a_full_payment_stops_the_sequence() -> None:
    paid = _installment().step_sent(Step(K.FORMAL_NOTICE), date(2027, 3, 11)).pay(date(2027, 3, 20), None)
    assert paid.status is InstallmentStatus.PAID
    assert paid.paid_on == date(2027, 3, 20)
    assert paid.next_step(POLICY) is None


def test_a_payment_below_the_amount_leaves_it_due_and_the_rest_pays_it() -> None:
    partly = _installment().pay(date(2027, 3, 5), Decimal("50.00"))
    assert partly.status is InstallmentStatus.DUE
    assert partly.next_step(POLICY) is not None
    whole = partly.pay(date(2027, 3, 9), Decimal("34.20"))
    assert whole.status is InstallmentStatus.PAID
    assert whole.paid_amount == Decimal("84.20")


def test_a_paid_installment_takes_no_second_payment() -> None:
    with pytest.raises(Conflict):
        _installment().pay(date(2027, 3, 5), None).pay(date(2027, 3, 6), None)


def test_the_formal_notice_shows_on_the_contract_and_the_suspension_suspends_it() -> None:
    at = datetime(2027, 3, 12, 7, tzinfo=UTC)
    notice = FormalNotice(
        "x-MD", LetterStatus.TO_SEND, RegisteredMailChannel.MANUAL, date(2027, 3, 12), at, at
    )
    noticed = _installment().letter_prepared(notice)
    shown = contract_after(ContractStatus.ACTIVE, [noticed], date(2027, 3, 12))
    assert (shown.status, shown.dunning_stage) == (ContractStatus.ACTIVE, DunningStage.FORMAL_NOTICE)
    suspended = noticed.letter_sent(date(2027, 3, 12), "1A1").suspended(date(2027, 4, 12))
    shown = contract_after(ContractStatus.ACTIVE, [suspended], date(2027, 4, 12), K.SUSPENSION_NOTICE)
    assert (shown.status, shown.dunning_stage) == (ContractStatus.SUSPENDED, DunningStage.SUSPENDED)
    due = suspended.termination_became_due(date(2027, 4, 22))
    shown = contract_after(ContractStatus.SUSPENDED, [due], date(2027, 4, 22))
    assert (shown.status, shown.dunning_stage) == (ContractStatus.SUSPENDED, DunningStage.TERMINATION_DUE)
    terminated = due.terminated(date(2027, 4, 23))
    shown = contract_after(ContractStatus.SUSPENDED, [terminated], date(2027, 4, 20), K.TERMINATION_NOTICE)
    assert (shown.status, shown.dunning_stage) == (ContractStatus.TERMINATED, DunningStage.TERMINATED)


def test_paying_a_suspended_contract_reinstates_it_with_cover_from_noon_paris_the_next_day() -> None:
    suspended = _installment().step_sent(Step(K.SUSPENSION_NOTICE), date(2027, 4, 10))
    paid = suspended.pay(date(2027, 4, 15), None)
    shown = contract_after(ContractStatus.SUSPENDED, [paid], date(2027, 4, 15))
    assert shown.status is ContractStatus.ACTIVE
    assert shown.dunning_stage is DunningStage.NONE
    assert shown.cover_resumes_at == datetime(2027, 4, 16, 10, 0, tzinfo=UTC)


def test_a_suspended_contract_stays_suspended_while_another_due_installment_is_unpaid() -> None:
    first = (
        _installment().step_sent(Step(K.SUSPENSION_NOTICE), date(2027, 4, 10)).pay(date(2027, 4, 15), None)
    )
    second = Installment(
        id="I2", contract_id="C1", due_date=date(2027, 4, 1), amount=Money(Decimal("84.20"))
    ).step_sent(Step(K.UNPAID_REMINDER), date(2027, 4, 8))
    shown = contract_after(ContractStatus.SUSPENDED, [first, second], date(2027, 4, 15))
    assert (shown.status, shown.dunning_stage) == (ContractStatus.SUSPENDED, DunningStage.REMINDED)
    future = Installment(id="I3", contract_id="C1", due_date=date(2027, 6, 1), amount=Money(Decimal("84.20")))
    shown = contract_after(ContractStatus.SUSPENDED, [first, future], date(2027, 4, 15))
    assert shown.status is ContractStatus.ACTIVE


def test_a_terminated_contract_is_not_reinstated_by_a_payment() -> None:
    paid = (
        _installment().step_sent(Step(K.TERMINATION_NOTICE), date(2027, 4, 20)).pay(date(2027, 4, 25), None)
    )
    assert (
        contract_after(ContractStatus.TERMINATED, [paid], date(2027, 4, 25)).status
        is ContractStatus.TERMINATED
    )


def test_money_is_a_positive_decimal_string_with_cents_at_most() -> None:
    assert parse_money("84.2", "EUR", "amount") == Money(Decimal("84.20"), "EUR")
    assert parse_money("1234.50", "EUR", "amount").as_json() == {"amount": "1234.50", "currency": "EUR"}


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        (84.2, "EUR", "amount.amount"),
        ("abc", "EUR", "amount.amount"),
        ("-1", "EUR", "amount.amount"),
        ("0", "EUR", "amount.amount"),
        ("NaN", "EUR", "amount.amount"),
        ("Infinity", "EUR", "amount.amount"),
        ("1.234", "EUR", "amount.amount"),
        ("1e9", "EUR", "amount.amount"),
        ("10", "euros", "amount.currency"),
    ],
)
def test_an_amount_that_is_not_money_is_refused_naming_the_field(
    amount: object, currency: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as refusal:
        parse_money(amount, currency, "amount")
    assert [d.field for d in refusal.value.details] == [field]


def test_an_expected_document_waits_for_its_call_then_each_reminder_until_received() -> None:
    from chalicelib.domain.dunning import DocumentsPolicy
    from chalicelib.domain.installments import ExpectedDocument

    policy = DocumentsPolicy()
    document = ExpectedDocument(id="E1", contract_id="C1", label="Attestation", created_on=date(2027, 1, 10))
    assert document.next_step(policy) == DueStep(Step(K.DOCUMENTS_CALL), date(2027, 1, 10))
    called = document.step_sent(Step(K.DOCUMENTS_CALL), date(2027, 1, 10))
    assert called.next_step(policy) == DueStep(Step(K.DOCUMENTS_REMINDER, 0), date(2027, 1, 17))
    assert called.received().next_step(policy) is None


def test_a_payment_above_what_remains_due_is_refused_naming_the_amount() -> None:
    partly = _installment().pay(date(2027, 4, 14), Decimal("40.00"))
    assert partly.amount_due == Money(Decimal("44.20"))
    with pytest.raises(InvalidInput) as refusal:
        partly.pay(date(2027, 4, 15), Decimal("84.20"))
    assert [d.field for d in refusal.value.details] == ["amount"]
    assert partly.pay(date(2027, 4, 15), Decimal("44.20")).status is InstallmentStatus.PAID


def test_each_payment_has_its_own_id() -> None:
    twice = _installment().pay(date(2027, 4, 14), Decimal("40.00")).pay(date(2027, 4, 15), None)
    assert len({p.id for p in twice.payments}) == 2
