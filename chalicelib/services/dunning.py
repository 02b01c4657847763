"""Dunning use cases: read and replace the account's dunning policy (installments and their steps follow)."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.domain.dunning import DunningPolicy, validate_policy
from chalicelib.domain.errors import AccountNotFound
from chalicelib.domain.templates import validate_template
from chalicelib.services.ports import AccountRepository, DunningPolicyRepository


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
