"""Partner records in the one table: apporteurs, clients, products and deals (contracts, projects).

Every record is `ACCOUNT#<a>` / `<KIND>#<id>`, so a list is one Query of the account's partition, and the
deals and clients also carry the keys of the filter indexes (models.py), so each filter is one Query of
its index; combined filters query the most selective index and filter the rest in the same Query.
Reads that need several records at once (recipients: account, client and contract; a new deal: client,
apporteur and product) are one TransactGetItems; a dunning step's (the account, the contract, the records
it names and the dunning policy) is one BatchGetItem, strongly consistent, at half the price.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactGet, TransactWrite

from chalicelib.adapters.dynamodb.audit import audit_item
from chalicelib.adapters.dynamodb.cursors import check_cursor
from chalicelib.adapters.dynamodb.dunning import POLICY_SK, policy_from
from chalicelib.adapters.dynamodb.events import event_item
from chalicelib.adapters.dynamodb.models import (
    AccountItem,
    AuditEntryItem,
    DunningPolicyItem,
    EventItem,
    PartnerItem,
    condition_failed,
    transactions,
)
from chalicelib.adapters.dynamodb.repositories import DynamoAccountRepository
from chalicelib.domain.accounts import Account
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.events import Event
from chalicelib.domain.legal import Insurer, PostalAddress
from chalicelib.domain.partners import (
    RULE_NONE,
    Apporteur,
    Client,
    Commissioning,
    Deal,
    DealFilters,
    PrefilledFrom,
    Product,
    RecordKind,
    format_rate,
)
from chalicelib.domain.recipients import CommunicationRule
from chalicelib.services.ports import AccountRecords, RecordT

Record = Apporteur | Client | Product | Deal
Cursor = dict[str, Any]


def _pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def _sk(kind: RecordKind, record_id: str) -> str:
    return f"{kind.value.upper()}#{record_id}"


def _index_key(account_id: str, kind: RecordKind, name: str, value: str) -> str:
    return f"ACCOUNT#{account_id}#{kind.value.upper()}#{name}#{value}"


def _kind_of(record: Record) -> RecordKind:
    if isinstance(record, Apporteur):
        return RecordKind.APPORTEUR
    if isinstance(record, Client):
        return RecordKind.CLIENT
    if isinstance(record, Product):
        return RecordKind.PRODUCT
    return record.kind


def _to_item(record: Record) -> PartnerItem:
    kind = _kind_of(record)
    block = record.commissioning
    item = PartnerItem(
        _pk(record.account_id),
        _sk(kind, record.id),
        kind=kind.value,
        record_id=record.id,
        commission_rate=format_rate(block.commission_rate),
        communication_rule=block.communication_rule.value,
        prefilled_from=block.prefilled_from.value if block.prefilled_from else None,
        created_at=record.created_at,
    )
    if isinstance(record, Apporteur | Client | Product):
        item.name = record.name
    if isinstance(record, Apporteur | Client):
        item.email = record.email
    if isinstance(record, Product):
        item.insurer = record.insurer.as_json() if record.insurer else None
    if isinstance(record, Client):
        item.postal_address = record.postal_address.as_json() if record.postal_address else None
        item.marketing_consent = record.marketing_consent or None
        item.preferred_apporteur_id = record.preferred_apporteur_id
        rule = block.communication_rule.value if record.preferred_apporteur_id else RULE_NONE
        item.gsi1_pk, item.gsi1_sk = _index_key(record.account_id, kind, "RULE", rule), record.id
        if record.preferred_apporteur_id:
            item.gsi2_pk = _index_key(record.account_id, kind, "APPORTEUR", record.preferred_apporteur_id)
            item.gsi2_sk = record.id
    if isinstance(record, Deal):
        item.reference, item.client_id, item.status = record.reference, record.client_id, record.status
        item.dunning_stage, item.cover_resumes_at = record.dunning_stage, record.cover_resumes_at
        item.suspension_voided = record.suspension_voided or None
        item.product_id, item.apporteur_id = record.product_id, record.apporteur_id
        item.gsi1_pk, item.gsi1_sk = (
            _index_key(record.account_id, kind, "RULE", record.rule_filter),
            record.id,
        )
        if record.apporteur_id:
            item.gsi2_pk = _index_key(record.account_id, kind, "APPORTEUR", record.apporteur_id)
            item.gsi2_sk = record.id
        item.gsi3_pk, item.gsi3_sk = (
            _index_key(record.account_id, kind, "CLIENT", record.client_id),
            record.id,
        )
        item.gsi4_pk, item.gsi4_sk = _index_key(record.account_id, kind, "STATUS", record.status), record.id
    if record.version:
        item.version = record.version
    return item


def _from_item(item: PartnerItem) -> Record:
    account_id = item.pk.removeprefix("ACCOUNT#")
    block = Commissioning(
        commission_rate=Decimal(item.commission_rate) if item.commission_rate is not None else None,
        communication_rule=CommunicationRule(item.communication_rule),
        prefilled_from=PrefilledFrom(item.prefilled_from) if item.prefilled_from else None,
    )
    kind, version = RecordKind(item.kind), int(item.version or 0)
    if kind is RecordKind.APPORTEUR:
        return Apporteur(
            item.record_id, account_id, str(item.name), item.email, block, item.created_at, version
        )
    if kind is RecordKind.CLIENT:
        return Client(
            item.record_id,
            account_id,
            str(item.name),
            item.email,
            item.preferred_apporteur_id,
            block,
            item.created_at,
            version,
            PostalAddress.from_json(item.postal_address) if item.postal_address else None,
            bool(item.marketing_consent),
        )
    if kind is RecordKind.PRODUCT:
        return Product(
            item.record_id,
            account_id,
            str(item.name),
            block,
            item.created_at,
            version,
            Insurer.from_json(item.insurer) if item.insurer else None,
        )
    return Deal(
        id=item.record_id,
        account_id=account_id,
        kind=kind,
        client_id=str(item.client_id),
        reference=str(item.reference),
        product_id=item.product_id,
        apporteur_id=item.apporteur_id,
        commissioning=block,
        status=str(item.status),
        created_at=item.created_at,
        version=version,
        dunning_stage=item.dunning_stage or "none",
        cover_resumes_at=item.cover_resumes_at,
        suspension_voided=bool(item.suspension_voided),
    )


class DynamoPartnerRepository:
    def add(self, record: RecordT) -> RecordT:
        item = _to_item(record)
        try:
            item.save(condition=PartnerItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict("A record with this id already exists.") from exc
            raise
        return replace(record, version=int(item.version or 0))

    def save(self, record: Record, updated_at: datetime, events: Sequence[Event] = ()) -> Record:
        """Write a changed record (with the events that tell the change, in one transaction); StaleVersion
        when it changed since `record.version` was read."""
        item = _to_item(record)
        item.updated_at = updated_at
        try:
            if not events:
                item.save(condition=PartnerItem.pk.exists())
            else:
                with TransactWrite(connection=transactions()) as transaction:
                    transaction.save(item, condition=PartnerItem.pk.exists())
                    for event in events:
                        transaction.save(event_item(event), condition=EventItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise StaleVersion() from exc
            raise
        except TransactWriteError as exc:
            if condition_failed(exc):
                raise StaleVersion() from exc
            raise
        return replace(record, version=int(item.version or 0))

    def get(self, account_id: str, kind: RecordKind, record_id: str) -> Record | None:
        try:
            return _from_item(PartnerItem.get(_pk(account_id), _sk(kind, record_id)))
        except DoesNotExist:
            return None

    def get_many(
        self, account_id: str, keys: Iterable[tuple[RecordKind, str]], with_account: bool = False
    ) -> tuple[Account | None, dict[tuple[RecordKind, str], Record]]:
        """Several records (and the account) in one TransactGetItems; missing ones are left out."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[RecordKind, str], Record] = {}
        with TransactGet(connection=transactions()) as transaction:
            account_future = (
                transaction.get(AccountItem, _pk(account_id), "ACCOUNT") if with_account else None
            )
            futures = [(key, transaction.get(PartnerItem, _pk(account_id), _sk(*key))) for key in wanted]
        account = None
        if account_future is not None:
            try:
                account = DynamoAccountRepository.to_domain(account_future.get())
            except AccountItem.DoesNotExist:
                account = None
        for key, future in futures:
            try:
                found[key] = _from_item(future.get())
            except PartnerItem.DoesNotExist:
                continue
        return account, found

    def account_records(
        self, account_id: str, keys: Iterable[tuple[RecordKind, str]], with_policy: bool
    ) -> AccountRecords:
        """The account, the records and, when asked, the account's dunning policy in one BatchGetItem
        (strongly consistent, as the TransactGetItems of `get_many`, at half its cost): three item types
        of the one table, told apart by their sort key. Keys DynamoDB leaves unprocessed are asked again."""
        pk = _pk(account_id)
        wanted = ["ACCOUNT", *dict.fromkeys(_sk(*key) for key in keys)]
        if with_policy:
            wanted.append(POLICY_SK)
        # PartnerItem's connection knows the table's key schema, so no DescribeTable precedes the call;
        # the items it returns are turned into their own models below. Its keys are serialized already,
        # as PynamoDB's own `Model.batch_get` passes them (the annotation says `str`).
        connection = PartnerItem._get_connection()
        table = PartnerItem.Meta.table_name
        pending: list[Any] = [{"PK": {"S": pk}, "SK": {"S": sk}} for sk in wanted]
        raw_items: list[dict[str, Any]] = []
        while pending:
            answer = connection.batch_get_item(pending, consistent_read=True)
            raw_items += answer.get("Responses", {}).get(table, [])
            pending = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        account, policy, records = None, None, {}
        for raw in raw_items:
            sk = raw["SK"]["S"]
            if sk == "ACCOUNT":
                account = DynamoAccountRepository.to_domain(AccountItem.from_raw_data(raw))
            elif sk == POLICY_SK:
                policy = policy_from(DunningPolicyItem.from_raw_data(raw))
            else:
                record = _from_item(PartnerItem.from_raw_data(raw))
                records[(_kind_of(record), record.id)] = record
        return AccountRecords(account, records, policy)

    def list_records(
        self, account_id: str, kind: RecordKind, limit: int, cursor: Cursor | None
    ) -> tuple[list[Record], Cursor | None]:
        return self.filter_records(account_id, kind, DealFilters(), limit, cursor)

    def filter_deals(
        self, account_id: str, kind: RecordKind, filters: DealFilters, limit: int, cursor: Cursor | None
    ) -> tuple[list[Deal], Cursor | None]:
        """One Query: of the index of the most selective filter given, the others as its filter."""
        records, next_cursor = self.filter_records(account_id, kind, filters, limit, cursor)
        return [r for r in records if isinstance(r, Deal)], next_cursor

    def filter_records(
        self, account_id: str, kind: RecordKind, filters: DealFilters, limit: int, cursor: Cursor | None
    ) -> tuple[list[Record], Cursor | None]:
        """Clients (rule, apporteur) or deals (and client, status, product) matching the filters: one
        Query of the index of the most selective filter given, the others as its filter expression. A
        page may hold fewer than `limit` records while more follow (the filter drops some)."""
        wanted: list[tuple[str, Any, str]] = []
        if filters.apporteur_id:
            wanted.append(("APPORTEUR", PartnerItem.by_apporteur, filters.apporteur_id))
        if filters.client_id:
            wanted.append(("CLIENT", PartnerItem.by_client, filters.client_id))
        if filters.communication_rule:
            wanted.append(("RULE", PartnerItem.by_rule, filters.communication_rule))
        if filters.status:
            wanted.append(("STATUS", PartnerItem.by_status, filters.status))
        condition: Condition | None = (
            PartnerItem.product_id == filters.product_id if filters.product_id else None
        )
        if not wanted:
            check_cursor(cursor, "PK", _pk(account_id))
            query = PartnerItem.query(
                _pk(account_id),
                PartnerItem.sk.startswith(f"{kind.value.upper()}#"),
                filter_condition=condition,
                limit=limit,
                last_evaluated_key=cursor,
            )
            return [_from_item(item) for item in query], query.last_evaluated_key
        (name, index, value), rest = wanted[0], wanted[1:]
        partition = _index_key(account_id, kind, name, value)
        number = {"RULE": 1, "APPORTEUR": 2, "CLIENT": 3, "STATUS": 4}[name]
        check_cursor(cursor, f"GSI{number}PK", partition)
        attributes = {"RULE": PartnerItem.gsi1_pk, "APPORTEUR": PartnerItem.gsi2_pk}
        attributes |= {"CLIENT": PartnerItem.gsi3_pk, "STATUS": PartnerItem.gsi4_pk}
        for other, _, other_value in rest:
            term = attributes[other] == _index_key(account_id, kind, other, other_value)
            condition = term if condition is None else condition & term
        query = index.query(partition, filter_condition=condition, limit=limit, last_evaluated_key=cursor)
        return [_from_item(item) for item in query], query.last_evaluated_key

    def remove(
        self,
        account_id: str,
        record: tuple[RecordKind, str],
        dependents: Iterable[tuple[RecordKind, str]],
        audit: AuditEntry,
    ) -> None:
        """Erase a record and those that depend on it: the dependents first, then the record with the
        audit entry in one transaction, written only while the record exists, so a retried erasure
        records itself once. Idempotent."""
        with PartnerItem.batch_write() as batch:
            for kind, record_id in dependents:
                batch.delete(PartnerItem(_pk(account_id), _sk(kind, record_id)))
        try:
            with TransactWrite(connection=transactions()) as transaction:
                transaction.delete(
                    PartnerItem(_pk(account_id), _sk(*record)),
                    condition=PartnerItem.pk.exists(),
                    add_version_condition=False,
                )
                transaction.save(audit_item(audit), condition=AuditEntryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            if not condition_failed(exc):
                raise

    def records(self, account_id: str, keys: Iterable[tuple[RecordKind, str]]) -> dict[str, Record]:
        """Up to 100 records by kind and id in one BatchGetItem, by id; missing ones are left out."""
        wanted = sorted({(_pk(account_id), _sk(kind, record_id)) for kind, record_id in keys})
        return {record.id: record for record in map(_from_item, PartnerItem.batch_get(wanted))}

    def deals(self, account_id: str, kind: RecordKind, ids: list[str]) -> dict[str, Deal]:
        """Up to 100 deals by id in one BatchGetItem (the bulk worker's read)."""
        keys = [(_pk(account_id), _sk(kind, record_id)) for record_id in dict.fromkeys(ids)]
        found: dict[str, Deal] = {}
        for item in PartnerItem.batch_get(keys):
            deal = _from_item(item)
            if isinstance(deal, Deal):
                found[deal.id] = deal
        return found

    def set_rule(self, deal: Deal, rule: CommunicationRule, at: datetime) -> bool:
        """Change a deal's rule if it is still the version that was read and still has an apporteur;
        False when it changed meanwhile (the caller reads it again)."""
        changed = replace(deal, commissioning=replace(deal.commissioning, communication_rule=rule))
        item = _to_item(deal)
        try:
            item.update(
                actions=[
                    PartnerItem.communication_rule.set(rule.value),
                    PartnerItem.gsi1_pk.set(
                        _index_key(deal.account_id, deal.kind, "RULE", changed.rule_filter)
                    ),
                    PartnerItem.updated_at.set(at),
                ],
                condition=PartnerItem.apporteur_id.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
