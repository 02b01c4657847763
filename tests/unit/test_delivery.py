"""Queuing and delivering communications, with fakes: the outbox rules without any AWS."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
    TemplateSource,
)
from chalicelib.domain.plans import Plan
from chalicelib.services import accounts as account_service
from chalicelib.services.communications import (
    CLAIM_LEASE,
    RETRY_AFTER,
    DeliveryRequest,
    deliver,
    queue_communication,
    requeue_forgotten,
)
from chalicelib.services.ports import (
    DeliveryInFlight,
    MailerOutcomeUnknown,
    MailerThrottled,
    MailerUnavailable,
)
from tests.fakes import (
    FakeAccountRepository,
    FakeCommunicationRepository,
    FakeMailer,
    FakeQueue,
    FakeSuppressionList,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _welcome(to_email: str | None = "lea@martin.fr") -> Communication:
    return Communication(
        id="cm_welcome",
        account_id="A1",
        kind=CommunicationKind.ACCOUNT_WELCOME,
        sender_name="Relais",
        reply_to=None,
        to=(Recipient("Cabinet Martin", to_email, "account"),),
        created_at=NOW,
        variables={"account.name": "Cabinet Martin"},
    )


def test_opening_an_account_queues_one_french_welcome_to_its_sender_address() -> None:
    communications, queue = FakeCommunicationRepository(), FakeQueue()
    accounts = FakeAccountRepository(communications)
    account = account_service.create_account(
        account_service.NewAccount("Cabinet Martin", Plan.ESSENTIAL, "lea@martin.fr", frozenset()),
        accounts,
        queue,
        NOW,
    )
    [message] = queue.messages
    welcome = communications.get(account.id, message["communication_id"])
    assert welcome is not None
    assert welcome.kind is CommunicationKind.ACCOUNT_WELCOME
    assert [r.email for r in welcome.to] == ["lea@martin.fr"]
    assert welcome.status is CommunicationStatus.QUEUED


class _WatchedSuppressionList(FakeSuppressionList):
    """Counts the look-ups: each one is a DynamoDB call per email in the deployed worker."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def suppressed(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        self.lookups += 1
        return super().suppressed(account_id, addresses)


def test_an_accounts_welcome_is_sent_without_a_look_up_of_its_suppression_list_empty_at_opening() -> None:
    communications, queue, mailer = FakeCommunicationRepository(), FakeQueue(), FakeMailer()
    suppressions = _WatchedSuppressionList()
    account = account_service.create_account(
        account_service.NewAccount("Cabinet Martin", Plan.ESSENTIAL, "lea@martin.fr", frozenset()),
        FakeAccountRepository(communications),
        queue,
        NOW,
    )
    [message] = queue.messages
    request = DeliveryRequest(account.id, message["communication_id"])
    assert deliver(request, communications, mailer, suppressions, NOW) is CommunicationStatus.SENT
    assert suppressions.lookups == 0
    assert [email.to[0].email for email in mailer.sent] == ["lea@martin.fr"]


def test_an_email_screened_when_written_is_sent_without_a_look_up_and_looked_up_again_when_it_waited() -> (
    None
):
    communications, mailer = FakeCommunicationRepository(), FakeMailer()
    suppressions = _WatchedSuppressionList()
    queue_communication(_formal_notice(), communications, FakeQueue(), NOW)
    request = DeliveryRequest("A1", "cm_notice")
    assert deliver(request, communications, mailer, suppressions, NOW + timedelta(minutes=1)) is (
        CommunicationStatus.SENT
    )
    assert suppressions.lookups == 0
    # Written, then waiting beyond the claim's lease (SES paused the account): its screening is old.
    later = replace(_formal_notice(), id="cm_later")
    queue_communication(later, communications, FakeQueue(), NOW)
    suppressions.add("A1", "jean@dupont.fr", "bounce: Permanent/General", None, NOW)
    waited = NOW + CLAIM_LEASE + timedelta(seconds=1)
    assert deliver(DeliveryRequest("A1", "cm_later"), communications, mailer, suppressions, waited) is (
        CommunicationStatus.SKIPPED
    )
    assert suppressions.lookups == 1
    assert len(mailer.sent) == 1


