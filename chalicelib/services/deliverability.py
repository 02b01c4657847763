"""Use case of the `ses_events` handler: record a bounce or a complaint on its communication, and stop
writing to an address that bounced for good or complained. Replaying the same event changes nothing."""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.deliverability import DeliveryFeedback
from chalicelib.observability import logger
from chalicelib.services.ports import CommunicationRepository, SuppressionList


def record_feedback(
    feedback: DeliveryFeedback,
    communications: CommunicationRepository,
    suppressions: SuppressionList,
    now: datetime,
) -> bool:
    """False when the communication is unknown (the event is then dropped, and logged)."""
    log_keys = {"communication_id": feedback.communication_id, "feedback": feedback.kind.value}
    communication = communications.get(feedback.account_id, feedback.communication_id)
    if communication is None:
        logger.warning("SES feedback for an unknown communication", extra=log_keys)
        return False
    reason = f"{feedback.kind.value}: {feedback.detail}"
    marked = communication.with_feedback(feedback.status, reason)
    if marked != communication:
        communications.settle(marked)
    if feedback.suppresses:
        for address in feedback.addresses:
            suppressions.add(
                feedback.account_id, address, reason, feedback.communication_id, feedback.at or now
            )
    logger.info("SES feedback recorded", extra={**log_keys, "suppressed": feedback.suppresses})
    return True
