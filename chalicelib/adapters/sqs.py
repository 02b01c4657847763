"""SQS behind the MessageQueue port. The queue URL is looked up by name once per container."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

_BATCH = 10


class SqsQueue:
    def __init__(self, client: Any, queue_name: str) -> None:
        self._client = client
        self._queue_name = queue_name
        self._url: str | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._url is None:
            with self._lock:
                if self._url is None:
                    self._url = str(self._client.get_queue_url(QueueName=self._queue_name)["QueueUrl"])
        return self._url

    @property
    def arn(self) -> str:
        """SQS URLs read https://host/<account>/<name>: the ARN follows without another call."""
        account, name = self.url.rstrip("/").split("/")[-2:]
        return f"arn:aws:sqs:{self._client.meta.region_name}:{account}:{name}"

    def send(self, body: dict[str, Any], delay_seconds: int = 0) -> None:
        """`delay_seconds` (at most 900, SQS's limit) keeps the message invisible that long: a webhook's
        first retry waits 5 seconds this way."""
        extra = {"DelaySeconds": min(delay_seconds, 900)} if delay_seconds else {}
        self._client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, sort_keys=True), **extra)

    def send_many(self, bodies: Iterable[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for body in bodies:
            batch.append(body)
            if len(batch) == _BATCH:
                self._send_batch(batch)
                batch = []
        if batch:
            self._send_batch(batch)

    def _send_batch(self, bodies: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "MessageBody": json.dumps(b, sort_keys=True)} for i, b in enumerate(bodies)]
        answer = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
        failed = answer.get("Failed") or []
        if failed:
            retry = [entries[int(f["Id"])] for f in failed if not f.get("SenderFault")]
            if retry:
                again = self._client.send_message_batch(QueueUrl=self.url, Entries=retry)
                if again.get("Failed"):
                    raise RuntimeError(f"SQS refused {len(again['Failed'])} messages twice")
            if any(f.get("SenderFault") for f in failed):
                raise RuntimeError("SQS refused messages as malformed")
