"""Dunning: the account's policy (`/account/dunning-policy`, account administrators only)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt

from chalicelib.api.authorizers import staff_authorizer
from chalicelib.api.requests import StrictBody, parse_body, staff_principal
from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.dunning import (
    DUNNING_KINDS,
    MAX_REMINDERS,
    DocumentsPolicy,
    DunningPolicy,
    UnpaidPolicy,
)
from chalicelib.domain.errors import FieldIssue, InvalidInput
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
