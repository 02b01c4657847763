"""SQS worker of the communications queue: one message names one communication to deliver.

Each record is delivered once by a claim on the communication itself (one conditional write that
also reads it, `CommunicationRepository.claim`): a redelivered or duplicated message finds it claimed or
settled and sends nothing, and the claims are spread over the communications' 16 partitions per account.
A throttled or failing record is reported in `batchItemFailures` and comes back later; after the
queue's maxReceiveCount it rests in the DLQ, and the still-queued communication is re-queued by the tick.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.services.communications import DeliveryRequest, deliver
from chalicelib.wiring import container


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process one SQS batch; answer which records failed so that only those come back."""
    services = container()

    def record_handler(record: SQSRecord) -> None:
        try:
            message = json.loads(record.body)
        except ValueError:
            logger.error(
                "unreadable message on the communications queue", extra={"message_id": record.message_id}
            )
            raise
        deliver(
            DeliveryRequest.from_message(message),
            services.communications,
            services.mailer,
            services.suppressions,
            services.now(),
            services.portal_links,
            services.unsubscribe_links,
        )

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    answer = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(answer)
