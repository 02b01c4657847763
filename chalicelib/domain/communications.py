"""Communications: every email Relais sends, from the moment it is decided to its delivery outcome.

A communication has a deterministic id built from (account, subject entity, step), so deciding the same
email twice (a tick run twice, a retried request) finds the first one instead of making a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain.events import SYSTEM, Actor, Event, EventType, Subject, SubjectKind
from chalicelib.domain.ids import stable_id


class CommunicationKind(StrEnum):
    MANUAL = "manual"
    UNPAID_CALL = "unpaid_call"
    UNPAID_REMINDER = "unpaid_reminder"
    FORMAL_NOTICE = "formal_notice"
    SUSPENSION_NOTICE = "suspension_notice"
    TERMINATION_NOTICE = "termination_notice"
    DOCUMENTS_CALL = "documents_call"
    DOCUMENTS_REMINDER = "documents_reminder"
    MAILING = "mailing"
    DOSSIER_CREATED = "dossier_created"
    CONTRIBUTOR_INVITED = "contributor_invited"
    DOCUMENT_REJECTED = "document_rejected"
    ROLE_FINISHED = "role_finished"
    DEADLINE_APPROACHING = "deadline_approaching"
    ACCOUNT_WELCOME = "account_welcome"
    REINSTATEMENT_NOTICE = "reinstatement_notice"
    WEBHOOK_DISABLED = "webhook_disabled"
    """To the account's sender address: one of its webhook endpoints was disabled (410, or 5 days of
    failures)."""


GOVERNED_KINDS: frozenset[CommunicationKind] = frozenset(
    {
        CommunicationKind.MANUAL,
        CommunicationKind.UNPAID_CALL,
        CommunicationKind.UNPAID_REMINDER,
        CommunicationKind.FORMAL_NOTICE,
        CommunicationKind.SUSPENSION_NOTICE,
        CommunicationKind.TERMINATION_NOTICE,
        CommunicationKind.DOCUMENTS_CALL,
        CommunicationKind.DOCUMENTS_REMINDER,
        CommunicationKind.MAILING,
        CommunicationKind.REINSTATEMENT_NOTICE,
    }
)
"""The ten kinds the partner communication rules address (API.md "Communication kinds"); the others
always go to the client, the invited person or the account."""


class CommunicationStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    """Claimed by a worker that is calling SES: no other worker sends it while the claim's lease lasts."""
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str | None
    party: str


@dataclass(frozen=True)
class TemplateSource:
    """A subject and a body written as Jinja2 templates (`chalicelib.domain.templates` checks and renders
    them). A communication carries staff-written ones (an automation's, a manual email's) so that editing
    their source later does not change an email already decided."""

    subject: str
    body: str


