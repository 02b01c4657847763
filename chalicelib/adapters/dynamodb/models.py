"""PynamoDB models of the one Relais table.

Key design (every key but the portal token's starts with the account, so no query crosses tenants):

| item              | PK                        | SK                 | due index (sparse)                  |
|-------------------|---------------------------|--------------------|-------------------------------------|
| account           | ACCOUNT#<account_id>      | ACCOUNT            |                                     |
| communication     | ACCOUNT#<a>#COMMS#<shard> | COMM#<comm_id>     | while queued: DUE#<shard> / <at>#.. |
| dunning policy    | ACCOUNT#<account_id>      | DUNNING_POLICY     |                                     |
| suppressed address| ACCOUNT#<account_id>      | SUPPRESSED#<email> |                                     |
| partner record    | ACCOUNT#<account_id>      | <KIND>#<id>        | (apporteur, client, product, deal)  |
| bulk job          | ACCOUNT#<a>#JOB#<job_id>  | JOB, CHUNK#<n>     | until done: STEP#<shard> / <at>#..  |
| its planned chunks| ACCOUNT#<a>#JOB#<id>#PLAN | CHUNK#<n>          |                                     |
| mailing           | ACCOUNT#<a>#MAILING#<id>  | MAILING, PAGE#<n>  | GSI1 ACCOUNT#<a>#MAILINGS / <id>;   |
|                   |                           |                    | while fanning out: STEP#<shard>     |
| procedure         | ACCOUNT#<account_id>      | PROCEDURE#<id>     |                                     |
| dossier           | ACCOUNT#<a>#DOSSIER#<id>  | DOSSIER            | GSI1 ACCOUNT#<a>#DOSSIERS / <id>    |
| dossier deadline  | ACCOUNT#<a>#DOSSIER#<id>  | DEADLINE#<auto_id> | until fired: STEP#<shard> / <at>#.. |
| installment       | ACCOUNT#<a>#CONTRACT#<id> | INSTALLMENT#<id>   | while a step waits: STEP#<shard>    |
| expected document | ACCOUNT#<a>#CONTRACT#<id> | EXPECTED#<id>      | while a step waits: STEP#<shard>    |
| unsubscription    | ACCOUNT#<account_id>      | UNSUBSCRIBED#<party>#<id> |                              |
| portal token      | PORTALTOKEN#<sha256>      | PORTALTOKEN        |                                     |
| event (dossier)   | ACCOUNT#<a>#DOSSIER#<id>  | EVENT#<event_id>   | until fanned out: WH#<shard> / <at>#|
| event (contract)  | ACCOUNT#<a>#CONTRACT#<id>#EVENTS | EVENT#<id>  | (same)                              |
| event (account)   | ACCOUNT#<a>#EVENTS#<shard>| EVENT#<event_id>   | (same)                              |
| audit entry       | ACCOUNT#<a>#AUDIT         | AUDIT#<entry_id>   |                                     |
| dossier's link    | ACCOUNT#<a>#DOSSIER#<id>  | PORTALTOKEN#<sha256> | (expires with the link: TTL)      |
| webhook endpoint  | ACCOUNT#<account_id>      | WEBHOOK#<id>       |                                     |
| their count       | ACCOUNT#<account_id>      | WEBHOOKS           |                                     |
| webhook delivery  | ACCOUNT#<a>#WEBHOOK#<id>  | DELIVERY#<id>      | while a retry waits: WHR#<shard>    |
| idempotency (PT)  | IDEMPOTENCY#<store>#<n>   | <hash>             |                                     |

Partner filters, each one Query (`<E>` is the entity: CLIENT, CONTRACT, PROJECT; SK the record id):
GSI1 `ACCOUNT#<a>#<E>#RULE#<rule or none>`, GSI2 `ACCOUNT#<a>#<E>#APPORTEUR#<id>` (sparse),
GSI3 `ACCOUNT#<a>#<E>#CLIENT#<id>` (and `ACCOUNT#<a>#COMMS#CLIENT#<id>` / `<created_at>#<id>` for a
client's communication history), GSI4 `ACCOUNT#<a>#<E>#STATUS#<status>`.

The `due` GSI holds only items with a pending step and is sharded (`DUE#0`..`DUE#7` for communications
waiting on their retry, `STEP#0`..`STEP#7` for scheduled steps, and for the bulk jobs and mailings still
running, at the moment they count as stalled if nothing moves them on before, `WH#0`..`WH#7` for events
not yet fanned out to the webhooks, `WHR#0`..`WHR#7` for webhook deliveries waiting on their next
attempt) so that no single partition takes every schedule; the tick queries each shard for what is due,
never the portfolio.
Communications are spread over 16 partitions per account (`<shard>` from a hash of the id): a mailing of
100,000 emails claims and settles each one without making one hot partition.
Table names are bound at start (`bind`), so importing this module touches nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

DUE_SHARDS = 8
DUE_INDEX = "due"


class DueIndex(GlobalSecondaryIndex["CommunicationItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = DUE_INDEX
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(range_key=True, attr_name="DUESK")


def _filter_index(number: int, model: str) -> type[GlobalSecondaryIndex[Any]]:
    """GSI1..GSI4 of the partner filters (projection ALL), declared once per model that uses them."""

    class FilterIndex(GlobalSecondaryIndex[Any]):  # type: ignore[no-untyped-call]
        class Meta:
            index_name = f"GSI{number}"
            projection = AllProjection()

        pk = UnicodeAttribute(hash_key=True, attr_name=f"GSI{number}PK")
        sk = UnicodeAttribute(range_key=True, attr_name=f"GSI{number}SK")

    FilterIndex.__name__ = f"{model}GSI{number}"
    return FilterIndex


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
    legal = JSONAttribute(null=True)
    registered_mail_channel = UnicodeAttribute(null=True)
    brand_color = UnicodeAttribute(null=True)
    dossier_retention_days = NumberAttribute(null=True)
    logo_etag = UnicodeAttribute(null=True)


class LogoItem(_TableModel):
    """An account's logo, an item of its own beside the account (`SK = LOGO`): at most 200 KB, it fits an
    item, is read with one GetItem and needs no bucket permission for the API."""

    content_type = UnicodeAttribute()
    data = BinaryAttribute(legacy_encoding=False)
    etag = UnicodeAttribute()


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
    client_id = UnicodeAttribute(null=True)
    contract_id = UnicodeAttribute(null=True)
    rule = UnicodeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    skipped_parties = JSONAttribute(null=True)
    portal_participant = UnicodeAttribute(null=True)
    mailing_id = UnicodeAttribute(null=True)
    party_ids = JSONAttribute(null=True)
    delivered_to = UnicodeSetAttribute(null=True, attr_name="delivered_copies")
    """A string set, so that the worker and SES's Send events add accepted copies atomically."""
    screened = BooleanAttribute(null=True)
    screened_at = UTCDateTimeAttribute(null=True)
    dossier_id = UnicodeAttribute(null=True)
    claimed_at = UTCDateTimeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = DueIndex()
    gsi3_pk = UnicodeAttribute(null=True, attr_name="GSI3PK")
    gsi3_sk = UnicodeAttribute(null=True, attr_name="GSI3SK")
    by_client = _filter_index(3, "Communication")()


