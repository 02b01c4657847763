"""Dunning and expected-document reminders: the account's policy, its legal floor, and when each step is due.

Art. L113-3 of the Code des assurances sets the floor every policy must respect: the formal notice (mise en
demeure) no earlier than 10 days after the due date, suspension of cover no earlier than 30 days after the
notice, termination no earlier than 10 days after the suspension. The defaults are exactly that floor.

Timelines follow API.md's "Formal notice by registered letter": a step dated day X is due from 08:00
Europe/Paris on X (`legal_time.sending_moment`); a step already late when first seen is sent at once, but
when several are late only the most advanced is sent. The formal notice is a registered letter: the
suspension counts from the day the letter was *sent* (art. R113-1), never from an email, and periods
count as art. 641 of the Code de procédure civile says (`legal_time`). The installment's own state machine
(letter prepared, sent, suspension, termination due) lives in `installments.py`; this module holds the
policy and the steps dated from the due date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.legal_time import first_day_after, sending_moment

K = CommunicationKind

LEGAL_FORMAL_NOTICE_DAYS = 10
LEGAL_SUSPENSION_DAYS = 30
LEGAL_TERMINATION_DAYS = 10
MAX_DAYS = 365
MAX_REMINDERS = 10
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
    K.REINSTATEMENT_NOTICE,
)
"""The kinds a dunning policy may override the template of."""


class DunningStage(StrEnum):
    """How far an unpaid installment (and so its contract) has gone; the contract shows the furthest."""

    NONE = "none"
    CALLED = "called"
    REMINDED = "reminded"
    FORMAL_NOTICE = "formal_notice"
    SUSPENDED = "suspended"
    TERMINATION_DUE = "termination_due"
    TERMINATED = "terminated"


_STAGE_AFTER: dict[CommunicationKind, DunningStage] = {
    K.UNPAID_CALL: DunningStage.CALLED,
    K.UNPAID_REMINDER: DunningStage.REMINDED,
}
_STAGE_ORDER = list(DunningStage)


def furthest_stage(stages: list[DunningStage]) -> DunningStage:
    return max(stages, key=_STAGE_ORDER.index, default=DunningStage.NONE)


class TerminationMode(StrEnum):
    """Termination is the insurer's right, not a consequence: by default staff confirm it."""

    CONFIRM = "confirm"
    AUTOMATIC = "automatic"


@dataclass(frozen=True)
class UnpaidPolicy:
    call_days_before: int = 15
    reminder_days: tuple[int, ...] = (7,)
    formal_notice_days: int = LEGAL_FORMAL_NOTICE_DAYS
    suspension_days: int = LEGAL_SUSPENSION_DAYS
    termination_days: int = LEGAL_TERMINATION_DAYS
    termination: TerminationMode = TerminationMode.CONFIRM


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


class TimelineStep(StrEnum):
    """Steps of an installment's timeline that send no email when the tick takes them."""

    LETTER = "formal_notice_letter"
    """Hand the prepared letter to the provider again, ask where it stands, or re-check a blocked letter."""
    TERMINATION_DUE = "termination_due"
    """The insurer may now terminate: the contract shows it; staff confirm (policy `confirm`)."""


StepKind = CommunicationKind | TimelineStep


@dataclass(frozen=True)
class Step:
    """One step of a timeline: its kind and its position (`unpaid_reminder` #0, #1…; the suspension's
    #1 after a reversed payment re-opened a reinstated installment), so each happens once."""

    kind: StepKind
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
    """A step and its day. The tick takes it from `moment`: 08:00 Paris on `due_on` unless `at` says
    otherwise (a letter re-tried an hour after the last try, a termination due from 00:00).
    `effective_on` is the day its legal consequence applies from 00:00 Paris (suspension, termination)."""

    step: Step
    due_on: date
    at: datetime | None = None
    effective_on: date | None = None

    @property
    def moment(self) -> datetime:
        return self.at if self.at is not None else sending_moment(self.due_on)


_RANK: dict[StepKind, int] = {kind: rank for rank, kind in enumerate(DUNNING_KINDS)}


def _after(ladder: list[DueStep], last_sent: SentStep | None) -> list[DueStep]:
    """The steps of `ladder` that come after the last one sent; by rank, so that a policy edited since
    (one reminder fewer) never sends an earlier step again."""
    if last_sent is None:
        return ladder
    sent = (_RANK.get(last_sent.step.kind, len(_RANK)), last_sent.step.number)
    return [s for s in ladder if (_RANK[s.step.kind], s.step.number) > sent]


def unpaid_ladder(policy: UnpaidPolicy, due: date) -> list[DueStep]:
    """The steps dated from the due date itself, in order: the call, the reminders, and the letter on the
    first day after `formal_notice_days` have run (due 01/03 → 12/03). What follows counts from the letter."""
    steps = [DueStep(Step(K.UNPAID_CALL), due - timedelta(days=policy.call_days_before))]
    steps += [
        DueStep(Step(K.UNPAID_REMINDER, n), due + timedelta(days=days))
        for n, days in enumerate(sorted(policy.reminder_days))
    ]
    steps.append(DueStep(Step(K.FORMAL_NOTICE), first_day_after(due, policy.formal_notice_days)))
    return steps


def remaining_ladder(policy: UnpaidPolicy, due: date, last_sent: SentStep | None) -> list[DueStep]:
    return _after(unpaid_ladder(policy, due), last_sent)


def stage_after(kind: StepKind) -> DunningStage:
    """The installment's stage once an email of the ladder before the letter was sent."""
    return (
        _STAGE_AFTER.get(kind, DunningStage.NONE)
        if isinstance(kind, CommunicationKind)
        else DunningStage.NONE
    )


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
    policy: DocumentsPolicy, created_on: date, last_sent: SentStep | None, now: datetime
) -> DueStep | None:
    """What a tick at `now` sends for this expected document: the latest step due, or None."""
    due = [s for s in _after(_documents_ladder(policy, created_on), last_sent) if s.moment <= now]
    return due[-1] if due else None


def start_of_day(day: date) -> datetime:
    """00:00 UTC on `day`: when a dossier's deadline automation is due (dossiers, not the L113-3 timeline,
    which counts in Paris time: `legal_time`)."""
    return datetime.combine(day, time(0), tzinfo=UTC)
