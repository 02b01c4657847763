"""Mailings (publipostage by email): one template, an audience of clients, contracts or projects, and one
email per audience entity, addressed by that entity's own rule.

A mailing is a draft until it is sent (once). Sending fans out in pages of the audience; each page
decides its emails and counts its entities in `total`, and each email's outcome moves `sent`, `failed`
or `skipped`. The mailing is done when the fan-out has read the whole audience and every entity it
counted has an outcome: `sent + failed + skipped = total`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chalicelib.domain.communications import CommunicationKind, Recipient, TemplateSource
from chalicelib.domain.deliverability import normalize_address
from chalicelib.domain.errors import FieldIssue, InvalidInput, PayloadTooLarge
from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
from chalicelib.domain.jobs import MAX_IDS
from chalicelib.domain.partners import RULE_NONE, STATUSES, RecordKind
from chalicelib.domain.recipients import CommunicationRule, Resolution
from chalicelib.domain.templates import KIND_VARIABLES

PAGE_SIZE = 50
"""Entities per fan-out page: a page's emails and its marker fit one TransactWriteItems (100 actions)."""

NO_MARKETING_CONSENT = "the client has not agreed to receive marketing (marketing_consent is false)"


class AudienceEntity(StrEnum):
    CLIENTS = "clients"
    CONTRACTS = "contracts"
    PROJECTS = "projects"

    @property
    def record_kind(self) -> RecordKind:
        return {
            AudienceEntity.CLIENTS: RecordKind.CLIENT,
            AudienceEntity.CONTRACTS: RecordKind.CONTRACT,
            AudienceEntity.PROJECTS: RecordKind.PROJECT,
        }[self]


