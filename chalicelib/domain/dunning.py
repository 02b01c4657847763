"""Dunning and expected-document reminders: the account's policy, its legal floor, and when each step is due.

Art. L113-3 of the Code des assurances sets the floor every policy must respect: the formal notice (mise en
demeure) no earlier than 10 days after the due date, suspension of cover no earlier than 30 days after the
notice, termination no earlier than 10 days after the suspension. The defaults are exactly that floor.

Timelines follow API.md: a step dated day X is due from 00:00 UTC on X; a step already late when first seen
is sent at once, but when several are late only the most advanced is sent; and the suspension and the
termination count from the day the previous notice was *actually* sent (the 30 days run from the notice
the client received, not from the day it should have left).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.errors import FieldIssue, InvalidInput

K = CommunicationKind

LEGAL_FORMAL_NOTICE_DAYS = 10
LEGAL_SUSPENSION_DAYS = 30
LEGAL_TERMINATION_DAYS = 10
MAX_DAYS = 365
MAX_REMINDERS = 10
PARIS = ZoneInfo("Europe/Paris")
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)
"""The days an installment, a payment or an expected document may name. A timeline counts up to a few years
from its due date, so these bounds keep every step a real date (Python's end at 0001 and 9999); a date out of
them is a typing error, never a premium."""

DUNNING_KINDS: tuple[CommunicationKind, ...] = (
    K.UNPAID_CALL,
    K.UNPAID_REMINDER,
    K.FORMAL_NOTICE,
    K.SUSPENSION_NOTICE,
    K.TERMINATION_NOTICE,
    K.DOCUMENTS_CALL,
    K.DOCUMENTS_REMINDER,
)
"""The kinds a dunning policy may override the template of."""


class DunningStage(StrEnum):
    """How far an unpaid installment (and so its contract) has gone; the contract shows the furthest."""

    NONE = "none"
    CALLED = "called"
    REMINDED = "reminded"
    FORMAL_NOTICE = "formal_notice"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


_STAGE_AFTER: dict[CommunicationKind, DunningStage] = {
    K.UNPAID_CALL: DunningStage.CALLED,
    K.UNPAID_REMINDER: DunningStage.REMINDED,
    K.FORMAL_NOTICE: DunningStage.FORMAL_NOTICE,
    K.SUSPENSION_NOTICE: DunningStage.SUSPENDED,
    K.TERMINATION_NOTICE: DunningStage.TERMINATED,
}
_STAGE_ORDER = list(DunningStage)


def furthest_stage(stages: list[DunningStage]) -> DunningStage:
    return max(stages, key=_STAGE_ORDER.index, default=DunningStage.NONE)


@dataclass(frozen=True)
class UnpaidPolicy:
    call_days_before: int = 15
    reminder_days: tuple[int, ...] = (7,)
    formal_notice_days: int = LEGAL_FORMAL_NOTICE_DAYS
    suspension_days: int = LEGAL_SUSPENSION_DAYS
    termination_days: int = LEGAL_TERMINATION_DAYS


@dataclass(frozen=True)
class DocumentsPolicy:
    reminder_days: tuple[int, ...] = (7, 14)


@dataclass(frozen=True)
class DunningPolicy:
    unpaid: UnpaidPolicy = field(default_factory=UnpaidPolicy)
    documents: DocumentsPolicy = field(default_factory=DocumentsPolicy)
    templates: dict[CommunicationKind, TemplateSource] = field(default_factory=dict)
    version: int = 0

    def template_for(self, kind: CommunicationKind) -> TemplateSource | None:
        """The account's own template for this kind, or None for the French default."""
        return self.templates.get(kind)


def validate_policy(policy: DunningPolicy) -> None:
    """Refuse a policy the law or common sense does not allow, naming every field at fault at once.
    Templates are checked by `chalicelib.domain.templates.validate_template`, by the caller."""
    unpaid, issues = policy.unpaid, []

    def at_least(name: str, value: int, floor: int, why: str) -> None:
        if value < floor:
            issues.append(FieldIssue(f"unpaid.{name}", f"must be at least {floor} days ({why})"))
        elif value > MAX_DAYS:
            issues.append(FieldIssue(f"unpaid.{name}", f"must be at most {MAX_DAYS} days"))

    at_least("call_days_before", unpaid.call_days_before, 0, "0 calls on the due date")
    at_least(
        "formal_notice_days",
        unpaid.formal_notice_days,
        LEGAL_FORMAL_NOTICE_DAYS,
        "art. L113-3 Code des assurances: no formal notice before 10 days after the due date",
    )
    at_least(
        "suspension_days",
        unpaid.suspension_days,
        LEGAL_SUSPENSION_DAYS,
        "art. L113-3 Code des assurances: cover is suspended 30 days after the formal notice",
    )
    at_least(
        "termination_days",
        unpaid.termination_days,
        LEGAL_TERMINATION_DAYS,
        "art. L113-3 Code des assurances: termination no earlier than 10 days after suspension",
    )
    issues += _reminder_issues("unpaid.reminder_days", unpaid.reminder_days, below=unpaid.formal_notice_days)
    issues += _reminder_issues("documents.reminder_days", policy.documents.reminder_days, below=MAX_DAYS + 1)
    if issues:
        raise InvalidInput("This dunning policy is not allowed.", issues)


def _reminder_issues(name: str, days: tuple[int, ...], below: int) -> list[FieldIssue]:
    issues = []
    if len(days) > MAX_REMINDERS:
        issues.append(FieldIssue(name, f"must hold at most {MAX_REMINDERS} days"))
    if len(set(days)) != len(days):
        issues.append(FieldIssue(name, "must not repeat a day"))
    for index, day in enumerate(days):
        if day < 1:
            issues.append(FieldIssue(f"{name}.{index}", "must be at least 1 day"))
        elif day >= below:
            limit = "formal_notice_days" if name.startswith("unpaid") else f"{MAX_DAYS + 1} days"
            issues.append(FieldIssue(f"{name}.{index}", f"must be below {limit}"))
    return issues


def check_days(days: dict[str, date | None]) -> None:
    """Refuse every day (by its field's name) outside EARLIEST_DAY..LATEST_DAY, all at once; None is absent.
    Days are not compared with today: staff record payments late, and the local stage moves time."""
    issues = [
        FieldIssue(field, f"must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}")
        for field, day in days.items()
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY
    ]
    if issues:
        raise InvalidInput("This date is out of the range Relais accepts.", issues)


@dataclass(frozen=True)
class Step:
    """One email of a timeline: its kind and its position (`unpaid_reminder` #0, #1…), so each is once."""

    kind: CommunicationKind
    number: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind.value}#{self.number}"


