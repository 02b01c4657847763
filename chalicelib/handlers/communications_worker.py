"""SQS worker of the communications queue: one message names one communication to deliver.

Each record is delivered through the Powertools idempotency utility keyed on (account, communication):
a redelivered or duplicated message finds the first run's record and sends nothing. A throttled or
failing record is reported in `batchItemFailures` and comes back later; after the queue's
maxReceiveCount it rests in the DLQ, and the still-queued communication is re-queued by the tick.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from chalicelib.observability import logger
from chalicelib.services.communications import DeliveryRequest, deliver
from chalicelib.wiring import container

IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[account_id, communication_id]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)


def _deliver(message: dict[str, Any]) -> dict[str, Any]:
    services = container()
    status = deliver(
        DeliveryRequest.from_message(message),
        services.communications,
        services.mailer,
        services.suppressions,
        services.now(),
        services.portal_links,
    )
    return {"status": status.value if status else None}


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process one SQS batch; answer which records failed so that only those come back."""
    services = container()
    deliver_once = idempotent_function(
        data_keyword_argument="message", persistence_store=services.idempotency_store, config=IDEMPOTENCY
    )(_deliver)
    if context is not None:
        IDEMPOTENCY.register_lambda_context(context)

    def record_handler(record: SQSRecord) -> None:
        try:
            message = json.loads(record.body)
        except ValueError:
            logger.error(
                "unreadable message on the communications queue", extra={"message_id": record.message_id}
            )
            raise
        deliver_once(message=message)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    answer = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(answer)