class PartnerItem(_TableModel):
    """An apporteur, client, product, contract or project (`kind`), with the GSI keys of its filters."""

    kind = UnicodeAttribute()
    record_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    reference = UnicodeAttribute(null=True)
    client_id = UnicodeAttribute(null=True)
    product_id = UnicodeAttribute(null=True)
    apporteur_id = UnicodeAttribute(null=True)
    preferred_apporteur_id = UnicodeAttribute(null=True)
    commission_rate = UnicodeAttribute(null=True)
    communication_rule = UnicodeAttribute()
    prefilled_from = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    dunning_stage = UnicodeAttribute(null=True)
    cover_resumes_at = UTCDateTimeAttribute(null=True)
    suspension_voided = BooleanAttribute(null=True)
    insurer = JSONAttribute(null=True)
    postal_address = JSONAttribute(null=True)
    marketing_consent = BooleanAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()
    gsi1_pk = UnicodeAttribute(null=True, attr_name="GSI1PK")
    gsi1_sk = UnicodeAttribute(null=True, attr_name="GSI1SK")
    gsi2_pk = UnicodeAttribute(null=True, attr_name="GSI2PK")
    gsi2_sk = UnicodeAttribute(null=True, attr_name="GSI2SK")
    gsi3_pk = UnicodeAttribute(null=True, attr_name="GSI3PK")
    gsi3_sk = UnicodeAttribute(null=True, attr_name="GSI3SK")
    gsi4_pk = UnicodeAttribute(null=True, attr_name="GSI4PK")
    gsi4_sk = UnicodeAttribute(null=True, attr_name="GSI4SK")
    by_rule = _filter_index(1, "Partner")()
    by_apporteur = _filter_index(2, "Partner")()
    by_client = _filter_index(3, "Partner")()
    by_status = _filter_index(4, "Partner")()


