"""SQS worker of the SES events queue: bounces and complaints update the communication and the account's
suppression list; a Send event settles an email whose worker died right after SES accepted it.
Recording an event is idempotent, so a redelivered message is harmless; an unreadable one is reported
in `batchItemFailures` and ends in the DLQ after maxReceiveCount."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.communications import FEEDBACK_STATUSES, CommunicationStatus
from chalicelib.domain.deliverability import parse_acceptance, parse_feedback
from chalicelib.observability import logger
from chalicelib.services.deliverability import record_acceptance, record_feedback
from chalicelib.wiring import container

_MAYBE_UNSETTLED = {CommunicationStatus.SENDING, *FEEDBACK_STATUSES}


def _still_sending(records: list[dict[str, Any]], communications: Any) -> set[tuple[str, str]]:
    """Of the batch's Send events, the emails still `sending` (their worker died after SES accepted
    them), or shown bounced or complained (that feedback may have come before their sending was
    recorded), in one read for the whole batch: usually none, and then the events cost no write at all."""
    keys = []
    for record in records:
        try:
            acceptance = parse_acceptance(json.loads(record.get("body") or ""))
        except (ValueError, TypeError):
            continue
        if acceptance is not None:
            keys.append((acceptance.account_id, acceptance.communication_id))
    if not keys:
        return set()
    statuses = communications.statuses(keys)
    return {key for key, status in statuses.items() if status in _MAYBE_UNSETTLED}


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services = container()
    sending = _still_sending(event.get("Records") or [], services.communications)

    def record_handler(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
            feedback = parse_feedback(body)
        except (ValueError, TypeError):
            logger.error(
                "unreadable message on the SES events queue", extra={"message_id": record.message_id}
            )
            raise
        if feedback is not None:
            record_feedback(
                feedback,
                services.communications,
                services.suppressions,
                services.now(),
                services.webhooks_queue,
            )
            return
        acceptance = parse_acceptance(body)
        if acceptance is not None and (acceptance.account_id, acceptance.communication_id) in sending:
            record_acceptance(acceptance, services.communications, services.now(), services.webhooks_queue)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
