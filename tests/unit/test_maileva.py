"""The Maileva adapter against a stub of Maileva's registered_mail v4 API on 127.0.0.1: what it sends,
how it resumes after a crash without posting twice, and how each failure leaves the letter to send."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from chalicelib.adapters.maileva import MailevaRegisteredMail
from chalicelib.domain.legal import BrokerIdentity, PostalAddress
from chalicelib.services.ports import (
    LetterToSend,
    LetterTrackingStatus,
    RegisteredMailUnavailable,
)
from tests.stubs.maileva_stub import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, Failure, MailevaStub

NOW = datetime(2027, 3, 12, 7, 0, tzinfo=UTC)
BROKER = BrokerIdentity(
    legal_name="Cabinet Léa Martin",
    orias_number="12345678",
    address=PostalAddress(("3 place Bellecour",), "69002", "Lyon"),
)
TIMEOUT = 0.5


def letter(
    letter_id: str = "lt_01JQ0000000000000000000001",
    name: str = "Jean Dupont",
    address: PostalAddress | None = None,
) -> LetterToSend:
    return LetterToSend(
        letter_id=letter_id,
        pdf=b"%PDF-1.7\nmise en demeure\n%%EOF",
        recipient_name=name,
        recipient_address=address or PostalAddress(("Appartement 12", "8 rue des Lilas"), "69003", "Lyon"),
        sender=BROKER,
    )


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def stub() -> Iterator[MailevaStub]:
    with MailevaStub(hang_seconds=TIMEOUT * 3) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


def adapter(stub: MailevaStub, clock: Clock | None = None, password: str = PASSWORD) -> MailevaRegisteredMail:
    """A fresh adapter, as a new Lambda container (or a worker restarted after a crash) builds it."""
    return MailevaRegisteredMail(
        stub.base_url,
        stub.auth_url,
        CLIENT_ID,
        CLIENT_SECRET,
        USERNAME,
        password,
        timeout=TIMEOUT,
        clock=clock or Clock(),
    )


def block(fields: dict[str, object], prefix: str = "") -> tuple[object, ...]:
    """The address lines Maileva received, in print order, blank ones left out."""
    lines = (fields.get(f"{prefix}address_line_{n}") for n in range(1, 7))
    return tuple(line for line in lines if line)


def test_a_letter_is_deposited_then_tracked_to_sent_with_its_paris_day_of_deposit_and_registered_number(
    stub: MailevaStub,
) -> None:
    maileva = adapter(stub)

    handed = maileva.deposit(letter(), NOW)

    sending = stub.only_sending(letter().letter_id)
    assert handed.provider_id == sending.id
    assert handed.status is LetterTrackingStatus.ACCEPTED
    assert (handed.sent_on, handed.tracking_number) == (None, None)
    assert sending.submissions == 1
    assert sending.pdfs == [letter().pdf]
    assert sending.documents[0]["type"] == "application/pdf"
    assert sending.fields["acknowledgement_of_receipt"] is True

    stub.progress(sending.id, "processed", NOW)
    assert maileva.track(sending.id, NOW).status is LetterTrackingStatus.ACCEPTED

    stub.progress(sending.id, "deposited", datetime(2027, 3, 12, 23, 30, tzinfo=UTC))  # 13 March in Paris
    tracking = maileva.track(sending.id, NOW)

    assert tracking.status is LetterTrackingStatus.SENT
    assert tracking.sent_on == date(2027, 3, 13)
    assert tracking.tracking_number == sending.recipients[0]["registered_number"]
    assert tracking.tracking_number is not None
    assert tracking.tracking_number.startswith("1A")


def test_a_delivered_letter_and_a_returned_one_keep_their_proof_of_deposit(stub: MailevaStub) -> None:
    maileva = adapter(stub)
    delivered = maileva.deposit(letter("lt_delivered"), NOW).provider_id
    returned = maileva.deposit(letter("lt_returned"), NOW).provider_id
    stub.progress(delivered, "delivered", NOW)
    stub.progress(returned, "returned", NOW)

    assert maileva.track(delivered, NOW).status is LetterTrackingStatus.DELIVERED
    assert maileva.track(delivered, NOW).sent_on == date(2027, 3, 12)
    assert maileva.track(returned, NOW).status is LetterTrackingStatus.RETURNED
    assert maileva.track(returned, NOW).tracking_number is not None


def test_a_sending_maileva_rejected_is_never_reported_as_posted(stub: MailevaStub) -> None:
    maileva = adapter(stub)
    sending_id = maileva.deposit(letter(), NOW).provider_id
    stub.progress(sending_id, "rejected", NOW)

    with pytest.raises(RegisteredMailUnavailable, match="did not post"):
        maileva.track(sending_id, NOW)
    with pytest.raises(RegisteredMailUnavailable, match="did not post"):
        maileva.deposit(letter(), NOW)
    assert len(stub.sendings) == 1


def test_the_address_block_sent_is_the_envelope_block_of_the_letter(stub: MailevaStub) -> None:
    four_lines = PostalAddress(
        ("Appartement 12", "Escalier B", "Résidence Les Tilleuls", "8 rue des Lilas"), "69003", "Lyon"
    )
    short, full = letter("lt_short"), letter("lt_full", address=four_lines)

    adapter(stub).deposit(short, NOW)
    adapter(stub).deposit(full, NOW)

    for sent in (short, full):
        sending = stub.only_sending(sent.letter_id)
        [recipient] = sending.recipients
        assert block(recipient) == sent.recipient_address.envelope_lines(sent.recipient_name)
        assert recipient["address_line_6"] == "69003 LYON"
        assert recipient["country_code"] == "FR"
        assert block(sending.fields, "sender_") == BROKER.address.envelope_lines(BROKER.legal_name)
    assert stub.only_sending("lt_short").recipients[0]["address_line_2"] == "Jean Dupont"


def test_the_token_is_asked_once_and_reused_across_calls_and_letters(stub: MailevaStub) -> None:
    maileva = adapter(stub)

    first = maileva.deposit(letter("lt_A"), NOW)
    maileva.deposit(letter("lt_B"), NOW)
    maileva.track(first.provider_id, NOW)

    assert len(stub.issued_tokens) == 1


def test_a_token_about_to_expire_is_renewed_before_the_next_call(clock: Clock) -> None:
    with MailevaStub(token_lifetime=60) as stub:
        maileva = adapter(stub, clock)
        sending_id = maileva.deposit(letter(), NOW).provider_id

        clock.seconds += 29
        maileva.track(sending_id, NOW)
        assert len(stub.issued_tokens) == 1

        clock.seconds += 2  # within 30 s of the token's 60
        maileva.track(sending_id, NOW)
        assert len(stub.issued_tokens) == 2


def test_a_token_maileva_no_longer_honours_is_renewed_once_and_the_call_made_again(stub: MailevaStub) -> None:
    maileva = adapter(stub)
    sending_id = maileva.deposit(letter(), NOW).provider_id
    stub.fail_next("list_recipients", "401")

    assert maileva.track(sending_id, NOW).status is LetterTrackingStatus.ACCEPTED
    assert len(stub.issued_tokens) == 2


def test_a_deposit_retried_after_a_crash_completes_the_sending_already_created(stub: MailevaStub) -> None:
    stub.fail_next("add_recipient", "500")
    with pytest.raises(RegisteredMailUnavailable, match="'add recipient'"):
        adapter(stub).deposit(letter(), NOW)
    interrupted = stub.only_sending(letter().letter_id)
    assert (interrupted.status, len(interrupted.documents), interrupted.recipients) == ("DRAFT", 1, [])

    tracking = adapter(stub).deposit(letter(), NOW)

    sending = stub.only_sending(letter().letter_id)
    assert tracking.provider_id == sending.id == interrupted.id
    assert (len(sending.documents), len(sending.recipients), sending.submissions) == (1, 1, 1)


def test_a_deposit_retried_after_its_submit_timed_out_posts_no_second_letter(stub: MailevaStub) -> None:
    stub.fail_next("submit", "timeout", after_effect=True)
    with pytest.raises(RegisteredMailUnavailable, match=r"'submit' \(no answer within 0.5 s\)"):
        adapter(stub).deposit(letter(), NOW)
    assert stub.only_sending(letter().letter_id).submissions == 1  # Maileva took it; we never heard back

    tracking = adapter(stub).deposit(letter(), NOW)

    sending = stub.only_sending(letter().letter_id)
    assert sending.submissions == 1
    assert tracking.provider_id == sending.id
    assert tracking.status is LetterTrackingStatus.ACCEPTED


def test_a_deposit_retried_once_the_letter_left_reports_its_proof_of_deposit(stub: MailevaStub) -> None:
    maileva = adapter(stub)
    sending_id = maileva.deposit(letter(), NOW).provider_id
    stub.progress(sending_id, "deposited", NOW)

    again = adapter(stub).deposit(letter(), NOW)

    assert (again.provider_id, again.status, again.sent_on) == (
        sending_id,
        LetterTrackingStatus.SENT,
        NOW.date(),
    )
    assert stub.only_sending(letter().letter_id).submissions == 1


def test_an_earlier_sending_is_found_beyond_the_first_page_of_the_account(stub: MailevaStub) -> None:
    stub.add_other_sendings(600)
    stub.fail_next("submit", "500")
    with pytest.raises(RegisteredMailUnavailable):
        adapter(stub).deposit(letter(), NOW)

    adapter(stub).deposit(letter(), NOW)

    assert len(stub.sendings) == 601
    assert stub.only_sending(letter().letter_id).submissions == 1


@pytest.mark.parametrize(
    ("operation", "failure", "step"),
    [
        ("token", "500", "token"),
        ("list_sendings", "429", "find sending"),
        ("create_sending", "timeout", "create sending"),
        ("create_sending", "malformed", "create sending"),
        ("add_document", "500", "add document"),
        ("submit", "500", "submit"),
    ],
)
def test_a_timeout_a_server_error_a_throttle_or_a_malformed_answer_leaves_the_letter_unposted(
    stub: MailevaStub, operation: str, failure: Failure, step: str
) -> None:
    stub.fail_next(operation, failure)

    with pytest.raises(RegisteredMailUnavailable, match=f"unavailable at step '{step}'"):
        adapter(stub).deposit(letter(), NOW)

    assert all(sending.submissions == 0 for sending in stub.sendings.values())


def test_a_refused_connection_raises_unavailable_at_the_step_it_stopped() -> None:
    with MailevaStub() as gone:
        pass  # the port is closed again: nothing listens there any more

    with pytest.raises(RegisteredMailUnavailable, match=r"unavailable at step 'token' \(connection failed"):
        adapter(gone).deposit(letter(), NOW)


def test_a_letter_maileva_would_refuse_is_refused_before_any_call_with_a_distinct_message(
    stub: MailevaStub,
) -> None:
    too_long = letter(name="Monsieur Jean-Christophe de La Tour du Pin-Montauban")

    with pytest.raises(RegisteredMailUnavailable, match="refused our request at step 'check'") as refused:
        adapter(stub).deposit(too_long, NOW)

    assert "longer than 38 characters" in str(refused.value)
    assert stub.requests == []


def test_a_request_maileva_answers_is_wrong_raises_with_its_error_code_not_as_unavailable(
    stub: MailevaStub,
) -> None:
    no_postal_code = letter(address=PostalAddress(("8 rue des Lilas",), "", "Lyon"))

    with pytest.raises(RegisteredMailUnavailable) as refused:
        adapter(stub).deposit(no_postal_code, NOW)

    message = str(refused.value)
    assert "refused our request at step 'add recipient' (HTTP 400: INVALID_ADDRESS_LINE_6)" in message
    assert "unavailable" not in message
    assert "Lilas" not in message
    assert all(sending.submissions == 0 for sending in stub.sendings.values())


def test_credentials_maileva_refuses_raise_at_the_token_step(stub: MailevaStub) -> None:
    with pytest.raises(RegisteredMailUnavailable, match="refused our request at step 'token' \\(HTTP 401"):
        adapter(stub, password="not-the-password").deposit(letter(), NOW)
    assert stub.sendings == {}


def test_secrets_never_appear_in_exception_messages(stub: MailevaStub) -> None:
    raised: list[BaseException] = []

    def attempt(maileva: MailevaRegisteredMail) -> None:
        with pytest.raises(RegisteredMailUnavailable) as caught:
            maileva.deposit(letter(), NOW)
        raised.append(caught.value)

    attempt(adapter(stub, password="wrong-" + PASSWORD))
    stub.fail_next("token", "timeout")
    attempt(adapter(stub))
    stub.fail_next("list_sendings", "401")
    stub.fail_next("list_sendings", "401")
    attempt(adapter(stub))
    stub.fail_next("create_sending", "malformed")
    attempt(adapter(stub))

    secrets = {CLIENT_SECRET, PASSWORD, *stub.issued_tokens}
    assert len(stub.issued_tokens) == 3
    for exc in raised:
        chain = []
        cause: BaseException | None = exc
        while cause is not None:
            chain.append(f"{cause} {cause!r}")
            cause = cause.__cause__ or cause.__context__
        assert not any(secret in text for secret in secrets for text in chain), exc
