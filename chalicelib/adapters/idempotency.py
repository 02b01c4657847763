"""Powertools' DynamoDB idempotency store, with its records spread over several partitions.

Powertools keeps every record of a store under one static partition key when the table has a sort key
(ours does: PK/SK). A mailing of 100,000 emails would then write 100,000 records into one partition, past
the ~1,000 writes per second a partition takes. This layer adds a shard suffix derived from the
idempotency key itself, so the same key always lands on the same shard and lookups stay one GetItem.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer


def shard_of(idempotency_key: str, shards: int) -> int:
    return int(hashlib.sha256(idempotency_key.encode()).hexdigest()[:8], 16) % shards


class ShardedDynamoDBPersistenceLayer(DynamoDBPersistenceLayer):
    def __init__(self, *, shards: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shards = shards

    def _get_key(self, idempotency_key: str) -> dict[str, Any]:
        """Powertools' single key-building hook (used by get, put, update and delete alike)."""
        partition = f"{self.static_pk_value}#{shard_of(idempotency_key, self.shards)}"
        return {self.key_attr: {"S": partition}, str(self.sort_key_attr): {"S": idempotency_key}}