@dataclass(frozen=True)
class Communication:
    id: str
    account_id: str
    kind: CommunicationKind
    sender_name: str
    reply_to: str | None
    to: tuple[Recipient, ...]
    created_at: datetime
    variables: dict[str, str] = field(default_factory=dict)
    cc: tuple[Recipient, ...] = ()
    status: CommunicationStatus = CommunicationStatus.QUEUED
    subject: str | None = None
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    status_reason: str | None = None
    template: TemplateSource | None = None
    """None: the kind's French default template."""
    client_id: str | None = None
    """Set for emails about a client (the governed kinds): they appear in the client's history."""
    contract_id: str | None = None
    rule: str | None = None
    decided_by: str | None = None
    skipped_parties: tuple[str, ...] = ()
    portal_participant: str | None = None
    """For dossier emails: whose portal link the email carries (`dossier_id/role/participant/generation`):
    its secret is derived from the email's id, its hash stored by the change that writes the email, and the
    worker computes the link when it sends, so that no link's secret is ever stored."""
    mailing_id: str | None = None
    """For a mailing's emails: the mailing whose counts its outcome moves."""
    party_ids: dict[str, str] = field(default_factory=dict)
    """For a mailing's emails: the record id of each party written to (`client`, `apporteur`), so that each
    addressee gets a copy with his own unsubscribe link."""
    delivered_to: tuple[str, ...] = ()
    """For a mailing's emails: the (normalized) addresses whose own copy SES already accepted, recorded
    when a send gave its claim back halfway, or by each copy's Send event; a retry writes to the others."""
    dossier_id: str | None = None
    """For a dossier's emails: the dossier they are about (their events go to its activity log)."""
    screened: bool = False
    """Its addressees were not on the account's suppression list when it was written: an account's
    welcome, decided in the transaction that opened the account, whose list was then empty; any other
    email decided one by one, whose writing checked that none of its addresses is on the list (see
    `screening_holds`). A mailing's emails are not: their fan-out leaves the suppressed out, page by page."""
    screened_at: datetime | None = None
    """When it was screened: the moment it was decided and written."""

    def screening_holds(self, now: datetime, within: timedelta) -> bool:
        """Whether the worker may trust the screening done when it was written, without looking the list
        up again: only within `within` of it (an address that bounced meanwhile, while the email waited
        behind a paused account, is left out), and only on its first claim (a claim given back, SES
        throttling, gives the screening back with it)."""
        return self.screened and self.screened_at is not None and now - self.screened_at < within

    @property
    def deliverable_to(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.to if r.email)

    @property
    def deliverable_cc(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.cc if r.email)

    @property
    def sent_by_copy(self) -> bool:
        """A mailing's email goes as one copy per addressee (each with his own unsubscribe link), and each
        copy is settled on its own; any other email is one message to all."""
        return self.mailing_id is not None

    @property
    def copies_waiting(self) -> tuple[str, ...]:
        """The addresses of a mailing's email whose copy SES has not accepted yet."""
        addresses = (normalize_address(str(r.email)) for r in (*self.deliverable_to, *self.deliverable_cc))
        return tuple(a for a in dict.fromkeys(addresses) if a not in self.delivered_to)

    def sent(self, subject: str, provider_message_id: str | None, at: datetime) -> Communication:
        return replace(
            self,
            status=CommunicationStatus.SENT,
            subject=subject,
            provider_message_id=provider_message_id,
            sent_at=at,
            status_reason=None,
        )

    def skipped(self, reason: str) -> Communication:
        return replace(self, status=CommunicationStatus.SKIPPED, status_reason=reason)

    def without_parties(self, parties: tuple[str, ...]) -> Communication:
        """Name in `skipped_parties` the parties left out when sending (their address is suppressed)."""
        added = tuple(p for p in dict.fromkeys(parties) if p not in self.skipped_parties)
        return replace(self, skipped_parties=self.skipped_parties + added) if added else self

    def failed(self, reason: str) -> Communication:
        return replace(self, status=CommunicationStatus.FAILED, status_reason=reason)

    @property
    def awaits_its_sending(self) -> bool:
        """SES's bounce or complaint came before the worker (or SES's Send event) recorded the sending:
        the email shows the feedback, but nothing wrote its `sent_at` nor counted it in its mailing yet.
        The sending, when it lands, then keeps the feedback's status and reason, fills in what was sent
        (`sent_after_feedback`), and is counted `sent`, once: SES accepted the email."""
        return self.status in FEEDBACK_STATUSES and self.sent_at is None

    def sent_after_feedback(self, sent: Communication) -> Communication:
        """The `sent` outcome of an email that `awaits_its_sending`, as it is recorded: what was sent,
        under the feedback's status, which is past `sent`."""
        return replace(sent, status=self.status, status_reason=self.status_reason)

    def with_feedback(self, status: CommunicationStatus, reason: str) -> Communication:
        """A bounce or a complaint reported after sending. A complaint is never downgraded to a bounce:
        it is the stronger signal, and both orders of arrival must end alike."""
        if self.status is CommunicationStatus.COMPLAINED and status is not CommunicationStatus.COMPLAINED:
            return self
        return replace(self, status=status, status_reason=reason)


FINAL_STATUSES = frozenset(
    {CommunicationStatus.SENT, CommunicationStatus.FAILED, CommunicationStatus.SKIPPED}
)
"""The outcomes a mailing counts (a later bounce or complaint does not move its counts)."""