class JobItem(_TableModel):
    """A bulk job (SK `JOB`) and, in the same collection, one item per chunk done (SK `CHUNK#<n>`) holding
    that chunk's failures: a chunk item written once is what makes a redelivered chunk count nothing twice."""

    kind = UnicodeAttribute(null=True)
    total = NumberAttribute(null=True)
    chunks = NumberAttribute(null=True)
    chunks_done = NumberAttribute(null=True)
    chunks_left = NumberAttribute(null=True)
    """Chunks not counted yet: the chunk that finds it at 1 is the one that ends the job (and says so)."""
    succeeded = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    failures = JSONAttribute(null=True)
    message = JSONAttribute(null=True)
    """Of a planned chunk (PK `…#JOB#<id>#PLAN`, SK `CHUNK#<n>`): the chunk's queue message, re-queued when
    the job stalls before that chunk is counted."""
    resumes = NumberAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    ttl = NumberAttribute(null=True)
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")


class MailingItem(_TableModel):
    """A mailing (SK `MAILING`) and, in its collection, one item per fan-out page done (SK `PAGE#<n>`):
    writing a page's item only if absent, with the page's emails, is what makes a redelivered page
    write and count nothing twice. The mailing itself is on GSI1 (`ACCOUNT#<a>#MAILINGS`, by id), the
    account's list of mailings, newest first; its pages are not."""

    name = UnicodeAttribute(null=True)
    template = JSONAttribute(null=True)
    audience = JSONAttribute(null=True)
    state = UnicodeAttribute(null=True)
    total = NumberAttribute(null=True)
    sent = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    skipped = NumberAttribute(null=True)
    fanned_out = BooleanAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    send_requested_at = UTCDateTimeAttribute(null=True)
    resume_message = JSONAttribute(null=True)
    """While sending: the queue message of the next page to fan out, re-queued if the mailing stalls."""
    resumes = NumberAttribute(null=True)
    incomplete = BooleanAttribute(null=True)
    unsettled = NumberAttribute(null=True)
    """Emails written `queued` whose outcome is not counted yet: the write that leaves it at 0 once the
    fan-out is done is the one that ends the mailing (and says so, `mailing.finished`)."""
    finished_at = UTCDateTimeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    draft_version = NumberAttribute(null=True)
    """Not a VersionAttribute: the fan-out and the emails' outcomes ADD to the counts concurrently, and only
    edits of the draft take (and move) its version."""
    gsi1_pk = UnicodeAttribute(null=True, attr_name="GSI1PK")
    gsi1_sk = UnicodeAttribute(null=True, attr_name="GSI1SK")
    by_account = _filter_index(1, "Mailing")()


class DunningPolicyItem(_TableModel):
    unpaid = JSONAttribute(default=dict)
    documents = JSONAttribute(default=dict)
    templates = JSONAttribute(default=dict)
    version = VersionAttribute()


