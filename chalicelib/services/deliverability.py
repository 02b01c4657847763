"""Use case of the `ses_events` handler: record a bounce or a complaint on its communication, and stop
writing to an address that bounced for good or complained. Replaying the same event changes nothing."""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.deliverability import Acceptance, DeliveryFeedback
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


def record_acceptance(acceptance: Acceptance, communications: CommunicationRepository, now: datetime) -> bool:
    """SES accepted an email: settle it `sent` if its worker died before recording the outcome, so that
    the retry of its message does not send it again. Usually the worker was first, and nothing changes.

    A mailing's email goes as one copy per addressee, and each copy's Send event settles that copy only:
    its address joins `delivered_to`, and the email is `sent` (and counted) once every copy is accepted.
    Until then a retry, after the claim's lease, sends only the copies still waiting. False when the
    email was not settled by this event."""
    if acceptance.mailing_id and acceptance.addresses:
        current = communications.record_delivered(
            acceptance.account_id, acceptance.communication_id, acceptance.addresses
        )
        if current is None or current.copies_waiting:
            return False
    settled = communications.accept(
        acceptance.account_id,
        acceptance.communication_id,
        acceptance.mailing_id,
        acceptance.provider_message_id,
        acceptance.subject,
        acceptance.at or now,
    )
    if settled:
        logger.info(
            "communication settled by SES's Send event",
            extra={"communication_id": acceptance.communication_id},
        )
    return settled