FEEDBACK_STATUSES = frozenset({CommunicationStatus.BOUNCED, CommunicationStatus.COMPLAINED})
"""What SES's feedback makes of an email it accepted: a state past `sent`, which a later worker's
outcome never overwrites (see `Communication.awaits_its_sending`)."""


def normalize_address(address: str) -> str:
    """Suppression is by mailbox: `Léa <LEA@Martin.fr>` and `lea@martin.fr` are the same address."""
    address = address.strip()
    if "<" in address and address.endswith(">"):
        address = address[address.rindex("<") + 1 : -1]
    return address.strip().lower()


def communication_id(account_id: str, subject_entity: str, step: str) -> str:
    """The deterministic key of one email: same account, entity and step, same communication."""
    return stable_id("cm_", account_id, subject_entity, step)


DOSSIER_ERASED = "the dossier was erased before the email left (RGPD); its content was deleted"


def erased_with_its_dossier(communication: Communication) -> Communication:
    """A queued email of a dossier being erased: skipped, nothing kept of what it would have said."""
    forgotten = replace(communication, to=(), cc=(), variables={}, subject=None, template=None, party_ids={})
    return forgotten.skipped(DOSSIER_ERASED)


_EVENT_TYPES = {
    CommunicationStatus.SENT: EventType.COMMUNICATION_SENT,
    CommunicationStatus.SKIPPED: EventType.COMMUNICATION_SKIPPED,
    CommunicationStatus.BOUNCED: EventType.COMMUNICATION_BOUNCED,
    CommunicationStatus.COMPLAINED: EventType.COMMUNICATION_COMPLAINED,
}


def event_subject(communication: Communication) -> Subject:
    """Whose activity log an email's events join: its contract's, its dossier's, else the account's (a
    mailing's emails, even to a contract, are the account's: a mailing is not about one contract)."""
    if communication.mailing_id is None and communication.contract_id:
        return Subject(SubjectKind.CONTRACT, communication.contract_id)
    if communication.mailing_id is None and communication.dossier_id:
        return Subject(SubjectKind.DOSSIER, communication.dossier_id)
    return Subject(SubjectKind.ACCOUNT, communication.account_id)


def communication_event(
    communication: Communication,
    at: datetime,
    parties: tuple[str, ...] = (),
    bounce_type: str | None = None,
    subject: Subject | None = None,
    actor: Actor = SYSTEM,
) -> Event | None:
    """The event of an email settled as it now stands (`sent`, `skipped`, `bounced`, `complained`; a
    `failed` one has none). Ids, kind and status only: no body, no address; the parties a bounce or a
    complaint came from are named by their role (`client`, `apporteur`). `subject` overrides where the
    event goes (a dossier erased meanwhile has no activity log left)."""
    event_type = _EVENT_TYPES.get(communication.status)
    if event_type is None:
        return None
    data: dict[str, object] = {
        "communication_id": communication.id,
        "kind": communication.kind.value,
        "status": communication.status.value,
    }
    for name in ("contract_id", "client_id", "dossier_id", "mailing_id"):
        value = getattr(communication, name)
        if value:
            data[name] = value
    if communication.status is CommunicationStatus.SKIPPED:
        data["reason"] = communication.status_reason or ""
    if communication.status in (CommunicationStatus.SENT, CommunicationStatus.SKIPPED):
        data["skipped_parties"] = list(communication.skipped_parties)
    if communication.status in (CommunicationStatus.BOUNCED, CommunicationStatus.COMPLAINED):
        data["parties"] = list(parties)
    if communication.status is CommunicationStatus.BOUNCED:
        data["bounce_type"] = bounce_type or "Undetermined"
    return Event(
        account_id=communication.account_id,
        type=event_type,
        at=at,
        subject=subject or event_subject(communication),
        data=data,
        actor=actor,
    )


def parties_of(communication: Communication, addresses: tuple[str, ...]) -> tuple[str, ...]:
    """The roles (`client`, `apporteur`…) of the email's recipients at these (normalized) addresses."""
    wanted = set(addresses)
    found = (
        r.party
        for r in (*communication.to, *communication.cc)
        if r.email and normalize_address(r.email) in wanted
    )
    return tuple(dict.fromkeys(found))