def test_an_email_retried_after_ses_throttled_it_is_screened_again() -> None:
    suppressions = _WatchedSuppressionList()
    communications, mailer = FakeCommunicationRepository(suppressions), FakeMailer(throttle_next=1)
    queue_communication(_formal_notice(), communications, FakeQueue(), NOW)
    request = DeliveryRequest("A1", "cm_notice")
    with pytest.raises(MailerThrottled):
        deliver(request, communications, mailer, suppressions, NOW)
    assert suppressions.lookups == 1  # its writing's
    # The client bounced on another email meanwhile: the retry, a minute later, leaves him out.
    suppressions.add("A1", "jean@dupont.fr", "bounce: Permanent/General", None, NOW)
    assert deliver(request, communications, mailer, suppressions, NOW + timedelta(minutes=1)) is (
        CommunicationStatus.SKIPPED
    )
    assert suppressions.lookups == 2
    assert mailer.sent == []


def test_queuing_the_same_communication_twice_keeps_one_record() -> None:
    communications, queue = FakeCommunicationRepository(), FakeQueue()
    assert queue_communication(_welcome(), communications, queue, NOW) is not None
    assert queue_communication(_welcome(), communications, queue, NOW) is None
    assert len(communications.communications) == 1


def test_delivering_renders_sends_and_records_the_outcome() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer()
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    status = deliver(
        DeliveryRequest("A1", "cm_welcome"),
        communications,
        mailer,
        FakeSuppressionList(),
        NOW + timedelta(seconds=3),
    )
    assert status is CommunicationStatus.SENT
    [email] = mailer.sent
    assert email.subject == "Bienvenue sur Relais, Cabinet Martin"
    recorded = communications.get("A1", "cm_welcome")
    assert recorded is not None
    assert (recorded.status, recorded.provider_message_id) == (CommunicationStatus.SENT, "ses-1")
    assert recorded.sent_at == NOW + timedelta(seconds=3)
    assert communications.due_for_retry(NOW + timedelta(days=1), 10) == []


def test_a_second_delivery_of_a_sent_communication_sends_nothing() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer()
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
    assert (
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
        is None
    )
    assert len(mailer.sent) == 1


def test_a_throttled_send_stays_queued_for_a_retry() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer(throttle_next=1)
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    with pytest.raises(MailerThrottled):
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
    assert communications.get("A1", "cm_welcome").status is CommunicationStatus.QUEUED
    assert (
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
        is CommunicationStatus.SENT
    )


def test_a_refused_send_is_recorded_as_failed_with_its_reason() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer(reject_with="MessageRejected")
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    assert (
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
        is CommunicationStatus.FAILED
    )
    assert "MessageRejected" in (communications.get("A1", "cm_welcome").status_reason or "")


def test_a_communication_without_any_address_is_skipped_not_raised() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer()
    queue_communication(_welcome(to_email=None), communications, FakeQueue(), NOW)
    assert (
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
        is CommunicationStatus.SKIPPED
    )
    assert mailer.sent == []


def test_an_unknown_communication_is_acknowledged_without_sending() -> None:
    mailer = FakeMailer()
    assert (
        deliver(
            DeliveryRequest("A1", "cm_gone"),
            FakeCommunicationRepository(),
            mailer,
            FakeSuppressionList(),
            NOW,
        )
        is None
    )
    assert mailer.sent == []


def test_a_communication_whose_message_was_lost_is_queued_again_after_its_retry_time() -> None:
    communications, lost, tick_queue = FakeCommunicationRepository(), FakeQueue(), FakeQueue()
    queue_communication(_welcome(), communications, lost, NOW)
    assert requeue_forgotten(communications, tick_queue, NOW + RETRY_AFTER - timedelta(seconds=1)) == 0
    assert requeue_forgotten(communications, tick_queue, NOW + RETRY_AFTER) == 1
    assert tick_queue.messages == [{"account_id": "A1", "communication_id": "cm_welcome"}]
    assert requeue_forgotten(communications, tick_queue, NOW + RETRY_AFTER) == 0


def test_a_delivery_message_without_its_keys_is_refused() -> None:
    from chalicelib.domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        DeliveryRequest.from_message({"account_id": "A1"})


