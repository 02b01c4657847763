"""Communication use cases: queue an email (outbox first), deliver it once, and re-queue the forgotten.

Queuing writes the communication before the SQS message, with a retry time on the sparse `due` index.
If the SQS send is lost (or a message ends in a DLQ), the tick finds the still-queued communication at
its retry time and queues it again; delivery is idempotent, so a duplicate message sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from chalicelib.domain.communications import Communication, CommunicationStatus, communication_event
from chalicelib.domain.deliverability import normalize_address
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.events import SYSTEM, Actor, Event
from chalicelib.domain.recipients import Reach, nobody_reason, reachable, readdressed
from chalicelib.domain.templates import (
    UNSUBSCRIBE_SENTENCE,
    TemplateError,
    render_kind,
    with_unsubscribe_footer,
)
from chalicelib.observability import logger
from chalicelib.services.events import announce
from chalicelib.services.ports import (
    CommunicationRepository,
    Mailer,
    MailerOutcomeUnknown,
    MailerThrottled,
    MailerUnavailable,
    MailRejected,
    MessageQueue,
    OutgoingEmail,
    RecipientsSuppressed,
    SuppressionList,
)

RETRY_AFTER = timedelta(minutes=5)


class PortalLinks(Protocol):
    def link_for(self, account_id: str, communication_id: str) -> str:
        """The portal link a dossier email carries, computed from the email (its hash was stored with it)."""
        ...


class UnsubscribeLinks(Protocol):
    def link_for(self, account_id: str, party: str, party_id: str) -> str: ...


@dataclass(frozen=True)
class DeliveryRequest:
    """What travels on the communications queue: just the key of the communication to deliver."""

    account_id: str
    communication_id: str

    def to_message(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "communication_id": self.communication_id}

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> DeliveryRequest:
        account_id, comm_id = body.get("account_id"), body.get("communication_id")
        if not isinstance(account_id, str) or not isinstance(comm_id, str):
            raise InvalidInput("A delivery message needs account_id and communication_id.")
        return cls(account_id, comm_id)


Written = TypeVar("Written")


def write_screened(
    communications: Sequence[Communication], write: Callable[[tuple[Communication, ...]], Written]
) -> Written:
    """Write new communications with the change that decides them. `write` is one transaction, whose
    adapter checks that none of their addresses is on the account's suppression list (so that the worker
    need not look it up), and derives from the communications it is given whatever else it writes (the
    `communication.skipped` event of one sent to nobody). When the adapter reports suppressed addresses,
    the communications are re-addressed without them, by the rules the worker applies (`readdressed`:
    a remaining Cc takes the To, a legal notice is never sent to the apporteur alone, nobody left is
    `skipped`), and written again; an address suppressed meanwhile is left out by the next try."""
    suppressed: frozenset[str] = frozenset()
    while True:
        try:
            return write(tuple(readdressed(c, suppressed) for c in communications))
        except RecipientsSuppressed as exc:
            if exc.addresses <= suppressed:
                raise  # re-addressed without them already: the adapter's report cannot be trusted
            suppressed |= exc.addresses


def skipped_events(
    communications: Sequence[Communication], at: datetime, actor: Actor = SYSTEM
) -> list[Event]:
    """The `communication.skipped` events of the communications decided (or re-addressed) to nobody."""
    events = (
        communication_event(c, at, actor=actor)
        for c in communications
        if c.status is CommunicationStatus.SKIPPED
    )
    return [event for event in events if event is not None]


def queue_communication(
    communication: Communication,
    repository: CommunicationRepository,
    queue: MessageQueue,
    now: datetime,
    actor: Actor = SYSTEM,
    webhooks: MessageQueue | None = None,
) -> Communication | None:
    """Record the communication, screened (`write_screened`), then queue its delivery; one sent to nobody
    is recorded `skipped` with its event (by `actor`, announced on `webhooks`) and not queued. The
    communication as written, or None when it already existed (a retry)."""

    def write(emails: tuple[Communication, ...]) -> tuple[Communication, list[Event], bool]:
        [email] = emails
        told = skipped_events(emails, now, actor)
        return email, told, repository.add(email, retry_at=now + RETRY_AFTER, events=told)

    written, told, created = write_screened((communication,), write)
    if written.status is CommunicationStatus.QUEUED:
        queue.send(DeliveryRequest(written.account_id, written.id).to_message())
    elif created and told and webhooks is not None:
        announce(told, webhooks)
    return written if created else None


CLAIM_LEASE = timedelta(minutes=15)
"""How long a claim protects an email being sent. Far beyond the worker's 60 s timeout, and beyond the
seconds SES's Send event takes to settle an email whose worker died right after SES accepted it."""