@dataclass(frozen=True)
class SentStep:
    step: Step
    on: date


@dataclass(frozen=True)
class DueStep:
    step: Step
    due_on: date


_RANK = {kind: rank for rank, kind in enumerate(DUNNING_KINDS)}


def _after(ladder: list[DueStep], last_sent: SentStep | None) -> list[DueStep]:
    """The steps of `ladder` that come after the last one sent; by rank, so that a policy edited since
    (one reminder fewer) never sends an earlier step again."""
    if last_sent is None:
        return ladder
    sent = (_RANK[last_sent.step.kind], last_sent.step.number)
    return [s for s in ladder if (_RANK[s.step.kind], s.step.number) > sent]


def _unpaid_ladder(policy: UnpaidPolicy, due: date) -> list[DueStep]:
    """The steps dated from the due date itself, in order (suspension and termination are not: they
    count from the notice before them, once it is sent)."""
    steps = [DueStep(Step(K.UNPAID_CALL), due - timedelta(days=policy.call_days_before))]
    steps += [
        DueStep(Step(K.UNPAID_REMINDER, n), due + timedelta(days=days))
        for n, days in enumerate(sorted(policy.reminder_days))
    ]
    steps.append(DueStep(Step(K.FORMAL_NOTICE), due + timedelta(days=policy.formal_notice_days)))
    return steps


def next_unpaid_step(policy: UnpaidPolicy, due: date, last_sent: SentStep | None) -> DueStep | None:
    """The next step of an unpaid installment and the day it becomes due, given the last one sent:
    before the formal notice the earliest step not sent yet; after it, the suspension counted from the
    notice actually sent, then the termination from the suspension actually sent; then nothing."""
    if last_sent is not None:
        if last_sent.step.kind is K.FORMAL_NOTICE:
            return DueStep(Step(K.SUSPENSION_NOTICE), last_sent.on + timedelta(days=policy.suspension_days))
        if last_sent.step.kind is K.SUSPENSION_NOTICE:
            return DueStep(Step(K.TERMINATION_NOTICE), last_sent.on + timedelta(days=policy.termination_days))
        if last_sent.step.kind is K.TERMINATION_NOTICE:
            return None
    remaining = _after(_unpaid_ladder(policy, due), last_sent)
    return remaining[0] if remaining else None


def unpaid_step_to_send(
    policy: UnpaidPolicy, due: date, last_sent: SentStep | None, today: date
) -> DueStep | None:
    """What a tick on `today` sends for this installment: the most advanced step already due, or None.
    Steps skipped over are never sent later ("only the latest applies")."""
    candidate = next_unpaid_step(policy, due, last_sent)
    if candidate is None or candidate.due_on > today:
        return None
    if candidate.step.kind in (K.SUSPENSION_NOTICE, K.TERMINATION_NOTICE):
        return candidate
    return [s for s in _after(_unpaid_ladder(policy, due), last_sent) if s.due_on <= today][-1]


def stage_after(kind: CommunicationKind) -> DunningStage:
    """The installment's stage once a step of this kind was sent."""
    return _STAGE_AFTER[kind]


def _documents_ladder(policy: DocumentsPolicy, created_on: date) -> list[DueStep]:
    return [DueStep(Step(K.DOCUMENTS_CALL), created_on)] + [
        DueStep(Step(K.DOCUMENTS_REMINDER, n), created_on + timedelta(days=days))
        for n, days in enumerate(sorted(policy.reminder_days))
    ]


def next_documents_step(
    policy: DocumentsPolicy, created_on: date, last_sent: SentStep | None
) -> DueStep | None:
    """Expected documents: the call at the first tick after creation, then a reminder at creation + each
    reminder day, until the document is received."""
    remaining = _after(_documents_ladder(policy, created_on), last_sent)
    return remaining[0] if remaining else None


def documents_step_to_send(
    policy: DocumentsPolicy, created_on: date, last_sent: SentStep | None, today: date
) -> DueStep | None:
    """What a tick on `today` sends for this expected document: the latest step due, or None."""
    due = [s for s in _after(_documents_ladder(policy, created_on), last_sent) if s.due_on <= today]
    return due[-1] if due else None


def start_of_day(day: date) -> datetime:
    """A step dated `day` is due from 00:00 UTC that day (API.md)."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def cover_resumes_at(paid_on: date) -> datetime:
    """Under L113-3 a suspended cover resumes at noon (Paris time) the day after the payment."""
    return datetime.combine(paid_on + timedelta(days=1), time(12), tzinfo=PARIS).astimezone(UTC)
