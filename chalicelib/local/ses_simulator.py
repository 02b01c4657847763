"""SES's mailbox simulator, played by the local stage as SES plays it in its sandbox.

Every email sent gives a Send event, as the configuration set publishes it in AWS.
An email to `bounce@simulator.amazonses.com` is sent as usual, then comes back as a permanent bounce; one to
`complaint@simulator.amazonses.com` as a complaint. The event travels the deployed path: it is put on the
stage's ses-events queue shaped as EventBridge delivers SES events there, and `ses_events` handles it on
the next drain. Only the local stage builds this wrapper (`chalicelib.local.container`).
"""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.domain.clock import iso
from chalicelib.services.ports import Mailer, MessageQueue, OutgoingEmail

BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


class MailboxSimulator:
    def __init__(self, mailer: Mailer, events: MessageQueue, region: str) -> None:
        self._mailer = mailer
        self._events = events
        self._region = region

    def send(self, email: OutgoingEmail) -> str:
        message_id = self._mailer.send(email)
        envelope = email.envelope if email.envelope is not None else (*email.to, *email.cc)
        addresses = [str(r.email).lower() for r in envelope if r.email]
        self._events.send(self._event(email, message_id, "", addresses))
        for address in addresses:
            if address in (BOUNCE, COMPLAINT):
                self._events.send(self._event(email, message_id, address, addresses))
        return message_id

    def _event(
        self, email: OutgoingEmail, message_id: str, address: str, destination: list[str]
    ) -> dict[str, Any]:
        at = iso(email.sent_at)
        mail = {
            "timestamp": at,
            "messageId": message_id,
            "destination": destination,
            "tags": {
                "account": [email.account_id],
                "communication": [email.communication_id],
                "kind": [email.kind],
                **({"mailing": [email.mailing_id]} if email.mailing_id else {}),
            },
            "commonHeaders": {"subject": email.subject},
        }
        if not address:
            detail_type, detail = "Email Sent", {"eventType": "Send", "send": {}, "mail": mail}
        elif address == BOUNCE:
            detail_type, detail = (
                "Email Bounced",
                {
                    "eventType": "Bounce",
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": "General",
                        "bouncedRecipients": [{"emailAddress": address}],
                        "timestamp": at,
                    },
                    "mail": mail,
                },
            )
        else:
            detail_type, detail = (
                "Email Complaint Received",
                {
                    "eventType": "Complaint",
                    "complaint": {
                        "complainedRecipients": [{"emailAddress": address}],
                        "complaintFeedbackType": "abuse",
                        "timestamp": at,
                    },
                    "mail": mail,
                },
            )
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.ses",
            "time": at,
            "region": self._region,
            "resources": [],
            "detail": detail,
        }
