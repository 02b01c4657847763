"""Mailing use cases: create a draft, preview it for one entity, send it once, and fan it out.

Sending marks the mailing `sending` (409 unless it was a draft) and queues its first page on the bulk
queue. `bulk_worker` fans out one page: one Query of the audience (or a slice of its `ids`), one
BatchGetItem of the clients and apporteurs it names, one of the unsubscribed, one of the suppressed,
then one TransactWriteItems with the page's emails and counts. Then it queues the emails for the
communications worker and the next page. A redelivered page writes nothing twice and queues its emails
again (delivery is once per email), so a crash between the write and the queueing loses none; it does not
queue the next page again: every copy of a page would, and the copies would multiply down the pages
(under constant duplication, page n runs 2^n times). An email whose message was lost is queued again by
the tick at its retry time, and a page whose message failed for good, or was never queued (a crash right
after the write), is queued again when the tick finds the mailing stalled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    TemplateSource,
    communication_id,
)
from chalicelib.domain.deliverability import normalize_address
from chalicelib.domain.errors import (
    AccountNotFound,
    Conflict,
    FieldIssue,
    InvalidInput,
    NotFound,
    StaleVersion,
)
from chalicelib.domain.events import Event
from chalicelib.domain.footers import footer, legal_mentions, sender_name
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.jobs import MAX_RESUMES
from chalicelib.domain.mailings import (
    PAGE_SIZE,
    Audience,
    AudienceEntity,
    Mailing,
    MailingStatus,
    PageOutcome,
    without_opted_out,
)
from chalicelib.domain.partners import RULE_NONE, Apporteur, Client, Deal, DealFilters, RecordKind
from chalicelib.domain.plans import Feature
from chalicelib.domain.recipients import Resolution, resolve_recipients
from chalicelib.domain.templates import (
    UNSUBSCRIBE_SENTENCE,
    RenderedEmail,
    TemplateError,
    render,
    render_with_footer,
    validate_template,
    with_unsubscribe_footer,
)
from chalicelib.observability import logger
from chalicelib.services.bulk import ResumeRequest
from chalicelib.services.communications import RETRY_AFTER, DeliveryRequest
from chalicelib.services.events import announce
from chalicelib.services.ports import (
    AccountRepository,
    MessageQueue,
    PartnerRecord,
    SuppressionList,
    UnsubscriptionRepository,
)

MESSAGE_TYPE = "mailing_page"
Cursor = dict[str, Any]


class MailingRepository(Protocol):
    def add(self, mailing: Mailing) -> None: ...

    def get(self, account_id: str, mailing_id: str) -> Mailing | None: ...

    def list_mailings(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Mailing], Cursor | None]: ...

    def replace_draft(self, mailing: Mailing, version: int) -> Mailing: ...

    def delete_draft(self, account_id: str, mailing_id: str) -> bool: ...

    def start_sending(
        self, account_id: str, mailing_id: str, at: datetime, first_page: dict[str, Any]
    ) -> bool: ...

    def undo_sending(self, account_id: str, mailing_id: str) -> None: ...

    def record_page(
        self,
        account_id: str,
        mailing_id: str,
        page: int,
        communications: list[Communication],
        outcome: PageOutcome,
        next_page: dict[str, Any] | None,
        retry_at: datetime,
        now: datetime,
    ) -> list[Event] | None: ...

    def claim_stalled(
        self, account_id: str, mailing_id: str, as_of: datetime
    ) -> tuple[int, dict[str, Any]] | None: ...

    def give_up_fan_out(self, account_id: str, mailing_id: str, at: datetime) -> list[Event]: ...

    def leave_schedule(self, account_id: str, mailing_id: str) -> None: ...


class AudienceSource(Protocol):
    def filter_records(
        self, account_id: str, kind: RecordKind, filters: Any, limit: int, cursor: Cursor | None
    ) -> tuple[list[PartnerRecord], Cursor | None]: ...

    def records(
        self, account_id: str, keys: Iterable[tuple[RecordKind, str]]
    ) -> dict[str, PartnerRecord]: ...


@dataclass(frozen=True)
class MailingPage:
    """What travels on the bulk queue: which page of which mailing to fan out, from where."""

    account_id: str
    mailing_id: str
    page: int
    cursor: Cursor | None = None

    def to_message(self) -> dict[str, Any]:
        return {
            "type": MESSAGE_TYPE,
            "account_id": self.account_id,
            "mailing_id": self.mailing_id,
            "page": self.page,
            "cursor": self.cursor,
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> MailingPage:
        try:
            cursor = body.get("cursor")
            return cls(
                account_id=str(body["account_id"]),
                mailing_id=str(body["mailing_id"]),
                page=int(body["page"]),
                cursor=dict(cursor) if cursor is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("A mailing page message lacks or garbles a field.") from exc


@dataclass(frozen=True)
class Addressed:
    """One audience entity, ready to write to: the records its email is about and who receives it."""

    entity_id: str
    client: Client
    deal: Deal | None
    apporteur: Apporteur | None
    resolution: Resolution


def create_mailing(
    account_id: str,
    name: str,
    template: TemplateSource,
    audience: Audience,
    mailings: MailingRepository,
    now: datetime,
) -> Mailing:
    audience.check()
    validate_template(CommunicationKind.MAILING, template, offered=audience.template_variables)
    mailing = Mailing(
        id=f"ml_{new_ulid(int(now.timestamp() * 1000))}",
        account_id=account_id,
        name=name,
        template=template,
        audience=audience,
        created_at=now,
    )
    mailings.add(mailing)
    return mailing


def get_mailing(account_id: str, mailing_id: str, mailings: MailingRepository) -> Mailing:
    mailing = mailings.get(account_id, mailing_id)
    if mailing is None:
        raise NotFound("No such mailing.")
    return mailing


def edit_draft(
    account_id: str,
    mailing_id: str,
    name: str | None,
    subject: str | None,
    body: str | None,
    audience: Audience | None,
    version: int,
    mailings: MailingRepository,
) -> Mailing:
    """Change a draft read at `version` (what is not named stays); 409 once it is sent, or when another
    edit moved it on since it was read. The template is checked against the audience it will have, so a
    contracts mailing turned to clients loses `contract.reference`."""
    mailing = get_mailing(account_id, mailing_id, mailings)
    _still_draft(mailing)
    if version != mailing.version:
        raise StaleVersion()
    changed = replace(
        mailing,
        name=mailing.name if name is None else name,
        template=TemplateSource(
            subject=mailing.template.subject if subject is None else subject,
            body=mailing.template.body if body is None else body,
        ),
        audience=mailing.audience if audience is None else audience,
    )
    changed.audience.check()
    offered = changed.audience.template_variables
    validate_template(CommunicationKind.MAILING, changed.template, offered=offered)
    return mailings.replace_draft(changed, version)


def delete_draft(account_id: str, mailing_id: str, mailings: MailingRepository) -> None:
    _still_draft(get_mailing(account_id, mailing_id, mailings))
    if not mailings.delete_draft(account_id, mailing_id):
        raise Conflict("This mailing is being sent; only a draft can be deleted.")


def _still_draft(mailing: Mailing) -> None:
    if mailing.status is not MailingStatus.DRAFT:
        raise Conflict(f"This mailing is {mailing.status.value}; only a draft can be changed or deleted.")


def list_mailings(
    account_id: str, limit: int, cursor: Cursor | None, mailings: MailingRepository
) -> tuple[list[Mailing], Cursor | None]:
    """The account's mailings, newest first."""
    return mailings.list_mailings(account_id, limit, cursor)


