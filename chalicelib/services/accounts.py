"""Account use cases: open an account (and welcome it), change its plan, settings and trials."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.domain.accounts import Account, sniffed_logo
from chalicelib.domain.audit import AuditEntry, AuditType, changed_legal_fields, changed_settings
from chalicelib.domain.communications import Communication, CommunicationKind, Recipient, communication_id
from chalicelib.domain.errors import AccountNotFound, Unauthenticated
from chalicelib.domain.events import Actor
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.legal import RegisteredMailChannel, identity_with
from chalicelib.domain.plans import Plan, Trial
from chalicelib.services.communications import RETRY_AFTER, DeliveryRequest
from chalicelib.services.ports import (
    AccountRepository,
    LogoStore,
    MessageQueue,
    PortalTokenRepository,
    StoredLogo,
)


@dataclass(frozen=True)
class NewAccount:
    name: str
    plan: Plan
    sender_email: str
    boosters: frozenset[str]


def create_account(
    request: NewAccount,
    accounts: AccountRepository,
    queue: MessageQueue,
    now: datetime,
) -> Account:
    """Open the account with its French welcome email in one transaction, then queue the email (a lost
    SQS send is re-queued by the tick: the communication is already written)."""
    account = Account(
        id=new_ulid(int(now.timestamp() * 1000)),
        name=request.name,
        plan=request.plan,
        boosters=request.boosters,
        sender_email=request.sender_email,
        created_at=now,
    )
    welcome = Communication(
        id=communication_id(account.id, f"account:{account.id}", CommunicationKind.ACCOUNT_WELCOME.value),
        account_id=account.id,
        kind=CommunicationKind.ACCOUNT_WELCOME,
        sender_name="Relais",
        reply_to=None,
        to=(Recipient(name=account.name, email=account.sender_email, party="account"),),
        created_at=now,
        variables={"account.name": account.name},
        screened=True,
        screened_at=now,
    )
    account = accounts.open(account, welcome, retry_at=now + RETRY_AFTER)
    queue.send(DeliveryRequest(account.id, welcome.id).to_message())
    return account


def get_account(account_id: str, accounts: AccountRepository) -> Account:
    account = accounts.get(account_id)
    if account is None:
        raise AccountNotFound()
    return account


def change_plan(
    account_id: str, plan: Plan | None, boosters: frozenset[str] | None, accounts: AccountRepository
) -> Account:
    account = get_account(account_id, accounts)
    changed = account.with_plan(plan, boosters)
    return account if changed == account else accounts.save(changed)


def set_legal_identity(
    account_id: str, changes: dict[str, Any], accounts: AccountRepository, by: Actor, now: datetime
) -> Account:
    """Apply a PATCH of the broker's legal identity; a concurrent change answers 409 (stale version)."""
    account = get_account(account_id, accounts)
    changed = replace(account, legal=identity_with(account.legal, changes))
    if changed == account:
        return account
    data = {"fields": changed_legal_fields(account, changed)}
    return accounts.save(changed, AuditEntry(account_id, AuditType.LEGAL_IDENTITY_CHANGED, now, by, data))


def set_settings(
    account_id: str,
    partner_communications_enabled: bool | None,
    registered_mail_channel: RegisteredMailChannel | None,
    accounts: AccountRepository,
    now: datetime,
    by: Actor,
    changes: dict[str, Any] | None = None,
) -> Account:
    """Change the settings sent, each optional; the partner switch needs its feature (402). `changes`
    holds the settings a null may clear (`brand_color`) and the others sent: present means sent."""
    account = get_account(account_id, accounts)
    changed = account
    if partner_communications_enabled is not None:
        changed = changed.with_partner_communications(partner_communications_enabled, now)
    if registered_mail_channel is not None:
        changed = replace(changed, registered_mail_channel=registered_mail_channel)
    changes = changes or {}
    if "brand_color" in changes:
        changed = changed.with_brand_color(changes["brand_color"])
    if "dossier_retention_days" in changes:
        changed = changed.with_retention_days(changes["dossier_retention_days"])
    settings = changed_settings(account, changed)
    if not settings:
        return account if changed == account else accounts.save(changed)
    audit = AuditEntry(account_id, AuditType.SETTINGS_CHANGED, now, by, {"changes": settings})
    return accounts.save(changed, audit)


def start_trial(account_id: str, feature: str, accounts: AccountRepository, now: datetime) -> Trial:
    """Two concurrent starts cannot both win: the second save meets a newer version and answers 409."""
    account = get_account(account_id, accounts)
    updated, trial = account.with_trial_started(feature, now)
    accounts.save(updated)
    return trial


def set_logo(
    account_id: str,
    data: bytes,
    content_type: str,
    accounts: AccountRepository,
    logos: LogoStore,
    by: Actor,
    now: datetime,
) -> StoredLogo:
    """Replace the account's logo with a PNG or JPEG recognised by its first bytes (415, 400, 413), then
    name its version on the account with the audit entry: a crash between the two leaves the old URL
    (and no entry), which a retry mends."""
    account = get_account(account_id, accounts)
    stored = logos.put(account_id, sniffed_logo(data, content_type))
    if account.logo_etag != stored.etag:
        logo = {"etag": stored.etag, "content_type": stored.logo.content_type, "bytes": len(stored.logo.data)}
        audit = AuditEntry(account_id, AuditType.LOGO_CHANGED, now, by, logo)
        accounts.save(replace(account, logo_etag=stored.etag), audit)
    return stored


@dataclass(frozen=True)
class BrokerContact:
    """What a dead portal link may still tell: whom to ask for a new one, nothing of the dossier."""

    name: str
    email: str
    phone: str | None


def broker_of_link(
    token_hash: str, tokens: PortalTokenRepository, accounts: AccountRepository
) -> BrokerContact:
    """The public name and contact of the broker that minted a link, dead or alive; a link never
    minted names nobody (401, as for any unknown credential)."""
    account_id = tokens.account_of(token_hash)
    account = accounts.get(account_id) if account_id else None
    if account is None:
        raise Unauthenticated("This link was never sent by a broker.")
    return BrokerContact(
        account.public_name, account.sender_email, account.legal.phone if account.legal else None
    )
