"""SQS worker of the bulk queue: each message is one chunk of a bulk change, one page of a mailing's
fan-out, or the tick's request to resume a job or mailing that stalled. A chunk or page already recorded
changes nothing twice (a redelivery); a failing one is reported in `batchItemFailures` and comes back
alone."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.services import mailings
from chalicelib.services.bulk import (
    MESSAGE_TYPE,
    RESUME_MESSAGE,
    ResumeRequest,
    RuleChunk,
    apply_rule_chunk,
    resume_job,
)
from chalicelib.wiring import container


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services = container()

    def record_handler(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except ValueError:
            logger.error("unreadable message on the bulk queue", extra={"message_id": record.message_id})
            raise
        if body.get("type") == MESSAGE_TYPE:
            apply_rule_chunk(
                RuleChunk.from_message(body),
                services.partners,
                services.jobs,
                services.now(),
                services.webhooks_queue,
            )
        elif body.get("type") == mailings.MESSAGE_TYPE:
            mailings.fan_out_page(
                mailings.MailingPage.from_message(body),
                services.mailings,
                services.accounts,
                services.partners,
                services.unsubscriptions,
                services.suppressions,
                services.communications_queue,
                services.bulk_queue,
                services.now(),
                services.webhooks_queue,
            )
        elif body.get("type") == RESUME_MESSAGE:
            request = ResumeRequest.from_message(body)
            if request.kind == "JOB":
                resume_job(request, services.jobs, services.bulk_queue, services.webhooks_queue)
            else:
                mailings.resume_mailing(
                    request, services.mailings, services.bulk_queue, services.webhooks_queue
                )
        else:
            logger.error("unknown message type on the bulk queue", extra={"type": body.get("type")})
            raise ValueError(f"unknown bulk message type {body.get('type')!r}")

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
