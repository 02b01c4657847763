"""Events: what a receiver gets and what an activity log shows are the same facts, said once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.events import (
    SUBSCRIBABLE,
    Event,
    EventType,
    Subject,
    SubjectKind,
    new_event_id,
    participant,
)

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _event() -> Event:
    return Event(
        "acc_1",
        EventType.DOCUMENT_UPLOADED,
        AT,
        Subject(SubjectKind.DOSSIER, "dos_1"),
        {"dossier_id": "dos_1", "document_id": "payslips"},
        actor=participant("ctb_1", "Paul Garant"),
    )


def test_an_event_travels_on_the_queue_and_comes_back_the_same() -> None:
    event = _event()
    assert Event.from_message(event.to_message()) == event


def test_the_body_a_receiver_gets_is_type_timestamp_and_data() -> None:
    assert _event().payload() == {
        "type": "document.uploaded",
        "timestamp": "2026-12-03T09:30:00Z",
        "data": {"dossier_id": "dos_1", "document_id": "payslips"},
    }


def test_an_activity_entry_names_who_did_it() -> None:
    entry = _event().activity()
    assert entry["actor"] == {"kind": "participant", "id": "ctb_1", "name": "Paul Garant"}
    assert entry["id"].startswith("evt_")


def test_event_ids_sort_by_their_moment() -> None:
    earlier = Event("a", EventType.DOSSIER_CREATED, AT, Subject(SubjectKind.DOSSIER, "d"), {})
    later = Event(
        "a", EventType.DOSSIER_COMPLETED, AT.replace(minute=31), Subject(SubjectKind.DOSSIER, "d"), {}
    )
    assert earlier.id < later.id


def test_the_test_event_cannot_be_subscribed_to() -> None:
    assert "webhook.test" not in SUBSCRIBABLE
    assert len(SUBSCRIBABLE) == 21


def test_a_malformed_event_message_is_refused() -> None:
    with pytest.raises(InvalidInput):
        Event.from_message({"account_id": "a", "type": "dossier.exploded"})


def test_events_of_one_second_written_by_different_writers_sort_as_they_were_written() -> None:
    second = int(AT.timestamp()) * 1000
    dossier_created = new_event_id(AT, written_ms=second + 120)
    email_sent = new_event_id(AT, written_ms=second + 480)
    written_after_the_second = new_event_id(AT, written_ms=second + 5_000)
    assert dossier_created < email_sent < written_after_the_second
    assert written_after_the_second < new_event_id(AT.replace(second=31), written_ms=second + 5_000)
