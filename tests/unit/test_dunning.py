"""The dunning timeline and its legal floor (art. L113-3 Code des assurances), on the domain alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.communications import CommunicationKind as K
from chalicelib.domain.dunning import (
    DocumentsPolicy,
    DueStep,
    DunningPolicy,
    DunningStage,
    SentStep,
    Step,
    TerminationMode,
    TimelineStep,
    UnpaidPolicy,
    documents_step_to_send,
    furthest_stage,
    next_documents_step,
    validate_policy,
)
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.domain.installments import (
    ContractStatus,
    FormalNotice,
    Installment,
    InstallmentStatus,
    LetterStatus,
    Money,
    contract_after,
    letter_id_of,
)
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.legal_time import cover_resumes_at, paris_date, sending_moment, takes_effect_at

DEFAULT = UnpaidPolicy()
DUE = date(2027, 3, 1)
PARIS = ZoneInfo("Europe/Paris")
CREATED = datetime(2027, 1, 2, 9, 0, tzinfo=UTC)


def paris(day: str, hour: int = 8, minute: int = 0) -> datetime:
    """A Paris wall-clock moment, as EXAMPLES.md gives its times, in UTC."""
    return datetime.combine(date.fromisoformat(day), time(hour, minute), tzinfo=PARIS).astimezone(UTC)


def _installment() -> Installment:
    return Installment("01JINSTALLMENT00000000000A", "k", DUE, Money(Decimal("1234.50")))


def _prepared(at: datetime, channel: RegisteredMailChannel = RegisteredMailChannel.MANUAL) -> FormalNotice:
    return FormalNotice(
        letter_id=letter_id_of("01JINSTALLMENT00000000000A"),
        status=LetterStatus.TO_SEND,
        channel=channel,
        prepared_on=paris_date(at),
        attempted_at=at,
        prepared_at=at,
    )


def _tick(installment: Installment, now: datetime, policy: UnpaidPolicy = DEFAULT) -> tuple[Installment, str]:
    """What the worker does with a tick at `now`, on plain values: the step taken, the installment after."""
    step = installment.step_at(policy, now)
    if step is None:
        return installment, "nothing"
    kind = step.step.kind
    if kind is K.FORMAL_NOTICE:
        return installment.letter_prepared(_prepared(now)), "letter prepared"
    if kind is K.SUSPENSION_NOTICE:
        assert step.effective_on is not None
        return installment.suspended(step.effective_on), f"suspension_notice from {step.effective_on}"
    if kind is TimelineStep.TERMINATION_DUE:
        assert step.effective_on is not None
        return installment.termination_became_due(step.effective_on), "termination_due"
    if kind is K.TERMINATION_NOTICE:
        assert step.effective_on is not None
        return installment.terminated(step.effective_on), "termination_notice"
    return installment.step_sent(step.step, paris_date(now)), step.step.key


def test_every_row_of_the_worked_example_in_paris_time() -> None:
    i = _installment()
    rows = []
    for moment in (
        paris("2027-02-14", 7, 59),
        paris("2027-02-14"),
        paris("2027-02-14", 9),
        paris("2027-03-08"),
        paris("2027-03-11", 23, 59),
        paris("2027-03-12"),
    ):
        i, what = _tick(i, moment)
        rows.append(what)
    assert rows == ["nothing", "unpaid_call#0", "nothing", "unpaid_reminder#0", "nothing", "letter prepared"]
    assert i.stage is DunningStage.FORMAL_NOTICE
    # Nothing is suspended while the letter is not sent, however long.
    assert i.next_step(DEFAULT) is None
    assert _tick(i, paris("2027-05-01"))[1] == "nothing"
    i = i.letter_sent(date(2027, 3, 12), "1A12345678901", by="staff")
    assert i.next_step(DEFAULT) == DueStep(
        Step(K.SUSPENSION_NOTICE), date(2027, 4, 12), effective_on=date(2027, 4, 12)
    )
    assert _tick(i, paris("2027-04-11", 22))[1] == "nothing"
    i, what = _tick(i, paris("2027-04-12"))
    assert (what, i.stage) == ("suspension_notice from 2027-04-12", DunningStage.SUSPENDED)
    assert _tick(i, paris("2027-04-21", 23, 59))[1] == "nothing"
    i, what = _tick(i, paris("2027-04-22", 0, 0))
    assert (what, i.stage) == ("termination_due", DunningStage.TERMINATION_DUE)
    assert i.next_step(DEFAULT) is None
    assert i.terminated(date(2027, 4, 23)).stage is DunningStage.TERMINATED


def test_the_suspension_is_effective_at_midnight_paris_and_its_email_leaves_from_eight() -> None:
    i = _installment().letter_prepared(_prepared(paris("2027-03-12"))).letter_sent(date(2027, 3, 12), "1A1")
    step = i.next_step(DEFAULT)
    assert step is not None
    assert step.moment == datetime(2027, 4, 12, 6, 0, tzinfo=UTC)  # 08:00 summer time
    assert takes_effect_at(date(2027, 3, 12), 30) == datetime(2027, 4, 11, 22, 0, tzinfo=UTC)


def test_periods_across_the_daylight_saving_changes_end_at_midnight_paris() -> None:
    # Letter sent 20/03 (winter), 30 days run 21/03 → 19/04 across the change of 28/03: suspended 20/04 0 h.
    spring = (
        _installment().letter_prepared(_prepared(paris("2027-03-20"))).letter_sent(date(2027, 3, 20), "X")
    )
    step = spring.next_step(DEFAULT)
    assert step is not None
    assert step.effective_on == date(2027, 4, 20)
    assert step.moment == datetime(2027, 4, 20, 6, 0, tzinfo=UTC)
    # Sent 10/10 (summer), across 31/10: suspended 10/11 0 h Paris = 09/11 23:00 UTC; email 10/11 07:00 UTC.
    autumn = (
        _installment().letter_prepared(_prepared(paris("2027-10-10"))).letter_sent(date(2027, 10, 10), "X")
    )
    step = autumn.next_step(DEFAULT)
    assert step is not None
    assert step.effective_on == date(2027, 11, 10)
    assert step.moment == datetime(2027, 11, 10, 7, 0, tzinfo=UTC)
    assert takes_effect_at(date(2027, 10, 10), 30) == datetime(2027, 11, 9, 23, 0, tzinfo=UTC)


def test_an_installment_entered_19_days_late_gets_only_the_letter_then_counts_from_its_sending() -> None:
    i = _installment()
    i, what = _tick(i, paris("2027-03-20"))
    assert what == "letter prepared"
    i = i.letter_sent(date(2027, 3, 23), "1A1")
    step = i.next_step(DEFAULT)
    assert step is not None
    assert step.effective_on == date(2027, 4, 23)


def test_a_step_is_due_from_eight_in_paris_and_not_before() -> None:
    i = _installment()
    assert i.step_at(DEFAULT, paris("2027-02-14", 7, 59)) is None
    assert i.step_at(DEFAULT, paris("2027-02-14")) == DueStep(Step(K.UNPAID_CALL), date(2027, 2, 14))
    assert sending_moment(date(2027, 2, 14)) == datetime(2027, 2, 14, 7, 0, tzinfo=UTC)


def test_a_tick_replayed_after_a_step_was_sent_sends_nothing_more_that_day() -> None:
    i, _ = _tick(_installment(), paris("2027-02-14"))
    assert i.step_at(DEFAULT, paris("2027-02-14", 20)) is None
    assert i.next_step(DEFAULT) == DueStep(Step(K.UNPAID_REMINDER, 0), date(2027, 3, 8))


def test_several_reminders_are_each_sent_once_in_order() -> None:
    policy = UnpaidPolicy(reminder_days=(3, 7, 9))
    i, sent = _installment(), []
    for n in range(45):
        i, what = _tick(i, paris("2027-02-01") + timedelta(days=n), policy)
        if what != "nothing":
            sent.append(what)
    assert sent == [
        "unpaid_call#0",
        "unpaid_reminder#0",
        "unpaid_reminder#1",
        "unpaid_reminder#2",
        "letter prepared",
    ]


def test_a_policy_edited_to_fewer_reminders_never_sends_an_earlier_step_again() -> None:
    i = _installment().step_sent(Step(K.UNPAID_REMINDER, 2), date(2027, 3, 10))
    assert i.next_step(UnpaidPolicy(reminder_days=(7,))) == DueStep(Step(K.FORMAL_NOTICE), date(2027, 3, 12))


def test_a_letter_staff_must_post_waits_but_a_provider_or_blocked_letter_is_tried_again_an_hour_later() -> (
    None
):
    at = paris("2027-03-12")
    manual = _installment().letter_prepared(_prepared(at))
    assert manual.next_step(DEFAULT) is None
    provider = _installment().letter_prepared(_prepared(at, RegisteredMailChannel.PROVIDER))
    blocked = _installment().letter_prepared(
        replace(_prepared(at), status=LetterStatus.BLOCKED, reason="no_postal_address", prepared_at=None)
    )
    for waiting in (provider, blocked):
        assert waiting.step_at(DEFAULT, at + timedelta(minutes=59)) is None
        step = waiting.step_at(DEFAULT, at + timedelta(hours=1))
        assert step is not None
        assert step.step.kind is TimelineStep.LETTER


def test_a_posting_before_the_letter_was_prepared_or_with_a_bad_tracking_number_is_refused() -> None:
    i = _installment().letter_prepared(_prepared(paris("2027-03-12")))
    with pytest.raises(InvalidInput) as refusal:
        i.letter_sent(date(2027, 3, 11), "1A 123\u00e9")
    assert [d.field for d in refusal.value.details] == ["sent_on", "tracking_number"]
    sent = i.letter_sent(date(2027, 3, 12), "1A12345678901")
    with pytest.raises(Conflict):
        sent.letter_sent(date(2027, 3, 13), "1A12345678901")
    with pytest.raises(Conflict):
        _installment().letter_sent(date(2027, 3, 13), "1A12345678901")


def test_automatic_termination_is_taken_by_the_tick_on_its_day() -> None:
    policy = UnpaidPolicy(termination=TerminationMode.AUTOMATIC)
    i = _installment().letter_prepared(_prepared(paris("2027-03-12"))).letter_sent(date(2027, 3, 12), "X")
    i = i.suspended(date(2027, 4, 12))
    assert i.next_step(policy) == DueStep(
        Step(K.TERMINATION_NOTICE), date(2027, 4, 22), effective_on=date(2027, 4, 22)
    )


def test_a_reversed_payment_re_opens_a_reinstated_installment_to_a_second_suspension() -> None:
    i = _installment().letter_prepared(_prepared(paris("2027-03-12"))).letter_sent(date(2027, 3, 12), "X")
    i = i.suspended(date(2027, 4, 12))
    paid = i.pay(date(2027, 4, 15), None)
    assert paid.status is InstallmentStatus.PAID
    reopened = paid.reverse(paid.payments[0].id, "chèque impayé", "staff", paris("2027-04-20"))
    assert (reopened.status, reopened.amount_due.amount) == (InstallmentStatus.DUE, Decimal("1234.50"))
    step = reopened.step_at(DEFAULT, paris("2027-04-20", 9))
    assert step == DueStep(Step(K.SUSPENSION_NOTICE, 1), date(2027, 4, 12), effective_on=date(2027, 4, 12))
    with pytest.raises(Conflict):
        reopened.reverse(paid.payments[0].id, "again", "staff", paris("2027-04-21"))


def test_a_payment_before_the_suspension_took_effect_voids_it() -> None:
    i = _installment().letter_prepared(_prepared(paris("2027-03-12"))).letter_sent(date(2027, 3, 12), "X")
    suspended = i.suspended(date(2027, 4, 12))
    early = suspended.pay(date(2027, 4, 10), None)
    state = contract_after(ContractStatus.SUSPENDED, [early], date(2027, 4, 10))
    assert (state.status, state.cover_resumes_at, state.suspension_voided) == (
        ContractStatus.ACTIVE,
        None,
        True,
    )
    late = suspended.pay(date(2027, 4, 15), None)
    state = contract_after(ContractStatus.SUSPENDED, [late], date(2027, 4, 15))
    assert (state.cover_resumes_at, state.suspension_voided) == (datetime(2027, 4, 16, 10, tzinfo=UTC), False)


def test_expected_documents_are_called_at_once_then_reminded_until_the_last_reminder() -> None:
    created = date(2027, 1, 10)
    policy = DocumentsPolicy()
    assert documents_step_to_send(policy, created, None, paris("2027-01-10")) == DueStep(
        Step(K.DOCUMENTS_CALL), created
    )
    last = SentStep(Step(K.DOCUMENTS_CALL), created)
    assert next_documents_step(policy, created, last) == DueStep(
        Step(K.DOCUMENTS_REMINDER, 0), date(2027, 1, 17)
    )
    assert documents_step_to_send(policy, created, last, paris("2027-01-16", 23)) is None
    late = documents_step_to_send(policy, created, last, paris("2027-02-01"))
    assert late is not None
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


def test_a_letter_retried_in_the_night_waits_for_eight_in_paris() -> None:
    night = paris("2027-03-13", 2)
    provider = _installment().letter_prepared(_prepared(night, RegisteredMailChannel.PROVIDER))
    step = provider.next_step(DEFAULT)
    assert step is not None
    assert step.moment == paris("2027-03-13", 8)


def test_staff_cannot_record_a_letter_the_provider_already_holds() -> None:
    held = replace(_prepared(paris("2027-03-12"), RegisteredMailChannel.PROVIDER), provider_id="maileva-1")
    with pytest.raises(Conflict):
        _installment().letter_prepared(held).letter_sent(date(2027, 3, 12), "1A1", by="staff")
