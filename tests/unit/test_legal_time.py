"""How the L113-3 periods count (art. 641 CPC) in Paris time, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

from chalicelib.domain.legal_time import (
    cover_resumes_at,
    first_day_after,
    last_day_of_period,
    paris_date,
    sending_moment,
    takes_effect_at,
)


def test_ten_days_after_a_due_date_of_the_first_of_march_end_on_the_eleventh() -> None:
    assert last_day_of_period(date(2027, 3, 1), 10) == date(2027, 3, 11)
    assert first_day_after(date(2027, 3, 1), 10) == date(2027, 3, 12)


def test_a_letter_sent_on_the_twelfth_of_march_suspends_from_the_twelfth_of_april_at_midnight_in_paris() -> (
    None
):
    # 30 days, 13/03 → 11/04; Paris is on summer time (UTC+2) from 28/03/2027.
    assert takes_effect_at(date(2027, 3, 12), 30) == datetime(2027, 4, 11, 22, 0, tzinfo=UTC)


def test_a_period_that_ends_in_winter_time_ends_at_23_utc() -> None:
    assert takes_effect_at(date(2027, 10, 1), 30) == datetime(2027, 10, 31, 23, 0, tzinfo=UTC)


def test_termination_is_possible_from_the_twenty_second_of_april() -> None:
    suspended_from = date(2027, 4, 12)
    assert first_day_after(suspended_from - date.resolution, 10) == date(2027, 4, 22)


def test_emails_leave_from_eight_in_paris_whatever_the_season() -> None:
    assert sending_moment(date(2027, 2, 14)) == datetime(2027, 2, 14, 7, 0, tzinfo=UTC)
    assert sending_moment(date(2027, 3, 28)) == datetime(2027, 3, 28, 6, 0, tzinfo=UTC)


def test_a_late_evening_in_utc_is_already_the_next_day_in_paris() -> None:
    assert paris_date(datetime(2027, 4, 11, 22, 30, tzinfo=UTC)) == date(2027, 4, 12)
    assert paris_date(datetime(2027, 4, 11, 21, 30, tzinfo=UTC)) == date(2027, 4, 11)


def test_cover_resumes_at_noon_in_paris_the_day_after_the_payment() -> None:
    assert cover_resumes_at(date(2027, 4, 15)) == datetime(2027, 4, 16, 10, 0, tzinfo=UTC)
    assert cover_resumes_at(date(2027, 1, 15)) == datetime(2027, 1, 16, 11, 0, tzinfo=UTC)
