"""Dunning: the account's policy (`/account/dunning-policy`, account administrators only), installments
and their payments, and expected documents of contracts."""

from __future__ import annotations

from typing import Annotated, Any

from chalice.app import Response
from pydantic import BeforeValidator, Field, StrictInt, StrictStr, field_validator

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
from chalicelib.api.partners import deal_views
from chalicelib.api.requests import CalendarDate, StrictBody, parse_body, staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.dunning import (
    DUNNING_KINDS,
    MAX_REMINDERS,
    DocumentsPolicy,
    DueStep,
    DunningPolicy,
    TerminationMode,
    UnpaidPolicy,
)
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.events import staff
from chalicelib.domain.installments import ExpectedDocument, Installment, Money, parse_money
from chalicelib.domain.partners import Deal
from chalicelib.services import dunning as service
from chalicelib.wiring import container

dunning = ApiBlueprint(__name__)

_DEFAULT_UNPAID = UnpaidPolicy()
_DEFAULT_DOCUMENTS = DocumentsPolicy()


class UnpaidBody(StrictBody):
    call_days_before: StrictInt = _DEFAULT_UNPAID.call_days_before
    reminder_days: list[StrictInt] = Field(
        default=list(_DEFAULT_UNPAID.reminder_days), max_length=MAX_REMINDERS
    )
    formal_notice_days: StrictInt = _DEFAULT_UNPAID.formal_notice_days
    suspension_days: StrictInt = _DEFAULT_UNPAID.suspension_days
    termination_days: StrictInt = _DEFAULT_UNPAID.termination_days
    termination: TerminationMode = _DEFAULT_UNPAID.termination


class DocumentsBody(StrictBody):
    reminder_days: list[StrictInt] = Field(
        default=list(_DEFAULT_DOCUMENTS.reminder_days), max_length=MAX_REMINDERS
    )


class TemplateBody(StrictBody):
    subject: str = Field(max_length=500)
    body: str = Field(max_length=20_000)


class PolicyBody(StrictBody):
    """A whole policy: what is left out takes its default (PUT replaces, it does not merge)."""

    unpaid: UnpaidBody = Field(default_factory=UnpaidBody)
    documents: DocumentsBody = Field(default_factory=DocumentsBody)
    templates: dict[str, TemplateBody] = Field(default_factory=dict)


def _policy_from(body: PolicyBody) -> DunningPolicy:
    allowed = {kind.value for kind in DUNNING_KINDS}
    unknown = sorted(set(body.templates) - allowed)
    if unknown:
        raise InvalidInput(
            "Templates can only be set for the dunning and document reminder kinds.",
            [
                FieldIssue(f"templates.{kind}", f"must be one of: {', '.join(sorted(allowed))}")
                for kind in unknown
            ],
        )
    return DunningPolicy(
        unpaid=UnpaidPolicy(
            call_days_before=body.unpaid.call_days_before,
            reminder_days=tuple(body.unpaid.reminder_days),
            formal_notice_days=body.unpaid.formal_notice_days,
            suspension_days=body.unpaid.suspension_days,
            termination_days=body.unpaid.termination_days,
            termination=body.unpaid.termination,
        ),
        documents=DocumentsPolicy(reminder_days=tuple(body.documents.reminder_days)),
        templates={
            CommunicationKind(kind): TemplateSource(subject=t.subject, body=t.body)
            for kind, t in body.templates.items()
        },
    )


def policy_view(policy: DunningPolicy) -> dict[str, Any]:
    unpaid = policy.unpaid
    return {
        "unpaid": {
            "call_days_before": unpaid.call_days_before,
            "reminder_days": list(unpaid.reminder_days),
            "formal_notice_days": unpaid.formal_notice_days,
            "suspension_days": unpaid.suspension_days,
            "termination_days": unpaid.termination_days,
            "termination": unpaid.termination.value,
        },
        "documents": {"reminder_days": list(policy.documents.reminder_days)},
        "templates": {
            kind.value: {"subject": t.subject, "body": t.body} for kind, t in sorted(policy.templates.items())
        },
        "version": policy.version,
    }


@dunning.route("/account/dunning-policy", methods=["GET"], authorizer=staff_authorizer)
def get_dunning_policy() -> dict[str, Any]:
    account_id = staff_principal(dunning.current_request).require_account(admin_only=True)
    services = container()
    return policy_view(service.get_policy(account_id, services.dunning_policies, services.accounts))


@dunning.route("/account/dunning-policy", methods=["PUT"], authorizer=staff_authorizer)
def put_dunning_policy() -> dict[str, Any]:
    account_id = staff_principal(dunning.current_request).require_account(admin_only=True)
    policy = _policy_from(parse_body(dunning.current_request, PolicyBody))
    services = container()
    return policy_view(
        service.replace_policy(account_id, policy, services.dunning_policies, services.accounts)
    )


