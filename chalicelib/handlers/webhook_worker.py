"""SQS worker of the webhooks queue: an event's message is fanned out to the account's endpoints that want
it, a delivery message is one signed POST to one endpoint. Each record is its own unit: a receiver that
hangs (10 s at most), resets or answers 500 makes that delivery wait for its retry, never the others; an
unreadable message is reported in `batchItemFailures` and ends in the DLQ after maxReceiveCount."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.events import Event
from chalicelib.observability import logger
from chalicelib.services.webhooks import AttemptContext, AttemptRequest, attempt, fan_out, is_attempt
from chalicelib.wiring import container


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services = container()

    def record_handler(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except ValueError:
            logger.error("unreadable message on the webhooks queue", extra={"message_id": record.message_id})
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

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
