"""Dunning use cases: the account's policy; installments and expected documents of contracts; and the
steps the tick takes for them (unpaid call, reminders, the registered letter of the formal notice, the
suspension, the termination; documents call and reminders), each addressed by the partner rules and
taken once; the daily tracking of a letter the provider posted, which rides the same `due` index; and
what staff do to an installment's timeline (record the letter's posting, confirm the termination, record
or reverse a payment).

The letter is prepared by the worker that takes the tick's step, never by the API: its id, its S3 key and
its bytes are deterministic, and the installment's `formal_notice` is written at the version read, so a
retried or doubled step never makes two letters. The PDF is rendered through `DunningContext.render_letter`,
which the wiring imports lazily: the API's import path never loads the PDF library."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    communication_event,
    communication_id,
)
from chalicelib.domain.contract_events import dunning_events
from chalicelib.domain.dunning import (
    DueStep,
    DunningPolicy,
    DunningStage,
    Step,
    TimelineStep,
    check_days,
    documents_step_to_send,
    next_documents_step,
    validate_policy,
)
from chalicelib.domain.errors import (
    AccountNotFound,
    Conflict,
    FieldIssue,
    InvalidInput,
    NotFound,
    StaleVersion,
)
from chalicelib.domain.events import SYSTEM, Actor, Event, in_order, staff
from chalicelib.domain.footers import footer, legal_mentions, sender_name
from chalicelib.domain.formatting import french_amount, french_date
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.installments import (
    ContractStatus,
    ExpectedDocument,
    ExpectedStatus,
    FormalNotice,
    Installment,
    InstallmentStatus,
    LetterStatus,
    Money,
    NotFoundPayment,
    StepSubject,
    contract_after,
    letter_id_of,
)
from chalicelib.domain.legal import Insurer, RegisteredMailChannel
from chalicelib.domain.legal_time import last_day_of_period, paris_date
from chalicelib.domain.letters import FormalNoticeLetter
from chalicelib.domain.partners import Apporteur, Client, ContractParties, Deal, Product, RecordKind
from chalicelib.domain.templates import validate_template
from chalicelib.observability import logger
from chalicelib.services.communications import RETRY_AFTER, DeliveryRequest, write_screened
from chalicelib.services.events import announce
from chalicelib.services.messages import message_fields, message_time
from chalicelib.services.partners import recipients_given
from chalicelib.services.ports import (
    AccountRepository,
    Cursor,
    DunningPolicyRepository,
    LetterStore,
    LetterToSend,
    LetterTrackingStatus,
    MessageQueue,
    PartnerRecord,
    PartnerRepository,
    RegisteredMail,
    RegisteredMailUnavailable,
)

K = CommunicationKind
LetterRenderer = Callable[[FormalNoticeLetter], bytes]

Scheduled = Installment | ExpectedDocument


def get_policy(
    account_id: str, policies: DunningPolicyRepository, accounts: AccountRepository
) -> DunningPolicy:
    """The account's policy, or the defaults (the legal floor of L113-3) while it never saved one."""
    policy = policies.get(account_id)
    if policy is not None:
        return policy
    if accounts.get(account_id) is None:
        raise AccountNotFound()
    return DunningPolicy()


def replace_policy(
    account_id: str, policy: DunningPolicy, policies: DunningPolicyRepository, accounts: AccountRepository
) -> DunningPolicy:
    """Check the whole policy (the law, then every template against its kind), then store it."""
    validate_policy(policy)
    for kind, template in policy.templates.items():
        validate_template(kind, template, field_prefix=f"templates.{kind.value}.")
    current = get_policy(account_id, policies, accounts)
    return policies.save(account_id, replace(policy, version=current.version))


# ---- installments, expected documents and their steps ----


class ScheduledRepository(Protocol):
    def get(
        self, account_id: str, contract_id: str, kind: str, thing_id: str
    ) -> tuple[Scheduled, int] | None: ...

    def page_of(
        self, account_id: str, contract_id: str, kind: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Scheduled], Cursor | None]: ...

    def installments_of(self, account_id: str, contract_id: str) -> list[Installment]: ...

    def all_of(self, account_id: str, contract_id: str) -> list[tuple[Scheduled, int]]: ...

    def cancel_pending(self, account_id: str, contract_id: str) -> int: ...

    def copy_parties(self, account_id: str, contract_id: str, parties: ContractParties) -> int: ...

    def commit(
        self,
        account_id: str,
        thing: Scheduled,
        version: int,
        next_at: datetime | None,
        contract: Deal | None = None,
        communication: tuple[Communication, datetime] | None = None,
        events: Sequence[Event] = (),
        parties: ContractParties | None = None,
    ) -> None:
        """Write `thing` at `version` with what it causes; `parties`, the ids its contract names, are
        copied on it so that its next step reads those records with the contract."""
        ...

    def step_subject(self, account_id: str, contract_id: str, kind: str, thing_id: str) -> StepSubject | None:
        """The installment or expected document a step is about, in one read; None when it is gone."""
        ...


@dataclass(frozen=True)
class DunningContext:
    accounts: AccountRepository
    policies: DunningPolicyRepository
    partners: PartnerRepository
    scheduled: ScheduledRepository
    queue: MessageQueue
    now: datetime
    letters: LetterStore | None = None
    render_letter: LetterRenderer | None = None
    """Renders a letter's PDF; the wiring imports the PDF library only when it is first called."""
    registered_mail: RegisteredMail | None = None
    """The provider of the `provider` channel; None when this stage has none configured."""
    webhooks: MessageQueue | None = None
    """Where the events of a change are announced once it is written."""


