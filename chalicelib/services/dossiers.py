"""Dossier use cases, for staff and for the portal: open a dossier, invite and remove contributors,
re-send an invitation, review documents; and, for a link holder, see, upload, download, invite and finish.

Every change is one transaction: the dossier at the version read, the portal tokens it mints or revokes,
the emails it queues and the events it reports (`DynamoDossierRepository.commit`; the events are read off
the dossier before and after, `record_events`, with who made the change); a change that meets a newer
version is applied again to the newer dossier, up to three times. Emails and events are queued after the
commit; a lost SQS message is re-queued by the tick. An email to a participant (`portal_participant`)
carries a portal link derived from the email (`services/portal_links.py`): the change stores its hash,
with a trace naming the email, and the worker computes the link again when it sends, so no secret is
ever stored and sending writes no token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.audit import AuditEntry, AuditType
from chalicelib.domain.clock import iso
from chalicelib.domain.communications import (
    Communication,
    CommunicationStatus,
    Recipient,
    TemplateSource,
    communication_id,
)
from chalicelib.domain.dossier_events import record_events
from chalicelib.domain.dossiers import (
    Contributor,
    DocumentStatus,
    Dossier,
    DossierDocument,
    DossierStatus,
    Person,
    Upload,
    UploadStatus,
    check_filename,
    check_upload,
    files_seen_by,
    uploadable_document,
    visible_document,
)
from chalicelib.domain.dunning import start_of_day
from chalicelib.domain.errors import (
    AccountNotFound,
    Conflict,
    FieldIssue,
    Forbidden,
    InvalidInput,
    NotFound,
    StaleVersion,
    Unauthenticated,
)
from chalicelib.domain.events import SYSTEM, Actor, Event, in_order, next_event_id, participant
from chalicelib.domain.files import StoredObject, mismatch
from chalicelib.domain.footers import footer, legal_mentions, privacy_notice, sender_name
from chalicelib.domain.formatting import french_date
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.plans import Feature
from chalicelib.domain.procedures import MAIN, Automation, Target, Trigger
from chalicelib.services.communications import RETRY_AFTER, DeliveryRequest, skipped_events, write_screened
from chalicelib.services.events import announce
from chalicelib.services.messages import message_fields, message_time
from chalicelib.services.portal_links import MintedLink, email_link, mint_link
from chalicelib.services.ports import AccountRepository, MessageQueue, StoredLink
from chalicelib.services.procedures import ProcedureRepository, get_procedure

ATTEMPTS = 3
CLOSED = (DossierStatus.COMPLETED, DossierStatus.ARCHIVED)
"""Dossiers the tick erases once the account's `dossier_retention_days` have passed."""


class DossierRepository(Protocol):
    def get(self, account_id: str, dossier_id: str) -> tuple[Dossier, int, dict[str, list[str]]] | None: ...

    def get_with_account(self, account_id: str, dossier_id: str) -> tuple[Dossier | None, Account | None]: ...

    def commit(
        self,
        dossier: Dossier,
        version: int,
        tokens: dict[str, list[str]],
        minted: tuple[StoredLink, ...] = (),
        revoked: tuple[str, ...] = (),
        communications: tuple[tuple[Communication, datetime], ...] = (),
        deadlines: tuple[tuple[str, datetime], ...] = (),
        erase_at: datetime | None = None,
        events: tuple[Event, ...] = (),
    ) -> int: ...

    def erase(
        self, account_id: str, dossier_id: str, token_hashes: list[str], audit: AuditEntry
    ) -> list[Event]:
        """Erase the dossier's items and links, the dossier last with `audit` (once: while it exists).
        First each still-queued email its links' traces name is settled `skipped` (DOSSIER_ERASED), its
        content forgotten, with the account's `communication.skipped` event: the events written."""
        ...


class DeadlineRepository(Protocol):
    def fire(
        self,
        account_id: str,
        dossier_id: str,
        automation_id: str,
        emails: list[tuple[Communication, datetime]],
        events: Sequence[Event] = (),
        links: tuple[StoredLink, ...] = (),
        tokens: dict[str, list[str]] | None = None,
        version: int = 0,
    ) -> bool:
        """Write the deadline's emails (RecipientsSuppressed when an address is suppressed) with their
        events and take it off the schedule, once; False when already fired. With `links` (the emails'
        portal links), the dossier's live tokens become `tokens` at `version` in the same transaction:
        StaleVersion when the dossier changed or was erased meanwhile."""
        ...


