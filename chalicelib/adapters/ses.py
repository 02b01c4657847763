"""SES (API v2) behind the Mailer port.

Emails go out as raw MIME so that the text and HTML parts, the Cc, the Reply-To and Relais' own headers
(`X-Relais-Kind`, `X-Relais-Communication`) travel exactly as built; the same headers let the local outbox
and the SES event handler tie a message back to its communication.

SES's refusals fall in four kinds, and only one of them is the address's fault: throttling (try again),
a refusal of the account itself (sending paused, account suspended, configuration set or permission
missing: try again once fixed), a server error (SES may have accepted the message: the claim must stay),
and a refusal of the message or its addressee (final). An error code SES adds later is treated as the
account's problem: the email waits, and the logged error says why, instead of failing for good.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.communications import Recipient
from chalicelib.services.ports import (
    MailerOutcomeUnknown,
    MailerThrottled,
    MailerUnavailable,
    MailRejected,
    OutgoingEmail,
)

_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "LimitExceededException", "Throttling"}
_SERVER_SIDE = {"InternalFailure", "ServiceUnavailable", "InternalServerError"}
_MESSAGE_REFUSED = {"MessageRejected", "BadRequestException", "InvalidParameterValue"}
"""The refusals of this message or of its addressee (a malformed or refused address): the only final ones."""


def _address(recipient: Recipient) -> str:
    return formataddr((recipient.name, str(recipient.email)))


def build_mime(email: OutgoingEmail, from_address: str) -> EmailMessage:
    message = EmailMessage()
    domain = Address(addr_spec=from_address).domain
    message["From"] = formataddr((email.sender_name, from_address))
    message["To"] = ", ".join(_address(r) for r in email.to)
    if email.cc:
        message["Cc"] = ", ".join(_address(r) for r in email.cc)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(email.sent_at)
    message["Message-ID"] = make_msgid(idstring=email.communication_id, domain=domain)
    message["X-Relais-Kind"] = email.kind
    message["X-Relais-Communication"] = email.communication_id
    for name, value in email.headers:
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str | None = None) -> None:
        self._client = client
        self._from_address = from_address
        self._configuration_set = configuration_set

    def send(self, email: OutgoingEmail) -> str:
        raw = build_mime(email, self._from_address).as_bytes()
        request: dict[str, Any] = {
            "FromEmailAddress": self._from_address,
            "Destination": (
                {"ToAddresses": [_address(r) for r in email.envelope]}
                if email.envelope is not None
                else {
                    "ToAddresses": [_address(r) for r in email.to],
                    "CcAddresses": [_address(r) for r in email.cc],
                }
            ),
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [
                {"Name": "account", "Value": email.account_id},
                {"Name": "kind", "Value": email.kind},
                {"Name": "communication", "Value": email.communication_id},
            ]
            + ([{"Name": "mailing", "Value": email.mailing_id}] if email.mailing_id else []),
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            answer = self._client.send_email(**request)
        except ClientError as exc:
            raise _refusal(exc) from exc
        return str(answer["MessageId"])


def _refusal(error: ClientError) -> Exception:
    """The Mailer port's exception for one SES error."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _THROTTLED:
        return MailerThrottled(code)
    if code in _SERVER_SIDE or status >= 500:
        return MailerOutcomeUnknown(code or str(status))
    if code in _MESSAGE_REFUSED:
        return MailRejected(code)
    return MailerUnavailable(code or str(status))