def test_a_communication_with_its_own_template_is_rendered_from_it_not_from_the_default() -> None:
    communications, mailer = FakeCommunicationRepository(), FakeMailer()
    own = replace(
        _welcome(),
        template=TemplateSource(subject="Ouverture de {{ account.name }}", body="Bienvenue chez nous."),
    )
    queue_communication(own, communications, FakeQueue(), NOW)
    deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
    [email] = mailer.sent
    assert (email.subject, email.text) == ("Ouverture de Cabinet Martin", "Bienvenue chez nous.\n")


class _Unsubscribe:
    def link_for(self, account_id: str, party: str, party_id: str) -> str:
        return f"https://relais.test/unsubscribe?token={party}-{party_id}"


class _PickyMailer:
    """Throttles once, or refuses, the copies sent to the addresses it is told."""

    def __init__(self, throttle_once: Collection[str] = (), refuse: Collection[str] = ()) -> None:
        self.throttle_once, self.refuse = set(throttle_once), set(refuse)
        self.sent: list[str] = []

    def send(self, email: Any) -> str:
        from chalicelib.services.ports import MailRejected

        [addressee] = email.envelope
        if addressee.email in self.throttle_once:
            self.throttle_once.discard(addressee.email)
            raise MailerThrottled("TooManyRequestsException")
        if addressee.email in self.refuse:
            raise MailRejected("MessageRejected: address malformed")
        self.sent.append(str(addressee.email))
        return f"ses-{len(self.sent)}"


def _mailing_email() -> Communication:
    return Communication(
        id="cm_mailing",
        account_id="A1",
        kind=CommunicationKind.MAILING,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
        cc=(Recipient("Cabinet Bernard", "b@bernard.fr", "apporteur"),),
        created_at=NOW,
        variables={"account.name": "Cabinet Martin", "client.name": "Jean Dupont"},
        template=TemplateSource(subject="Offre", body="Bonjour {{ client.name }}"),
        mailing_id="ml_1",
        party_ids={"client": "C1", "apporteur": "B1"},
    )


def _deliver_mailing(communications: FakeCommunicationRepository, mailer: Any) -> CommunicationStatus | None:
    return deliver(
        DeliveryRequest("A1", "cm_mailing"),
        communications,
        mailer,
        FakeSuppressionList(),
        NOW,
        unsubscribe_links=_Unsubscribe(),
    )


def test_a_mailing_throttled_after_one_copy_is_finished_by_the_retry_and_nobody_gets_two() -> None:
    communications = FakeCommunicationRepository()
    queue_communication(_mailing_email(), communications, FakeQueue(), NOW)
    mailer = _PickyMailer(throttle_once={"b@bernard.fr"})
    with pytest.raises(MailerThrottled):
        _deliver_mailing(communications, mailer)
    waiting = communications.get("A1", "cm_mailing")
    assert waiting is not None
    assert (waiting.status, waiting.delivered_to) == (CommunicationStatus.QUEUED, ("jean@dupont.fr",))
    assert _deliver_mailing(communications, mailer) is CommunicationStatus.SENT
    assert mailer.sent == ["jean@dupont.fr", "b@bernard.fr"]
    assert _deliver_mailing(communications, mailer) is None
    assert mailer.sent == ["jean@dupont.fr", "b@bernard.fr"]


def test_a_copy_refused_by_ses_does_not_keep_the_other_addressee_from_his() -> None:
    communications = FakeCommunicationRepository()
    queue_communication(_mailing_email(), communications, FakeQueue(), NOW)
    mailer = _PickyMailer(refuse={"jean@dupont.fr"})
    assert _deliver_mailing(communications, mailer) is CommunicationStatus.SENT
    assert mailer.sent == ["b@bernard.fr"]

    communications = FakeCommunicationRepository()
    queue_communication(_mailing_email(), communications, FakeQueue(), NOW)
    refused_by_all = _PickyMailer(refuse={"jean@dupont.fr", "b@bernard.fr"})
    assert _deliver_mailing(communications, refused_by_all) is CommunicationStatus.FAILED
    failed = communications.get("A1", "cm_mailing")
    assert failed is not None
    assert failed.status_reason is not None
    assert failed.status_reason.startswith("refused by the mail provider")