class SuppressionItem(_TableModel):
    address_hash = UnicodeAttribute(null=True)
    address = UnicodeAttribute(null=True)
    """Only on items written before the addresses were hashed."""
    reason = UnicodeAttribute()
    communication_id = UnicodeAttribute(null=True)
    suppressed_at = UTCDateTimeAttribute()


class UnsubscriptionItem(_TableModel):
    unsubscribed_at = UTCDateTimeAttribute()


class ProcedureItem(_TableModel):
    """A procedure is one document: roles, documents and automations change together, under a version."""

    body = JSONAttribute()
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class DossierItem(_TableModel):
    """A dossier with its procedure snapshot, documents, contributors and uploads: one item, so the staff
    view is one GetItem and the portal view the token lookup plus that GetItem; concurrent changes meet
    its version. `tokens` lists each participant's live token hashes, so revoking them all needs no query."""

    body = JSONAttribute()
    tokens = JSONAttribute(default=dict)
    status = UnicodeAttribute()
    procedure_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()
    gsi1_pk = UnicodeAttribute(null=True, attr_name="GSI1PK")
    gsi1_sk = UnicodeAttribute(null=True, attr_name="GSI1SK")
    by_account = _filter_index(1, "Dossier")()


def _due_index(model: str) -> type[GlobalSecondaryIndex[Any]]:
    """The same sparse `due` index, declared once per model that sits on it (an index class is bound to
    one model)."""

    class StepIndex(GlobalSecondaryIndex[Any]):  # type: ignore[no-untyped-call]
        class Meta:
            index_name = DUE_INDEX
            projection = KeysOnlyProjection()

        due_pk = UnicodeAttribute(hash_key=True, attr_name="DUEPK")
        due_sk = UnicodeAttribute(range_key=True, attr_name="DUESK")

    StepIndex.__name__ = f"{model}DueIndex"
    return StepIndex


class DeadlineItem(_TableModel):
    """A dossier's pending `deadline_approaching` automation (SK `DEADLINE#<automation_id>`), on the `due`
    index under `STEP#<shard>` until the tick fires it; firing removes it from the index."""

    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = _due_index("Deadline")()


class ScheduledItem(_TableModel):
    """An installment (SK `INSTALLMENT#<id>`) or an expected document (SK `EXPECTED#<id>`) of a contract
    (PK `ACCOUNT#<a>#CONTRACT#<id>`): its state as JSON, under a version, and while a step is pending its
    place on the `due` index (`STEP#<shard>`)."""

    body = JSONAttribute()
    version = VersionAttribute()
    parties = JSONAttribute(null=True)
    """The contract's client, product and apporteur ids when the item was written, so that a step reads
    those records with the contract in one batch; absent on items written before it existed."""
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = _due_index("Scheduled")()


class EventItem(_TableModel):
    """An event (SK `EVENT#<event_id>`, ids are ULIDs so a partition's events sort by time) in the partition
    of what it is about; on the `due` index under `WH#<shard>` until the webhook worker has fanned it out, so
    an event whose queue message was lost is queued again by the tick."""

    account_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    subject = JSONAttribute()
    actor = JSONAttribute()
    data = JSONAttribute()
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = _due_index("Event")()


class DossierLinkItem(_TableModel):
    """A portal link a dossier minted (`ACCOUNT#<a>#DOSSIER#<id>` / `PORTALTOKEN#<sha256>`), live or
    revoked, shown to staff or carried by one of its emails (`communication_id`): erasing the dossier
    reads its partition, skips the emails still queued and deletes each link's token item with it. It
    expires with the link (`ttl`), so a dossier keeps as many as live links."""

    ttl = NumberAttribute(null=True)
    communication_id = UnicodeAttribute(null=True)


class AuditEntryItem(_TableModel):
    """An entry of the account's audit trail (`ACCOUNT#<a>#AUDIT` / `AUDIT#<entry_id>`, ids are ULIDs so
    the trail reads oldest first): ids and hashes only, it outlives what it is about."""

    entry_id = UnicodeAttribute()
    type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    actor = JSONAttribute()
    data = JSONAttribute()


