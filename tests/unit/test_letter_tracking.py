"""A letter the provider posted is tracked once a day until delivered or returned, beside the L113-3
timeline and never moving it: its place on the `due` index is the earlier of its next step and its next
tracking check. On the domain alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.communications import CommunicationKind as K
from chalicelib.domain.dunning import DueStep, Step, TimelineStep, UnpaidPolicy
from chalicelib.domain.installments import (
    TRACKING_CHECKS,
    FormalNotice,
    Installment,
    LetterStatus,
    Money,
    letter_id_of,
)
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.legal_time import paris_date, paris_moment

POLICY = UnpaidPolicy()
PARIS = ZoneInfo("Europe/Paris")
INSTALLMENT_ID = "01JINSTALLMENT00000000000A"


def paris(day: str, hour: int = 8, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), tzinfo=PARIS).astimezone(UTC)


DEPOSITED = paris("2027-03-12", 9, 5)
SUSPENSION = DueStep(Step(K.SUSPENSION_NOTICE), date(2027, 4, 12), effective_on=date(2027, 4, 12))


def _prepared(channel: RegisteredMailChannel) -> Installment:
    notice = FormalNotice(
        letter_id=letter_id_of(INSTALLMENT_ID),
        status=LetterStatus.TO_SEND,
        channel=channel,
        prepared_on=paris_date(DEPOSITED),
        attempted_at=DEPOSITED,
        prepared_at=DEPOSITED,
    )
    return Installment(INSTALLMENT_ID, "k", date(2027, 3, 1), Money(Decimal("1234.50")), formal_notice=notice)


def _posted_by_the_provider() -> Installment:
    """What the tick writes when the provider's proof of deposit comes back: sent on 12/03."""
    installment = _prepared(RegisteredMailChannel.PROVIDER)
    assert installment.formal_notice is not None
    return installment.letter_prepared(
        replace(
            installment.formal_notice,
            status=LetterStatus.SENT,
            sent_on=date(2027, 3, 12),
            tracking_number="1A00000000001",
            provider_id="sim_1",
        )
    )


def test_a_posted_letter_is_next_due_at_eight_in_paris_the_day_after_its_deposit() -> None:
    posted = _posted_by_the_provider()

    assert posted.next_tracking_check() == paris("2027-03-13")
    assert posted.next_step(POLICY) == SUSPENSION
    assert posted.due_at(POLICY) == paris("2027-03-13")


def test_a_check_in_the_night_or_the_afternoon_is_followed_by_one_at_eight_the_next_day() -> None:
    checked = _posted_by_the_provider().tracked(None, paris("2027-03-20", 2))
    assert checked.due_at(POLICY) == paris("2027-03-21")
    checked = checked.tracked(None, paris("2027-03-21", 15, 30))
    assert checked.due_at(POLICY) == paris("2027-03-22")


def test_the_due_time_is_the_next_step_when_it_comes_before_the_next_check() -> None:
    suspended = _posted_by_the_provider().suspended(date(2027, 4, 12))
    checked_at_ten = suspended.tracked(None, paris("2027-04-21", 10))
    termination_due = paris_moment(date(2027, 4, 22))

    assert checked_at_ten.next_tracking_check() == paris("2027-04-22")
    assert checked_at_ten.next_step(POLICY) == DueStep(
        Step(TimelineStep.TERMINATION_DUE),
        date(2027, 4, 22),
        at=termination_due,
        effective_on=date(2027, 4, 22),
    )
    assert checked_at_ten.due_at(POLICY) == termination_due


def test_a_letter_staff_posted_by_hand_is_never_tracked() -> None:
    for channel in RegisteredMailChannel:
        recorded = _prepared(channel).letter_sent(date(2027, 3, 12), "1A1", by="staff")

        assert recorded.next_tracking_check() is None
        assert recorded.due_at(POLICY) == SUSPENSION.moment


@pytest.mark.parametrize("answer", [LetterStatus.DELIVERED, LetterStatus.RETURNED])
def test_tracking_stops_at_delivered_or_returned_and_the_suspension_still_counts_from_sending(
    answer: LetterStatus,
) -> None:
    settled = _posted_by_the_provider().tracked(answer, paris("2027-03-15"))

    assert settled.formal_notice is not None
    assert settled.formal_notice.status is answer
    assert settled.formal_notice.sent_on == date(2027, 3, 12)
    assert settled.next_tracking_check() is None
    assert settled.next_step(POLICY) == SUSPENSION
    assert settled.due_at(POLICY) == SUSPENSION.moment


def test_tracking_stops_once_the_installment_is_paid_or_its_contract_terminated() -> None:
    posted = _posted_by_the_provider()

    paid = posted.pay(date(2027, 3, 14), None)
    assert paid.next_tracking_check() is None
    assert paid.due_at(POLICY) is None
    assert posted.terminated(date(2027, 4, 22)).next_tracking_check() is None


def test_a_provider_that_fails_a_check_changes_nothing_and_the_next_day_asks_again() -> None:
    posted = _posted_by_the_provider()

    failed = posted.tracked(None, paris("2027-03-13"))

    assert failed.formal_notice is not None
    assert failed.formal_notice.status is LetterStatus.SENT
    assert failed.formal_notice.reason is None
    assert failed.next_step(POLICY) == posted.next_step(POLICY)
    assert failed.next_tracking_check() == paris("2027-03-14")


def test_the_provider_is_asked_at_most_thirty_times_then_only_the_timeline_waits() -> None:
    installment = _posted_by_the_provider()
    for _ in range(TRACKING_CHECKS):
        check = installment.next_tracking_check()
        assert check is not None
        assert installment.tracking_due(check)
        installment = installment.tracked(None, check)

    assert TRACKING_CHECKS == 30
    assert installment.next_tracking_check() is None
    assert installment.due_at(POLICY) == SUSPENSION.moment
