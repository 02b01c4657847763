"""Bounces and complaints: reading SES's events, marking the communication, suppressing the address."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.communications import Communication, CommunicationKind, CommunicationStatus, Recipient
from chalicelib.domain.deliverability import (
    FeedbackKind,
    normalize_address,
    parse_acceptance,
    parse_feedback,
)
from chalicelib.domain.errors import InvalidInput
from chalicelib.services.communications import CLAIM_LEASE, DeliveryRequest, deliver, queue_communication
from chalicelib.services.deliverability import record_acceptance, record_feedback
from tests.fakes import FakeCommunicationRepository, FakeMailer, FakeQueue, FakeSuppressionList

NOW = datetime(2027, 3, 11, 8, 0, tzinfo=UTC)
MAIL = {
    "messageId": "ses-1",
    "destination": ["jean@dupont.fr"],
    "tags": {"account": ["A1"], "communication": ["cm_1"], "kind": ["formal_notice"]},
}


def _bounce(bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "Jean <JEAN@Dupont.fr>"}],
            "timestamp": "2027-03-11T08:00:05Z",
        },
        "mail": MAIL,
    }


COMPLAINT = {
    "eventType": "Complaint",
    "complaint": {
        "complainedRecipients": [{"emailAddress": "jean@dupont.fr"}],
        "complaintFeedbackType": "abuse",
    },
    "mail": MAIL,
}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda event: event,
        lambda event: {"source": "aws.ses", "detail-type": "Email Bounced", "detail": event},
        lambda event: {"Type": "Notification", "Message": json.dumps(event)},
    ],
    ids=["as SES writes it", "through EventBridge", "through SNS"],
)
def test_a_permanent_bounce_is_read_from_every_delivery_path(wrap: Any) -> None:
    feedback = parse_feedback(wrap(_bounce()))
    assert feedback is not None
    assert (feedback.kind, feedback.permanent, feedback.suppresses) == (FeedbackKind.BOUNCE, True, True)
    assert (feedback.account_id, feedback.communication_id) == ("A1", "cm_1")
    assert feedback.addresses == ("jean@dupont.fr",)
    assert feedback.at == datetime(2027, 3, 11, 8, 0, 5, tzinfo=UTC)


def test_a_transient_bounce_marks_but_does_not_suppress() -> None:
    feedback = parse_feedback(_bounce("Transient"))
    assert feedback is not None
    assert (feedback.status, feedback.suppresses) == (CommunicationStatus.BOUNCED, False)


def test_deliveries_opens_and_untagged_mail_change_nothing() -> None:
    assert parse_feedback({"eventType": "Delivery", "mail": MAIL}) is None
    assert parse_feedback({**_bounce(), "mail": {"messageId": "x", "tags": {}}}) is None


@pytest.mark.parametrize("body", [{}, {"eventType": "Bounce"}, {"Type": "Notification", "Message": "{}"}])
def test_a_message_that_is_not_an_ses_event_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_feedback(body)


def test_addresses_are_compared_by_mailbox() -> None:
    assert normalize_address(" Léa Martin <LEA@Martin.FR> ") == "lea@martin.fr"


def _sent_notice() -> tuple[FakeCommunicationRepository, Communication]:
    communications = FakeCommunicationRepository()
    communication = Communication(
        id="cm_1",
        account_id="A1",
        kind=CommunicationKind.FORMAL_NOTICE,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
        created_at=NOW,
    )
    communications.add(communication, retry_at=NOW)
    communications.settle(communication.sent("Mise en demeure", "ses-1", NOW))
    return communications, communication


def test_a_permanent_bounce_marks_the_communication_and_suppresses_the_address_once() -> None:
    communications, _ = _sent_notice()
    suppressions = FakeSuppressionList()
    feedback = parse_feedback(_bounce())
    assert feedback is not None
    for _ in range(2):
        assert record_feedback(feedback, communications, suppressions, NOW) is True
    marked = communications.get("A1", "cm_1")
    assert marked is not None
    assert (marked.status, marked.status_reason) == (CommunicationStatus.BOUNCED, "bounce: Permanent/General")
    assert marked.provider_message_id == "ses-1"
    assert suppressions.suppressed("A1", ["jean@dupont.fr"]) == {"jean@dupont.fr"}
    assert suppressions.suppressed("OTHER", ["jean@dupont.fr"]) == set()


def test_a_complaint_is_never_downgraded_by_a_bounce_arriving_after_it() -> None:
    communications, _ = _sent_notice()
    suppressions = FakeSuppressionList()
    complaint, bounce = parse_feedback(COMPLAINT), parse_feedback(_bounce())
    assert complaint is not None
    assert bounce is not None
    record_feedback(complaint, communications, suppressions, NOW)
    record_feedback(bounce, communications, suppressions, NOW)
    assert communications.get("A1", "cm_1").status is CommunicationStatus.COMPLAINED


def test_feedback_about_an_unknown_communication_is_dropped() -> None:
    feedback = parse_feedback(_bounce())
    assert feedback is not None
    assert record_feedback(feedback, FakeCommunicationRepository(), FakeSuppressionList(), NOW) is False


WHEN_SUPPRESSED = ("before the email was written", "while it waited beyond the claim's lease")


@pytest.fixture(params=WHEN_SUPPRESSED)
def when(request: pytest.FixtureRequest) -> str:
    """When the address joined the list: the writing of the email leaves it out, or else the worker, which
    looks the list up again for an email whose screening is older than the claim's lease."""
    return str(request.param)


