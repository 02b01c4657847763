"""SES (API v2) behind the Mailer port.

Emails go out as raw MIME so that the text and HTML parts, the Cc, the Reply-To and Relais' own headers
(`X-Relais-Kind`, `X-Relais-Communication`) travel exactly as built; the same headers let the local outbox
and the SES event handler tie a message back to its communication.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.communications import Recipient
from chalicelib.services.ports import MailerThrottled, MailRejected, OutgoingEmail

_RETRYABLE = {"TooManyRequestsException", "ThrottlingException", "LimitExceededException", "Throttling"}
_SERVER_SIDE = {"InternalFailure", "ServiceUnavailable", "InternalServerError"}


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
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE or code in _SERVER_SIDE:
                raise MailerThrottled(code) from exc
            raise MailRejected(code or "rejected") from exc
        return str(answer["MessageId"])
