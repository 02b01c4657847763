"""Local stand-in for Lambda's SQS event source mapping: receive, invoke the handler, delete what succeeded.

Failed records (the handler's `batchItemFailures`) stay on the queue and come back after the visibility
timeout, as they would in AWS, and land in the DLQ after maxReceiveCount.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from chalice.local import LambdaContext

from chalicelib.adapters.sqs import SqsQueue
from chalicelib.handlers import bulk_worker, communications_worker, ses_events, webhook_worker
from chalicelib.observability import logger
from chalicelib.wiring import container

QueueHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
_pump_lock = threading.Lock()


def _handlers() -> list[tuple[SqsQueue, str, QueueHandler]]:
    """(queue, function name, handler), as the event source mappings of the deployed stack. The queues are
    the container's own adapters, so their URLs are looked up once, not on every drain."""
    services = container()
    return [
        (services.bulk_queue, "bulk_worker", bulk_worker.handle),
        (services.communications_queue, "communications_worker", communications_worker.handle),
        (services.ses_events_queue, "ses_events", ses_events.handle),
        (services.webhooks_queue, "webhook_worker", webhook_worker.handle),
    ]


def _as_lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": container().settings.region,
    }


def _pump_queue(sqs: Any, queue: SqsQueue, function_name: str, handler: QueueHandler) -> int:
    url, arn = queue.url, queue.arn
    processed = 0
    while True:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        messages = received.get("Messages", [])
        if not messages:
            return processed
        event = {"Records": [_as_lambda_record(m, arn) for m in messages]}
        context = LambdaContext(function_name=function_name, memory_size=256, max_runtime_ms=60_000)
        context.aws_request_id = str(uuid.uuid4())
        try:
            answer = handler(event, context) or {}
            failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
        except Exception:
            logger.exception("local queue handler failed for the whole batch", extra={"queue": url})
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        processed += len(done)


def drain() -> int:
    """Deliver every message waiting on every queue now, including those queued meanwhile (an email's
    bounce event, a bulk job's next chunk), until a whole pass finds every queue empty; returns how many
    messages were processed."""
    sqs = container().client("sqs")
    processed = 0
    with _pump_lock:
        while True:
            this_pass = sum(_pump_queue(sqs, queue, name, handler) for queue, name, handler in _handlers())
            if not this_pass:
                return processed
            processed += this_pass