class Documents(Protocol):
    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, now: datetime
    ) -> tuple[str, dict[str, str], datetime]: ...

    def head(self, key: str) -> StoredObject | None: ...

    def presigned_get(self, key: str, filename: str, version: str | None) -> str: ...

    def erase_prefix(self, prefix: str) -> int: ...


@dataclass(frozen=True)
class Context:
    accounts: AccountRepository
    procedures: ProcedureRepository
    dossiers: DossierRepository
    queue: MessageQueue
    webhooks: MessageQueue
    portal_url: str
    token_days: int
    now: datetime
    link_secret: Callable[[], str]
    """RELAIS_LINK_SECRET, read only by a change that writes a dossier email to a participant."""


@dataclass
class Change:
    """What one change of a dossier writes with it."""

    dossier: Dossier
    minted: list[MintedLink] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    emails: list[Communication] = field(default_factory=list)
    deadlines: list[tuple[str, datetime]] = field(default_factory=list)
    erase_at: datetime | None = None
    """Set when the change completes or archives the dossier: the end of its retention."""
    actor: Actor = SYSTEM
    """Who makes the change: its events name them."""
    events: tuple[Event, ...] = ()
    """What the change reported, once committed."""


def _load(account_id: str, dossier_id: str, ctx: Context) -> tuple[Dossier, int, dict[str, list[str]]]:
    found = ctx.dossiers.get(account_id, dossier_id)
    if found is None:
        raise NotFound("No such dossier.")
    return found


def _account(account_id: str, ctx: Context) -> Account:
    account = ctx.accounts.get(account_id)
    if account is None:
        raise AccountNotFound()
    return account


def _commit(
    change: Change, before: Dossier | None, version: int, tokens: dict[str, list[str]], ctx: Context
) -> None:
    """Write the change over `before` (None: a new dossier) with the events it reports and its emails,
    screened as they are written (`write_screened`: one whose participant's address is suppressed is
    told `skipped` in the dossier's log at once), each queued one with its portal link; then queue its
    emails and announce its events."""
    reported, reported_events = record_events(before, change.dossier, change.actor, ctx.now)

    def write(
        emails: tuple[Communication, ...],
    ) -> tuple[Dossier, tuple[Event, ...], tuple[Communication, ...]]:
        dossier, events = reported, reported_events
        previous = dossier.last_event_id
        for skipped in skipped_events(emails, ctx.now, change.actor):
            # After the change's own events, in the dossier's chain: the log reads the change first.
            previous = next_event_id(ctx.now, previous)
            events = (*events, replace(skipped, id=previous))
        dossier = replace(dossier, last_event_id=previous)
        minted = [*change.minted, *_email_links(emails, ctx)]
        ctx.dossiers.commit(
            dossier,
            version,
            _live_tokens(tokens, minted, change.revoked),
            minted=tuple(_stored(m) for m in minted),
            revoked=tuple(change.revoked),
            communications=tuple((email, ctx.now + RETRY_AFTER) for email in emails),
            deadlines=tuple(change.deadlines),
            erase_at=change.erase_at,
            events=events,
        )
        return dossier, events, emails

    change.dossier, change.events, emails = write_screened(change.emails, write)
    change.emails = list(emails)
    ctx.queue.send_many(DeliveryRequest(e.account_id, e.id).to_message() for e in _queued(change.emails))
    announce(change.events, ctx.webhooks)


def _queued(emails: list[Communication]) -> list[Communication]:
    return [e for e in emails if e.status is CommunicationStatus.QUEUED]


def _email_links(emails: Sequence[Communication], ctx: Context) -> list[MintedLink]:
    """The portal link of each queued email to a participant, stored with the email."""
    links = (
        email_link(ctx.portal_url, ctx.link_secret(), email, ctx.token_days, ctx.now)
        for email in _queued(list(emails))
    )
    return [link for link in links if link is not None]