def _delivered(
    when: str, suppressed: str, to: tuple[Recipient, ...], cc: tuple[Recipient, ...] = ()
) -> tuple[FakeCommunicationRepository, FakeMailer]:
    """An unpaid reminder queued and delivered, `suppressed` joining the list at `when`."""
    suppressions = FakeSuppressionList()
    communications, mailer = FakeCommunicationRepository(suppressions), FakeMailer()
    if when == WHEN_SUPPRESSED[0]:
        suppressions.add("A1", suppressed, "bounce: Permanent/General", None, NOW)
    communication = Communication(
        id="cm_2",
        account_id="A1",
        kind=CommunicationKind.UNPAID_REMINDER,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=to,
        cc=cc,
        created_at=NOW,
    )
    queue_communication(communication, communications, FakeQueue(), NOW)
    suppressions.add("A1", suppressed, "bounce: Permanent/General", None, NOW)
    later = NOW + CLAIM_LEASE + timedelta(minutes=1)
    deliver(DeliveryRequest("A1", "cm_2"), communications, mailer, suppressions, later)
    return communications, mailer


def test_a_later_email_to_a_suppressed_address_is_skipped_not_sent(when: str) -> None:
    communications, mailer = _delivered(
        when, "jean@dupont.fr", (Recipient("Jean Dupont", "Jean@Dupont.fr", "client"),)
    )
    assert mailer.sent == []
    skipped = communications.get("A1", "cm_2")
    assert skipped is not None
    assert skipped.status is CommunicationStatus.SKIPPED
    assert skipped.status_reason == "every recipient is on the suppression list (bounced or complained)"
    assert skipped.skipped_parties == ("client",)


def test_when_the_suppressed_address_was_the_whole_to_the_cc_takes_it(when: str) -> None:
    client = Recipient("Jean Dupont", "jean@dupont.fr", "client")
    apporteur = Recipient("Courtage Ouest", "ouest@courtage.fr", "apporteur")
    communications, mailer = _delivered(when, "jean@dupont.fr", (client,), (apporteur,))
    [email] = mailer.sent
    assert (email.to, email.cc) == ((apporteur,), ())
    sent = communications.get("A1", "cm_2")
    assert sent is not None
    assert (sent.status, sent.skipped_parties) == (CommunicationStatus.SENT, ("client",))