def deliver(
    request: DeliveryRequest,
    repository: CommunicationRepository,
    mailer: Mailer,
    suppressions: SuppressionList,
    now: datetime,
    links: PortalLinks | None = None,
    unsubscribe_links: UnsubscribeLinks | None = None,
) -> CommunicationStatus | None:
    """Render and send one queued communication once, and record the outcome.

    The communication is claimed first (one conditional write that reads it): a duplicate message finds
    it claimed or settled and sends nothing. Addresses on the account's suppression list (a permanent
    bounce, a complaint) are left out and their parties named in `skipped_parties`; when they were the
    whole To, a remaining Cc takes it, except for a legal notice whose client is suppressed; when nobody
    remains the communication is `skipped`. The transaction that wrote the communication screened it so
    (`write_screened`): on its first claim within CLAIM_LEASE (900 s) of that write, the worker trusts it
    and looks nothing up. Later (an email that waited behind a paused SES account, a claim taken over
    after its lease) or on a claim given back (SES throttling), it looks its addresses up again: an
    address that bounced in the 900 s between the write and the send may still get this one email.
    A mailing's emails are trusted as their fan-out screened them, page by page.
    The outcome is written with its event (`communication.sent` or `.skipped`) in one TransactWriteItems,
    due at once on the `due` index: no message announces it (one SQS call less per email), the next
    `webhook_tick`, within a minute, queues its fan-out. A throttled send, or SES refusing the whole
    account, releases the claim and propagates: the message returns to the queue and is tried again
    later. A server error of SES (it may have accepted the email) keeps the claim: SES's Send event
    settles the email if it did, else the retry after the claim's lease sends it. Only a refusal of the
    address itself fails it.
    SES may report a bounce or a complaint before this worker writes that it sent the email (both run at
    once): the feedback is written at once, and the `sent` outcome then keeps it, records what was sent,
    writes `communication.sent` and counts the email `sent` in its mailing (SES did accept it), once, so
    both orders of arrival end alike.
    Returns the worker's outcome, or None when there was nothing to do.
    """
    communication = repository.claim(request.account_id, request.communication_id, now, CLAIM_LEASE)
    if communication is None:
        return None
    log_keys = {"communication_id": communication.id, "kind": communication.kind.value}
    if communication.mailing_id or communication.screening_holds(now, CLAIM_LEASE):
        # Written without the suppressed addresses a moment ago (a mailing's fan-out, page by page).
        to, cc = communication.deliverable_to, communication.deliverable_cc
    else:
        reach = _reachable(communication, suppressions)
        to, cc = reach.to, reach.cc
        communication = communication.without_parties(reach.suppressed_parties)
    settle = _Settle(repository, now, log_keys)
    if not to:
        return settle(communication.skipped(nobody_reason(communication)))
    variables = communication.variables
    if communication.portal_participant and links is not None:
        # Stored (hashed) with the email by the dossier's change; an erased dossier's email was skipped.
        link = links.link_for(communication.account_id, communication.id)
        variables = {**variables, "dossier.portal_link": link}
    try:
        rendered = render_kind(communication.kind, variables, communication.template)
    except (KeyError, TemplateError) as exc:
        return settle(communication.failed(f"template could not be rendered: {exc}"))
    email = OutgoingEmail(
        account_id=communication.account_id,
        communication_id=communication.id,
        kind=communication.kind.value,
        sender_name=communication.sender_name,
        reply_to=communication.reply_to,
        to=to,
        cc=cc,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        sent_at=now,
        mailing_id=communication.mailing_id,
    )
    copies = (
        _mailing_copies(communication, email, unsubscribe_links) if communication.sent_by_copy else [email]
    )
    delivered = list(communication.delivered_to)
    message_ids: list[str] = []
    refusals: list[str] = []
    for copy in copies:
        address = _envelope_address(copy)
        if address is not None and address in delivered:
            continue  # accepted by SES before a throttle gave the claim back
        try:
            message_ids.append(mailer.send(copy))
        except MailRejected as exc:
            # One addressee refused (a malformed address): the others still get their copy.
            refusals.append(str(exc))
            logger.warning("a copy was refused by the mail provider", extra={**log_keys, "reason": str(exc)})
            continue
        except (MailerThrottled, MailerUnavailable) as exc:
            # Nothing was sent: the retry writes only to those who have no copy yet.
            repository.release(communication.account_id, communication.id, tuple(delivered))
            if isinstance(exc, MailerUnavailable):
                logger.error(
                    "SES refuses to send for the account: the email stays queued until it is fixed",
                    extra={**log_keys, "ses_error": str(exc)},
                )
            raise
        except MailerOutcomeUnknown as exc:
            # SES may have accepted this copy: the claim stays until its Send event or its lease.
            logger.warning(
                "SES failed without saying whether it accepted the email: the claim is kept",
                extra={**log_keys, "ses_error": str(exc)},
            )
            raise
        if address is not None:
            delivered.append(address)
    if not message_ids and not communication.delivered_to:
        reason = f"refused by the mail provider: {refusals[0]}"
        return settle(communication.failed(reason))
    provider_id = message_ids[0] if message_ids else communication.provider_message_id
    return settle(communication.sent(rendered.subject, provider_id, now))


