"""The account's dunning policy: one item beside the account (`ACCOUNT#<id>` / `DUNNING_POLICY`), read by
the policy routes and by the worker when it renders a dunning email with the account's own template."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.adapters.dynamodb.models import DunningPolicyItem
from chalicelib.domain.communications import CommunicationKind, TemplateSource
from chalicelib.domain.dunning import DocumentsPolicy, DunningPolicy, TerminationMode, UnpaidPolicy
from chalicelib.domain.errors import StaleVersion

POLICY_SK = "DUNNING_POLICY"


def policy_from(item: DunningPolicyItem) -> DunningPolicy:
    unpaid: dict[str, Any] = dict(item.unpaid or {})
    templates: dict[str, Any] = dict(item.templates or {})
    # Policies saved before `termination` existed confirm it, the default.
    termination = TerminationMode(unpaid.pop("termination", TerminationMode.CONFIRM.value))
    return DunningPolicy(
        unpaid=UnpaidPolicy(
            **{
                **unpaid,
                "reminder_days": tuple(unpaid.get("reminder_days", ())),
                "termination": termination,
            }
        ),
        documents=DocumentsPolicy(reminder_days=tuple((item.documents or {}).get("reminder_days", ()))),
        templates={CommunicationKind(kind): TemplateSource(**source) for kind, source in templates.items()},
        version=int(item.version or 0),
    )


class DynamoDunningPolicyRepository:
    def get(self, account_id: str) -> DunningPolicy | None:
        try:
            return policy_from(DunningPolicyItem.get(f"ACCOUNT#{account_id}", POLICY_SK))
        except DoesNotExist:
            return None

    def save(self, account_id: str, policy: DunningPolicy) -> DunningPolicy:
        """Write the whole policy; a policy read at another version than the stored one is StaleVersion."""
        unpaid = policy.unpaid
        item = DunningPolicyItem(
            f"ACCOUNT#{account_id}",
            POLICY_SK,
            unpaid={
                "call_days_before": unpaid.call_days_before,
                "reminder_days": list(unpaid.reminder_days),
                "formal_notice_days": unpaid.formal_notice_days,
                "suspension_days": unpaid.suspension_days,
                "termination_days": unpaid.termination_days,
                "termination": unpaid.termination.value,
            },
            documents={"reminder_days": list(policy.documents.reminder_days)},
            templates={
                kind.value: {"subject": source.subject, "body": source.body}
                for kind, source in policy.templates.items()
            },
        )
        if policy.version:
            item.version = policy.version
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise StaleVersion() from exc
            raise
        return replace(policy, version=int(item.version or 0))
