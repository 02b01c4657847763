"""What SES tells us after sending: bounces and complaints, and which addresses stop receiving mail.

SES publishes events of the configuration set (through EventBridge or SNS) onto the stage's `ses-events`
queue. Each names the message by the tags Relais put on it (`account`, `communication`), so the handler
finds the communication without any index. A permanent bounce or a complaint puts the address on the
account's suppression list; a transient bounce (mailbox full, greylisting) only marks the communication.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain.clock import parse_iso
from chalicelib.domain.communications import CommunicationStatus
from chalicelib.domain.communications import normalize_address as normalize_address  # callers import it here
from chalicelib.domain.errors import InvalidInput


def address_hash(address: str) -> str:
    """What the suppression list keeps of an address (RGPD: no address at rest): the SHA-256 of its
    normalized form, enough to recognise the address again when writing to it, and to name the record."""
    return hashlib.sha256(normalize_address(address).encode()).hexdigest()


@dataclass(frozen=True)
class Suppression:
    """An entry of the suppression list as an admin sees it: the address only as its hash."""

    address_hash: str
    reason: str
    communication_id: str | None
    suppressed_at: datetime


class FeedbackKind(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class DeliveryFeedback:
    kind: FeedbackKind
    permanent: bool
    account_id: str
    communication_id: str
    addresses: tuple[str, ...]
    at: datetime | None
    detail: str
    bounce_type: str | None = None
    """SES's `bounceType` of a bounce: `Permanent`, `Transient` or `Undetermined`."""

    @property
    def status(self) -> CommunicationStatus:
        return (
            CommunicationStatus.COMPLAINED
            if self.kind is FeedbackKind.COMPLAINT
            else CommunicationStatus.BOUNCED
        )

    @property
    def suppresses(self) -> bool:
        """Complaints and permanent bounces stop every later email to the address; transient bounces don't."""
        return self.kind is FeedbackKind.COMPLAINT or self.permanent


def _unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """The SES event itself, from an SNS envelope, an EventBridge event, or as SES wrote it."""
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        return dict(json.loads(body["Message"]))
    if body.get("source") == "aws.ses" and isinstance(body.get("detail"), dict):
        return dict(body["detail"])
    return body


def _tag(mail: dict[str, Any], name: str) -> str | None:
    values = (mail.get("tags") or {}).get(name) or []
    return str(values[0]) if values else None


def parse_feedback(body: dict[str, Any]) -> DeliveryFeedback | None:
    """The feedback an SES event carries, or None for events that change nothing (sends, deliveries,
    opens) and for mail Relais did not tag (sent by something else through the same configuration set).
    Raises InvalidInput for a body that is not an SES event at all."""
    event = _unwrap(body)
    event_type = str(event.get("eventType") or event.get("notificationType") or "")
    mail = event.get("mail")
    if not event_type or not isinstance(mail, dict):
        raise InvalidInput("This message is not an SES event notification.")
    account_id, communication_id = _tag(mail, "account"), _tag(mail, "communication")
    if event_type not in ("Bounce", "Complaint") or account_id is None or communication_id is None:
        return None
    if event_type == "Bounce":
        bounce = event.get("bounce") or {}
        recipients = bounce.get("bouncedRecipients") or []
        kind, permanent = FeedbackKind.BOUNCE, bounce.get("bounceType") == "Permanent"
        detail = f"{bounce.get('bounceType', '')}/{bounce.get('bounceSubType', '')}"
        bounce_type = str(bounce.get("bounceType") or "Undetermined")
        at = bounce.get("timestamp")
    else:
        complaint = event.get("complaint") or {}
        recipients = complaint.get("complainedRecipients") or []
        kind, permanent = FeedbackKind.COMPLAINT, True
        detail = str(complaint.get("complaintFeedbackType") or "complaint")
        bounce_type = None
        at = complaint.get("timestamp")
    addresses = tuple(
        normalize_address(str(r["emailAddress"]))
        for r in recipients
        if isinstance(r, dict) and r.get("emailAddress")
    )
    return DeliveryFeedback(
        kind=kind,
        permanent=permanent,
        account_id=account_id,
        communication_id=communication_id,
        addresses=addresses,
        at=parse_iso(str(at)) if at else None,
        detail=detail,
        bounce_type=bounce_type,
    )


@dataclass(frozen=True)
class Acceptance:
    """SES accepted an email for delivery (its `Send` event)."""

    account_id: str
    communication_id: str
    mailing_id: str | None
    provider_message_id: str
    subject: str | None
    at: datetime | None
    addresses: tuple[str, ...] = ()
    """Who this message went to (normalized): one addressee for a copy of a mailing's email."""


def parse_acceptance(body: dict[str, Any]) -> Acceptance | None:
    """The acceptance a `Send` event carries; None for any other event and for untagged mail."""
    event = _unwrap(body)
    mail = event.get("mail")
    if event.get("eventType") != "Send" or not isinstance(mail, dict):
        return None
    account_id, communication_id = _tag(mail, "account"), _tag(mail, "communication")
    message_id = mail.get("messageId")
    if account_id is None or communication_id is None or not message_id:
        return None
    headers = mail.get("commonHeaders") or {}
    at = mail.get("timestamp")
    destination = mail.get("destination")
    addresses = (
        tuple(dict.fromkeys(normalize_address(str(a)) for a in destination))
        if isinstance(destination, list)
        else ()
    )
    return Acceptance(
        account_id=account_id,
        communication_id=communication_id,
        mailing_id=_tag(mail, "mailing"),
        provider_message_id=str(message_id),
        subject=str(headers["subject"]) if isinstance(headers, dict) and headers.get("subject") else None,
        at=parse_iso(str(at)) if at else None,
        addresses=addresses,
    )
