"""SQS worker of the webhooks queue: an event's message is fanned out to the account's endpoints that want
it, a delivery message is one signed POST to one endpoint.

The records of a batch run side by side, each on its own thread: a receiver that hangs (10 s at most),
resets or answers 500 makes its own delivery wait for its retry, never the other records of the batch,
so a batch takes about as long as its slowest POST. Two records of the same work (a fan-out done twice
queues the same deliveries) run one after the other, so the second posts nothing. The outcomes then go
through Powertools' batch processing like the other workers: a record that raised is reported in
`batchItemFailures`, comes back alone, and ends in the DLQ after maxReceiveCount.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.events import Event
from chalicelib.observability import logger
from chalicelib.services.webhooks import AttemptContext, AttemptRequest, attempt, fan_out, is_attempt
from chalicelib.wiring import container

PARALLEL_RECORDS = 10
"""SQS hands Lambda at most 10 records a batch (app.py's batch_size): one thread each."""


def _process(body_text: str, message_id: str) -> None:
    services = container()
    try:
        body = json.loads(body_text)
    except ValueError:
        logger.error("unreadable message on the webhooks queue", extra={"message_id": message_id})
        raise
    if is_attempt(body):
        attempt(
            AttemptRequest.from_message(body),
            AttemptContext(
                store=services.webhooks,
                transport=services.webhook_transport,
                queue=services.webhooks_queue,
                accounts=services.accounts,
                emails=services.communications_queue,
                now=services.now(),
            ),
        )
    else:
        fan_out(Event.from_message(body), services.webhooks, services.webhooks_queue)


def _same_work(record: dict[str, Any]) -> str:
    """Records doing the same work (one attempt of one delivery, one event's fan-out) share a key: they run
    one after the other, so the second finds the first recorded and posts nothing."""
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return str(record["messageId"])
    if not isinstance(body, dict):
        return str(record["messageId"])
    if is_attempt(body):
        return f"{body.get('delivery_id')}#{body.get('attempt')}"
    return str(body.get("id") or record["messageId"])


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_same_work(record), []).append(record)
    failures: dict[str, BaseException | None] = {}

    def run(group: list[dict[str, Any]]) -> None:
        for record in group:
            try:
                _process(record.get("body") or "", record["messageId"])
                failures[record["messageId"]] = None
            except Exception as exc:  # not hidden: logged, then reported as this record's failure below
                logger.exception("webhook record failed", extra={"message_id": record["messageId"]})
                failures[record["messageId"]] = exc

    with ThreadPoolExecutor(max_workers=max(1, min(len(groups), PARALLEL_RECORDS))) as pool:
        list(pool.map(run, groups.values()))

    def record_handler(record: SQSRecord) -> None:
        failure = failures.get(record.message_id)
        if failure is not None:
            raise failure

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
