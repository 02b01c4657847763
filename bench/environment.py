"""The local stage's environment without an AWS endpoint, as tests/conftest.py sets it for the test suite.

Both benches need it: the AWS-call count runs the app in this process on moto's in-process mock (which
intercepts calls only when no endpoint is set), and the cold import times fresh interpreters started with it.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    what a failed transaction leaves (nothing): the figures count calls, never time."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def rolling_back_what_it_touched(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        before = []
        for table, hash_value, range_value in _touched(self, transact_items):
            item = table.items.get(hash_value, {}).get(range_value)
            before.append((table, hash_value, range_value, copy.deepcopy(item)))
        saved = getattr(models, "copy")  # noqa: B009 (moto's module-level `import copy`)
        setattr(models, "copy", _NoCopy)  # noqa: B010
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
        finally:
            setattr(models, "copy", saved)  # noqa: B010

    DynamoDBBackend.transact_write_items = rolling_back_what_it_touched  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]


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


@contextmanager
def fast_moto_partition_queries() -> Iterator[None]:
    """moto's Query on the table itself (not on an index) reading only the partition it names, instead of
    sorting the whole table first: the tick's 200 `installments_of` took over 3 minutes at 20,000
    contracts. The same items come back in the same order (moto keeps that partition's items and sorts
    them by range key either way): speed of the emulator only, the calls counted are unchanged."""
    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)
    one_at_a_time = threading.Lock()

    def partition_only(self: Table, *args: Any, **kwargs: Any) -> Any:
        # The webhook worker queries from several threads: while one query sees only its partition, no
        # other query may run, or it would see that partition too.
        with one_at_a_time:
            arguments = signature.bind(self, *args, **kwargs).arguments
            hash_key = arguments.get("hash_key")
            if arguments.get("index_name") or hash_key is None:
                return original(self, *args, **kwargs)
            items: list[Any] = []
            if hash_key in self.items:
                partition = self.items[hash_key]
                items = list(partition.values()) if self.range_key_attr else [partition]
            self.all_items = lambda: items  # type: ignore[method-assign]
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.all_items

    Table.query = partition_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = original  # type: ignore[method-assign]
