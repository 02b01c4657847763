"""Dunning use cases: the account's policy; installments and expected documents of contracts; and the
steps the tick sends for them (unpaid call, reminders, formal notice, suspension and termination notices;
documents call and reminders), each addressed by the partner rules and sent once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    communication_id,
)
from chalicelib.domain.dunning import (
    DueStep,
    DunningPolicy,
    check_days,
    documents_step_to_send,
    next_documents_step,
    start_of_day,
    unpaid_step_to_send,
    validate_policy,
)
from chalicelib.domain.errors import AccountNotFound, InvalidInput, NotFound, StaleVersion
from chalicelib.domain.formatting import french_amount, french_date
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.installments import (
    ContractStatus,
    ExpectedDocument,
    ExpectedStatus,
    Installment,
    InstallmentStatus,
    Money,
    contract_after,
)
from chalicelib.domain.partners import Deal, RecordKind
from chalicelib.domain.templates import validate_template
from chalicelib.services.communications import RETRY_AFTER, DeliveryRequest
from chalicelib.services.messages import message_fields, message_time
from chalicelib.services.partners import recipients_of
from chalicelib.services.ports import (
    AccountRepository,
    Cursor,
    DunningPolicyRepository,
    MessageQueue,
    PartnerRepository,
)

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

    def commit(
        self,
        account_id: str,
        thing: Scheduled,
        version: int,
        next_at: datetime | None,
        contract: Deal | None = None,
        communication: tuple[Communication, datetime] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class DunningContext:
    accounts: AccountRepository
    policies: DunningPolicyRepository
    partners: PartnerRepository
    scheduled: ScheduledRepository
    queue: MessageQueue
    now: datetime


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
    return None if step is None else start_of_day(step.due_on)


def add_installment(
    account_id: str, contract_id: str, due_date: date, amount: Money, label: str | None, ctx: DunningContext
) -> tuple[Installment, DueStep | None]:
    check_days({"due_date": due_date})
    contract = _contract(account_id, contract_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    installment = Installment(new_ulid(), contract.id, due_date, amount, label)
    step = _installment_step(installment, contract, policy)
    ctx.scheduled.commit(account_id, installment, 0, _at(step))
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
            step = _installment_step(thing, contract, policy)
        else:
            step = _expected_step(thing, contract, policy)
        if step is None:
            continue
        try:
            ctx.scheduled.commit(account_id, thing, version, _at(step))
        except StaleVersion:
            # Moved on meanwhile (a payment, a receipt) by a writer that saw the contract active and
            # scheduled what follows itself.
            continue
        resumed += 1
    return resumed


@dataclass(frozen=True)
class ContractSteps:
    """The pending steps of one account's contracts as staff change their status by PATCH: an ended
    contract loses them, a contract set back from ended takes them back."""

    ctx: DunningContext

    def cancel_pending(self, account_id: str, contract_id: str) -> int:
        return self.ctx.scheduled.cancel_pending(account_id, contract_id)

    def resume_pending(self, account_id: str, contract_id: str) -> int:
        return resume_pending(account_id, contract_id, self.ctx)


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
) -> tuple[Installment, Deal, DueStep | None]:
    """Record a payment; a full one stops the installment's dunning, and a suspended contract whose due
    installments are all paid is active again, its cover resuming at noon (Paris) the next day."""
    check_days({"paid_at": paid_on})
    contract, installment, version = _installment_of(account_id, contract_id, installment_id, ctx)
    paid = installment.pay(paid_on, amount, currency)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    others = [i for i in ctx.scheduled.installments_of(account_id, contract_id) if i.id != paid.id]
    # As of the payment's day: the installments due by then decide whether the cover resumes.
    changed = _contract_after(contract, [*others, paid], paid_on, None)
    next_step = _installment_step(paid, changed, policy)
    ctx.scheduled.commit(
        account_id, paid, version, _at(next_step), contract=changed if changed != contract else None
    )
    return paid, changed, next_step


def _contract_after(
    contract: Deal, installments: list[Installment], today: date, sent: CommunicationKind | None
) -> Deal:
    state = contract_after(ContractStatus(contract.status), installments, today, sent)
    resumes = state.cover_resumes_at or (
        contract.cover_resumes_at if state.status.value == contract.status else None
    )
    return replace(
        contract, status=state.status.value, dunning_stage=state.dunning_stage.value, cover_resumes_at=resumes
    )


def add_expected_document(
    account_id: str, contract_id: str, label: str, due_date: date | None, ctx: DunningContext
) -> tuple[ExpectedDocument, DueStep | None]:
    """Called at the first tick after its creation (due now), reminded per the policy until received."""
    check_days({"due_date": due_date})
    contract = _contract(account_id, contract_id, ctx)
    policy = get_policy(account_id, ctx.policies, ctx.accounts)
    document = ExpectedDocument(new_ulid(), contract.id, label, ctx.now.date(), due_date)
    step = _expected_step(document, contract, policy)
    ctx.scheduled.commit(account_id, document, 0, _at(step))
    return document, step


def receive_expected_document(
    account_id: str, contract_id: str, document_id: str, ctx: DunningContext
) -> ExpectedDocument:
    _, document, version = _expected_of(account_id, contract_id, document_id, ctx)
    received = document.received()
    if received != document:
        ctx.scheduled.commit(account_id, received, version, None)
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
    thing, version = _scheduled(account_id, contract_id, kind, thing_id, ctx)
    account, found = ctx.partners.get_many(
        account_id, [(RecordKind.CONTRACT, contract_id)], with_account=True
    )
    contract = found.get((RecordKind.CONTRACT, contract_id))
    if account is None or not isinstance(contract, Deal) or contract.status not in _DUNNED:
        ctx.scheduled.commit(account_id, thing, version, None)
        return None
    if account_id not in policies:
        policies[account_id] = get_policy(account_id, ctx.policies, ctx.accounts)
    policy = policies[account_id]
    today = ctx.now.date()
    if isinstance(thing, Installment):
        step = unpaid_step_to_send(policy.unpaid, thing.due_date, thing.last_sent, today)
        if thing.status is not InstallmentStatus.DUE or step is None:
            ctx.scheduled.commit(account_id, thing, version, _at(thing.next_step(policy.unpaid)))
            return None
        moved: Scheduled = thing.step_sent(step.step, today)
        assert isinstance(moved, Installment)
        others = [i for i in ctx.scheduled.installments_of(account_id, contract_id) if i.id != thing.id]
        changed = _contract_after(contract, [*others, moved], today, step.step.kind)
        next_at = _at(moved.next_step(policy.unpaid)) if changed.status in _DUNNED else None
    else:
        assert isinstance(thing, ExpectedDocument)
        step = documents_step_to_send(policy.documents, thing.created_on, thing.last_sent, today)
        if thing.status is not ExpectedStatus.EXPECTED or step is None:
            next_step = next_documents_step(policy.documents, thing.created_on, thing.last_sent)
            ctx.scheduled.commit(
                account_id,
                thing,
                version,
                _at(next_step) if thing.status is ExpectedStatus.EXPECTED else None,
            )
            return None
        moved = thing.step_sent(step.step, today)
        changed = contract
        next_at = _at(next_documents_step(policy.documents, thing.created_on, moved.last_sent))
    email = _step_email(account, contract, thing, step, policy, ctx)
    ctx.scheduled.commit(
        account_id,
        moved,
        version,
        next_at,
        contract=changed if changed != contract else None,
        communication=(email, ctx.now + RETRY_AFTER),
    )
    return DeliveryRequest(account_id, email.id) if email.status is CommunicationStatus.QUEUED else None


def _step_email(
    account: Account,
    contract: Deal,
    thing: Scheduled,
    step: DueStep,
    policy: DunningPolicy,
    ctx: DunningContext,
) -> Communication:
    """The step's email, addressed by the partner rules of the contract."""
    view = recipients_of(account.id, contract.client_id, contract.id, step.step.kind, ctx.partners, ctx.now)
    resolution, client = view.resolution, view.client
    addressee = resolution.to[0] if resolution.to else None
    variables = {
        "account.name": account.name,
        "client.name": client.name,
        "client.email": client.email or "",
        "apporteur.name": view.apporteur.name if view.apporteur else "",
        "contract.reference": contract.reference,
        "recipient.name": addressee.name if addressee else "",
        "recipient.party": addressee.party if addressee else "",
    }
    if isinstance(thing, Installment):
        variables["installment.amount"] = french_amount(thing.amount.amount, thing.amount.currency)
        variables["installment.due_date"] = french_date(thing.due_date)
    else:
        variables["expected_document.label"] = thing.label
    email = Communication(
        id=communication_id(account.id, f"{type(thing).__name__.lower()}:{thing.id}", step.step.key),
        account_id=account.id,
        kind=step.step.kind,
        sender_name=account.name,
        reply_to=account.sender_email,
        to=resolution.to,
        cc=resolution.cc,
        created_at=ctx.now,
        variables=variables,
        template=policy.template_for(step.step.kind),
        client_id=client.id,
        contract_id=contract.id,
        rule=resolution.rule.value if resolution.rule else None,
        decided_by=resolution.decided_by.value if resolution.decided_by else None,
        skipped_parties=resolution.skipped_parties,
    )
    return email.skipped("no recipient has an email address") if resolution.nobody else email