def _live_tokens(
    tokens: dict[str, list[str]], minted: list[MintedLink], revoked: list[str]
) -> dict[str, list[str]]:
    """Each participant's live token hashes after a change (the dossier item keeps them, so revoking a
    participant's links needs no query)."""
    live = {k: list(v) for k, v in tokens.items()}
    for link in minted:
        live.setdefault(link.principal.participant_id, []).append(link.token_hash)
    return {holder: [h for h in hashes if h not in revoked] for holder, hashes in live.items()}


def _stored(link: MintedLink) -> StoredLink:
    return StoredLink(link.token_hash, link.principal, link.expires_at, link.communication_id)


def _mutate(
    account_id: str, dossier_id: str, ctx: Context, apply: Callable[[Dossier, dict[str, list[str]]], Change]
) -> Change:
    """Apply a change to the dossier as stored; again to a newer one when another change won the race."""
    for attempt in range(ATTEMPTS):
        dossier, version, tokens = _load(account_id, dossier_id, ctx)
        change = apply(dossier, tokens)
        if change.dossier.status in CLOSED and dossier.status not in CLOSED:
            days = _account(account_id, ctx).dossier_retention_days
            change.erase_at = ctx.now + timedelta(days=days)
        try:
            _commit(change, dossier, version, tokens, ctx)
        except StaleVersion:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        return change
    raise StaleVersion()


# ---- emails ----


def _variables(dossier: Dossier, account: Account, about: str, extra: dict[str, str]) -> dict[str, str]:
    name, _, role_id = dossier.participant_name(about)
    return {
        "account.name": account.public_name,
        "dossier.reference": dossier.reference,
        "dossier.due_date": french_date(dossier.due_date) if dossier.due_date else "",
        "contributor.name": name,
        "role.name": dossier.role(role_id).name,
        "dossier.recipient_name": dossier.recipient.name,
        "procedure.name": dossier.procedure.name,
        **extra,
    }


def _email(
    dossier: Dossier,
    account: Account,
    trigger: Trigger,
    event_id: str,
    addressee: str | None,
    about: str,
    template: TemplateSource | None,
    source: str,
    now: datetime,
    extra: dict[str, str] | None = None,
) -> Communication:
    """One dossier email to a participant (`addressee`), or to the account itself (None)."""
    if addressee is None:
        to = (Recipient(account.name, account.sender_email, "account"),)
        participant = None
    else:
        name, email, role_id = dossier.participant_name(addressee)
        to = (Recipient(name, email, "contributor" if addressee != MAIN else "recipient"),)
        participant = f"{dossier.id}/{role_id}/{addressee}/{dossier.generation_of(addressee)}"
    # A participant reads who collects his documents and why; the broker's own copy needs neither.
    notice = (
        footer(
            privacy_notice(
                account, dossier.procedure.name, None if addressee == MAIN else dossier.recipient.name
            ),
            legal_mentions(account),
        )
        if addressee is not None
        else {}
    )
    return Communication(
        id=communication_id(
            account.id, f"dossier:{dossier.id}:{event_id}", f"{source}:{addressee or 'account'}"
        ),
        account_id=account.id,
        kind=trigger.kind,
        sender_name=sender_name(account),
        reply_to=account.sender_email,
        to=to,
        created_at=now,
        variables=_variables(dossier, account, about, extra or {}) | notice,
        template=template,
        portal_participant=participant,
        dossier_id=dossier.id,
    )


def _addressees(dossier: Dossier, target: Target, about: str) -> list[str | None]:
    if target is Target.MAIN:
        return [MAIN]
    if target is Target.CONTRIBUTOR:
        return [about]
    if target is Target.ALL_ROLES:
        return [MAIN, *(c.id for c in dossier.contributors)]
    return [None]


def _automation_emails(
    dossier: Dossier,
    account: Account,
    trigger: Trigger,
    event_id: str,
    about: str,
    now: datetime,
    skip_target: Target | None = None,
    extra: dict[str, str] | None = None,
) -> list[Communication]:
    emails = []
    for automation in dossier.procedure.automations_for(trigger):
        if automation.to is skip_target:
            continue
        for addressee in _addressees(dossier, automation.to, about):
            emails.append(
                _email(
                    dossier,
                    account,
                    trigger,
                    event_id,
                    addressee,
                    about,
                    automation.template,
                    automation.id,
                    now,
                    extra,
                )
            )
    return emails


