"""PynamoDB models of the one Relais table.

Key design (every key but the portal token's starts with the account, so no query crosses tenants):

| item              | PK                        | SK                 | due index (sparse)                  |
|-------------------|---------------------------|--------------------|-------------------------------------|
| account           | ACCOUNT#<account_id>      | ACCOUNT            |                                     |
| communication     | ACCOUNT#<account_id>      | COMM#<comm_id>     | while queued: DUE#<shard> / <at>#.. |
| dunning policy    | ACCOUNT#<account_id>      | DUNNING_POLICY     |                                     |
| suppressed address| ACCOUNT#<account_id>      | SUPPRESSED#<email> |                                     |
| unsubscription    | ACCOUNT#<account_id>      | UNSUBSCRIBED#<party>#<id> |                              |
| portal token      | PORTALTOKEN#<sha256>      | PORTALTOKEN        |                                     |
| idempotency (PT)  | IDEMPOTENCY#<store>#<n>   | <hash>             |                                     |

The `due` GSI holds only items with a pending step and is sharded (`DUE#0`..`DUE#7`) so that no single
partition takes every schedule; the tick queries each shard for what is due, never the portfolio.
Table names are bound at start (`bind`), so importing this module touches nothing.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

DUE_SHARDS = 8
DUE_INDEX = "due"


class DueIndex(GlobalSecondaryIndex["CommunicationItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = DUE_INDEX
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(range_key=True, attr_name="DUESK")


class _TableModel(Model):
    """Every model lives in the same table; `bind` sets its name and region once the settings are known."""

    class Meta:
        table_name: ClassVar[str | None] = None
        region: ClassVar[str | None] = None

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")


class AccountItem(_TableModel):
    name = UnicodeAttribute()
    plan = UnicodeAttribute()
    boosters = JSONAttribute(default=list)
    sender_email = UnicodeAttribute()
    partner_communications_enabled = BooleanAttribute(default=False)
    trials = JSONAttribute(default=dict)
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class CommunicationItem(_TableModel):
    communication_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    sender_name = UnicodeAttribute()
    reply_to = UnicodeAttribute(null=True)
    to = JSONAttribute(default=list)
    cc = JSONAttribute(default=list)
    variables = JSONAttribute(default=dict)
    subject = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    sent_at = UTCDateTimeAttribute(null=True)
    provider_message_id = UnicodeAttribute(null=True)
    status_reason = UnicodeAttribute(null=True)
    template = JSONAttribute(null=True)
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = DueIndex()


class DunningPolicyItem(_TableModel):
    unpaid = JSONAttribute(default=dict)
    documents = JSONAttribute(default=dict)
    templates = JSONAttribute(default=dict)
    version = VersionAttribute()


class SuppressionItem(_TableModel):
    address = UnicodeAttribute()
    reason = UnicodeAttribute()
    communication_id = UnicodeAttribute(null=True)
    suppressed_at = UTCDateTimeAttribute()


class UnsubscriptionItem(_TableModel):
    unsubscribed_at = UTCDateTimeAttribute()


class PortalTokenItem(_TableModel):
    account_id = UnicodeAttribute()
    dossier_id = UnicodeAttribute()
    role_id = UnicodeAttribute()
    expires_at = UTCDateTimeAttribute()
    revoked = BooleanAttribute(default=False)
    ttl = NumberAttribute(null=True)


MODELS: tuple[type[_TableModel], ...] = (
    AccountItem,
    CommunicationItem,
    DunningPolicyItem,
    SuppressionItem,
    UnsubscriptionItem,
    PortalTokenItem,
)


def bind(table_name: str, region: str) -> None:
    """Point every model at the table; the next call opens a fresh connection (lazily)."""
    for model in MODELS:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model._connection = None