def send_mailing(
    account_id: str, mailing_id: str, mailings: MailingRepository, queue: MessageQueue, now: datetime
) -> Mailing:
    """Start the fan-out, once: 409 unless the mailing is a draft."""
    mailing = get_mailing(account_id, mailing_id, mailings)
    first_page = MailingPage(account_id, mailing_id, 0).to_message()
    if not mailings.start_sending(account_id, mailing_id, now, first_page):
        raise Conflict(f"This mailing is {mailing.status.value}; only a draft can be sent.")
    try:
        queue.send(first_page)
    except Exception:
        mailings.undo_sending(account_id, mailing_id)
        raise
    return replace(mailing, sending=True, send_requested_at=now)


PREVIEW_UNSUBSCRIBE_LINK = "/unsubscribe?token=apercu"
"""Where a preview's unsubscribe link points: each addressee's own signed link replaces it when sent."""


@dataclass(frozen=True)
class Preview:
    resolution: Resolution
    rendered: RenderedEmail


def preview_mailing(
    account_id: str,
    mailing_id: str,
    entity_id: str | None,
    mailings: MailingRepository,
    accounts: AccountRepository,
    partners: AudienceSource,
    unsubscriptions: UnsubscriptionRepository,
    suppressions: SuppressionList,
    now: datetime,
) -> Preview:
    """The email one entity would receive (the first of the audience when none is named), addressed as
    the fan-out would address it today."""
    mailing = get_mailing(account_id, mailing_id, mailings)
    account = _account(accounts, account_id)
    kind = mailing.audience.entity.record_kind
    record: PartnerRecord
    if entity_id is None:
        first = _page_records(mailing.audience, partners, account_id, 0, None).records[:1]
        if not first:
            raise InvalidInput(
                "The audience's first page is empty: name the entity to preview.",
                [FieldIssue("entity_id", "the audience has no entity to preview")],
            )
        record = first[0]
    else:
        named = partners.records(account_id, [(kind, entity_id)])
        if entity_id not in named or _kind_of(named[entity_id]) is not kind:
            raise NotFound(f"No such {kind.value}.")
        record = named[entity_id]
    addressed = _address(account, [record], partners, now)
    if not addressed:
        raise NotFound(f"No such {kind.value}.")
    entity = addressed[0]
    resolution, _ = _opted_out(account_id, [entity], unsubscriptions, suppressions)[0]
    variables = _variables(account, mailing.audience.entity, entity, resolution)
    try:
        rendered = render_with_footer(mailing.template, variables, mailing.audience.template_variables)
    except TemplateError as exc:
        raise InvalidInput(f"The mailing's template cannot be rendered: {exc}.") from exc
    # Staff see what each addressee gets: the legal mentions, then his own unsubscribe link (signed
    # per addressee at send time; the preview shows where it goes).
    return Preview(
        resolution,
        replace(
            rendered,
            html=with_unsubscribe_footer(rendered.html, PREVIEW_UNSUBSCRIBE_LINK),
            text=f"{rendered.text}\n\n--\n{UNSUBSCRIBE_SENTENCE} {PREVIEW_UNSUBSCRIBE_LINK}\n",
        ),
    )