class WebhookItem(_TableModel):
    """A webhook endpoint (SK `WEBHOOK#<id>`) in its account's partition: the fan-out reads an account's
    endpoints (at most 20) with one Query. It holds its signing secrets, which only the worker reads back."""

    account_id = UnicodeAttribute()
    webhook_id = UnicodeAttribute()
    url = UnicodeAttribute()
    events = JSONAttribute()
    description = UnicodeAttribute(default="")
    enabled = BooleanAttribute()
    secret = UnicodeAttribute()
    previous_secret = UnicodeAttribute(null=True)
    previous_secret_expires_at = UTCDateTimeAttribute(null=True)
    failing_since = UTCDateTimeAttribute(null=True)
    disabled_reason = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()


class WebhookCountItem(_TableModel):
    """How many endpoints the account has (SK `WEBHOOKS`), moved in the transaction that adds or deletes
    one, so two concurrent creations cannot pass the limit together."""

    endpoints = NumberAttribute(default=0)


class DeliveryItem(_TableModel):
    """One event's delivery to one endpoint (PK `ACCOUNT#<a>#WEBHOOK#<id>`, SK `DELIVERY#<ULID>`, so the
    endpoint's list is one Query, newest first), written by its first attempt and rewritten by each
    next one under the condition of the attempt it follows; on the `due` index (`WHR#<shard>`) while its
    next attempt waits. Kept for 30 days (`ttl`)."""

    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    message = JSONAttribute()
    attempt = NumberAttribute()
    status = UnicodeAttribute()
    response_status = NumberAttribute(null=True)
    duration_ms = NumberAttribute(null=True)
    attempted_at = UTCDateTimeAttribute(null=True)
    next_attempt_at = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    ttl = NumberAttribute(null=True)
    due_pk = UnicodeAttribute(null=True, attr_name="DUEPK")
    due_sk = UnicodeAttribute(null=True, attr_name="DUESK")
    due_index = _due_index("Delivery")()


class PortalTokenItem(_TableModel):
    account_id = UnicodeAttribute()
    dossier_id = UnicodeAttribute()
    role_id = UnicodeAttribute()
    participant_id = UnicodeAttribute(null=True)
    generation = NumberAttribute(null=True)
    expires_at = UTCDateTimeAttribute()
    revoked = BooleanAttribute(default=False)
    ttl = NumberAttribute(null=True)


MODELS: tuple[type[_TableModel], ...] = (
    AccountItem,
    LogoItem,
    CommunicationItem,
    DunningPolicyItem,
    PartnerItem,
    JobItem,
    MailingItem,
    SuppressionItem,
    UnsubscriptionItem,
    ProcedureItem,
    DossierItem,
    DeadlineItem,
    ScheduledItem,
    EventItem,
    DossierLinkItem,
    AuditEntryItem,
    WebhookItem,
    WebhookCountItem,
    DeliveryItem,
    PortalTokenItem,
)


_transactions: Connection | None = None


def transactions() -> Connection:
    """The connection of TransactGetItems / TransactWriteItems (PynamoDB's models keep their own)."""
    global _transactions
    if _transactions is None:
        _transactions = Connection(region=AccountItem.Meta.region)
    return _transactions


def failed_among(exc: TransactWriteError, first: int, count: int) -> bool:
    """Whether one of the transaction's items `first` to `first + count - 1` failed its condition."""
    reasons = list(exc.cancellation_reasons or [])[first : first + count]
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)


def condition_failed(exc: TransactWriteError) -> bool:
    """Whether a transaction was cancelled by one of its conditions (a race lost, a replay), rather than
    by DynamoDB itself."""
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons or [])


def bind(table_name: str, region: str) -> None:
    """Point every model at the table; the next call opens a fresh connection (lazily)."""
    global _transactions
    for model in MODELS:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model._connection = None
    _transactions = None