def _invitation_emails(
    dossier: Dossier,
    account: Account,
    trigger: Trigger,
    event_id: str,
    invited: str,
    notify: bool,
    now: datetime,
) -> list[Communication]:
    """API.md: the invited person gets the invitation when the procedure has an enabled automation for
    this trigger or `notify` is true (the `to: contributor`/`to: main` automation's template, else the
    default one); other automations of the trigger add their own emails."""
    automations = dossier.procedure.automations_for(trigger)
    if not automations and not notify:
        return []
    own_target = Target.MAIN if invited == MAIN else Target.CONTRIBUTOR
    own: Automation | None = next((a for a in automations if a.to is own_target), None)
    invitation = _email(
        dossier,
        account,
        trigger,
        event_id,
        invited,
        invited,
        own.template if own else None,
        "invitation",
        now,
    )
    return [
        invitation,
        *_automation_emails(dossier, account, trigger, event_id, invited, now, skip_target=own_target),
    ]


# ---- staff ----


@dataclass(frozen=True)
class Opened:
    dossier: Dossier
    portal_link: str
    notified: bool


def open_dossier(
    account_id: str,
    procedure_id: str,
    recipient: Person,
    reference: str | None,
    due_date: date | None,
    notify: bool,
    ctx: Context,
    actor: Actor = SYSTEM,
) -> Opened:
    account = _account(account_id, ctx)
    procedure = get_procedure(account_id, procedure_id, ctx.procedures)
    dossier_id = new_ulid()
    dossier = Dossier.open(dossier_id, procedure, reference or dossier_id[-8:], recipient, due_date, ctx.now)
    link = mint_link(ctx.portal_url, account_id, dossier_id, MAIN, MAIN, ctx.token_days, ctx.now)
    emails = _invitation_emails(dossier, account, Trigger.DOSSIER_CREATED, "created", MAIN, notify, ctx.now)
    deadlines = [
        (a.id, start_of_day(due_date - timedelta(days=a.days_before)))
        for a in procedure.automations_for(Trigger.DEADLINE_APPROACHING)
        if due_date is not None and a.days_before is not None
    ]
    change = Change(dossier, minted=[link], emails=emails, deadlines=deadlines, actor=actor)
    _commit(change, None, 0, {}, ctx)
    return Opened(dossier, link.link, bool(_queued(change.emails)))


@dataclass(frozen=True)
class Invited:
    contributor: Contributor
    portal_link: str
    notified: bool


def invite_contributor(
    account_id: str,
    dossier_id: str,
    role_id: str,
    name: str,
    email: str,
    notify: bool,
    ctx: Context,
    actor: Actor = SYSTEM,
) -> Invited:
    """One contributor per role (409 when taken); needs the `contributors` feature now (402)."""
    account = _account(account_id, ctx)
    account.entitlements.require(Feature.CONTRIBUTORS, ctx.now)
    contributor = Contributor(new_ulid(), role_id, name, email, ctx.now)
    link = mint_link(ctx.portal_url, account_id, dossier_id, role_id, contributor.id, ctx.token_days, ctx.now)

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        changed = dossier.with_contributor(contributor)
        emails = _invitation_emails(
            changed,
            account,
            Trigger.CONTRIBUTOR_INVITED,
            f"invited:{contributor.id}",
            contributor.id,
            notify,
            ctx.now,
        )
        return Change(changed, minted=[link], emails=emails, actor=actor)

    change = _mutate(account_id, dossier_id, ctx, apply)
    return Invited(contributor, link.link, bool(_queued(change.emails)))


def fresh_link(account_id: str, dossier_id: str, participant_id: str, ctx: Context) -> str | None:
    """A new portal link for a participant whose link was shown once and never kept (an answer replayed
    for an `Idempotency-Key`): None when the participant has left the dossier since."""
    minted: list[MintedLink] = []

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        minted.clear()
        if not dossier.admits(participant_id, dossier.generation_of(participant_id)):
            return Change(dossier)
        _, _, role_id = dossier.participant_name(participant_id)
        generation = dossier.generation_of(participant_id)
        link = mint_link(
            ctx.portal_url,
            account_id,
            dossier_id,
            role_id,
            participant_id,
            ctx.token_days,
            ctx.now,
            generation,
        )
        minted.append(link)
        return Change(dossier, minted=[link])

    _mutate(account_id, dossier_id, ctx, apply)
    return minted[0].link if minted else None