def fan_out_page(
    page: MailingPage,
    mailings: MailingRepository,
    accounts: AccountRepository,
    partners: AudienceSource,
    unsubscriptions: UnsubscriptionRepository,
    suppressions: SuppressionList,
    emails: MessageQueue,
    bulk: MessageQueue,
    now: datetime,
    webhooks: MessageQueue | None = None,
) -> bool:
    """Decide, write and queue one page of a mailing's emails, then queue the next page (and announce
    `mailing.finished` when the last page left nothing to send). False when the mailing is gone or not
    sending (the message is dropped)."""
    mailing = mailings.get(page.account_id, page.mailing_id)
    if mailing is None or not mailing.sending:
        logger.warning("mailing page for a mailing that is not sending", extra=page.to_message())
        return False
    account = _account(accounts, page.account_id)
    audience = mailing.audience
    found = _page_records(audience, partners, page.account_id, page.page, page.cursor)
    addressed = _address(account, found.records, partners, now)
    communications: list[Communication] = []
    skipped = 0
    for entity, (resolution, reason) in zip(
        addressed, _opted_out(page.account_id, addressed, unsubscriptions, suppressions), strict=True
    ):
        communication = _communication(account, mailing, entity, resolution, now)
        reason = audience.consent_refusal(entity.client.marketing_consent) or reason
        if reason is not None:
            communication = communication.skipped(reason)
            skipped += 1
        communications.append(communication)
    # Records named in `ids` that the other filters exclude are not part of the audience.
    outcome = PageOutcome(entities=len(communications) + found.unknown, failed=found.unknown, skipped=skipped)
    next_page = (
        None
        if found.next_cursor is None
        else MailingPage(page.account_id, page.mailing_id, page.page + 1, found.next_cursor).to_message()
    )
    written = mailings.record_page(
        page.account_id,
        page.mailing_id,
        page.page,
        communications,
        outcome,
        next_page,
        now + RETRY_AFTER,
        now,
    )
    if written and webhooks is not None:
        announce(written, webhooks)
    emails.send_many(
        DeliveryRequest(c.account_id, c.id).to_message()
        for c in communications
        if c.status is CommunicationStatus.QUEUED
    )
    if next_page is not None and written is not None:
        bulk.send(next_page)
    logger.info(
        "mailing page fanned out",
        extra={
            "mailing_id": page.mailing_id,
            "page": page.page,
            "entities": outcome.entities,
            "replayed": written is None,
        },
    )
    return True


