"""A contract's dunning as the broker's software hears it and the contract's activity log shows it: the
registered letter prepared, sent, delivered (`formal_notice.*`), the contract suspended, due for
termination, terminated, reinstated (`contract.*`), each once, in order, by the tick (system) or by the
staff user who acted, and announced on the webhooks queue."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.clock import parse_iso
from chalicelib.domain.events import ActorKind, Event, SubjectKind
from chalicelib.services.dunning import StepRequest, run_step
from tests.announced import activity, announced
from tests.integration.test_formal_notice import Office, _book, _chalice_office, _paths, paris
from tests.support import RelaisTestClient

pytestmark = pytest.mark.usefixtures("webhooks_left_queued")


@pytest.fixture
def broker(client: RelaisTestClient, aws: Any) -> Office:
    office = _chalice_office(client, aws)
    office.ok("PATCH", "/account/settings", {"partner_communications_enabled": True})
    office.drain()
    return office


STAFF = "user-admin"
"""The subject of the admin token the `broker` fixture calls with."""


def _activity(aws: Any, book: Any) -> list[Event]:
    return activity(aws, book["account_id"], SubjectKind.CONTRACT, book["contract"]["id"])


def _told(aws: Any, book: Any) -> list[Event]:
    """The contract's events other than its emails', oldest first."""
    return [e for e in _activity(aws, book) if not e.type.value.startswith("communication.")]


def _staff_acts_at(aws: Any, moment: str) -> None:
    """Staff act on the tick's calendar (the local tick moves only the scheduler's clock)."""
    at = parse_iso(moment)
    aws.clock = lambda: at


def _booked(broker: Office) -> Any:
    return _book(broker) | {"account_id": broker.ok("GET", "/account")["id"]}


def test_the_worked_example_is_told_in_order_each_step_once_by_whoever_took_it(
    broker: Office, aws: Any
) -> None:
    book = _booked(broker)
    contract, installment = _paths(book)
    ids = {
        "contract_id": book["contract"]["id"],
        "client_id": book["client"]["id"],
        "installment_id": book["installment"]["id"],
    }
    broker.tick(paris("2027-03-12"))
    broker.tick(paris("2027-03-12"))  # a tick replayed
    _staff_acts_at(aws, paris("2027-03-12", 15))
    broker.ok(
        "POST",
        f"{installment}/formal-notice/sent",
        {"sent_on": "2027-03-12", "tracking_number": "1A12345678901"},
    )
    broker.tick(paris("2027-04-12"))
    broker.tick(paris("2027-04-12", 9))
    broker.tick(paris("2027-04-22"))
    _staff_acts_at(aws, paris("2027-04-22", 15))
    broker.ok("POST", f"{contract}/termination", {"effective_on": "2027-04-23"})
    told = _told(aws, book)
    assert [(e.type.value, e.actor.kind, e.actor.id) for e in told] == [
        ("formal_notice.prepared", ActorKind.SYSTEM, "relais"),
        ("formal_notice.sent", ActorKind.STAFF, STAFF),
        ("contract.suspended", ActorKind.SYSTEM, "relais"),
        ("contract.termination_due", ActorKind.SYSTEM, "relais"),
        ("contract.terminated", ActorKind.STAFF, STAFF),
    ]
    prepared, sent, suspended, due, terminated = told
    letter = broker.ok("GET", installment)["formal_notice"]
    assert prepared.data == ids | {
        "letter_id": f"{book['installment']['id']}-MD",
        "channel": "manual",
        "status": "to_send",
        "prepared_on": "2027-03-12",
        "sha256": letter["sha256"],
    }
    assert sent.data == ids | {
        "letter_id": f"{book['installment']['id']}-MD",
        "channel": "manual",
        "status": "sent",
        "sent_on": "2027-03-12",
        "tracking_number": "1A12345678901",
        "provider_id": None,
    }
    assert suspended.data == ids | {"effective_on": "2027-04-12"}
    assert due.data == ids | {"effective_on": "2027-04-22"}
    assert terminated.data == ids | {"effective_on": "2027-04-23"}
    messages = {m["id"]: m for m in announced(aws)}
    for event in told:
        assert messages[event.id]["type"] == event.type.value
        assert messages[event.id]["subject"] == {"kind": "contract", "id": book["contract"]["id"]}


def test_the_dunning_emails_are_in_the_contracts_activity_too(broker: Office, aws: Any) -> None:
    book = _booked(broker)
    broker.tick(paris("2027-02-14"))
    events = _activity(aws, book)
    [call] = [e for e in events if e.type.value == "communication.sent"]
    assert (call.data["kind"], call.data["contract_id"]) == ("unpaid_call", book["contract"]["id"])


def test_a_step_message_delivered_twice_tells_its_step_once(broker: Office, aws: Any) -> None:
    book = _booked(broker)
    request = StepRequest(
        book["account_id"],
        book["contract"]["id"],
        "INSTALLMENT",
        book["installment"]["id"],
        aws.now().replace(year=2027, month=3, day=12, hour=8),
    )
    assert run_step(request, aws.dunning_context()) is False  # the letter step leaves no email to queue
    assert run_step(request, aws.dunning_context()) is False
    assert [e.type.value for e in _told(aws, book)] == ["formal_notice.prepared"]


def test_a_payment_that_reinstates_a_suspended_contract_is_told_with_the_staff_user(
    broker: Office, aws: Any
) -> None:
    book = _booked(broker)
    contract, installment = _paths(book)
    broker.tick(paris("2027-03-12"))
    broker.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A1"}
    )
    broker.tick(paris("2027-04-12"))
    _staff_acts_at(aws, paris("2027-04-15", 15))
    broker.ok("POST", f"{installment}/payments", {"paid_at": "2027-04-15"})
    reinstated = _told(aws, book)[-1]
    assert (reinstated.type.value, reinstated.actor.kind, reinstated.actor.id) == (
        "contract.reinstated",
        ActorKind.STAFF,
        STAFF,
    )
    assert reinstated.data == {
        "contract_id": book["contract"]["id"],
        "client_id": book["client"]["id"],
        "installment_id": book["installment"]["id"],
        "cover_resumes_at": "2027-04-16T10:00:00Z",
        "suspension_voided": False,
    }
    assert broker.ok("GET", contract)["status"] == "active"


def test_a_letter_the_provider_posts_and_delivers_is_told_prepared_sent_then_delivered(
    broker: Office, aws: Any
) -> None:
    from chalicelib.services.ports import LetterTrackingStatus

    broker.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    book = _booked(broker)
    broker.tick(paris("2027-03-12"))
    [letter] = broker.letters()
    aws.registered_mail.settle(letter["id"], LetterTrackingStatus.DELIVERED)
    broker.tick(paris("2027-03-13"))
    broker.tick(paris("2027-03-14"))
    told = _told(aws, book)
    assert [e.type.value for e in told] == [
        "formal_notice.prepared",
        "formal_notice.sent",
        "formal_notice.delivered",
    ]
    assert all(e.actor.kind is ActorKind.SYSTEM for e in told)
    delivered = told[-1]
    assert delivered.data["letter_id"] == letter["id"]
    assert delivered.data["provider_id"]
    assert delivered.data["tracking_number"] == letter["tracking_number"]
    assert (delivered.data["channel"], delivered.data["status"]) == ("provider", "delivered")


def test_a_staff_patch_of_the_contracts_status_is_told_with_the_staff_user(broker: Office, aws: Any) -> None:
    book = _booked(broker)
    contract, _ = _paths(book)
    broker.ok("PATCH", contract, {"status": "suspended", "version": 1})
    broker.ok("PATCH", contract, {"reference": "HAB-2027-001 bis", "version": 2})
    told = _told(aws, book)
    assert [(e.type.value, e.actor.id) for e in told] == [("contract.suspended", STAFF)]
    assert told[0].data["contract_id"] == book["contract"]["id"]
    assert "installment_id" not in told[0].data


def test_erasing_a_client_erases_his_contracts_activity_and_no_one_elses(broker: Office, aws: Any) -> None:
    from chalicelib.local.pumps import drain

    account_id = broker.ok("GET", "/account")["id"]
    jean = broker.ok("POST", "/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}, 201)
    paul = broker.ok("POST", "/clients", {"name": "Paul Martin", "email": "paul@martin.fr"}, 201)
    mine = [
        broker.ok("POST", "/contracts", {"client_id": jean["id"], "reference": f"J-{n}"}, 201)["id"]
        for n in range(2)
    ]
    other = broker.ok("POST", "/contracts", {"client_id": paul["id"], "reference": "P-1"}, 201)["id"]
    broker.ok(
        "POST", f"/clients/{jean['id']}/emails", {"contract_id": mine[0], "subject": "A", "body": "B"}, 202
    )
    for contract_id in (mine[1], other):
        broker.ok("PATCH", f"/contracts/{contract_id}", {"status": "suspended", "version": 1})
    drain()
    assert all(activity(aws, account_id, SubjectKind.CONTRACT, k) for k in (*mine, other))
    assert broker.call("DELETE", f"/clients/{jean['id']}")[0] == 204
    assert [activity(aws, account_id, SubjectKind.CONTRACT, k) for k in mine] == [[], []]
    assert [e.type.value for e in activity(aws, account_id, SubjectKind.CONTRACT, other)] == [
        "contract.suspended"
    ]


def test_a_legal_notice_decided_skipped_is_told_with_the_change_that_decided_it(
    broker: Office, aws: Any
) -> None:
    """The client has no address: the formal notice's email reaches nobody (never the apporteur alone),
    and saying so goes with the letter's posting, by the staff user who recorded it."""
    book = _book(broker, email=None) | {"account_id": broker.ok("GET", "/account")["id"]}
    _, installment = _paths(book)
    broker.tick(paris("2027-03-12"))
    _staff_acts_at(aws, paris("2027-03-12", 15))
    broker.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A1"}
    )
    types = [(e.type.value, e.actor.kind) for e in _activity(aws, book)]
    assert types[-2:] == [
        ("formal_notice.sent", ActorKind.STAFF),
        ("communication.skipped", ActorKind.STAFF),
    ]
    skipped = _activity(aws, book)[-1]
    assert (skipped.data["kind"], skipped.data["skipped_parties"]) == ("formal_notice", ["client"])
