"""SQS worker of the communications queue: a message names one communication to deliver, or one
scheduled step the tick found due (an installment's or expected document's step, a dossier's
`deadline_approaching` automation) to decide and write as of the tick's time.

A step is written with its email in one transaction at the version read, so a step delivered twice
writes once; its email then comes back on this queue as a delivery. Each delivery is sent once by a
claim on the communication itself (one conditional write that also reads it,
`CommunicationRepository.claim`): a redelivered or duplicated message finds it claimed or settled and
sends nothing, and the claims are spread over the communications' 16 partitions per account.
A throttled or failing record is reported in `batchItemFailures` and comes back later; after the
queue's maxReceiveCount it rests in the DLQ, and a still-queued communication is re-queued by the tick.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.dunning import DunningPolicy
from chalicelib.observability import logger
from chalicelib.services.communications import DeliveryRequest, deliver
from chalicelib.services.dossiers import (
    DEADLINE_MESSAGE,
    ERASURE_MESSAGE,
    DeadlineRequest,
    ErasureRequest,
    erase_expired,
    fire_deadline,
)
from chalicelib.services.dunning import STEP_MESSAGE, StepRequest, run_step
from chalicelib.wiring import container


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process one SQS batch; answer which records failed so that only those come back."""
    services = container()
    # The steps of one batch are often one account's (a tick queues them oldest first).
    policies: dict[str, DunningPolicy] = {}

    def record_handler(record: SQSRecord) -> None:
        try:
            message = json.loads(record.body)
        except ValueError:
            logger.error(
                "unreadable message on the communications queue", extra={"message_id": record.message_id}
            )
            raise
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == STEP_MESSAGE:
            run_step(StepRequest.from_message(message), services.dunning_context(), policies)
        elif kind == DEADLINE_MESSAGE:
            fire_deadline(
                DeadlineRequest.from_message(message), services.deadlines, services.dossier_context()
            )
        elif kind == ERASURE_MESSAGE:
            erase_expired(
                ErasureRequest.from_message(message), services.documents, services.dossier_context()
            )
        elif kind is None:
            deliver(
                DeliveryRequest.from_message(message),
                services.communications,
                services.mailer,
                services.suppressions,
                services.now(),
                services.portal_links,
                services.unsubscribe_links,
            )
        else:
            logger.error("unknown message type on the communications queue", extra={"type": str(kind)})
            raise ValueError(f"unknown communications message type {kind!r}")

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    answer = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(answer)