def _contract(account_id: str, contract_id: str, ctx: DunningContext) -> Deal:
    contract = ctx.partners.get(account_id, RecordKind.CONTRACT, contract_id)
    if not isinstance(contract, Deal):
        raise NotFound("No such contract.")
    return contract


def _scheduled(
    account_id: str, contract_id: str, kind: str, thing_id: str, ctx: DunningContext
) -> tuple[Scheduled, int]:
    found = ctx.scheduled.get(account_id, contract_id, kind, thing_id)
    if found is None:
        raise NotFound("No such installment." if kind == "INSTALLMENT" else "No such expected document.")
    return found


def _installment_of(
    account_id: str, contract_id: str, installment_id: str, ctx: DunningContext
) -> tuple[Deal, Installment, int]:
    """The contract (404 unless the account's) and one of its installments (404 unless it has it)."""
    contract = _contract(account_id, contract_id, ctx)
    installment, version = _scheduled(account_id, contract_id, "INSTALLMENT", installment_id, ctx)
    assert isinstance(installment, Installment)
    return contract, installment, version


def _expected_of(
    account_id: str, contract_id: str, document_id: str, ctx: DunningContext
) -> tuple[Deal, ExpectedDocument, int]:
    """The contract (404 unless the account's) and one of its expected documents (404 unless it has it)."""
    contract = _contract(account_id, contract_id, ctx)
    document, version = _scheduled(account_id, contract_id, "EXPECTED", document_id, ctx)
    assert isinstance(document, ExpectedDocument)
    return contract, document, version


def _at(step: DueStep | None) -> datetime | None:
    return None if step is None else step.moment


