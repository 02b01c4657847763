"""The dunning timeline and its legal floor (art. L113-3 Code des assurances), on the domain alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chalicelib.domain.communications import CommunicationKind as K
from chalicelib.domain.dunning import (
    DocumentsPolicy,
    DueStep,
    DunningPolicy,
    DunningStage,
    SentStep,
    Step,
    UnpaidPolicy,
    cover_resumes_at,
    documents_step_to_send,
    furthest_stage,
    next_documents_step,
    next_unpaid_step,
    start_of_day,
    unpaid_step_to_send,
    validate_policy,
)
from chalicelib.domain.errors import InvalidInput

DEFAULT = UnpaidPolicy()
DUE = date(2027, 3, 1)


def _run_ticks(policy: UnpaidPolicy, due: date, days: list[date]) -> list[tuple[date, str]]:
    """Ticks on each of `days` in order; returns (day, step key) for every step sent."""
    sent: list[tuple[date, str]] = []
    last: SentStep | None = None
    for day in days:
        step = unpaid_step_to_send(policy, due, last, day)
        if step is not None:
            sent.append((day, step.step.key))
            last = SentStep(step.step, day)
    return sent


def _every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_the_default_policy_is_the_l113_3_timeline_of_the_worked_example() -> None:
    sent = _run_ticks(DEFAULT, DUE, _every_day(date(2027, 1, 1), date(2027, 6, 1)))
    assert sent == [
        (date(2027, 2, 14), "unpaid_call#0"),
        (date(2027, 3, 8), "unpaid_reminder#0"),
        (date(2027, 3, 11), "formal_notice#0"),
        (date(2027, 4, 10), "suspension_notice#0"),
        (date(2027, 4, 20), "termination_notice#0"),
    ]


def test_an_installment_entered_19_days_late_gets_only_the_formal_notice_then_counts_from_it() -> None:
    sent = _run_ticks(DEFAULT, DUE, _every_day(date(2027, 3, 20), date(2027, 6, 1)))
    assert sent == [
        (date(2027, 3, 20), "formal_notice#0"),
        (date(2027, 4, 19), "suspension_notice#0"),
        (date(2027, 4, 29), "termination_notice#0"),
    ]


def test_a_step_is_due_from_midnight_utc_of_its_day_and_not_before() -> None:
    assert unpaid_step_to_send(DEFAULT, DUE, None, date(2027, 2, 13)) is None
    assert unpaid_step_to_send(DEFAULT, DUE, None, date(2027, 2, 14)) == DueStep(
        Step(K.UNPAID_CALL), date(2027, 2, 14)
    )
    assert start_of_day(date(2027, 2, 14)) == datetime(2027, 2, 14, tzinfo=UTC)


def test_a_tick_replayed_after_a_step_was_sent_sends_nothing_more_that_day() -> None:
    last = SentStep(Step(K.UNPAID_CALL), date(2027, 2, 14))
    assert unpaid_step_to_send(DEFAULT, DUE, last, date(2027, 2, 14)) is None
    assert next_unpaid_step(DEFAULT, DUE, last) == DueStep(Step(K.UNPAID_REMINDER, 0), date(2027, 3, 8))


def test_a_late_tick_sends_the_notice_actually_due_and_the_suspension_runs_from_that_day() -> None:
    last = SentStep(Step(K.UNPAID_REMINDER, 0), date(2027, 3, 8))
    notice = unpaid_step_to_send(DEFAULT, DUE, last, date(2027, 3, 15))
    assert notice == DueStep(Step(K.FORMAL_NOTICE), date(2027, 3, 11))
    after = next_unpaid_step(DEFAULT, DUE, SentStep(Step(K.FORMAL_NOTICE), date(2027, 3, 15)))
    assert after == DueStep(Step(K.SUSPENSION_NOTICE), date(2027, 4, 14))


def test_several_reminders_are_each_sent_once_in_order() -> None:
    policy = UnpaidPolicy(reminder_days=(3, 7, 9))
    sent = _run_ticks(policy, DUE, _every_day(date(2027, 2, 1), date(2027, 3, 12)))
    assert [key for _, key in sent] == [
        "unpaid_call#0",
        "unpaid_reminder#0",
        "unpaid_reminder#1",
        "unpaid_reminder#2",
        "formal_notice#0",
    ]


def test_a_policy_edited_to_fewer_reminders_never_sends_an_earlier_step_again() -> None:
    last = SentStep(Step(K.UNPAID_REMINDER, 2), date(2027, 3, 10))
    step = next_unpaid_step(UnpaidPolicy(reminder_days=(7,)), DUE, last)
    assert step == DueStep(Step(K.FORMAL_NOTICE), date(2027, 3, 11))


def test_after_the_termination_nothing_is_left() -> None:
    last = SentStep(Step(K.TERMINATION_NOTICE), date(2027, 4, 20))
    assert next_unpaid_step(DEFAULT, DUE, last) is None
    assert unpaid_step_to_send(DEFAULT, DUE, last, date(2028, 1, 1)) is None


def test_expected_documents_are_called_at_once_then_reminded_until_the_last_reminder() -> None:
    created = date(2027, 1, 10)
    policy = DocumentsPolicy()
    assert documents_step_to_send(policy, created, None, created) == DueStep(Step(K.DOCUMENTS_CALL), created)
    last = SentStep(Step(K.DOCUMENTS_CALL), created)
    assert next_documents_step(policy, created, last) == DueStep(
        Step(K.DOCUMENTS_REMINDER, 0), date(2027, 1, 17)
    )
    assert documents_step_to_send(policy, created, last, date(2027, 1, 16)) is None
    late = documents_step_to_send(policy, created, last, date(2027, 2, 1))
    assert late == DueStep(Step(K.DOCUMENTS_REMINDER, 1), date(2027, 1, 24))
    assert next_documents_step(policy, created, SentStep(Step(K.DOCUMENTS_REMINDER, 1), late.due_on)) is None


def test_cover_resumes_at_noon_paris_time_the_day_after_payment_in_winter_and_summer() -> None:
    assert cover_resumes_at(date(2027, 4, 15)) == datetime(2027, 4, 16, 10, 0, tzinfo=UTC)
    assert cover_resumes_at(date(2027, 1, 15)) == datetime(2027, 1, 16, 11, 0, tzinfo=UTC)


def test_the_contract_shows_the_furthest_stage_among_its_installments() -> None:
    stages = [DunningStage.CALLED, DunningStage.SUSPENDED, DunningStage.FORMAL_NOTICE]
    assert furthest_stage(stages) is DunningStage.SUSPENDED
    assert furthest_stage([]) is DunningStage.NONE


def test_the_default_policy_is_valid() -> None:
    validate_policy(DunningPolicy())


@pytest.mark.parametrize(
    ("unpaid", "field"),
    [
        (UnpaidPolicy(formal_notice_days=5), "unpaid.formal_notice_days"),
        (UnpaidPolicy(suspension_days=20), "unpaid.suspension_days"),
        (UnpaidPolicy(termination_days=7), "unpaid.termination_days"),
        (UnpaidPolicy(call_days_before=-1), "unpaid.call_days_before"),
        (UnpaidPolicy(reminder_days=(10,)), "unpaid.reminder_days.0"),
        (UnpaidPolicy(reminder_days=(3, 0)), "unpaid.reminder_days.1"),
        (UnpaidPolicy(reminder_days=(3, 3)), "unpaid.reminder_days"),
        (UnpaidPolicy(formal_notice_days=400), "unpaid.formal_notice_days"),
    ],
)
def test_a_policy_below_the_legal_floor_or_out_of_order_is_refused_naming_the_field(
    unpaid: UnpaidPolicy, field: str
) -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_policy(DunningPolicy(unpaid=unpaid))
    assert field in [issue.field for issue in refusal.value.details]


def test_the_refusal_says_why_the_law_forbids_it() -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_policy(DunningPolicy(unpaid=UnpaidPolicy(suspension_days=20)))
    [issue] = refusal.value.details
    assert "L113-3" in issue.issue
    assert issue.issue.startswith("must be at least 30 days")


def test_longer_delays_than_the_law_requires_are_allowed() -> None:
    validate_policy(
        DunningPolicy(
            unpaid=UnpaidPolicy(
                call_days_before=30,
                reminder_days=(5, 10, 15),
                formal_notice_days=20,
                suspension_days=45,
                termination_days=15,
            ),
            documents=DocumentsPolicy(reminder_days=(3,)),
        )
    )


def test_days_outside_2000_to_2100_are_refused_naming_each_field() -> None:
    from chalicelib.domain.dunning import check_days

    check_days({"due_date": date(2000, 1, 1), "paid_at": date(2100, 12, 31), "other": None})
    with pytest.raises(InvalidInput) as refusal:
        check_days({"due_date": date(1, 1, 3), "paid_at": date(9999, 12, 30)})
    assert [d.field for d in refusal.value.details] == ["due_date", "paid_at"]