def test_a_suppressed_cc_is_left_out_and_the_to_still_receives_it(when: str) -> None:
    client = Recipient("Jean Dupont", "jean@dupont.fr", "client")
    apporteur = Recipient("Courtage Ouest", "ouest@courtage.fr", "apporteur")
    communications, mailer = _delivered(when, "ouest@courtage.fr", (client,), (apporteur,))
    [email] = mailer.sent
    assert (email.to, email.cc) == ((client,), ())
    sent = communications.get("A1", "cm_2")
    assert sent is not None
    assert (sent.status, sent.skipped_parties) == (CommunicationStatus.SENT, ("apporteur",))


def _send_event(to: str, message_id: str, mailing: bool = True) -> dict[str, Any]:
    tags: dict[str, list[str]] = {"account": ["A1"], "communication": ["cm_m"], "kind": ["mailing"]}
    if mailing:
        tags["mailing"] = ["ml_1"]
    mail = {"messageId": message_id, "destination": [to], "tags": tags, "timestamp": "2027-03-11T08:00:01Z"}
    return {"eventType": "Send", "send": {}, "mail": mail}


def _mailing_email_being_sent(communications: FakeCommunicationRepository) -> None:
    from datetime import timedelta

    email = Communication(
        id="cm_m",
        account_id="A1",
        kind=CommunicationKind.MAILING,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", "Jean@Dupont.fr", "client"),),
        cc=(Recipient("Cabinet Bernard", "b@bernard.fr", "apporteur"),),
        created_at=NOW,
        mailing_id="ml_1",
    )
    communications.add(email, retry_at=NOW)
    communications.claim("A1", "cm_m", NOW, timedelta(minutes=15))


def test_a_send_event_names_who_the_message_went_to() -> None:
    acceptance = parse_acceptance(_send_event("Jean Dupont <Jean@Dupont.fr>", "ses-1"))
    assert acceptance is not None
    assert (acceptance.addresses, acceptance.mailing_id) == (("jean@dupont.fr",), "ml_1")


def test_the_send_event_of_one_copy_settles_that_copy_and_the_last_one_settles_the_email() -> None:
    communications = FakeCommunicationRepository()
    _mailing_email_being_sent(communications)
    first = parse_acceptance(_send_event("jean@dupont.fr", "ses-1"))
    assert first is not None
    assert record_acceptance(first, communications, NOW) is False
    waiting = communications.get("A1", "cm_m")
    assert (waiting.status, waiting.delivered_to, waiting.copies_waiting) == (
        CommunicationStatus.SENDING,
        ("jean@dupont.fr",),
        ("b@bernard.fr",),
    )
    assert record_acceptance(first, communications, NOW) is False  # a replay changes nothing
    last = parse_acceptance(_send_event("b@bernard.fr", "ses-2"))
    assert last is not None
    assert record_acceptance(last, communications, NOW) is True
    assert communications.get("A1", "cm_m").status is CommunicationStatus.SENT
    assert record_acceptance(last, communications, NOW) is False


def test_the_send_event_of_an_email_sent_to_all_at_once_settles_it_whole() -> None:
    from datetime import timedelta

    communications = FakeCommunicationRepository()
    communications.add(
        Communication(
            id="cm_m",
            account_id="A1",
            kind=CommunicationKind.MANUAL,
            sender_name="Cabinet Martin",
            reply_to=None,
            to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
            cc=(Recipient("Cabinet Bernard", "b@bernard.fr", "apporteur"),),
            created_at=NOW,
        ),
        retry_at=NOW,
    )
    communications.claim("A1", "cm_m", NOW, timedelta(minutes=15))
    acceptance = parse_acceptance(_send_event("jean@dupont.fr", "ses-1", mailing=False))
    assert acceptance is not None
    assert record_acceptance(acceptance, communications, NOW) is True
    assert communications.get("A1", "cm_m").status is CommunicationStatus.SENT