def remove_contributor(account_id: str, dossier_id: str, contributor_id: str, ctx: Context) -> None:
    """Every link of the contributor dies with it."""

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        return Change(
            dossier.without_contributor(contributor_id), revoked=list(tokens.get(contributor_id, []))
        )

    _mutate(account_id, dossier_id, ctx, apply)


def resend_invitation(account_id: str, dossier_id: str, contributor_id: str, ctx: Context) -> None:
    """Revoke every link of the contributor, then send the invitation again with a new one (minted by the
    worker when it sends). Always sends: re-sending is asking for the email."""
    account = _account(account_id, ctx)
    event = f"resent:{new_ulid()}"

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        dossier.contributor(contributor_id)
        renewed = dossier.with_new_links(contributor_id)
        emails = _invitation_emails(
            renewed, account, Trigger.CONTRIBUTOR_INVITED, event, contributor_id, True, ctx.now
        )
        return Change(renewed, revoked=list(tokens.get(contributor_id, [])), emails=emails[:1])

    _mutate(account_id, dossier_id, ctx, apply)


def review_document(
    account_id: str,
    dossier_id: str,
    document_id: str,
    approve: bool,
    comment: str | None,
    ctx: Context,
    actor: Actor = SYSTEM,
) -> tuple[Dossier, DossierDocument]:
    account = _account(account_id, ctx)
    event = f"reviewed:{new_ulid()}"
    result: dict[str, Any] = {}

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        changed, document = dossier.reviewed(document_id, approve, comment, ctx.now)
        result["document"] = document
        emails: list[Communication] = []
        if not approve:
            about = _participant_of_role(changed, document.requirement.role_id)
            extra = {"document.label": document.requirement.label, "document.comment": comment or ""}
            emails = _automation_emails(
                changed, account, Trigger.DOCUMENT_REJECTED, event, about, ctx.now, extra=extra
            )
        return Change(changed, emails=emails, actor=actor)

    change = _mutate(account_id, dossier_id, ctx, apply)
    return change.dossier, result["document"]


def participant_actor(dossier: Dossier, participant_id: str) -> Actor:
    """A link holder as the dossier knows them; one removed since keeps their id, no longer a name."""
    known = participant_id == MAIN or any(c.id == participant_id for c in dossier.contributors)
    return participant(participant_id, dossier.participant_name(participant_id)[0] if known else "")


def archive_dossier(account_id: str, dossier_id: str, ctx: Context) -> Dossier:
    """Close the dossier for good: archived, it is erased `dossier_retention_days` later (from now, unless
    its completion already set that moment). Conflict when it is already archived."""

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        return Change(dossier.archived())

    return _mutate(account_id, dossier_id, ctx, apply).dossier


def _participant_of_role(dossier: Dossier, role_id: str) -> str:
    if role_id == MAIN:
        return MAIN
    for contributor in dossier.contributors:
        if contributor.role_id == role_id:
            return contributor.id
    return MAIN


def dossier_prefix(account_id: str, dossier_id: str) -> str:
    """Where the dossier's files are in the documents bucket."""
    return f"accounts/{account_id}/dossiers/{dossier_id}/"


def erase_dossier(account_id: str, dossier_id: str, files: Documents, ctx: Context, by: Actor) -> None:
    """Erase a dossier (RGPD): every version of its files first, then its scheduled deadlines, its events,
    every portal link it minted (live or revoked) and last its item, with the entry of the account's audit
    trail that records the erasure. Files first, so that a failure half-way leaves the dossier visible
    and the erasure can be asked again.
    Its emails to participants still queued are settled `skipped` (DOSSIER_ERASED), their content
    forgotten, before the traces of their links go: the worker's claim then finds nothing to send, and
    the account's activity log says what became of each (`communication.skipped`). The window left: an
    email a worker claimed a few seconds before the erasure may still leave, its link already dead."""
    _, _, tokens = _load(account_id, dossier_id, ctx)
    versions = files.erase_prefix(dossier_prefix(account_id, dossier_id))
    data = {"dossier_id": dossier_id, "file_versions_erased": versions}
    audit = AuditEntry(account_id, AuditType.DOSSIER_ERASED, ctx.now, by, data)
    skipped = ctx.dossiers.erase(
        account_id, dossier_id, [h for hashes in tokens.values() for h in hashes], audit
    )
    announce(skipped, ctx.webhooks)


