"""Dunning: the account's policy (`/account/dunning-policy`, account administrators only), installments
and their payments, and expected documents of contracts."""

from __future__ import annotations

from typing import Annotated, Any

from chalice.app import Response
from pydantic import BeforeValidator, Field, StrictInt, StrictStr, field_validator

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.pagination import page, page_params
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
    UnpaidPolicy,
)
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.installments import ExpectedDocument, Installment, Money, parse_money
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


def installment_view(installment: Installment, next_step: DueStep | None) -> dict[str, Any]:
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
            for p in installment.payments
        ],
        "paid_on": installment.paid_on.isoformat() if installment.paid_on else None,
        "dunning_stage": installment.stage.value,
        "next_step": _step_view(next_step),
    }


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
    return Response(installment_view(installment, step), status_code=201)


@dunning.route("/contracts/{contract_id}/installments", methods=["GET"], authorizer=staff_authorizer)
def list_installments(contract_id: str) -> dict[str, Any]:
    account_id = _staff_account()
    request = dunning.current_request
    limit, cursor = page_params(request)
    found, position = service.list_installments(
        account_id, contract_id, limit, cursor, container().dunning_context()
    )
    return page([installment_view(i, step) for i, step in found], position)


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}", methods=["GET"], authorizer=staff_authorizer
)
def get_installment(contract_id: str, installment_id: str) -> dict[str, Any]:
    installment, step = service.get_installment(
        _staff_account(), contract_id, installment_id, container().dunning_context()
    )
    return installment_view(installment, step)


@dunning.route(
    "/contracts/{contract_id}/installments/{installment_id}/payments",
    methods=["POST"],
    authorizer=staff_authorizer,
)
def pay_installment(contract_id: str, installment_id: str) -> dict[str, Any]:
    account_id = _staff_account()
    body = parse_body(dunning.current_request, PaymentBody)
    amount, currency = None, None
    if body.amount is not None:
        currency = body.amount.currency
        amount = parse_money(body.amount.amount, currency or "EUR", "amount").amount
    services = container()
    installment, contract, next_step = service.pay_installment(
        account_id, contract_id, installment_id, body.paid_at, amount, services.dunning_context(), currency
    )
    return {
        **installment_view(installment, next_step),
        "contract": {
            "status": contract.status,
            "dunning_stage": contract.dunning_stage,
            "cover_resumes_at": iso(contract.cover_resumes_at) if contract.cover_resumes_at else None,
        },
    }


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