def _formal_notice() -> Communication:
    return Communication(
        id="cm_notice",
        account_id="A1",
        kind=CommunicationKind.FORMAL_NOTICE,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", "jean@dupont.fr", "client"),),
        cc=(Recipient("Cabinet Bernard", "b@bernard.fr", "apporteur"),),
        created_at=NOW,
        variables={"account.name": "Cabinet Martin", "client.name": "Jean Dupont"},
    )


def _queued_then_delivered(
    communication: Communication, screened_when_written: bool
) -> tuple[FakeCommunicationRepository, FakeQueue, FakeMailer]:
    """The client's address joins the suppression list before the email is written (its writing leaves
    him out), or after it, the email waiting beyond the claim's lease (the worker looks him up again)."""
    suppressions = FakeSuppressionList()
    communications, queue, mailer = FakeCommunicationRepository(suppressions), FakeQueue(), FakeMailer()
    if screened_when_written:
        suppressions.add("A1", "jean@dupont.fr", "bounce: Permanent/General", None, NOW)
    queue_communication(communication, communications, queue, NOW)
    suppressions.add("A1", "jean@dupont.fr", "bounce: Permanent/General", None, NOW)
    for message in queue.messages:
        request = DeliveryRequest.from_message(message)
        deliver(request, communications, mailer, suppressions, NOW + CLAIM_LEASE + timedelta(minutes=1))
    return communications, queue, mailer


@pytest.mark.parametrize("screened_when_written", [True, False])
def test_a_formal_notice_to_a_suppressed_client_is_skipped_never_sent_to_the_apporteur_alone(
    screened_when_written: bool,
) -> None:
    communications, queue, mailer = _queued_then_delivered(_formal_notice(), screened_when_written)
    assert mailer.sent == []
    skipped = communications.get("A1", "cm_notice")
    assert skipped is not None
    assert skipped.status is CommunicationStatus.SKIPPED
    assert skipped.skipped_parties == ("client",)
    assert skipped.status_reason == (
        "the client's address is on the suppression list (bounced or complained); "
        "a legal notice is never sent to the apporteur alone"
    )
    assert len(queue.messages) == (0 if screened_when_written else 1)


@pytest.mark.parametrize("screened_when_written", [True, False])
def test_a_reminder_to_a_suppressed_client_goes_to_the_apporteur_and_names_the_client_as_skipped(
    screened_when_written: bool,
) -> None:
    reminder = replace(_formal_notice(), kind=CommunicationKind.UNPAID_REMINDER)
    communications, _, mailer = _queued_then_delivered(reminder, screened_when_written)
    [email] = mailer.sent
    assert ([r.email for r in email.to], email.cc) == (["b@bernard.fr"], ())
    sent = communications.get("A1", "cm_notice")
    assert sent is not None
    assert (sent.status, sent.skipped_parties) == (CommunicationStatus.SENT, ("client",))


class _FailingMailer:
    """Raises `error` for the next `times` sends, then sends."""

    def __init__(self, error: Exception, times: int = 1) -> None:
        self.error, self.times = error, times
        self.sent: list[Any] = []

    def send(self, email: Any) -> str:
        if self.times > 0:
            self.times -= 1
            raise self.error
        self.sent.append(email)
        return f"ses-{len(self.sent)}"


def _deliver_welcome(communications: FakeCommunicationRepository, mailer: Any, at: datetime = NOW) -> Any:
    return deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), at)


def test_ses_pausing_the_accounts_sending_keeps_the_email_queued_and_logs_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    communications = FakeCommunicationRepository()
    mailer = _FailingMailer(MailerUnavailable("SendingPausedException"))
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    with pytest.raises(MailerUnavailable):
        _deliver_welcome(communications, mailer)
    waiting = communications.get("A1", "cm_welcome")
    assert waiting is not None
    assert waiting.status is CommunicationStatus.QUEUED
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "SES refuses to send for the account: the email stays queued until it is fixed"
    ]
    assert _deliver_welcome(communications, mailer) is CommunicationStatus.SENT
    assert len(mailer.sent) == 1


