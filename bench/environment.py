"""The local stage's environment without an AWS endpoint, as tests/conftest.py sets it for the test suite.

Both benches need it: the AWS-call count runs the app in this process on moto's in-process mock (which
intercepts calls only when no endpoint is set), and the cold import times fresh interpreters started with it.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from chalicelib.local.stack import local_environment


def local_stage_environment() -> dict[str, str]:
    environment = {**os.environ, **local_environment(moto_url="")}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        environment.pop(name, None)
    return environment


def deployed_stage_environment() -> dict[str, str]:
    """What a Lambda of the prod stage imports the app with: no local-only routes."""
    return {
        **local_stage_environment(),
        "RELAIS_STAGE": "prod",
        # A deployed stage refuses the local stage's short secrets (chalicelib/config.py).
        "RELAIS_LINK_SECRET": "bench-link-secret-" + "x" * 32,
        "RELAIS_JWT_SECRET": "bench-jwt-secret-" + "x" * 32,
    }


@contextmanager
def local_stage() -> Iterator[None]:
    """This process runs in the local stage's environment, restored afterwards for the next bench."""
    saved = dict(os.environ)
    stage = local_stage_environment()
    os.environ.clear()
    os.environ.update(stage)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _NoCopy:
    """Stands in for the `copy` module inside moto's TransactWriteItems, whose rollback copies the whole
    table once per item of every transaction: seconds per transaction at 20,000 items."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """(table, hash, range) of every item a transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        key = operation.get("Key") or operation.get("Item") or {}
        hash_value = DynamoType(key[table.hash_key_attr]) if table.hash_key_attr in key else None
        range_attr = table.range_key_attr
        range_value = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
        touched.append((table, hash_value, range_value))
    return touched


@contextmanager
def fast_moto_transactions() -> Iterator[None]:
    """moto's TransactWriteItems rolling back only the items a transaction names, instead of copying
    the whole table once per item. It changes the emulator's speed, not the calls the app makes, nor
    what a failed transaction leaves (nothing): the figures count calls, never time. moto's `copy` is
    swapped for the whole block, not per call, so that transactions run at once by a worker's threads
    cannot leave it swapped after the block (its only other use, UpdateItem's copy of the old item, feeds
    a table stream, which Relais's table has not)."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def rolling_back_what_it_touched(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        before = []
        for table, hash_value, range_value in _touched(self, transact_items):
            item = table.items.get(hash_value, {}).get(range_value)
            before.append((table, hash_value, range_value, copy.deepcopy(item)))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in before:
                if range_value is None:
                    table.items.pop(hash_value, None) if item is None else table.items.update(
                        {hash_value: item}
                    )
                elif item is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise

    saved = getattr(models, "copy")  # noqa: B009 (moto's module-level `import copy`)
    setattr(models, "copy", _NoCopy)  # noqa: B010
    DynamoDBBackend.transact_write_items = rolling_back_what_it_touched  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
        setattr(models, "copy", saved)  # noqa: B010


@contextmanager
def fast_moto_queues() -> Iterator[None]:
    """moto's SQS without its message counts, which it recomputes over the whole queue for every message
    sent and received (quadratic at thousands of messages); nothing in Relais reads those counts, and
    messages never outlive their retention within a bench. Speed of the emulator only, as above."""
    from moto.sqs.models import Queue, SQSBackend

    patched = {
        "approximate_number_of_messages_delayed": property(lambda self: 0),
        "approximate_number_of_messages_not_visible": property(lambda self: 0),
        "approximate_number_of_messages": property(lambda self: 0),
    }
    saved = {name: Queue.__dict__[name] for name in patched}
    retention = SQSBackend.is_message_valid_based_on_retention_period
    for name, value in patched.items():
        setattr(Queue, name, value)
    SQSBackend.is_message_valid_based_on_retention_period = lambda self, queue, message: True  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(Queue, name, value)
        SQSBackend.is_message_valid_based_on_retention_period = retention  # type: ignore[method-assign]


def fast_moto_partition_queries() -> AbstractContextManager[None]:
    """moto's Query on the table itself (not on an index) reading only the partition it names, instead of
    sorting the whole table first: the tick's 200 `installments_of` took over 3 minutes at 20,000
    contracts. The same items come back in the same order (moto keeps that partition's items and sorts
    them by range key either way): speed of the emulator only, the calls counted are unchanged. A
    `begins_with` on a string sort key hands only the items it can match (moto still tests each): the
    webhooks fan-out's Query of an account's endpoints sorted the account's thousand contracts."""
    return _handing_items(_partition_items)