class MoneyBody(StrictBody):
    amount: StrictStr
    currency: StrictStr = "EUR"


def _money_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(MONEY_ISSUE)
    return value


MONEY_ISSUE = 'must be money, an object such as {"amount": "84.20", "currency": "EUR"}'


class InstallmentBody(StrictBody):
    nullable = frozenset({"label"})
    due_date: CalendarDate
    amount: Annotated[MoneyBody, BeforeValidator(_money_object)]
    label: Annotated[StrictStr, Field(max_length=200)] | None = None


class PaymentAmountBody(StrictBody):
    amount: StrictStr
    currency: StrictStr | None = None
    """Left out: the installment's currency."""


class PaymentBody(StrictBody):
    """`amount` is money like everywhere (`{amount, currency}`), or its bare decimal string, in the
    installment's currency; left out, the payment covers what remains due."""

    paid_at: CalendarDate
    amount: PaymentAmountBody | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _bare_decimal_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"amount": value}
        if isinstance(value, int | float):
            raise ValueError(
                'must be a decimal string such as "84.20", or {"amount": "84.20", "currency": "EUR"}'
            )
        return value


class ExpectedDocumentBody(StrictBody):
    nullable = frozenset({"due_date"})
    label: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    due_date: CalendarDate | None = None


class LetterSentBody(StrictBody):
    sent_on: CalendarDate
    tracking_number: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class ReversalBody(StrictBody):
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]


class TerminationBody(StrictBody):
    nullable = frozenset({"effective_on"})
    effective_on: CalendarDate | None = None


def formal_notice_view(installment: Installment, document_url: str | None) -> dict[str, Any] | None:
    notice = installment.formal_notice
    if notice is None:
        return None
    return {
        "id": notice.letter_id,
        "status": notice.status.value,
        "channel": notice.channel.value,
        "prepared_at": iso(notice.prepared_at) if notice.prepared_at else None,
        "sent_on": notice.sent_on.isoformat() if notice.sent_on else None,
        "tracking_number": notice.tracking_number,
        "sha256": notice.sha256,
        "document_url": document_url,
        "reason": notice.reason,
    }


def contract_state_view(contract: Deal) -> dict[str, Any]:
    return {
        "status": contract.status,
        "dunning_stage": contract.dunning_stage,
        "cover_resumes_at": iso(contract.cover_resumes_at) if contract.cover_resumes_at else None,
        "suspension_voided": contract.suspension_voided,
    }


def installment_view(
    installment: Installment, next_step: DueStep | None, document_url: str | None = None
) -> dict[str, Any]:
    return {
        "id": installment.id,
        "contract_id": installment.contract_id,
        "status": installment.status.value,
        "due_date": installment.due_date.isoformat(),
        "amount": installment.amount.as_json(),
        "label": installment.label,
        "paid_amount": f"{installment.paid_amount:.2f}",
        "amount_due": installment.amount_due.as_json(),
        "payments": [
            {
                "id": p.id,
                "paid_at": p.paid_on.isoformat(),
                "amount": Money(p.amount, installment.amount.currency).as_json(),
            }
            | (
                {
                    "reversed_at": iso(p.reversal.at),
                    "reversal_reason": p.reversal.reason,
                    "reversed_by": p.reversal.by,
                }
                if p.reversal
                else {}
            )
            for p in installment.payments
        ],
        "paid_on": installment.paid_on.isoformat() if installment.paid_on else None,
        "dunning_stage": installment.stage.value,
        "next_step": _step_view(next_step),
        "formal_notice": formal_notice_view(installment, document_url),
    }


def _shown(installment: Installment, next_step: DueStep | None) -> dict[str, Any]:
    """The installment with a fresh short-lived link to its letter."""
    return installment_view(
        installment, next_step, service.letter_url(installment, container().dunning_context())
    )


def _step_view(step: DueStep | None) -> dict[str, str] | None:
    return {"kind": step.step.kind.value, "due_on": step.due_on.isoformat()} if step else None


def expected_view(document: ExpectedDocument, next_step: DueStep | None) -> dict[str, Any]:
    return {
        "id": document.id,
        "contract_id": document.contract_id,
        "label": document.label,
        "due_date": document.due_date.isoformat() if document.due_date else None,
        "status": document.status.value,
        "last_sent": document.last_sent.step.kind.value if document.last_sent else None,
        "next_step": _step_view(next_step),
    }


def _staff_account() -> str:
    return staff_principal(dunning.current_request).require_account()


@dunning.route("/contracts/{contract_id}/installments", methods=["POST"], authorizer=staff_authorizer)
def add_installment(contract_id: str) -> Response:
    account_id = _staff_account()
    body = parse_body(dunning.current_request, InstallmentBody)
    money = parse_money(body.amount.amount, body.amount.currency, "amount")
    installment, step = service.add_installment(
        account_id, contract_id, body.due_date, money, body.label, container().dunning_context()
    )
    return Response(_shown(installment, step), status_code=201)