class MailingStatus(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    SENT = "sent"
    PARTIALLY_FAILED = "partially_failed"


@dataclass(frozen=True)
class Audience:
    entity: AudienceEntity
    communication_rule: str | None = None
    apporteur_id: str | None = None
    product_id: str | None = None
    status: str | None = None
    ids: tuple[str, ...] | None = None

    def consent_refusal(self, marketing_consent: bool) -> str | None:
        """Why an entity's email is skipped for want of consent: prospects (the `projects` audience) hear of
        new business only if their client agreed (RGPD); existing clients unless they unsubscribed."""
        if self.entity is AudienceEntity.PROJECTS and not marketing_consent:
            return NO_MARKETING_CONSENT
        return None

    def check(self) -> None:
        """Refuse filters the entity does not have, with every issue at once; more than 10,000 distinct
        ids is too large, as for a bulk change (a repeated id counts once)."""
        if self.ids is not None and len(set(self.ids)) > MAX_IDS:
            raise PayloadTooLarge(f"A mailing names at most {MAX_IDS} records one by one.")
        issues: list[FieldIssue] = []
        prefix = "audience.filters."
        rules = [r.value for r in CommunicationRule] + [RULE_NONE]
        if self.communication_rule is not None and self.communication_rule not in rules:
            issues.append(FieldIssue(f"{prefix}communication_rule", f"must be one of: {', '.join(rules)}"))
        if self.entity is AudienceEntity.CLIENTS:
            for name in ("product_id", "status"):
                if getattr(self, name) is not None:
                    issues.append(FieldIssue(f"{prefix}{name}", "clients have no such filter"))
        elif self.status is not None and self.status not in STATUSES[self.entity.record_kind]:
            allowed = ", ".join(STATUSES[self.entity.record_kind])
            issues.append(FieldIssue(f"{prefix}status", f"must be one of: {allowed}"))
        if self.ids is not None and not self.ids:
            issues.append(FieldIssue(f"{prefix}ids", "must name at least one record"))
        if issues:
            raise InvalidInput("The audience is invalid.", issues)

    @property
    def template_variables(self) -> frozenset[str]:
        """A mailing's variables: the reference of its own entity only."""
        unavailable = {
            AudienceEntity.CLIENTS: {"contract.reference", "project.reference"},
            AudienceEntity.CONTRACTS: {"project.reference"},
            AudienceEntity.PROJECTS: {"contract.reference"},
        }[self.entity]
        return KIND_VARIABLES[CommunicationKind.MAILING] - unavailable

    def matches(
        self, rule_filter: str, apporteur_id: str | None, product_id: str | None, status: str | None
    ) -> bool:
        """Whether a record named in `ids` also passes the other filters."""
        return (
            (self.communication_rule is None or self.communication_rule == rule_filter)
            and (self.apporteur_id is None or self.apporteur_id == apporteur_id)
            and (self.product_id is None or self.product_id == product_id)
            and (self.status is None or self.status == status)
        )


@dataclass(frozen=True)
class Mailing:
    id: str
    account_id: str
    name: str
    template: TemplateSource
    audience: Audience
    created_at: datetime
    sending: bool = False
    send_requested_at: datetime | None = None
    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    fanned_out: bool = False
    incomplete: bool = False
    """The fan-out was given up: a page failed at every attempt, so part of the audience was never read."""
    version: int = 1
    """Of the draft: each edit moves it on, and an edit made at another version than the stored one is
    refused (two people editing one draft must not lose a change silently)."""

    @property
    def status(self) -> MailingStatus:
        if not self.sending:
            return MailingStatus.DRAFT
        if not self.fanned_out or self.sent + self.failed + self.skipped < self.total:
            return MailingStatus.SENDING
        return MailingStatus.PARTIALLY_FAILED if self.failed or self.incomplete else MailingStatus.SENT


@dataclass(frozen=True)
class MailingCounts:
    total: int
    sent: int
    failed: int
    skipped: int
    incomplete: bool = False

    @property
    def status(self) -> MailingStatus:
        """The status of a mailing these counts end."""
        return MailingStatus.PARTIALLY_FAILED if self.failed or self.incomplete else MailingStatus.SENT


def finished_event(account_id: str, mailing_id: str, counts: MailingCounts, at: datetime) -> Event:
    """`mailing.finished`, written by the one write that ends the mailing, with its final counts."""
    return Event(
        account_id=account_id,
        type=EventType.MAILING_FINISHED,
        at=at,
        subject=Subject(SubjectKind.ACCOUNT, account_id),
        data={
            "mailing_id": mailing_id,
            "status": counts.status.value,
            "total": counts.total,
            "sent": counts.sent,
            "failed": counts.failed,
            "skipped": counts.skipped,
        },
    )


@dataclass(frozen=True)
class PageOutcome:
    """What one fan-out page counted at once: entities, and those that failed (unknown ids) or were
    skipped before any email (nobody to write to, everyone unsubscribed)."""

    entities: int
    failed: int
    skipped: int


def without_opted_out(
    resolution: Resolution, unsubscribed: set[str], suppressed: set[str]
) -> tuple[Resolution, str | None]:
    """A mailing's recipients without the parties who unsubscribed and the addresses on the suppression
    list (normalized); a remaining Cc takes an emptied To. Also the reason when nobody remains."""

    def kept(recipient: Recipient) -> bool:
        return (
            recipient.party not in unsubscribed and normalize_address(str(recipient.email)) not in suppressed
        )

    to = tuple(r for r in resolution.to if kept(r))
    cc = tuple(r for r in resolution.cc if kept(r))
    if not to and cc:
        to, cc = cc, ()
    left = tuple(r.party for r in (*resolution.to, *resolution.cc) if not kept(r))
    outcome = replace(resolution, to=to, cc=cc, skipped_parties=resolution.skipped_parties + left)
    if to:
        return outcome, None
    if not resolution.to:
        return outcome, "no recipient has an email address"
    if any(r.party in unsubscribed for r in (*resolution.to, *resolution.cc)):
        return outcome, "every recipient unsubscribed from mailings or is on the suppression list"
    return outcome, "every recipient is on the suppression list (bounced or complained)"