def resume_mailing(
    request: ResumeRequest,
    mailings: MailingRepository,
    bulk: MessageQueue,
    webhooks: MessageQueue | None = None,
) -> bool:
    """Queue again the next page of a fan-out that has not moved on for STALLED_AFTER (its message failed
    for good, or was lost); False when there was nothing to resume. A mailing no longer fanning out leaves
    the schedule; one that stalled MAX_RESUMES times in a row without a page written gives the rest of its
    audience up (`incomplete`), so that it ends. Two resumes of one stall re-queue once (the claim)."""
    account_id, mailing_id = request.account_id, request.thing_id
    mailing = mailings.get(account_id, mailing_id)
    if mailing is None:
        return False
    if not mailing.sending or mailing.fanned_out:
        mailings.leave_schedule(account_id, mailing_id)
        return False
    claimed = mailings.claim_stalled(account_id, mailing_id, request.as_of)
    if claimed is None:
        return False
    resumes, next_page = claimed
    if resumes > MAX_RESUMES:
        finished = mailings.give_up_fan_out(account_id, mailing_id, request.as_of)
        if webhooks is not None:
            announce(finished, webhooks)
        logger.warning(
            "mailing fan-out given up", extra={"mailing_id": mailing_id, "page": next_page.get("page")}
        )
        return False
    bulk.send(next_page)
    logger.info(
        "stalled mailing resumed",
        extra={"mailing_id": mailing_id, "page": next_page.get("page"), "resume": resumes},
    )
    return True


def _account(accounts: AccountRepository, account_id: str) -> Account:
    account = accounts.get(account_id)
    if account is None:
        raise AccountNotFound()
    return account


@dataclass(frozen=True)
class AudiencePage:
    records: list[PartnerRecord]
    next_cursor: Cursor | None
    unknown: int = 0
    """Ids named in the audience that are no record of the account (each counts as failed)."""