def add_installment(
    account_id: str, contract_id: str, due_date: date, amount: Money, label: str | None, ctx: DunningContext
) -> tuple[Installment, DueStep | None]:
    check_days({"due_date": due_date})
    contract = _contract(account_id, contract_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    installment = Installment(new_ulid(), contract.id, due_date, amount, label)
    step = _installment_step(installment, contract, policy)
    ctx.scheduled.commit(
        account_id,
        installment,
        0,
        _installment_due_at(installment, contract, policy),
        parties=contract.parties,
    )
    return installment, step


_DUNNED = ("active", "suspended")
"""Only these contracts are dunned: terminated and cancelled ones have no pending step."""


def list_installments(
    account_id: str, contract_id: str, limit: int, cursor: Cursor | None, ctx: DunningContext
) -> tuple[list[tuple[Installment, DueStep | None]], Cursor | None]:
    """A contract's installments, oldest first, each with the step that waits for it."""
    contract = _contract(account_id, contract_id, ctx)
    found, position = ctx.scheduled.page_of(account_id, contract_id, "INSTALLMENT", limit, cursor)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    return [
        (i, _installment_step(i, contract, policy)) for i in found if isinstance(i, Installment)
    ], position


def get_installment(
    account_id: str, contract_id: str, installment_id: str, ctx: DunningContext
) -> tuple[Installment, DueStep | None]:
    contract, installment, _ = _installment_of(account_id, contract_id, installment_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    return installment, _installment_step(installment, contract, policy)


def _installment_step(installment: Installment, contract: Deal, policy: DunningPolicy) -> DueStep | None:
    return installment.next_step(policy.unpaid) if contract.status in _DUNNED else None


def _installment_due_at(installment: Installment, contract: Deal, policy: DunningPolicy) -> datetime | None:
    """Its place on the `due` index: its next step or its letter's next tracking check, the earlier."""
    return installment.due_at(policy.unpaid) if contract.status in _DUNNED else None


def resume_pending(account_id: str, contract_id: str, ctx: DunningContext) -> int:
    """A contract set back to `active` or `suspended` after it was terminated or cancelled: each unpaid
    installment and awaited document takes back its next step, from where it stood (the steps already sent
    stay sent). A step whose day passed meanwhile is due at once, and the tick sends only the latest of
    those, as for any late step. Returns how many steps were put back."""
    contract = _contract(account_id, contract_id, ctx)
    if contract.status not in _DUNNED:
        return 0
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    resumed = 0
    for thing, version in ctx.scheduled.all_of(account_id, contract_id):
        if isinstance(thing, Installment):
            due_at = _installment_due_at(thing, contract, policy)
        else:
            due_at = _at(_expected_step(thing, contract, policy))
        if due_at is None:
            continue
        try:
            ctx.scheduled.commit(account_id, thing, version, due_at, parties=contract.parties)
        except StaleVersion:
            # Moved on meanwhile (a payment, a receipt) by a writer that saw the contract active and
            # scheduled what follows itself.
            continue
        resumed += 1
    return resumed


@dataclass(frozen=True)
class ContractSteps:
    """The pending steps of one account's contracts as staff change them by PATCH: an ended contract
    loses them, a contract set back from ended takes them back, and one naming other parties has them
    copied on its pending steps."""

    ctx: DunningContext

    def cancel_pending(self, account_id: str, contract_id: str) -> int:
        return self.ctx.scheduled.cancel_pending(account_id, contract_id)

    def resume_pending(self, account_id: str, contract_id: str) -> int:
        return resume_pending(account_id, contract_id, self.ctx)

    def copy_parties(self, account_id: str, contract: Deal) -> int:
        """A contract given another client, product or apporteur: its pending steps will read those."""
        return self.ctx.scheduled.copy_parties(account_id, contract.id, contract.parties)


def list_expected_documents(
    account_id: str, contract_id: str, limit: int, cursor: Cursor | None, ctx: DunningContext
) -> tuple[list[tuple[ExpectedDocument, DueStep | None]], Cursor | None]:
    """A contract's expected documents, oldest first, each with the step that waits for it."""
    contract = _contract(account_id, contract_id, ctx)
    found, position = ctx.scheduled.page_of(account_id, contract_id, "EXPECTED", limit, cursor)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    return [
        (d, _expected_step(d, contract, policy)) for d in found if isinstance(d, ExpectedDocument)
    ], position


def get_expected_document(
    account_id: str, contract_id: str, document_id: str, ctx: DunningContext
) -> tuple[ExpectedDocument, DueStep | None]:
    contract, document, _ = _expected_of(account_id, contract_id, document_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    return document, _expected_step(document, contract, policy)


def _expected_step(document: ExpectedDocument, contract: Deal, policy: DunningPolicy) -> DueStep | None:
    return document.next_step(policy.documents) if contract.status in _DUNNED else None


def pay_installment(
    account_id: str,
    contract_id: str,
    installment_id: str,
    paid_on: date,
    amount: Decimal | None,
    ctx: DunningContext,
    currency: str | None = None,
    actor: Actor = SYSTEM,
) -> tuple[Installment, Deal, DueStep | None]:
    """Record a payment; a full one stops the installment's dunning, and a suspended contract whose due
    installments are all paid is active again, its cover resuming at noon (Paris) the next day, with a
    `reinstatement_notice` at once; paid before the suspension took effect, the suspension is void and the
    same kind of email says so (cover never stopped)."""
    check_days({"paid_at": paid_on})
    contract, installment, version = _installment_of(account_id, contract_id, installment_id, ctx)
    paid = installment.pay(paid_on, amount, currency)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    others = [i for i in ctx.scheduled.installments_of(account_id, contract_id) if i.id != paid.id]
    # As of the payment's day: the installments due by then decide whether the cover resumes.
    changed = _contract_after(contract, [*others, paid], paid_on, None)
    next_step = _installment_step(paid, changed, policy)
    email = None
    if contract.status == ContractStatus.SUSPENDED and changed.status == ContractStatus.ACTIVE:
        account = _account(account_id, ctx)
        step = DueStep(Step(K.REINSTATEMENT_NOTICE, len(paid.payments)), paid_on)
        email = _step_email(account, changed, _records_of(account_id, changed, ctx), paid, step, policy, ctx)
    email = _commit_with_email(
        account_id,
        (paid, version, _installment_due_at(paid, changed, policy)),
        email,
        lambda written: _events(contract, changed, installment, paid, written, ctx, actor),
        ctx,
        contract=changed if changed != contract else None,
        parties=contract.parties,
    )
    _queue(email, ctx)
    return paid, changed, next_step


def reverse_payment(
    account_id: str,
    contract_id: str,
    installment_id: str,
    payment_id: str,
    reason: str,
    by: str,
    ctx: DunningContext,
) -> tuple[Installment, Deal, DueStep | None]:
    """Undo a payment (a rejected direct debit, a bounced cheque): what it cleared is due again and the
    dunning takes up where the timeline now stands. A contract it had reinstated stays active: it is
    suspended again only through the letter's rules, by the tick."""
    contract, installment, version = _installment_of(account_id, contract_id, installment_id, ctx)
    try:
        reopened = installment.reverse(payment_id, reason, by, ctx.now)
    except NotFoundPayment as exc:
        raise NotFound("No such payment.") from exc
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    others = [i for i in ctx.scheduled.installments_of(account_id, contract_id) if i.id != reopened.id]
    changed = _contract_after(contract, [*others, reopened], paris_date(ctx.now), None)
    next_step = _installment_step(reopened, changed, policy)
    events = _events(contract, changed, installment, reopened, None, ctx, staff(by))
    ctx.scheduled.commit(
        account_id,
        reopened,
        version,
        _installment_due_at(reopened, changed, policy),
        contract=changed if changed != contract else None,
        events=events,
        parties=contract.parties,
    )
    _announce(events, ctx)
    logger.info(
        "payment reversed",
        extra={
            "account_id": account_id,
            "installment_id": installment_id,
            "payment_id": payment_id,
            "by": by,
        },
    )
    return reopened, changed, next_step


def record_letter_sent(
    account_id: str,
    contract_id: str,
    installment_id: str,
    sent_on: date,
    tracking_number: str,
    by: str,
    ctx: DunningContext,
) -> tuple[Installment, DueStep | None]:
    """Staff posted the letter themselves: record it (409 unless `to_send`; 400 for a day before it was
    prepared or a tracking number that is not printable ASCII). The `formal_notice` email, naming the
    letter, leaves at once, and the suspension is scheduled from `sent_on`."""
    check_days({"sent_on": sent_on})
    contract, installment, version = _installment_of(account_id, contract_id, installment_id, ctx)
    if contract.status not in _DUNNED:
        raise Conflict(f"This contract is {contract.status}: its letters are no longer sent.")
    sent = installment.letter_sent(sent_on, tracking_number, by)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    email = _step_email(
        _account(account_id, ctx),
        contract,
        _records_of(account_id, contract, ctx),
        sent,
        DueStep(Step(K.FORMAL_NOTICE), sent_on),
        policy,
        ctx,
    )
    next_step = _installment_step(sent, contract, policy)
    written = _commit_with_email(
        account_id,
        (sent, version, _installment_due_at(sent, contract, policy)),
        email,
        lambda screened: _events(contract, contract, installment, sent, screened, ctx, staff(by)),
        ctx,
        parties=contract.parties,
    )
    _queue(written, ctx)
    return sent, next_step


def confirm_termination(
    account_id: str,
    contract_id: str,
    effective_on: date | None,
    ctx: DunningContext,
    actor: Actor = SYSTEM,
) -> Deal:
    """The insurer terminates: 409 unless the contract shows `termination_due`; `effective_on` defaults to
    the later of today (Paris) and the first day termination was due, and may not be before that day.
    The contract is `terminated` and the `termination_notice` leaves at once."""
    check_days({"effective_on": effective_on})
    contract = _contract(account_id, contract_id, ctx)
    due = sorted(
        (
            (thing, version)
            for thing, version in ctx.scheduled.all_of(account_id, contract_id)
            if isinstance(thing, Installment)
            and thing.status is InstallmentStatus.DUE
            and thing.stage is DunningStage.TERMINATION_DUE
        ),
        key=lambda found: (found[0].termination_due_on, found[0].id),
    )
    if contract.status not in _DUNNED or contract.dunning_stage != DunningStage.TERMINATION_DUE or not due:
        raise Conflict("This contract is not due for termination.")
    first, version = due[0]
    assert first.termination_due_on is not None
    if effective_on is not None and effective_on < first.termination_due_on:
        raise InvalidInput(
            "The termination cannot take effect before it is due.",
            [
                FieldIssue(
                    "effective_on",
                    f"must not be before {first.termination_due_on.isoformat()}, when termination became due",
                )
            ],
        )
    day = effective_on or max(paris_date(ctx.now), first.termination_due_on)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    ended = first.terminated(day)
    others = [i for i in ctx.scheduled.installments_of(account_id, contract_id) if i.id != first.id]
    changed = _contract_after(contract, [*others, ended], day, K.TERMINATION_NOTICE)
    step = DueStep(Step(K.TERMINATION_NOTICE), day, effective_on=day)
    records = _records_of(account_id, contract, ctx)
    email = _step_email(_account(account_id, ctx), contract, records, ended, step, policy, ctx)
    written = _commit_with_email(
        account_id,
        (ended, version, None),
        email,
        lambda screened: _events(contract, changed, first, ended, screened, ctx, actor),
        ctx,
        contract=changed,
        parties=contract.parties,
    )
    _queue(written, ctx)
    for other, other_version in due[1:]:
        try:
            ctx.scheduled.commit(
                account_id, other.terminated(day), other_version, None, parties=contract.parties
            )
        except StaleVersion:
            continue
    ctx.scheduled.cancel_pending(account_id, contract_id)
    return changed


def _account(account_id: str, ctx: DunningContext) -> Account:
    account = ctx.accounts.get(account_id)
    if account is None:
        raise AccountNotFound()
    return account


def _events(
    contract: Deal,
    changed: Deal,
    before: Scheduled,
    after: Scheduled,
    email: Communication | None,
    ctx: DunningContext,
    actor: Actor = SYSTEM,
) -> list[Event]:
    """What the change tells the broker's software: the letter's and the contract's moves, and an email
    decided `skipped` at once (nobody to write to), each with who made the change."""
    told = (
        dunning_events(contract, changed, before, after, ctx.now, actor)
        if isinstance(before, Installment) and isinstance(after, Installment)
        else dunning_events(contract, changed, None, None, ctx.now, actor)
    )
    skipped = (
        communication_event(email, ctx.now, actor=actor)
        if email and email.status is CommunicationStatus.SKIPPED
        else None
    )
    return in_order([*told, skipped]) if skipped is not None else told


def _commit_with_email(
    account_id: str,
    change: tuple[Scheduled, int, datetime | None],
    email: Communication | None,
    events_of: Callable[[Communication | None], list[Event]],
    ctx: DunningContext,
    contract: Deal | None = None,
    parties: ContractParties | None = None,
) -> Communication | None:
    """Commit the change (the installment or document, its version read and its next moment, with the
    contract's `parties` copied on it) with the contract it changed and its email, screened as it is
    written (`write_screened`: re-addressed when an address is suppressed), and the events derived from
    the email as written (`events_of`: one sent to nobody is told `skipped`); then announce them. The
    email as written."""
    thing, version, next_at = change

    def write(emails: tuple[Communication, ...]) -> tuple[Communication | None, list[Event]]:
        written = emails[0] if emails else None
        events = events_of(written)
        ctx.scheduled.commit(
            account_id,
            thing,
            version,
            next_at,
            contract=contract,
            communication=(written, ctx.now + RETRY_AFTER) if written else None,
            events=events,
            parties=parties,
        )
        return written, events

    written, events = write_screened((email,) if email else (), write)
    _announce(events, ctx)
    return written


def _announce(events: list[Event], ctx: DunningContext) -> None:
    if events and ctx.webhooks is not None:
        announce(events, ctx.webhooks)


def _queue(email: Communication | None, ctx: DunningContext) -> None:
    if email is not None and email.status is CommunicationStatus.QUEUED:
        ctx.queue.send(DeliveryRequest(email.account_id, email.id).to_message())


def letter_url(installment: Installment, ctx: DunningContext) -> str | None:
    """A short-lived link to the installment's letter, for staff; None before a PDF exists."""
    notice = installment.formal_notice
    if notice is None or notice.document_key is None or ctx.letters is None:
        return None
    return ctx.letters.letter_url(notice.document_key, f"mise-en-demeure-{notice.letter_id}.pdf")


def _contract_after(
    contract: Deal, installments: list[Installment], today: date, sent: CommunicationKind | None
) -> Deal:
    state = contract_after(ContractStatus(contract.status), installments, today, sent)
    same = state.status.value == contract.status
    resumes = state.cover_resumes_at or (contract.cover_resumes_at if same else None)
    voided = state.suspension_voided or (contract.suspension_voided if same else False)
    return replace(
        contract,
        status=state.status.value,
        dunning_stage=state.dunning_stage.value,
        cover_resumes_at=resumes,
        suspension_voided=voided,
    )


def add_expected_document(
    account_id: str, contract_id: str, label: str, due_date: date | None, ctx: DunningContext
) -> tuple[ExpectedDocument, DueStep | None]:
    """Called at the first tick after its creation (due now), reminded per the policy until received."""
    check_days({"due_date": due_date})
    contract = _contract(account_id, contract_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    document = ExpectedDocument(new_ulid(), contract.id, label, paris_date(ctx.now), due_date)
    step = _expected_step(document, contract, policy)
    ctx.scheduled.commit(account_id, document, 0, _at(step), parties=contract.parties)
    return document, step


def receive_expected_document(
    account_id: str, contract_id: str, document_id: str, ctx: DunningContext
) -> ExpectedDocument:
    contract, document, version = _expected_of(account_id, contract_id, document_id, ctx)
    received = document.received()
    if received != document:
        ctx.scheduled.commit(account_id, received, version, None, parties=contract.parties)
    return received


STEP_MESSAGE = "scheduled_step"


@dataclass(frozen=True)
class StepRequest:
    """What the tick queues for one installment or expected-document step whose moment has come. The
    worker decides and writes it as of `as_of`, the tick's time: the moment a step is sent is the time
    of the tick that sent it, however long the message waited."""

    account_id: str
    contract_id: str
    kind: str
    """`INSTALLMENT` or `EXPECTED`."""
    thing_id: str
    as_of: datetime

    def to_message(self) -> dict[str, Any]:
        return {
            "type": STEP_MESSAGE,
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "kind": self.kind,
            "thing_id": self.thing_id,
            "as_of": iso(self.as_of),
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> StepRequest:
        names = ("account_id", "contract_id", "kind", "thing_id")
        account_id, contract_id, kind, thing_id = message_fields(body, names, "scheduled step")
        if kind not in ("INSTALLMENT", "EXPECTED"):
            raise InvalidInput("A scheduled step message names an unknown kind.")
        return cls(account_id, contract_id, kind, thing_id, message_time(body, "as_of", "scheduled step"))


def run_step(
    request: StepRequest, ctx: DunningContext, policies: dict[str, DunningPolicy] | None = None
) -> bool:
    """Decide and write one step as of the tick's time, with its email, then queue the email; False when
    nothing was due any more (sent by another delivery of the same step, paid, received, ended).
    `policies` caches each account's policy across the steps of one batch."""
    ctx = replace(ctx, now=request.as_of)
    try:
        delivery = _run_step(
            request.account_id,
            request.contract_id,
            request.kind,
            request.thing_id,
            ctx,
            {} if policies is None else policies,
        )
    except (StaleVersion, NotFound):
        return False
    if delivery is None:
        return False
    ctx.queue.send(delivery.to_message())
    return True


def _run_step(
    account_id: str,
    contract_id: str,
    kind: str,
    thing_id: str,
    ctx: DunningContext,
    policies: dict[str, DunningPolicy],
) -> DeliveryRequest | None:
    """Three calls in the common case: the installment with its contract's others (or the document),
    then the account, the contract, the records it names (from the parties copied on the item) and the
    policy (once a batch) in one read, then the write."""
    subject = ctx.scheduled.step_subject(account_id, contract_id, kind, thing_id)
    if subject is None:
        raise NotFound("No such installment." if kind == "INSTALLMENT" else "No such expected document.")
    thing, version = subject.thing, subject.version
    hinted = subject.parties.record_keys() if subject.parties else []
    read = ctx.partners.account_records(
        account_id, [(RecordKind.CONTRACT, contract_id), *hinted], with_policy=account_id not in policies
    )
    account, contract = read.account, read.records.get((RecordKind.CONTRACT, contract_id))
    if account is None or not isinstance(contract, Deal) or contract.status not in _DUNNED:
        ctx.scheduled.commit(account_id, thing, version, None, parties=subject.parties)
        return None
    if account_id not in policies:
        # The account was just read: the defaults hold while it saved no policy.
        policies[account_id] = read.policy or DunningPolicy()
    policy = policies[account_id]
    records = _named_by(contract, read.records | _unread(account_id, contract, hinted, ctx))
    if isinstance(thing, Installment):
        return _take_installment_step(
            account, contract, records, thing, version, list(subject.others), policy, ctx
        )
    step = documents_step_to_send(policy.documents, thing.created_on, thing.last_sent, ctx.now)
    if thing.status is not ExpectedStatus.EXPECTED or step is None:
        next_step = next_documents_step(policy.documents, thing.created_on, thing.last_sent)
        ctx.scheduled.commit(
            account_id,
            thing,
            version,
            _at(next_step) if thing.status is ExpectedStatus.EXPECTED else None,
            parties=contract.parties,
        )
        return None
    moved = thing.step_sent(step.step, paris_date(ctx.now))
    next_at = _at(next_documents_step(policy.documents, thing.created_on, moved.last_sent))
    email = _step_email(account, contract, records, thing, step, policy, ctx)
    written = _commit_with_email(
        account_id,
        (moved, version, next_at),
        email,
        lambda screened: _events(contract, contract, thing, moved, screened, ctx),
        ctx,
        parties=contract.parties,
    )
    if written is None or written.status is not CommunicationStatus.QUEUED:
        return None
    return DeliveryRequest(account_id, written.id)


@dataclass(frozen=True)
class ContractRecords:
    """The records a contract names, read with it: what its steps' emails, letters and recipients need.
    One that does not exist (any more) is None."""

    client: Client | None
    product: Product | None
    apporteur: Apporteur | None

    @property
    def insurer(self) -> Insurer | None:
        return self.product.insurer if self.product is not None else None

    def the_client(self) -> Client:
        if self.client is None:
            raise NotFound("No such client.")
        return self.client


def _named_by(contract: Deal, found: dict[tuple[RecordKind, str], PartnerRecord]) -> ContractRecords:
    """The contract's own client, product and apporteur among `found`, by the ids the contract names
    now: a record read for parties copied before the contract changed is never one of them."""
    client = found.get((RecordKind.CLIENT, contract.client_id))
    product = found.get((RecordKind.PRODUCT, contract.product_id)) if contract.product_id else None
    apporteur = found.get((RecordKind.APPORTEUR, contract.apporteur_id)) if contract.apporteur_id else None
    return ContractRecords(
        client if isinstance(client, Client) else None,
        product if isinstance(product, Product) else None,
        apporteur if isinstance(apporteur, Apporteur) else None,
    )


def _unread(
    account_id: str, contract: Deal, asked: list[tuple[RecordKind, str]], ctx: DunningContext
) -> dict[tuple[RecordKind, str], PartnerRecord]:
    """The records the contract names that were not read with it: none while the parties copied on the
    item are the contract's; after the contract changed its client, product or apporteur, or on an item
    written before parties were copied, one read more."""
    missing = [key for key in contract.parties.record_keys() if key not in asked]
    return ctx.partners.get_many(account_id, missing)[1] if missing else {}


def _records_of(account_id: str, contract: Deal, ctx: DunningContext) -> ContractRecords:
    """The contract's client, product and apporteur, in one read."""
    return _named_by(contract, ctx.partners.get_many(account_id, contract.parties.record_keys())[1])


def _take_installment_step(
    account: Account,
    contract: Deal,
    records: ContractRecords,
    thing: Installment,
    version: int,
    others: list[Installment],
    policy: DunningPolicy,
    ctx: DunningContext,
) -> DeliveryRequest | None:
    """The installment's step due at the tick's time, written with what it causes (the letter, the
    contract's status and stage, its email) at the version read; and, when its day has come, the
    letter's tracking check, written with it."""
    read = thing
    thing = _tracked(thing, ctx) if thing.tracking_due(ctx.now) else thing
    step = thing.step_at(policy.unpaid, ctx.now) if thing.status is InstallmentStatus.DUE else None
    if step is None:
        events = _events(contract, contract, read, thing, None, ctx)
        ctx.scheduled.commit(
            account.id, thing, version, thing.due_at(policy.unpaid), events=events, parties=contract.parties
        )
        _announce(events, ctx)
        return None
    kind, today = step.step.kind, paris_date(ctx.now)
    email: Communication | None = None
    caused: CommunicationKind | None = None
    if kind in (K.FORMAL_NOTICE, TimelineStep.LETTER):
        moved, email = _letter_step(account, contract, records, thing, policy, ctx)
    elif kind is TimelineStep.TERMINATION_DUE:
        assert step.effective_on is not None
        moved = thing.termination_became_due(step.effective_on)
    elif kind is K.SUSPENSION_NOTICE:
        assert step.effective_on is not None
        moved, caused = thing.suspended(step.effective_on), K.SUSPENSION_NOTICE
        email = _step_email(account, contract, records, moved, step, policy, ctx)
    elif kind is K.TERMINATION_NOTICE:
        assert step.effective_on is not None
        moved, caused = thing.terminated(step.effective_on), K.TERMINATION_NOTICE
        email = _step_email(account, contract, records, moved, step, policy, ctx)
    else:
        moved = thing.step_sent(step.step, today)
        email = _step_email(account, contract, records, moved, step, policy, ctx)
    changed = _contract_after(contract, [*others, moved], today, caused)
    next_at = _installment_due_at(moved, changed, policy)
    email = _commit_with_email(
        account.id,
        (moved, version, next_at),
        email,
        lambda screened: _events(contract, changed, read, moved, screened, ctx),
        ctx,
        contract=changed if changed != contract else None,
        parties=contract.parties,
    )
    if email is None or email.status is not CommunicationStatus.QUEUED:
        return None
    return DeliveryRequest(account.id, email.id)


def letter_key(account_id: str, letter_id: str) -> str:
    return f"accounts/{account_id}/letters/{letter_id}.pdf"


def _letter_step(
    account: Account,
    contract: Deal,
    records: ContractRecords,
    thing: Installment,
    policy: DunningPolicy,
    ctx: DunningContext,
) -> tuple[Installment, Communication | None]:
    """Prepare the letter (or re-check a blocked one), then, on the `provider` channel, hand it over or ask
    where it stands. A provider that times out or refuses leaves it `to_send`, tried again an hour later."""
    notice = thing.formal_notice
    client = records.the_client()
    pdf: bytes | None = None
    if notice is None or notice.status is LetterStatus.BLOCKED:
        thing, pdf = _prepare_letter(account, contract, thing, client, records.product, policy, ctx)
        notice = thing.formal_notice
        assert notice is not None
        if notice.status is LetterStatus.BLOCKED:
            return thing, None
    if notice.channel is not RegisteredMailChannel.PROVIDER or notice.status is not LetterStatus.TO_SEND:
        return thing, None
    provider = ctx.registered_mail
    if provider is None:
        return _tried(thing, notice, ctx, "no_provider_configured"), None
    try:
        if notice.provider_id:
            tracking = provider.track(notice.provider_id, ctx.now)
        else:
            assert ctx.letters is not None
            assert notice.document_key is not None
            assert account.legal is not None
            assert client.postal_address is not None
            letter = LetterToSend(
                letter_id=notice.letter_id,
                pdf=pdf if pdf is not None else ctx.letters.get_letter(notice.document_key),
                recipient_name=client.name,
                recipient_address=client.postal_address,
                sender=account.legal,
                account_id=account.id,
                contract_id=contract.id,
                installment_id=thing.id,
                document_key=notice.document_key,
            )
            tracking = provider.deposit(letter, ctx.now)
    except RegisteredMailUnavailable as exc:
        logger.warning(
            "registered letter not handed over",
            extra={"account_id": account.id, "letter_id": notice.letter_id, "why": str(exc)},
        )
        return _tried(thing, notice, ctx, "provider_unavailable"), None
    notice = replace(notice, provider_id=tracking.provider_id, attempted_at=ctx.now, reason=None)
    if tracking.sent_on is None or tracking.status is LetterTrackingStatus.ACCEPTED:
        return thing.letter_prepared(notice), None
    status = {
        LetterTrackingStatus.DELIVERED: LetterStatus.DELIVERED,
        LetterTrackingStatus.RETURNED: LetterStatus.RETURNED,
    }.get(tracking.status, LetterStatus.SENT)
    sent = thing.letter_prepared(
        replace(notice, status=status, sent_on=tracking.sent_on, tracking_number=tracking.tracking_number)
    )
    email = _step_email(
        account, contract, records, sent, DueStep(Step(K.FORMAL_NOTICE), tracking.sent_on), policy, ctx
    )
    return sent, email


def _tracked(thing: Installment, ctx: DunningContext) -> Installment:
    """The posted letter with where the provider says it stands now (`delivered`, `returned`, still
    `sent`). A provider that fails changes nothing: the check counts and the next day asks again."""
    notice = thing.formal_notice
    assert notice is not None
    assert notice.provider_id is not None
    if ctx.registered_mail is None:
        return thing.tracked(None, ctx.now)
    try:
        tracking = ctx.registered_mail.track(notice.provider_id, ctx.now)
    except RegisteredMailUnavailable as exc:
        logger.warning(
            "registered letter not tracked",
            extra={"letter_id": notice.letter_id, "check": notice.checks + 1, "why": str(exc)},
        )
        return thing.tracked(None, ctx.now)
    status = {
        LetterTrackingStatus.DELIVERED: LetterStatus.DELIVERED,
        LetterTrackingStatus.RETURNED: LetterStatus.RETURNED,
    }.get(tracking.status)
    return thing.tracked(status, ctx.now)


def _tried(thing: Installment, notice: FormalNotice, ctx: DunningContext, reason: str) -> Installment:
    return thing.letter_prepared(replace(notice, attempted_at=ctx.now, reason=reason))


def _prepare_letter(
    account: Account,
    contract: Deal,
    thing: Installment,
    client: Client,
    product: Product | None,
    policy: DunningPolicy,
    ctx: DunningContext,
) -> tuple[Installment, bytes | None]:
    """The letter as of the tick's day, stored with its SHA-256; or `blocked` with the reason, re-checked
    by later ticks (a client without a postal address, a broker without a legal identity, a product
    without an insurer: the letter would not be lawful without them)."""
    today = paris_date(ctx.now)
    letter_id = letter_id_of(thing.id)
    insurer = product.insurer if product is not None else None
    reason = None
    if client.postal_address is None:
        reason = "no_postal_address"
    elif account.legal is None:
        reason = "no_legal_identity"
    elif insurer is None:
        reason = "no_insurer"
    elif ctx.letters is None or ctx.render_letter is None:
        reason = "no_letter_store"
    if reason is not None:
        blocked = FormalNotice(
            letter_id=letter_id,
            status=LetterStatus.BLOCKED,
            channel=account.registered_mail_channel,
            prepared_on=today,
            attempted_at=ctx.now,
            reason=reason,
        )
        return thing.letter_prepared(blocked), None
    assert ctx.letters is not None
    assert ctx.render_letter is not None
    assert client.postal_address is not None
    assert account.legal is not None
    assert insurer is not None
    assert product is not None
    letter = FormalNoticeLetter(
        broker=account.legal,
        insurer=insurer,
        client_name=client.name,
        client_address=client.postal_address,
        contract_reference=contract.reference,
        product_name=product.name,
        installment_label=thing.label,
        due_date=thing.due_date,
        amount_due=thing.amount_due.amount,
        currency=thing.amount.currency,
        letter_date=today,
        letter_id=letter_id,
        suspension_days=policy.unpaid.suspension_days,
        termination_days=policy.unpaid.termination_days,
    )
    pdf = ctx.render_letter(letter)
    key = letter_key(account.id, letter_id)
    ctx.letters.put_letter(key, pdf)
    prepared = FormalNotice(
        letter_id=letter_id,
        status=LetterStatus.TO_SEND,
        channel=account.registered_mail_channel,
        prepared_on=today,
        attempted_at=ctx.now,
        prepared_at=ctx.now,
        sha256=hashlib.sha256(pdf).hexdigest(),
        document_key=key,
    )
    return thing.letter_prepared(prepared), pdf


def _payment_deadline(thing: Scheduled, step: DueStep, policy: DunningPolicy) -> date | None:
    """The last day to pay before the step's consequence: the due date for the call, the last day of the
    suspension period for the formal notice, the last day before termination may be asked for the
    suspension."""
    if not isinstance(thing, Installment):
        return None
    notice = thing.formal_notice
    if step.step.kind is K.UNPAID_CALL:
        return thing.due_date
    if step.step.kind is K.FORMAL_NOTICE and notice is not None and notice.sent_on is not None:
        return last_day_of_period(notice.sent_on, policy.unpaid.suspension_days)
    if step.step.kind is K.SUSPENSION_NOTICE and step.effective_on is not None:
        return step.effective_on + timedelta(days=policy.unpaid.termination_days - 1)
    return None


def _installment_variables(
    account: Account,
    contract: Deal,
    thing: Installment,
    step: DueStep,
    policy: DunningPolicy,
    insurer: Insurer | None,
) -> dict[str, str]:
    notice = thing.formal_notice
    deadline = _payment_deadline(thing, step, policy)
    variables = {
        "installment.amount": french_amount(thing.amount.amount, thing.amount.currency),
        "installment.due_date": french_date(thing.due_date),
        "installment.amount_due": french_amount(thing.amount_due.amount, thing.amount.currency),
        "insurer.name": insurer.name if insurer else "",
        "account.payment_instructions": (account.legal.payment_instructions or "") if account.legal else "",
        "letter.sent_on": french_date(notice.sent_on) if notice and notice.sent_on else "",
        "letter.tracking_number": (notice.tracking_number or "") if notice else "",
        "step.effective_on": french_date(step.effective_on) if step.effective_on else "",
        "payment_deadline": french_date(deadline) if deadline else "",
        "policy.suspension_days": str(policy.unpaid.suspension_days),
        "policy.termination_days": str(policy.unpaid.termination_days),
    }
    if step.step.kind is K.REINSTATEMENT_NOTICE:
        resumes = contract.cover_resumes_at
        variables["cover.resumes_at"] = (
            f"{french_date(paris_date(resumes))} à 12 h" if resumes and not contract.suspension_voided else ""
        )
        variables["suspension.voided"] = "oui" if contract.suspension_voided else ""
    return variables


def _step_email(
    account: Account,
    contract: Deal,
    records: ContractRecords,
    thing: Scheduled,
    step: DueStep,
    policy: DunningPolicy,
    ctx: DunningContext,
) -> Communication:
    """The step's email, addressed by the partner rules of the contract."""
    kind = step.step.kind
    assert isinstance(kind, CommunicationKind)
    client = records.the_client()
    view = recipients_given(account, client, contract, records.apporteur, kind, ctx.now)
    resolution = view.resolution
    addressee = resolution.to[0] if resolution.to else None
    variables = {
        "account.name": account.public_name,
        "client.name": client.name,
        "client.email": client.email or "",
        "apporteur.name": view.apporteur.name if view.apporteur else "",
        "contract.reference": contract.reference,
        "recipient.name": addressee.name if addressee else "",
        "recipient.party": addressee.party if addressee else "",
    }
    if isinstance(thing, Installment):
        variables |= _installment_variables(account, contract, thing, step, policy, records.insurer)
    else:
        variables["expected_document.label"] = thing.label
        variables["expected_document.due_date"] = french_date(thing.due_date) if thing.due_date else ""
    # Dunning notices name the consumer mediator; a request for a document does not.
    variables |= footer(legal_mentions(account, with_mediator=isinstance(thing, Installment)))
    email = Communication(
        id=communication_id(account.id, f"{type(thing).__name__.lower()}:{thing.id}", step.step.key),
        account_id=account.id,
        kind=kind,
        sender_name=sender_name(account),
        reply_to=account.sender_email,
        to=resolution.to,
        cc=resolution.cc,
        created_at=ctx.now,
        variables=variables,
        template=policy.template_for(kind),
        client_id=client.id,
        contract_id=contract.id,
        rule=resolution.rule.value if resolution.rule else None,
        decided_by=resolution.decided_by.value if resolution.decided_by else None,
        skipped_parties=resolution.skipped_parties,
    )
    return email.skipped("no recipient has an email address") if resolution.nobody else email