@dunning.route("/contracts/{contract_id}/installments", methods=["GET"], authorizer=staff_authorizer)
def list_installments(contract_id: str) -> dict[str, Any]:
    account_id = _staff_account()
    request = dunning.current_request
    limit, cursor = page_params(request)
    found, position = service.list_installments(
        account_id, contract_id, limit, cursor, container().dunning_context()
    )
    return page([_shown(i, step) for i, step in found], position)


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}", methods=["GET"], authorizer=staff_authorizer
)
def get_installment(contract_id: str, installment_id: str) -> dict[str, Any]:
    installment, step = service.get_installment(
        _staff_account(), contract_id, installment_id, container().dunning_context()
    )
    return _shown(installment, step)


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}/payments",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def pay_installment(contract_id: str, installment_id: str) -> dict[str, Any]:
    principal = staff_principal(dunning.current_request)
    account_id = principal.require_account()
    body = parse_body(dunning.current_request, PaymentBody)
    amount, currency = None, None
    if body.amount is not None:
        currency = body.amount.currency
        amount = parse_money(body.amount.amount, currency or "EUR", "amount").amount
    services = container()
    installment, contract, next_step = service.pay_installment(
        account_id,
        contract_id,
        installment_id,
        body.paid_at,
        amount,
        services.dunning_context(),
        currency,
        staff(principal.subject),
    )
    return {**_shown(installment, next_step), "contract": contract_state_view(contract)}


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}/payments/{payment_id}/reversal",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def reverse_payment(contract_id: str, installment_id: str, payment_id: str) -> dict[str, Any]:
    principal = staff_principal(dunning.current_request)
    account_id = principal.require_account()
    body = parse_body(dunning.current_request, ReversalBody)
    installment, contract, next_step = service.reverse_payment(
        account_id,
        contract_id,
        installment_id,
        payment_id,
        body.reason,
        principal.subject,
        container().dunning_context(),
    )
    return {**_shown(installment, next_step), "contract": contract_state_view(contract)}


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}/formal-notice/sent",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def record_letter_sent(contract_id: str, installment_id: str) -> dict[str, Any]:
    principal = staff_principal(dunning.current_request)
    account_id = principal.require_account()
    body = parse_body(dunning.current_request, LetterSentBody)
    installment, next_step = service.record_letter_sent(
        account_id,
        contract_id,
        installment_id,
        body.sent_on,
        body.tracking_number,
        principal.subject,
        container().dunning_context(),
    )
    return _shown(installment, next_step)


@dunning.route("/contracts/{contract_id}/termination", methods=["POST"], authorizer=staff_authorizer)
def confirm_termination(contract_id: str) -> dict[str, Any]:
    principal = staff_principal(dunning.current_request)
    account_id = principal.require_account()
    request = dunning.current_request
    body = parse_body(request, TerminationBody) if (request.raw_body or b"").strip() else TerminationBody()
    contract = service.confirm_termination(
        account_id, contract_id, body.effective_on, container().dunning_context(), staff(principal.subject)
    )
    return deal_views(account_id, [contract])[0]


@dunning.route("/contracts/{contract_id}/expected-documents", methods=["POST"], authorizer=staff_authorizer)
def add_expected_document(contract_id: str) -> Response:
    account_id = _staff_account()
    body = parse_body(dunning.current_request, ExpectedDocumentBody)
    document, step = service.add_expected_document(
        account_id, contract_id, body.label, body.due_date, container().dunning_context()
    )
    return Response(expected_view(document, step), status_code=201)


@dunning.route("/contracts/{contract_id}/expected-documents", methods=["GET"], authorizer=staff_authorizer)
def list_expected_documents(contract_id: str) -> dict[str, Any]:
    account_id = _staff_account()
    request = dunning.current_request
    limit, cursor = page_params(request)
    found, position = service.list_expected_documents(
        account_id, contract_id, limit, cursor, container().dunning_context()
    )
    return page([expected_view(d, step) for d, step in found], position)


@dunning.route(
    "/contracts/{contract_id}/expected-documents/{document_id}", methods=["GET"], authorizer=staff_authorizer
)
def get_expected_document(contract_id: str, document_id: str) -> dict[str, Any]:
    document, step = service.get_expected_document(
        _staff_account(), contract_id, document_id, container().dunning_context()
    )
    return expected_view(document, step)


@dunning.route(
    "/contracts/{contract_id}/expected-documents/{document_id}/received",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def receive_expected_document(contract_id: str, document_id: str) -> dict[str, Any]:
    account_id = _staff_account()
    document = service.receive_expected_document(
        account_id, contract_id, document_id, container().dunning_context()
    )
    return expected_view(document, None)
