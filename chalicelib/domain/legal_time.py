"""Legal time: how French law counts the periods of the L113-3 timeline, in Paris time.

Art. 641 and 642 of the Code de procédure civile: the day of the event that starts a period does not count,
and a period of N days ends at 24:00 on its last day. A consequence of the period (the suspension, the right
to terminate) takes effect at 00:00 the next day. Every moment is a Paris wall-clock time turned into UTC,
so a period that crosses a daylight-saving change still ends at midnight in Paris (23:00 or 22:00 UTC).
Emails of the timeline leave from 08:00 Paris on their day, never at night.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
SENDING_HOUR = time(8)
"""The hour from which a scheduled email of the timeline may leave, in Paris."""


def paris_moment(day: date, at: time = time(0)) -> datetime:
    """The UTC instant of `day` at `at` on a Paris wall clock (DST-aware)."""
    return datetime.combine(day, at, tzinfo=PARIS).astimezone(UTC)


def paris_date(moment: datetime) -> date:
    """The day a UTC instant falls on in Paris."""
    return moment.astimezone(PARIS).date()


def last_day_of_period(event_day: date, days: int) -> date:
    """The last day of a period of `days` days that an event on `event_day` starts (the event's day does
    not count): an installment due 01/03 has its 10 days run 02/03–11/03."""
    return event_day + timedelta(days=days)


def first_day_after(event_day: date, days: int) -> date:
    """The day a consequence of the period takes effect, from 00:00 Paris."""
    return last_day_of_period(event_day, days) + timedelta(days=1)


def takes_effect_at(event_day: date, days: int) -> datetime:
    """00:00 Paris on the first day after the period: the moment the consequence applies."""
    return paris_moment(first_day_after(event_day, days))


def sending_moment(day: date) -> datetime:
    """08:00 Paris on `day`: a scheduled email of that day leaves from then."""
    return paris_moment(day, SENDING_HOUR)


def cover_resumes_at(paid_on: date) -> datetime:
    """Under L113-3 a suspended cover resumes at noon (Paris time) the day after the payment."""
    return paris_moment(paid_on + timedelta(days=1), time(12))