def test_a_server_error_of_ses_keeps_the_claim_so_that_no_retry_sends_a_second_copy() -> None:
    from chalicelib.services.communications import CLAIM_LEASE

    communications = FakeCommunicationRepository()
    mailer = _FailingMailer(MailerOutcomeUnknown("InternalFailure"))
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    with pytest.raises(MailerOutcomeUnknown):
        _deliver_welcome(communications, mailer)
    held = communications.get("A1", "cm_welcome")
    assert held is not None
    assert held.status is CommunicationStatus.SENDING
    # SES may have accepted it: while its Send event may still come, a retry sends nothing.
    with pytest.raises(DeliveryInFlight):
        _deliver_welcome(communications, mailer, NOW + timedelta(minutes=6))
    assert mailer.sent == []
    # It did accept it: the Send event settles it, and nothing is ever sent again.
    assert communications.accept("A1", "cm_welcome", None, "ses-9", "Bienvenue", NOW) is not None
    assert _deliver_welcome(communications, mailer, NOW + CLAIM_LEASE + timedelta(minutes=1)) is None
    assert mailer.sent == []


def test_a_server_error_after_which_no_send_event_came_is_sent_once_when_the_claim_lapses() -> None:
    from chalicelib.services.communications import CLAIM_LEASE

    communications = FakeCommunicationRepository()
    mailer = _FailingMailer(MailerOutcomeUnknown("ServiceUnavailable"))
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    with pytest.raises(MailerOutcomeUnknown):
        _deliver_welcome(communications, mailer)
    later = NOW + CLAIM_LEASE + timedelta(minutes=1)
    assert _deliver_welcome(communications, mailer, later) is CommunicationStatus.SENT
    assert len(mailer.sent) == 1


class _BouncingBeforeTheWorker(FakeMailer):
    """SES accepts the email, and its bounce is recorded before `send` returns to the worker."""

    def __init__(self, communications: FakeCommunicationRepository) -> None:
        super().__init__()
        self.communications = communications

    def send(self, email: Any) -> str:
        from chalicelib.domain.deliverability import DeliveryFeedback, FeedbackKind
        from chalicelib.services.deliverability import record_feedback

        message_id = super().send(email)
        bounce = DeliveryFeedback(
            FeedbackKind.BOUNCE, True, "A1", "cm_welcome", ("lea@martin.fr",), None, "Permanent/General"
        )
        assert record_feedback(bounce, self.communications, FakeSuppressionList(), NOW)
        return message_id


def test_a_bounce_recorded_before_the_worker_settles_stays_and_the_sending_is_recorded_under_it() -> None:
    communications = FakeCommunicationRepository()
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    mailer = _BouncingBeforeTheWorker(communications)
    request = DeliveryRequest("A1", "cm_welcome")
    assert deliver(request, communications, mailer, FakeSuppressionList(), NOW) is CommunicationStatus.SENT
    assert deliver(request, communications, mailer, FakeSuppressionList(), NOW) is None
    recorded = communications.get("A1", "cm_welcome")
    assert recorded is not None
    assert (recorded.status, recorded.status_reason) == (
        CommunicationStatus.BOUNCED,
        "bounce: Permanent/General",
    )
    assert (recorded.provider_message_id, recorded.sent_at) == ("ses-1", NOW)
    assert sorted(e.type.value for e in communications.events) == [
        "communication.bounced",
        "communication.sent",
    ]
    assert len(mailer.sent) == 1


def test_the_workers_outcomes_are_left_to_the_webhook_tick_each_once() -> None:
    communications = FakeCommunicationRepository()
    queue_communication(_welcome(), communications, FakeQueue(), NOW)
    nobody = replace(_welcome(), id="cm_nobody")
    queue_communication(nobody, communications, FakeQueue(), NOW)
    communications.forget("A1", "cm_nobody")  # its addresses gone: the worker skips it
    mailer = FakeMailer()
    for _ in range(2):  # each message delivered twice (at least once)
        deliver(DeliveryRequest("A1", "cm_welcome"), communications, mailer, FakeSuppressionList(), NOW)
        deliver(DeliveryRequest("A1", "cm_nobody"), communications, mailer, FakeSuppressionList(), NOW)
    assert [(e.type.value, e.data["communication_id"]) for e in communications.left_to_the_tick] == [
        ("communication.sent", "cm_welcome"),
        ("communication.skipped", "cm_nobody"),
    ]
    assert len(mailer.sent) == 1
