"""The writes that move a mailing's counts, and the one of them that ends the mailing.

A page fanned out, an email settled, a fan-out given up: each adds to the mailing's counts in the
transaction of its own change. The mailing ends when its fan-out is done and no email written `queued`
is left unsettled (`unsettled` = 0); the write that gets it there also writes `finished_at` and the
`mailing.finished` event, so the event is written once even when the last two emails settle at once.

No condition can add numbers, so each write first goes as the common case, "this does not end it" (one
call); when that guess fails, the mailing is read (consistently) and the write goes again as the one
that ends it, on the condition that the counts are still those read, so the event carries the final
counts. Emails settle concurrently: a guess that lost a race is tried again, a few times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import EventItem, MailingItem, failed_among, transactions
from chalicelib.domain.events import Event
from chalicelib.domain.mailings import MailingCounts, finished_event

COUNTS = ("total", "sent", "failed", "skipped")
ATTEMPTS = 5

OwnWrites = Callable[[TransactWrite], int]
"""Adds the change's own writes to the transaction (first, before any other) and says how many."""


@dataclass(frozen=True)
class MailingCount:
    """What one write does to the mailing item."""

    adds: dict[str, int]
    """To `total`, `sent`, `failed`, `skipped`."""
    unsettled: int = 0
    """Emails written `queued` (+) or settled (-) by this write."""
    fans_out: bool = False
    """This write ends the fan-out (`fanned_out`)."""
    incomplete: bool = False
    actions: list[Action] = field(default_factory=list)
    """Other changes to the mailing (its schedule, its next page)."""
    condition: Condition | None = None
    """What the mailing must be for this write at all (`state = sending`); the item must exist."""


def write_counted(
    own: OwnWrites,
    pk: str,
    account_id: str,
    mailing_id: str,
    count: MailingCount,
    events: list[Event],
    at: datetime,
    *,
    announced: bool = True,
) -> list[Event] | None:
    """Write the change (`own`), its events and the mailing's counts in one TransactWriteItems; the events
    written (with `mailing.finished` when this write ended the mailing), or None when a condition of the
    change or of the mailing did not hold (a replay, a race lost). `announced=False`: the writer announces
    none of them, so they are due for the tick's fan-out at once (`event_item`)."""
    mailing = MailingItem(pk, "MAILING")
    actions = _actions(count)
    base = MailingItem.pk.exists() if count.condition is None else MailingItem.pk.exists() & count.condition
    may_end = count.unsettled <= 0
    for _ in range(ATTEMPTS):
        guard = base & ~_ends(count) if may_end else base
        outcome = _transact(own, mailing, actions, guard, events, announced)
        if outcome is not _Outcome.MAILING_REFUSED:
            return events if outcome is _Outcome.WRITTEN else None
        current = _read(pk) if may_end else None
        if current is None:
            return None
        final = _final(current, count)
        if final is None:
            continue  # it moved on since the guess: guess again
        exact = base & MailingItem.finished_at.does_not_exist() & (MailingItem.unsettled == current.unsettled)
        for name in COUNTS:
            exact = exact & (getattr(MailingItem, name) == int(getattr(current, name) or 0))
        ending = [*events, finished_event(account_id, mailing_id, final, at)]
        if final.sent + final.failed + final.skipped != final.total:
            # Sent before its emails were counted `unsettled`: its count cannot tell its end; say nothing.
            ending = events
        outcome = _transact(
            own, mailing, [*actions, MailingItem.finished_at.set(at)], exact, ending, announced
        )
        if outcome is not _Outcome.MAILING_REFUSED:
            return ending if outcome is _Outcome.WRITTEN else None
    return None


class _Outcome(Enum):
    WRITTEN = "written"
    CHANGE_REFUSED = "change_refused"
    """A condition of the change itself failed: a replay, or another writer came first."""
    MAILING_REFUSED = "mailing_refused"


def _actions(count: MailingCount) -> list[Action]:
    actions: list[Action] = [getattr(MailingItem, name).add(value) for name, value in count.adds.items()]
    if count.unsettled:
        actions.append(MailingItem.unsettled.add(count.unsettled))
    if count.fans_out:
        actions.append(MailingItem.fanned_out.set(True))
    if count.incomplete:
        actions.append(MailingItem.incomplete.set(True))
    return actions + count.actions


def _ends(count: MailingCount) -> Condition:
    """On the mailing as it is before the write: this write ends it."""
    ends: Condition = MailingItem.finished_at.does_not_exist() & (MailingItem.unsettled == -count.unsettled)
    if not count.fans_out:
        ends = ends & (MailingItem.fanned_out == True)  # noqa: E712
    return ends


def _final(current: MailingItem, count: MailingCount) -> MailingCounts | None:
    """The counts this write leaves, when it ends the mailing read; None when it would not end it."""
    finished_at: datetime | None = current.finished_at
    unsettled: float | None = current.unsettled
    if finished_at is not None or unsettled is None:
        return None  # ended already, or a mailing sent before its emails were counted unsettled
    if not (current.fanned_out or count.fans_out) or int(unsettled) + count.unsettled != 0:
        return None
    totals = {name: int(getattr(current, name) or 0) + count.adds.get(name, 0) for name in COUNTS}
    return MailingCounts(**totals, incomplete=bool(current.incomplete) or count.incomplete)


def _read(pk: str) -> MailingItem | None:
    try:
        return MailingItem.get(pk, "MAILING", consistent_read=True)
    except DoesNotExist:
        return None


def _transact(
    own: OwnWrites,
    mailing: MailingItem,
    actions: list[Action],
    condition: Condition,
    events: list[Event],
    announced: bool,
) -> _Outcome:
    written = 0
    try:
        with TransactWrite(connection=transactions()) as transaction:
            written = own(transaction)
            for event in events:
                transaction.save(
                    event_item(event, announced=announced), condition=EventItem.pk.does_not_exist()
                )
            transaction.update(mailing, actions=actions, condition=condition)
    except TransactWriteError as exc:
        # PynamoDB sends the puts before the updates, whatever the order they were added in: the
        # mailing's update, added last, is the last item, but an own update (an email's outcome) comes
        # after the events' puts. The events are new (fresh ids): any other refusal is the change's own.
        mailing_at = written + len(events)
        if failed_among(exc, 0, mailing_at):
            return _Outcome.CHANGE_REFUSED
        if failed_among(exc, mailing_at, 1):
            return _Outcome.MAILING_REFUSED
        raise
    return _Outcome.WRITTEN
