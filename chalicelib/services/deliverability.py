"""Use case of the `ses_events` handler: record a bounce or a complaint on its communication, and stop
writing to an address that bounced for good or complained. Replaying the same event changes nothing."""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.communications import Communication, communication_event, parties_of
from chalicelib.domain.deliverability import Acceptance, DeliveryFeedback
from chalicelib.domain.errors import StaleVersion
from chalicelib.observability import logger
from chalicelib.services.events import announce
from chalicelib.services.ports import CommunicationRepository, MessageQueue, SuppressionList

FEEDBACK_ATTEMPTS = 3
"""A bounce and a complaint (or a worker's outcome) for one email may land at once: each re-reads it."""


def record_feedback(
    feedback: DeliveryFeedback,
    communications: CommunicationRepository,
    suppressions: SuppressionList,
    now: datetime,
    webhooks: MessageQueue | None = None,
) -> bool:
    """False when the communication is unknown (the event is then dropped, and logged). The new status is
    written with its event (`communication.bounced` or `.complained`) on the condition that the status is
    still the one read, so the same SES event twice, or two at once, says it once."""
    log_keys = {"communication_id": feedback.communication_id, "feedback": feedback.kind.value}
    reason = f"{feedback.kind.value}: {feedback.detail}"
    for _ in range(FEEDBACK_ATTEMPTS):
        communication = communications.get(feedback.account_id, feedback.communication_id)
        if communication is None:
            logger.warning("SES feedback for an unknown communication", extra=log_keys)
            return False
        if _mark(communication, feedback, reason, communications, now, webhooks):
            break
    else:
        raise StaleVersion()  # it kept changing: the message comes back and is recorded then
    if feedback.suppresses:
        for address in feedback.addresses:
            suppressions.add(
                feedback.account_id, address, reason, feedback.communication_id, feedback.at or now
            )
    logger.info("SES feedback recorded", extra={**log_keys, "suppressed": feedback.suppresses})
    return True


def _mark(
    communication: Communication,
    feedback: DeliveryFeedback,
    reason: str,
    communications: CommunicationRepository,
    now: datetime,
    webhooks: MessageQueue | None,
) -> bool:
    """Write the feedback on the communication as read; False when it changed meanwhile (read it again)."""
    marked = communication.with_feedback(feedback.status, reason)
    if marked == communication:
        return True  # a replay, or a bounce after a complaint: nothing changes, nothing is said
    # As of when Relais learnt it (SES's own moment is in the reason's source): the activity log then
    # never shows a bounce before the sending it follows.
    event = communication_event(
        marked,
        now,
        parties=parties_of(communication, feedback.addresses),
        bounce_type=feedback.bounce_type,
    )
    written = communications.settle(
        marked, expected=communication.status, events=[event] if event else [], at=now
    )
    if written is None:
        return False
    if webhooks is not None:
        announce(written, webhooks)
    return True


def record_acceptance(
    acceptance: Acceptance,
    communications: CommunicationRepository,
    now: datetime,
    webhooks: MessageQueue | None = None,
) -> bool:
    """SES accepted an email: settle it `sent` if its worker died before recording the outcome, so that
    the retry of its message does not send it again. Usually the worker was first, and nothing changes.

    A mailing's email goes as one copy per addressee, and each copy's Send event settles that copy only:
    its address joins `delivered_to`, and the email is `sent` (and counted) once every copy is accepted.
    Until then a retry, after the claim's lease, sends only the copies still waiting. False when the
    email was not settled by this event. Settling writes `communication.sent`, as the worker would have;
    on an email whose bounce or complaint came first, it keeps that status and counts the sending, as the
    worker's outcome would (`Communication.awaits_its_sending`)."""
    if acceptance.mailing_id and acceptance.addresses:
        current = communications.record_delivered(
            acceptance.account_id, acceptance.communication_id, acceptance.addresses
        )
        if current is None or current.copies_waiting:
            return False
    else:
        current = communications.get(acceptance.account_id, acceptance.communication_id)
    at = acceptance.at or now
    event = (
        communication_event(
            current.sent(acceptance.subject or current.subject or "", acceptance.provider_message_id, at), at
        )
        if current is not None
        else None
    )
    settled = communications.accept(
        acceptance.account_id,
        acceptance.communication_id,
        acceptance.mailing_id,
        acceptance.provider_message_id,
        acceptance.subject,
        at,
        events=[event] if event else [],
    )
    if settled is None:
        return False
    if webhooks is not None:
        announce(settled, webhooks)
    logger.info(
        "communication settled by SES's Send event", extra={"communication_id": acceptance.communication_id}
    )
    return True