def _partition_items(table: Any, arguments: dict[str, Any]) -> list[Any] | None:
    hash_key = arguments.get("hash_key")
    if arguments.get("index_name") or hash_key is None:
        return None
    items: list[Any] = []
    if hash_key in table.items:
        partition = table.items[hash_key]
        items = list(partition.values()) if table.range_key_attr else [partition]
    prefix = _string_prefix(arguments.get("range_comparison"), arguments.get("range_objs"))
    if prefix is not None:
        # What DynamoDB seeks to: moto would sort the whole partition, then test each sort key.
        items = [i for i in items if not _string_key(i.range_key) or i.range_key.value.startswith(prefix)]
    return items


def fast_moto_index_queries() -> AbstractContextManager[None]:
    """moto's Query on an index reading only the items whose index key is the one asked, instead of
    sorting the whole table by its own keys first (then filtering it, then sorting what is left by the
    index's keys): the tick's Queries of the `due` index cost a whole-table sort each, and the table
    holds every contract, email and event of a scenario. moto still checks the key of every item handed
    to it and sorts them by the index's keys then the table's (a total order, whatever order they come
    in), so the same items come back in the same order: speed of the emulator only."""
    return _handing_items(_index_items)


def _index_items(table: Any, arguments: dict[str, Any]) -> list[Any] | None:
    conditions = arguments.get("hash_key_conditions")
    if not arguments.get("index_name") or not conditions:
        return None
    every: list[Any] = [
        item
        for partition in table.items.values()
        for item in (partition.values() if table.range_key_attr else [partition])
    ]
    return [i for i in every if all(_may_equal(i.attrs.get(n), value) for n, value in conditions)]


@contextmanager
def _handing_items(select: Callable[[Any, dict[str, Any]], list[Any] | None]) -> Iterator[None]:
    """moto's Query reading, instead of the whole table, the items `select` picks from the Query's
    arguments (None: the whole table, as moto reads it). The items are handed to moto's `all_items`
    through a thread-local, so that Queries run at once by a worker's threads each read their own; one
    such patch inside another keeps moto's signature (`functools.wraps`), so both apply."""
    from moto.dynamodb.models.table import Table

    original = Table.query
    all_items = Table.all_items
    signature = inspect.signature(original)
    handed = threading.local()

    def the_items_handed(self: Table) -> Any:
        table, items = getattr(handed, "items", (None, None))
        return items if table is self else all_items(self)

    @functools.wraps(original)
    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        items = select(self, signature.bind(self, *args, **kwargs).arguments)
        if items is None:
            return original(self, *args, **kwargs)
        handed.items = (self, items)
        try:
            return original(self, *args, **kwargs)
        finally:
            handed.items = (None, None)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = the_items_handed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = original  # type: ignore[method-assign]
        Table.all_items = all_items  # type: ignore[method-assign]


def _string_prefix(comparison: str | None, operands: list[Any] | None) -> str | None:
    """The prefix of a `begins_with` on a string sort key, else None."""
    if comparison != "BEGINS_WITH" or not operands or operands[0].type != "S":
        return None
    return str(operands[0].value)


def _string_key(key: Any) -> bool:
    return key is not None and key.type == "S"


def _may_equal(stored: Any, asked: Any) -> bool:
    """Whether an item's attribute may equal a key asked for, as moto's own (slower) check decides: the
    same string, or any value moto's equality must judge (numbers compare by value)."""
    if stored is None:
        return False
    if stored.type == asked.type and stored.value == asked.value:
        return True
    return bool(stored.type != "S" and stored == asked)


_ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _attribute_value_on_the_wire(value: dict[str, Any]) -> dict[str, Any]:
    """What moto's generic serializer writes for one DynamoDB AttributeValue (a {type: value} dict from
    `dynamo_to_dict`): strings as they are, blobs in base64, maps and lists member by member."""
    wire: dict[str, Any] = {}
    for member, inner in value.items():
        if inner is None or member not in _ATTRIBUTE_VALUE_MEMBERS:
            continue
        if member == "M":
            wire[member] = {
                name: _attribute_value_on_the_wire(nested)
                for name, nested in inner.items()
                if nested is not None
            }
        elif member == "L":
            wire[member] = [_attribute_value_on_the_wire(nested) for nested in inner]
        elif member == "B":
            wire[member] = _base64(inner)
        elif member == "BS":
            wire[member] = [_base64(blob) for blob in inner]
        elif member in ("S", "N"):
            wire[member] = str(inner)
        elif member in ("SS", "NS"):
            wire[member] = [str(text) for text in inner]
        else:
            wire[member] = inner
    return wire


def _base64(blob: bytes | str) -> str:
    import base64

    raw = blob.encode("utf-8") if isinstance(blob, str) else blob
    return base64.b64encode(raw).strip().decode("utf-8")


@contextmanager
def fast_moto_item_serialization() -> Iterator[None]:
    """moto's JSON serializer writing DynamoDB's AttributeValues directly, instead of walking botocore's
    shape for each one (ten members, each looked up under five aliases: about 5 ms per GetItem of one
    of Relais's items, half the time of a mailing under faults). The same JSON goes back to the client:
    speed of the emulator only, neither the calls the app makes nor what they return change."""
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure

    def attribute_values_directly(
        self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if (
            key
            and shape.name == "AttributeValue"
            and isinstance(value, dict)
            and self.operation_model.service_model.service_name == "dynamodb"
        ):
            serialized[self.get_serialized_name(shape, key)] = _attribute_value_on_the_wire(value)
            return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = attribute_values_directly  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseJSONSerializer._serialize_type_structure = original  # type: ignore[method-assign]


@contextmanager
def fast_moto_receipt_handles() -> Iterator[None]:
    """moto's SQS finding the message a receipt handle names through an index of the handles it gave,
    instead of asking every message of the queue whether it ever had that handle (twice per delete, once
    per visibility change: quadratic when a worker deletes a thousand messages ten at a time). A handle
    the index does not know (given before the patch) goes through moto's own search, and a message must
    still be in the queue named: the same messages are deleted or made visible, and the same handles
    refused. Speed of the emulator only, as above."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import Message, Queue, SQSBackend

    given: dict[str, Message] = {}
    mark_received = Message.mark_received
    delete_message = Queue.delete_message
    change_message_visibility = SQSBackend.change_message_visibility

    def indexing_the_handle(self: Message, visibility_timeout: int | None = None) -> None:
        mark_received(self, visibility_timeout)
        given[str(self.receipt_handle)] = self

    def in_queue(queue: Queue, receipt_handle: str) -> Message | None:
        message = given.get(receipt_handle)
        return message if message is not None and any(m is message for m in queue._messages) else None

    def deleting_by_index(self: Queue, receipt_handle: str) -> None:
        message = in_queue(self, receipt_handle)
        if receipt_handle in self.deleted_messages or message is None:
            delete_message(self, receipt_handle)
            return
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]
        self._messages = [m for m in self._messages if m is not message]

    def changing_by_index(
        self: SQSBackend, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        message = in_queue(queue, receipt_handle)
        if message is None:
            change_message_visibility(self, queue_name, receipt_handle, visibility_timeout)
            return
        given_visibility_timeout = unix_time_millis() + int(visibility_timeout) * 1000
        if given_visibility_timeout - message.sent_timestamp > 43200 * 1000:  # type: ignore[operator]
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible and message in queue.pending_messages:
            queue.pending_messages.remove(message)

    Message.mark_received = indexing_the_handle  # type: ignore[method-assign]
    Queue.delete_message = deleting_by_index  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = changing_by_index  # type: ignore[method-assign]
    try:
        yield
    finally:
        Message.mark_received = mark_received  # type: ignore[method-assign]
        Queue.delete_message = delete_message  # type: ignore[method-assign]
        SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]
