"""The local stage's registered-letter provider: deposits at once as of the tick, keeps what it took."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from chalicelib.adapters.simulated_registered_mail import SimulatedRegisteredMail
from chalicelib.domain.legal import BrokerIdentity, PostalAddress
from chalicelib.services.ports import (
    LetterToSend,
    LetterTrackingStatus,
    RegisteredMailUnavailable,
)

BROKER = BrokerIdentity(
    legal_name="Cabinet Léa Martin",
    orias_number="12345678",
    address=PostalAddress(("3 place Bellecour",), "69002", "Lyon"),
)


def letter(letter_id: str = "lt_01JQ0000000000000000000001") -> LetterToSend:
    return LetterToSend(
        letter_id=letter_id,
        pdf=b"%PDF-1.7\nmise en demeure\n%%EOF",
        recipient_name="Jean Dupont",
        recipient_address=PostalAddress(("8 rue des Lilas",), "69003", "Lyon"),
        sender=BROKER,
    )


TICK = datetime(2027, 3, 12, 7, 0, tzinfo=UTC)


def test_a_letter_is_deposited_at_once_on_the_paris_day_of_the_tick() -> None:
    provider = SimulatedRegisteredMail()

    late_evening_utc = datetime(2027, 3, 12, 23, 30, tzinfo=UTC)  # already 13 March in Paris
    tracking = provider.deposit(letter(), late_evening_utc)

    assert tracking.status is LetterTrackingStatus.SENT
    assert tracking.sent_on == date(2027, 3, 13)
    assert tracking.tracking_number is not None
    assert tracking.tracking_number.startswith("1A")
    assert len(tracking.tracking_number) == 13
    assert tracking.tracking_number[2:].isdigit()


def test_the_tracking_number_derives_from_the_letter_id() -> None:
    first = SimulatedRegisteredMail().deposit(letter("lt_A"), TICK)
    again = SimulatedRegisteredMail().deposit(letter("lt_A"), TICK)
    other = SimulatedRegisteredMail().deposit(letter("lt_B"), TICK)

    assert first.tracking_number == again.tracking_number
    assert first.tracking_number != other.tracking_number


def test_a_letter_handed_over_twice_is_posted_once_with_its_first_proof() -> None:
    provider = SimulatedRegisteredMail()
    first = provider.deposit(letter(), TICK)

    second = provider.deposit(letter(), datetime(2027, 3, 14, 7, 0, tzinfo=UTC))

    assert second == first
    assert len(provider.letters()) == 1


def test_the_letters_taken_keep_their_pdf_and_proof_in_deposit_order() -> None:
    provider = SimulatedRegisteredMail()
    provider.deposit(letter("lt_A"), TICK)
    provider.deposit(letter("lt_B"), TICK)

    taken = provider.letters()

    assert [t.letter.letter_id for t in taken] == ["lt_A", "lt_B"]
    assert taken[0].letter.pdf.startswith(b"%PDF")
    assert taken[0].deposited_at == TICK
    assert taken[0].tracking.sent_on == date(2027, 3, 12)


def test_told_to_fail_it_refuses_the_next_deposits_then_takes_the_letter() -> None:
    provider = SimulatedRegisteredMail()
    provider.fail_next_deposits(2)

    for _ in range(2):
        with pytest.raises(RegisteredMailUnavailable):
            provider.deposit(letter(), TICK)
    assert provider.letters() == ()

    assert provider.deposit(letter(), TICK).status is LetterTrackingStatus.SENT
    assert len(provider.letters()) == 1


def test_tracking_a_letter_gives_its_deposit_and_an_unknown_one_is_unavailable() -> None:
    provider = SimulatedRegisteredMail()
    tracking = provider.deposit(letter(), TICK)

    assert provider.track(tracking.provider_id, TICK) == tracking
    with pytest.raises(RegisteredMailUnavailable):
        provider.track("sim_unknown", TICK)


def test_a_deposit_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        SimulatedRegisteredMail().deposit(letter(), datetime(2027, 3, 12, 7, 0))


def test_told_the_post_delivered_or_returned_a_letter_its_tracking_says_so() -> None:
    provider = SimulatedRegisteredMail()
    delivered = provider.deposit(letter("lt_A"), TICK)
    returned = provider.deposit(letter("lt_B"), TICK)

    provider.settle("lt_A", LetterTrackingStatus.DELIVERED)
    provider.settle("lt_B", LetterTrackingStatus.RETURNED)

    assert provider.track(delivered.provider_id, TICK).status is LetterTrackingStatus.DELIVERED
    assert provider.track(returned.provider_id, TICK).status is LetterTrackingStatus.RETURNED
    assert provider.track(returned.provider_id, TICK).sent_on == date(2027, 3, 12)


def test_told_to_fail_it_refuses_the_next_tracking_checks_then_answers() -> None:
    provider = SimulatedRegisteredMail()
    tracking = provider.deposit(letter(), TICK)
    provider.fail_next_checks(1)

    with pytest.raises(RegisteredMailUnavailable):
        provider.track(tracking.provider_id, TICK)
    assert provider.track(tracking.provider_id, TICK) == tracking
    assert provider.deposit(letter("lt_other"), TICK).status is LetterTrackingStatus.SENT