def _page_records(
    audience: Audience, partners: AudienceSource, account_id: str, page: int, cursor: Cursor | None
) -> AudiencePage:
    """One page of the audience: a slice of its `ids` (those passing the other filters), or a Query."""
    kind = audience.entity.record_kind
    if audience.ids is not None:
        unique = list(dict.fromkeys(audience.ids))
        chunk = unique[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        found = partners.records(account_id, [(kind, i) for i in chunk]) if chunk else {}
        found = {i: r for i, r in found.items() if _kind_of(r) is kind}
        records = [found[i] for i in chunk if i in found and _passes(audience, found[i])]
        more = (page + 1) * PAGE_SIZE < len(unique)
        return AudiencePage(records, {"page": page + 1} if more else None, len(chunk) - len(found))
    filters = DealFilters(
        communication_rule=audience.communication_rule,
        apporteur_id=audience.apporteur_id,
        status=audience.status,
        product_id=audience.product_id,
    )
    records, next_cursor = partners.filter_records(account_id, kind, filters, PAGE_SIZE, cursor)
    return AudiencePage(records, next_cursor)


def _kind_of(record: PartnerRecord) -> RecordKind | None:
    if isinstance(record, Client):
        return RecordKind.CLIENT
    return record.kind if isinstance(record, Deal) else None


def _passes(audience: Audience, record: PartnerRecord) -> bool:
    if isinstance(record, Client):
        rule = record.commissioning.communication_rule.value
        rule_filter = rule if record.preferred_apporteur_id else RULE_NONE
        return audience.matches(rule_filter, record.preferred_apporteur_id, None, None)
    if isinstance(record, Deal):
        return audience.matches(record.rule_filter, record.apporteur_id, record.product_id, record.status)
    return False


def _address(
    account: Account, records: list[PartnerRecord], partners: AudienceSource, now: datetime
) -> list[Addressed]:
    """Who receives each entity's email, by its own rule: one read of the clients and apporteurs named."""
    deals = [r for r in records if isinstance(r, Deal)]
    clients = {r.id: r for r in records if isinstance(r, Client)}
    if deals:
        found = partners.records(account.id, [(RecordKind.CLIENT, d.client_id) for d in deals])
        clients |= {i: r for i, r in found.items() if isinstance(r, Client)}
    apporteur_ids = {d.apporteur_id for d in deals if d.apporteur_id} | {
        c.preferred_apporteur_id for c in clients.values() if c.preferred_apporteur_id
    }
    apporteurs = {
        i: r
        for i, r in partners.records(account.id, [(RecordKind.APPORTEUR, a) for a in apporteur_ids]).items()
        if isinstance(r, Apporteur)
    }
    rules_in_force = account.partner_communications_enabled and (
        account.entitlements.access(Feature.PARTNER_COMMUNICATIONS, now).enabled
    )
    addressed = []
    for record in records:
        deal = record if isinstance(record, Deal) else None
        client = clients.get(deal.client_id) if deal else record if isinstance(record, Client) else None
        if client is None:
            continue
        holder = deal.rules if deal else client.rules
        apporteur = apporteurs.get(holder.apporteur_id) if holder.apporteur_id else None
        resolution = resolve_recipients(
            rules_in_force=rules_in_force,
            kind=CommunicationKind.MAILING,
            client=client.party,
            client_rules=client.rules,
            contract=deal.rules if deal else None,
            apporteur=apporteur.party if apporteur else None,
        )
        addressed.append(Addressed(record.id, client, deal, apporteur, resolution))
    return addressed


def _opted_out(
    account_id: str,
    addressed: list[Addressed],
    unsubscriptions: UnsubscriptionRepository,
    suppressions: SuppressionList,
) -> list[tuple[Resolution, str | None]]:
    """Each entity's recipients without the unsubscribed and the suppressed: one read of each list."""
    parties = {
        (r.party, _party_id(entity, r.party))
        for entity in addressed
        for r in (*entity.resolution.to, *entity.resolution.cc)
    }
    unsubscribed = unsubscriptions.unsubscribed(account_id, parties) if parties else set()
    addresses = {
        normalize_address(str(r.email))
        for entity in addressed
        for r in (*entity.resolution.to, *entity.resolution.cc)
    }
    suppressed = suppressions.suppressed(account_id, addresses) if addresses else set()
    return [
        without_opted_out(
            entity.resolution,
            {
                r.party
                for r in (*entity.resolution.to, *entity.resolution.cc)
                if (r.party, _party_id(entity, r.party)) in unsubscribed
            },
            suppressed,
        )
        for entity in addressed
    ]


def _party_id(entity: Addressed, party: str) -> str:
    if party == "apporteur" and entity.apporteur is not None:
        return entity.apporteur.id
    return entity.client.id


def _variables(
    account: Account, entity_kind: AudienceEntity, entity: Addressed, resolution: Resolution
) -> dict[str, str]:
    addressee = resolution.to[0] if resolution.to else None
    variables = {
        "account.name": account.public_name,
        "client.name": entity.client.name,
        "client.email": entity.client.email or "",
        "apporteur.name": entity.apporteur.name if entity.apporteur else "",
        "recipient.name": addressee.name if addressee else "",
        "recipient.party": addressee.party if addressee else "",
        **footer(legal_mentions(account)),
    }
    if entity.deal is not None:
        name = "contract.reference" if entity_kind is AudienceEntity.CONTRACTS else "project.reference"
        variables[name] = entity.deal.reference
    return variables


def _subject(mailing: Mailing, variables: dict[str, str]) -> str | None:
    """The subject the history shows from the start; None when the template cannot be rendered, which
    the worker then records as that email's failure, with the reason, without stopping the page."""
    try:
        return render(mailing.template, variables, mailing.audience.template_variables).subject
    except TemplateError:
        return None


def _communication(
    account: Account, mailing: Mailing, entity: Addressed, resolution: Resolution, now: datetime
) -> Communication:
    variables = _variables(account, mailing.audience.entity, entity, resolution)
    party_ids = {"client": entity.client.id}
    if entity.apporteur is not None:
        party_ids["apporteur"] = entity.apporteur.id
    return Communication(
        id=communication_id(account.id, f"mailing:{mailing.id}", entity.entity_id),
        account_id=account.id,
        kind=CommunicationKind.MAILING,
        sender_name=sender_name(account),
        reply_to=account.sender_email,
        to=resolution.to,
        cc=resolution.cc,
        created_at=now,
        variables=variables,
        subject=_subject(mailing, variables),
        template=mailing.template,
        client_id=entity.client.id,
        contract_id=entity.deal.id if entity.deal and entity.deal.kind is RecordKind.CONTRACT else None,
        rule=resolution.rule.value if resolution.rule else None,
        decided_by=resolution.decided_by.value if resolution.decided_by else None,
        skipped_parties=resolution.skipped_parties,
        mailing_id=mailing.id,
        party_ids=party_ids,
    )
