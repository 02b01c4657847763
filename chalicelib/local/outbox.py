"""The local outbox: every email the embedded SES (moto) accepted, read back from its raw MIME."""

from __future__ import annotations

from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from chalicelib.domain.clock import iso


def _addresses(message: EmailMessage, header: str) -> list[str]:
    return [address for _, address in getaddresses(message.get_all(header, [])) if address]


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return str(body.get_content()) if body is not None else ""


def sent_messages(region: str) -> list[dict[str, Any]]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    outbox = []
    for raw in list(ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages):
        message = message_from_string(getattr(raw, "raw_data", ""), policy=policy.default)
        date = message.get("Date")
        outbox.append(
            {
                "from": str(message.get("From", "")),
                "to": _addresses(message, "To"),
                "cc": _addresses(message, "Cc"),
                "reply_to": str(message.get("Reply-To", "")) or None,
                "subject": str(message.get("Subject", "")),
                "text": _part(message, "plain"),
                "html": _part(message, "html"),
                "kind": str(message.get("X-Relais-Kind", "")),
                "communication_id": str(message.get("X-Relais-Communication", "")),
                "sent_at": iso(parsedate_to_datetime(str(date))) if date else None,
                "headers": {
                    name: str(value)
                    for name, value in message.items()
                    if name.lower().startswith(("list-", "x-relais-", "reply-to", "message-id"))
                },
                "delivered_to": list(getattr(raw, "destinations", []) or []),
            }
        )
    return outbox
