"""The account's audit trail: who changed what in the account itself (its settings, legal identity and
logo) and every privacy change an administrator or the retention makes (an address taken off the
suppression list, an unsubscription undone, a dossier or a client erased).

These are not webhook events (`domain/events.py`): nothing is announced to the broker's software, and an
entry outlives what it is about, so it names ids and hashes only, never an address or the name of an
erased person. An entry is written in the same DynamoDB transaction as the change when the change is one
write, else with the write that decides it (an erased dossier's item, an erased client's record), so a
retried erasure never writes a second entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain.accounts import Account
from chalicelib.domain.clock import iso
from chalicelib.domain.events import Actor
from chalicelib.domain.ids import new_ulid


class AuditType(StrEnum):
    SUPPRESSION_REMOVED = "suppression.removed"
    UNSUBSCRIPTION_REMOVED = "unsubscription.removed"
    DOSSIER_ERASED = "dossier.erased"
    CLIENT_ERASED = "client.erased"
    SETTINGS_CHANGED = "settings.changed"
    LEGAL_IDENTITY_CHANGED = "legal_identity.changed"
    LOGO_CHANGED = "logo.changed"


@dataclass(frozen=True)
class AuditEntry:
    """One entry; its id is a ULID of the moment it is made (the real clock, in milliseconds, not `at`,
    which has the second's precision and is the tick's time for a retention erasure), so the account's
    entries sort in the order they were written."""

    account_id: str
    type: AuditType
    at: datetime
    actor: Actor
    data: dict[str, Any]
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", f"aud_{new_ulid()}")

    def as_json(self) -> dict[str, Any]:
        """The entry as `GET /account/activity` shows it."""
        return {
            "id": self.id,
            "type": self.type.value,
            "at": iso(self.at),
            "actor": self.actor.as_json(),
            "data": self.data,
        }


def settings_of(account: Account) -> dict[str, Any]:
    """The settings `PATCH /account/settings` changes, as `GET /account` shows them."""
    return {
        "partner_communications_enabled": account.partner_communications_enabled,
        "registered_mail_channel": account.registered_mail_channel.value,
        "brand_color": account.brand_color,
        "dossier_retention_days": account.dossier_retention_days,
    }


def changed_settings(before: Account, after: Account) -> dict[str, Any]:
    """The settings whose value changed, with their new value (a broker's settings name nobody)."""
    old, new = settings_of(before), settings_of(after)
    return {name: value for name, value in new.items() if old[name] != value}


def changed_legal_fields(before: Account, after: Account) -> list[str]:
    """The names of the legal identity's fields that changed (their values are in `GET /account`)."""
    old = before.legal.as_json() if before.legal else {}
    new = after.legal.as_json() if after.legal else {}
    return sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