ERASURE_MESSAGE = "dossier_erasure"


@dataclass(frozen=True)
class ErasureRequest:
    """The tick's message: a closed dossier's retention has ended."""

    account_id: str
    dossier_id: str

    def to_message(self) -> dict[str, Any]:
        return {"type": ERASURE_MESSAGE, "account_id": self.account_id, "dossier_id": self.dossier_id}

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> ErasureRequest:
        return cls(str(body["account_id"]), str(body["dossier_id"]))


def erase_expired(request: ErasureRequest, files: Documents, ctx: Context) -> bool:
    """Erase a dossier whose retention ended; False when it is already gone (a redelivered message) or no
    longer closed."""
    found = ctx.dossiers.get(request.account_id, request.dossier_id)
    if found is None or found[0].status not in CLOSED:
        return False
    erase_dossier(request.account_id, request.dossier_id, files, ctx, by=SYSTEM)
    return True


def get_dossier(account_id: str, dossier_id: str, ctx: Context) -> Dossier:
    return _load(account_id, dossier_id, ctx)[0]


DEADLINE_MESSAGE = "deadline"


@dataclass(frozen=True)
class DeadlineRequest:
    """What the tick queues for one `deadline_approaching` automation of a dossier whose day has come."""

    account_id: str
    dossier_id: str
    automation_id: str
    as_of: datetime

    def to_message(self) -> dict[str, Any]:
        return {
            "type": DEADLINE_MESSAGE,
            "account_id": self.account_id,
            "dossier_id": self.dossier_id,
            "automation_id": self.automation_id,
            "as_of": iso(self.as_of),
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> DeadlineRequest:
        names = ("account_id", "dossier_id", "automation_id")
        account_id, dossier_id, automation_id = message_fields(body, names, "deadline")
        return cls(account_id, dossier_id, automation_id, message_time(body, "as_of", "deadline"))


def fire_deadline(request: DeadlineRequest, deadlines: DeadlineRepository, ctx: Context) -> int:
    """Run one `deadline_approaching` automation: one email per role that still misses a required
    document (per the automation's `to`), once per dossier and automation however often the message
    comes. Returns how many emails were queued."""
    account = ctx.accounts.get(request.account_id)
    for attempt in range(ATTEMPTS):
        try:
            return _fire_deadline_once(request, account, deadlines, ctx)
        except StaleVersion:
            if attempt == ATTEMPTS - 1:
                raise
    raise StaleVersion()


def _fire_deadline_once(
    request: DeadlineRequest, account: Account | None, deadlines: DeadlineRepository, ctx: Context
) -> int:
    """One try of `fire_deadline` on the dossier as read now; StaleVersion when it changed meanwhile."""
    now = request.as_of
    found = ctx.dossiers.get(request.account_id, request.dossier_id)
    emails: list[Communication] = []
    if found is not None and account is not None:
        emails = _deadline_emails(found[0], account, request.automation_id, now)

    def fire(screened: tuple[Communication, ...]) -> tuple[tuple[Communication, ...], list[Event], bool]:
        # One sent to nobody (a suppressed address) is told `skipped` in the dossier's log at once.
        told = in_order(skipped_events(screened, now))
        links = _email_links(screened, ctx)
        fired = deadlines.fire(
            request.account_id,
            request.dossier_id,
            request.automation_id,
            [(e, now + RETRY_AFTER) for e in screened],
            told,
            links=tuple(_stored(link) for link in links),
            tokens=_live_tokens(found[2], links, []) if found is not None else None,
            version=found[1] if found is not None else 0,
        )
        return screened, told, fired

    written, told, fired = write_screened(emails, fire)
    if not fired:
        return 0
    queued = _queued(list(written))
    ctx.queue.send_many(DeliveryRequest(e.account_id, e.id).to_message() for e in queued)
    announce(told, ctx.webhooks)
    return len(queued)


def _deadline_emails(
    dossier: Dossier, account: Account, automation_id: str, now: datetime
) -> list[Communication]:
    automation = next((a for a in dossier.procedure.automations if a.id == automation_id and a.enabled), None)
    if automation is None or dossier.status is not DossierStatus.IN_PROGRESS:
        return []
    late = [MAIN, *(c.id for c in dossier.contributors)]
    late = [p for p in late if dossier.missing_required(dossier.participant_name(p)[2])]
    if automation.to is Target.MAIN:
        late = [p for p in late if p == MAIN]
    trigger, event = Trigger.DEADLINE_APPROACHING, f"deadline:{automation.id}"
    return [
        _email(
            dossier,
            account,
            trigger,
            event,
            None if automation.to is Target.ACCOUNT else about,
            about,
            automation.template,
            f"{automation.id}:{about}",
            now,
        )
        for about in late
    ]


# ---- portal ----


def portal_dossier(principal: PortalPrincipal, ctx: Context) -> Dossier:
    """The link holder's dossier, if the link still admits it: a removed contributor, or a link of an
    earlier generation (the invitation was re-sent), is refused at once, whatever the token item says."""
    found = ctx.dossiers.get(principal.account_id, principal.dossier_id)
    if found is None or not found[0].admits(principal.participant_id, principal.generation):
        raise Unauthenticated("This link is no longer valid.")
    return found[0]


def portal_page(principal: PortalPrincipal, ctx: Context) -> tuple[Dossier, Account]:
    """What the portal page shows, in one read: the link holder's dossier (admitted as by
    `portal_dossier`) and the broker he deals with."""
    dossier, account = ctx.dossiers.get_with_account(principal.account_id, principal.dossier_id)
    if dossier is None or not dossier.admits(principal.participant_id, principal.generation):
        raise Unauthenticated("This link is no longer valid.")
    if account is None:
        raise AccountNotFound()
    return dossier, account


def portal_broker(principal: PortalPrincipal, ctx: Context) -> Account:
    """The broker a link holder deals with: the page shows its name, look, legal mentions and notice."""
    return _account(principal.account_id, ctx)


@dataclass(frozen=True)
class StartedUpload:
    upload: Upload
    url: str
    fields: dict[str, str]
    expires_at: datetime


def start_upload(
    principal: PortalPrincipal,
    document_id: str,
    filename: str,
    content_type: str,
    size: int,
    documents: Documents,
    ctx: Context,
) -> StartedUpload:
    dossier = portal_dossier(principal, ctx)
    document = uploadable_document(dossier, principal.role_id, document_id)
    requirement = document.requirement
    check_filename(filename)
    check_upload(requirement, content_type, size)
    upload_id = new_ulid()
    key = f"{dossier_prefix(principal.account_id, dossier.id)}documents/{document_id}/{upload_id}"
    upload = Upload(
        upload_id,
        document_id,
        filename,
        content_type,
        size,
        key,
        UploadStatus.PENDING,
        ctx.now,
        uploaded_by=principal.participant_id,
        round=document.rejections,
    )
    url, fields, expires_at = documents.presigned_post(
        key, content_type, requirement.max_size_mb * 1024 * 1024, ctx.now
    )

    def apply(current: Dossier, tokens: dict[str, list[str]]) -> Change:
        uploadable_document(current, principal.role_id, document_id)
        return Change(current.with_upload(upload, ctx.now))

    _mutate(principal.account_id, principal.dossier_id, ctx, apply)
    return StartedUpload(upload, url, fields, expires_at)


def complete_upload(
    account_id: str,
    dossier_id: str,
    document_id: str,
    upload_id: str,
    documents: Documents,
    ctx: Context,
    principal: PortalPrincipal | None = None,
) -> tuple[Dossier, DossierDocument, Upload]:
    """Check the object is there and its first bytes match its declared type: the document is then
    `pending_review`; otherwise the upload is `rejected` with its reason. Idempotent: a completed upload
    answers as it is (the portal's `complete` and the S3 event may both arrive)."""
    dossier = _load(account_id, dossier_id, ctx)[0]
    if principal is not None:
        if not dossier.admits(principal.participant_id, principal.generation):
            raise Unauthenticated("This link is no longer valid.")
        uploadable_document(dossier, principal.role_id, document_id)
    upload = next((u for u in dossier.uploads if u.id == upload_id and u.document_id == document_id), None)
    if upload is None:
        raise NotFound("No such upload.")
    if upload.status is not UploadStatus.PENDING:
        return dossier, dossier.document(document_id), upload
    found = documents.head(upload.key)
    if found is None:
        raise InvalidInput(
            "The file has not arrived: upload it first, then complete.",
            [FieldIssue("upload_id", "no file uploaded yet")],
        )
    reason = mismatch(upload.content_type, found.head)
    if reason is None and found.size > dossier.document(document_id).requirement.max_size_mb * 1024 * 1024:
        reason = "the file is larger than the document allows"
    settled = replace(
        upload,
        status=UploadStatus.REJECTED if reason else UploadStatus.ACCEPTED,
        reason=reason,
        size=found.size,
        uploaded_at=ctx.now,
        version=found.version,
    )

    def apply(current: Dossier, tokens: dict[str, list[str]]) -> Change:
        uploads = tuple(settled if u.id == upload_id else u for u in current.uploads)
        changed = replace(current, uploads=uploads)
        if reason is None:
            document = current.document(document_id)
            if document.status is DocumentStatus.MISSING:
                changed = replace(
                    changed,
                    documents=tuple(
                        replace(d, status=DocumentStatus.PENDING_REVIEW) if d.id == document_id else d
                        for d in current.documents
                    ),
                )
        sender = principal.participant_id if principal is not None else upload.uploaded_by
        return Change(changed, actor=participant_actor(current, sender) if sender else SYSTEM)

    change = _mutate(account_id, dossier_id, ctx, apply)
    return change.dossier, change.dossier.document(document_id), settled


def download_url(
    principal: PortalPrincipal, document_id: str, file_id: str, documents: Documents, ctx: Context
) -> str:
    """A short-lived link to a file the participant sent himself, in the version its check accepted
    (bytes written later under the same key are never served)."""
    dossier = portal_dossier(principal, ctx)
    visibility = visible_document(dossier, principal.role_id, document_id)
    mine = files_seen_by(dossier, document_id, principal.participant_id) if visibility.with_files else ()
    upload = next((u for u in mine if u.id == file_id and u.status is UploadStatus.ACCEPTED), None)
    if upload is None:
        raise NotFound("No such file.")
    return documents.presigned_get(upload.key, upload.filename, upload.version)


def finish(principal: PortalPrincipal, ctx: Context) -> Dossier:
    """The role says "I am done": 409 while one of its required documents is missing."""
    account = _account(principal.account_id, ctx)

    def apply(dossier: Dossier, tokens: dict[str, list[str]]) -> Change:
        if not dossier.admits(principal.participant_id, principal.generation):
            raise Unauthenticated("This link is no longer valid.")
        if dossier.missing_required(principal.role_id):
            raise Conflict("Some required documents of this role are still missing.")
        if principal.role_id in dossier.finished_roles:
            return Change(dossier)
        changed = replace(dossier, finished_roles=(*dossier.finished_roles, principal.role_id))
        emails = _automation_emails(
            changed,
            account,
            Trigger.ROLE_FINISHED,
            f"finished:{principal.role_id}",
            principal.participant_id,
            ctx.now,
        )
        return Change(changed, emails=emails, actor=participant_actor(dossier, principal.participant_id))

    return _mutate(principal.account_id, principal.dossier_id, ctx, apply).dossier


def portal_invite(principal: PortalPrincipal, role_id: str, name: str, email: str, ctx: Context) -> Invited:
    """A `can_invite` role invites into another role than `main` and its own; the staff rules hold
    (402, 409) and the invitation always leaves."""
    dossier = portal_dossier(principal, ctx)
    if not dossier.role(principal.role_id).permissions.can_invite:
        raise Forbidden("This role may not invite anyone.")
    if role_id in (MAIN, principal.role_id):
        raise InvalidInput(
            "Invite into another contributor role.",
            [FieldIssue("role_id", "must be another contributor role")],
        )
    return invite_contributor(
        principal.account_id,
        principal.dossier_id,
        role_id,
        name,
        email,
        True,
        ctx,
        participant_actor(dossier, principal.participant_id),
    )