def _envelope_address(email: OutgoingEmail) -> str | None:
    """The one address a mailing's copy is sent to (None for an email sent to all at once)."""
    if email.envelope is None or len(email.envelope) != 1:
        return None
    return normalize_address(str(email.envelope[0].email))


@dataclass(frozen=True)
class _Settle:
    """Write a claimed email's outcome once (from `sending`, or for a `sent` outcome past the bounce or
    complaint that came first), with its event; a duplicate that lost the race writes nothing. The events
    written (`mailing.finished` too, when this outcome ended a mailing) are left to the webhook tick,
    which finds them due at once: the worker's calls per email are the claim, SES and this write."""

    repository: CommunicationRepository
    now: datetime
    log_keys: dict[str, str]

    def __call__(self, outcome: Communication) -> CommunicationStatus:
        event = communication_event(outcome, self.now)
        self.repository.settle(
            outcome,
            expected=CommunicationStatus.SENDING,
            events=[event] if event else [],
            at=self.now,
            announced=False,
        )
        logger.info(
            f"communication {outcome.status.value}", extra={**self.log_keys, "reason": outcome.status_reason}
        )
        return outcome.status


def _mailing_copies(
    communication: Communication, email: OutgoingEmail, unsubscribe_links: UnsubscribeLinks | None
) -> list[OutgoingEmail]:
    """One copy per addressee, each with his own unsubscribe link (RFC 8058 headers and a footer): an
    apporteur in Cc who unsubscribes leaves his own mailings, not his client's. Each copy is accepted,
    recorded and retried on its own (`delivered_to`)."""
    copies = []
    for addressee in (*email.to, *email.cc):
        party_id = communication.party_ids.get(addressee.party)
        if party_id is None or unsubscribe_links is None:
            copies.append(replace(email, envelope=(addressee,)))
            continue
        link = unsubscribe_links.link_for(communication.account_id, addressee.party, party_id)
        copies.append(
            replace(
                email,
                envelope=(addressee,),
                html=with_unsubscribe_footer(email.html, link),
                text=f"{email.text}\n\n--\n{UNSUBSCRIBE_SENTENCE} {link}\n",
                headers=(
                    ("List-Unsubscribe", f"<{link}>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ),
            )
        )
    return copies


def _reachable(communication: Communication, suppressions: SuppressionList) -> Reach:
    """Who the email can still reach, by the partner rules, after one lookup of the suppression list."""
    candidates = (*communication.deliverable_to, *communication.deliverable_cc)
    blocked = (
        suppressions.suppressed(
            communication.account_id, [normalize_address(str(r.email)) for r in candidates]
        )
        if candidates
        else set()
    )
    return reachable(communication.kind, communication.deliverable_to, communication.deliverable_cc, blocked)


def requeue_forgotten(
    repository: CommunicationRepository, queue: MessageQueue, now: datetime, limit: int = 500
) -> int:
    """Queue again every communication still waiting past its retry time; push its next retry later."""
    due = repository.due_for_retry(now, limit)
    queue.send_many(DeliveryRequest(account_id, comm_id).to_message() for account_id, comm_id in due)
    for account_id, comm_id in due:
        repository.postpone(account_id, comm_id, now + RETRY_AFTER)
    if due:
        logger.info("communications queued again", extra={"count": len(due)})
    return len(due)
