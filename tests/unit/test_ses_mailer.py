"""The SES adapter: what one email looks like on the wire, and which refusals are worth a retry."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.ses import SesMailer
from chalicelib.domain.communications import Recipient
from chalicelib.services.ports import (
    MailerOutcomeUnknown,
    MailerThrottled,
    MailerUnavailable,
    MailRejected,
    OutgoingEmail,
)

EMAIL = OutgoingEmail(
    account_id="01ACCOUNT",
    communication_id="cm_42",
    kind="unpaid_call",
    sender_name="Cabinet Léa Martin",
    reply_to="lea@martin.fr",
    to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
    cc=(Recipient("Apporteur Bernard", "bernard@apport.fr", "apporteur"),),
    subject="Votre échéance du 1er mars",
    text="Bonjour,\n",
    html="<p>Bonjour,</p>",
    sent_at=datetime(2027, 2, 14, 8, 0, tzinfo=UTC),
)


class RecordingSes:
    def __init__(self, error_code: str | None = None, http_status: int = 400) -> None:
        self.requests: list[dict[str, Any]] = []
        self.error_code = error_code
        self.http_status = http_status

    def send_email(self, **request: Any) -> dict[str, str]:
        self.requests.append(request)
        if self.error_code:
            raise ClientError(
                {
                    "Error": {"Code": self.error_code, "Message": "no"},
                    "ResponseMetadata": {"HTTPStatusCode": self.http_status},
                },
                "SendEmail",
            )
        return {"MessageId": "ses-123"}


def test_an_email_goes_out_as_mime_with_its_cc_reply_to_kind_and_configuration_set() -> None:
    ses = RecordingSes()
    assert SesMailer(ses, "notifications@relais.example", "relais").send(EMAIL) == "ses-123"
    [request] = ses.requests
    assert request["ConfigurationSetName"] == "relais"
    assert request["FromEmailAddress"] == "notifications@relais.example"
    assert request["Destination"]["ToAddresses"] == ["Jean Dupont <jean@dupont.fr>"]
    assert request["Destination"]["CcAddresses"] == ["Apporteur Bernard <bernard@apport.fr>"]
    assert {"Name": "kind", "Value": "unpaid_call"} in request["EmailTags"]
    # The tags come back in SES's bounce and complaint events: they lead to the communication.
    assert {"Name": "account", "Value": "01ACCOUNT"} in request["EmailTags"]
    assert {"Name": "communication", "Value": "cm_42"} in request["EmailTags"]
    mime = message_from_bytes(request["Content"]["Raw"]["Data"], policy=policy.default)
    assert mime["Subject"] == "Votre échéance du 1er mars"
    assert mime["From"] == "Cabinet Léa Martin <notifications@relais.example>"
    assert mime["Reply-To"] == "lea@martin.fr"
    assert mime["Cc"] == "Apporteur Bernard <bernard@apport.fr>"
    assert mime["X-Relais-Kind"] == "unpaid_call"
    assert mime["X-Relais-Communication"] == "cm_42"
    assert mime.get_body(preferencelist=("html",)).get_content().strip() == "<p>Bonjour,</p>"
    assert mime.get_body(preferencelist=("plain",)).get_content() == "Bonjour,\n"


def test_without_a_configuration_set_none_is_sent() -> None:
    ses = RecordingSes()
    SesMailer(ses, "notifications@relais.example").send(EMAIL)
    assert "ConfigurationSetName" not in ses.requests[0]


@pytest.mark.parametrize(
    "code", ["TooManyRequestsException", "ThrottlingException", "LimitExceededException"]
)
def test_throttling_is_a_retry(code: str) -> None:
    with pytest.raises(MailerThrottled):
        SesMailer(RecordingSes(code), "notifications@relais.example").send(EMAIL)


@pytest.mark.parametrize("code", ["MessageRejected", "BadRequestException"])
def test_a_refusal_of_the_message_itself_is_final(code: str) -> None:
    with pytest.raises(MailRejected):
        SesMailer(RecordingSes(code), "notifications@relais.example").send(EMAIL)


@pytest.mark.parametrize(
    "code",
    [
        "SendingPausedException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "ConfigurationSetDoesNotExistException",
        "AccessDeniedException",
        "NotAuthorizedException",
        "SomethingSesAddsNextYear",
    ],
)
def test_a_refusal_of_the_sender_is_the_accounts_problem_not_the_addresss(code: str) -> None:
    with pytest.raises(MailerUnavailable, match=code):
        SesMailer(RecordingSes(code, http_status=403), "notifications@relais.example").send(EMAIL)


@pytest.mark.parametrize(
    ("code", "status"),
    [("InternalFailure", 500), ("ServiceUnavailable", 503), ("InternalServerError", 500), ("Odd", 502)],
)
def test_a_server_error_leaves_unknown_whether_ses_accepted_the_email(code: str, status: int) -> None:
    with pytest.raises(MailerOutcomeUnknown):
        SesMailer(RecordingSes(code, http_status=status), "notifications@relais.example").send(EMAIL)
