"""What every repository implementation promises, checked against the fake and DynamoDB alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
    TemplateSource,
)
from chalicelib.domain.errors import Conflict, StaleVersion
from chalicelib.domain.plans import Plan, Trial
from chalicelib.services.ports import RecipientsSuppressed
from tests.fakes import FakeCommunicationRepository, FakeSuppressionList

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def _account(account_id: str = "01ACCOUNT") -> Account:
    return Account(
        id=account_id,
        name="Cabinet Léa Martin",
        plan=Plan.PREMIUM,
        boosters=frozenset({"contributors"}),
        sender_email="lea@martin.fr",
        created_at=NOW,
    )


def _communication(comm_id: str = "cm_1", account_id: str = "01ACCOUNT") -> Communication:
    return Communication(
        id=comm_id,
        account_id=account_id,
        kind=CommunicationKind.ACCOUNT_WELCOME,
        sender_name="Relais",
        reply_to="lea@martin.fr",
        to=(Recipient("Cabinet Léa Martin", "lea@martin.fr", "account"),),
        cc=(Recipient("Apporteur", None, "apporteur"),),
        created_at=NOW,
        variables={"account.name": "Cabinet Léa Martin"},
    )


def test_an_added_account_reads_back_whole_at_version_one(store: tuple[Any, Any]) -> None:
    accounts, _ = store
    trial = Trial("contributors", NOW, NOW + timedelta(days=7))
    stored = accounts.add(
        replace(_account(), trials={"contributors": trial}, partner_communications_enabled=True)
    )
    read = accounts.get("01ACCOUNT")
    assert read == replace(
        _account(), trials={"contributors": trial}, partner_communications_enabled=True, version=1
    )
    assert stored == read


def test_an_unknown_account_reads_as_none(store: tuple[Any, Any]) -> None:
    assert store[0].get("nobody") is None


def test_adding_the_same_account_twice_is_a_conflict(store: tuple[Any, Any]) -> None:
    accounts, _ = store
    accounts.add(_account())
    with pytest.raises(Conflict):
        accounts.add(_account())


def test_saving_bumps_the_version_and_a_stale_copy_is_refused(store: tuple[Any, Any]) -> None:
    accounts, _ = store
    accounts.add(_account())
    first = accounts.get("01ACCOUNT")
    saved = accounts.save(first.with_plan(Plan.PLATINUM, None))
    assert saved.version == 2
    assert accounts.get("01ACCOUNT").plan is Plan.PLATINUM
    with pytest.raises(StaleVersion):
        accounts.save(first.with_plan(Plan.ESSENTIAL, None))
    assert accounts.get("01ACCOUNT").plan is Plan.PLATINUM


def test_a_communication_is_stored_once_and_reads_back_whole(store: tuple[Any, Any]) -> None:
    _, communications = store
    assert communications.add(_communication(), retry_at=NOW + timedelta(minutes=5)) is True
    assert communications.add(_communication(), retry_at=NOW + timedelta(minutes=5)) is False
    # Written screened as of its decision: its addresses were checked against the suppression list.
    assert communications.get("01ACCOUNT", "cm_1") == replace(
        _communication(), screened=True, screened_at=NOW
    )
    assert communications.get("01ACCOUNT", "cm_other") is None
    assert communications.get("02OTHER", "cm_1") is None


def test_a_communication_is_still_screened_when_claimed_and_a_claim_given_back_gives_the_screening_back(
    store: tuple[Any, Any],
) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    assert claimed is not None
    assert (claimed.screened, claimed.screened_at) == (True, NOW)
    assert claimed.screening_holds(NOW + timedelta(minutes=14), timedelta(minutes=15))
    assert not claimed.screening_holds(NOW + timedelta(minutes=15), timedelta(minutes=15))
    communications.release("01ACCOUNT", "cm_1")
    again = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    assert again is not None
    assert (again.screened, again.screened_at) == (False, None)


@pytest.fixture(params=["fake", "dynamodb"])
def screening(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(communications, suppressions) of one kind, the first writing against the second."""
    if request.param == "fake":
        suppressions = FakeSuppressionList()
        return FakeCommunicationRepository(suppressions), suppressions
    services = request.getfixturevalue("aws")
    return services.communications, services.suppressions


def test_a_communication_to_a_suppressed_address_is_not_written_and_the_addresses_are_named(
    screening: tuple[Any, Any],
) -> None:
    communications, suppressions = screening
    suppressions.add("01ACCOUNT", "lea@martin.fr", "bounce: Permanent/General", None, NOW)
    suppressions.add("01ACCOUNT", "paul@bernard.fr", "complaint", None, NOW)
    suppressions.add("01OTHER", "jean@dupont.fr", "complaint", None, NOW)
    email = replace(
        _communication(),
        to=(Recipient("Cabinet Léa Martin", "Léa <LEA@martin.fr>", "account"),),
        cc=(Recipient("Jean", "jean@dupont.fr", "client"), Recipient("Paul", "paul@bernard.fr", "apporteur")),
    )
    with pytest.raises(RecipientsSuppressed) as refused:
        communications.add(email, retry_at=NOW)
    assert refused.value.addresses == {"lea@martin.fr", "paul@bernard.fr"}
    assert communications.get("01ACCOUNT", "cm_1") is None
    # Decided to nobody, it is written as it is: nothing is sent to check.
    skipped = email.skipped("every recipient is on the suppression list (bounced or complained)")
    assert communications.add(skipped, retry_at=NOW) is True
    assert communications.get("01ACCOUNT", "cm_1") == skipped


def test_a_queued_communication_is_due_for_retry_only_once_its_time_has_come(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication("cm_1"), retry_at=NOW + timedelta(minutes=5))
    communications.add(_communication("cm_2", "02OTHER"), retry_at=NOW + timedelta(minutes=10))
    assert communications.due_for_retry(NOW + timedelta(minutes=4), limit=10) == []
    assert communications.due_for_retry(NOW + timedelta(minutes=5), limit=10) == [("01ACCOUNT", "cm_1")]
    later = sorted(communications.due_for_retry(NOW + timedelta(hours=1), limit=10))
    assert later == [("01ACCOUNT", "cm_1"), ("02OTHER", "cm_2")]
    assert len(communications.due_for_retry(NOW + timedelta(hours=1), limit=1)) == 1


def test_postponing_moves_the_retry_and_settling_takes_it_off_the_schedule(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    communications.postpone("01ACCOUNT", "cm_1", NOW + timedelta(minutes=5))
    assert communications.due_for_retry(NOW + timedelta(minutes=1), limit=10) == []
    sent = communications.get("01ACCOUNT", "cm_1").sent("Bienvenue", "ses-1", NOW)
    communications.settle(sent)
    assert communications.get("01ACCOUNT", "cm_1") == sent
    assert communications.due_for_retry(NOW + timedelta(days=1), limit=10) == []
    communications.postpone("01ACCOUNT", "cm_1", NOW)
    assert communications.due_for_retry(NOW + timedelta(days=1), limit=10) == []


def test_a_failed_communication_keeps_its_reason(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    communications.settle(_communication().failed("refused by the mail provider: MessageRejected"))
    read = communications.get("01ACCOUNT", "cm_1")
    assert read.status is CommunicationStatus.FAILED
    assert read.status_reason == "refused by the mail provider: MessageRejected"


def test_a_communication_keeps_the_staff_written_template_it_was_decided_with(store: tuple[Any, Any]) -> None:
    _, communications = store
    template = TemplateSource(subject="Votre dossier {{ dossier.reference }}", body="<p>Bonjour</p>")
    communications.add(replace(_communication(), template=template), retry_at=NOW)
    read = communications.get("01ACCOUNT", "cm_1")
    assert read is not None
    assert read.template == template
    communications.add(_communication("cm_2"), retry_at=NOW)
    assert communications.get("01ACCOUNT", "cm_2").template is None


@pytest.fixture(params=["fake", "dynamodb"])
def suppressions(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeSuppressionList()
    return request.getfixturevalue("aws").suppressions


def test_a_suppressed_address_is_found_for_its_account_only_and_suppressing_twice_keeps_one(
    suppressions: Any,
) -> None:
    suppressions.add("01ACCOUNT", "jean@dupont.fr", "bounce: Permanent/General", "cm_1", NOW)
    suppressions.add("01ACCOUNT", "jean@dupont.fr", "complaint: abuse", "cm_2", NOW)
    assert suppressions.suppressed("01ACCOUNT", ["jean@dupont.fr", "lea@martin.fr"]) == {"jean@dupont.fr"}
    assert suppressions.suppressed("01OTHER", ["jean@dupont.fr"]) == set()
    assert suppressions.suppressed("01ACCOUNT", []) == set()


def test_a_claim_is_taken_once_held_for_its_lease_then_taken_over(store: tuple[Any, Any]) -> None:
    from chalicelib.services.ports import DeliveryInFlight

    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    lease = timedelta(minutes=15)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, lease)
    assert claimed is not None
    assert claimed.status is CommunicationStatus.SENDING
    assert claimed.to == _communication().to
    with pytest.raises(DeliveryInFlight):
        communications.claim("01ACCOUNT", "cm_1", NOW + timedelta(minutes=1), lease)
    assert communications.claim("01ACCOUNT", "cm_1", NOW + lease + timedelta(seconds=1), lease) is not None
    assert communications.claim("01ACCOUNT", "unknown", NOW, lease) is None


def test_a_released_claim_can_be_taken_again_at_once(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    lease = timedelta(minutes=15)
    assert communications.claim("01ACCOUNT", "cm_1", NOW, lease) is not None
    communications.release("01ACCOUNT", "cm_1")
    assert communications.get("01ACCOUNT", "cm_1").status is CommunicationStatus.QUEUED
    assert communications.claim("01ACCOUNT", "cm_1", NOW, lease) is not None


def test_only_one_outcome_wins_a_sending_communication(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    assert communications.statuses([("01ACCOUNT", "cm_1"), ("01ACCOUNT", "nope")]) == {
        ("01ACCOUNT", "cm_1"): CommunicationStatus.SENDING
    }
    assert communications.accept("01ACCOUNT", "cm_1", None, "ses-1", "Bienvenue", NOW) == []
    late = claimed.sent("Bienvenue", "ses-1", NOW)
    assert communications.settle(late, expected=CommunicationStatus.SENDING) is None
    assert communications.accept("01ACCOUNT", "cm_1", None, "ses-1", "Bienvenue", NOW) is None
    read = communications.get("01ACCOUNT", "cm_1")
    assert (read.status, read.provider_message_id) == (CommunicationStatus.SENT, "ses-1")
    # A claim on a settled communication finds nothing to do.
    assert communications.claim("01ACCOUNT", "cm_1", NOW + timedelta(days=1), timedelta(minutes=15)) is None


def test_a_sending_outcome_after_its_bounce_keeps_the_bounce_and_is_recorded_once(
    store: tuple[Any, Any],
) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    bounced = claimed.with_feedback(CommunicationStatus.BOUNCED, "bounce: Permanent/General")
    assert communications.settle(bounced, expected=CommunicationStatus.SENDING) == []
    assert communications.settle(claimed.failed("refused"), expected=CommunicationStatus.SENDING) is None
    sent = claimed.sent("Bienvenue", "ses-1", NOW)
    assert communications.settle(sent, expected=CommunicationStatus.SENDING) == []
    assert communications.settle(sent, expected=CommunicationStatus.SENDING) is None
    read = communications.get("01ACCOUNT", "cm_1")
    assert (read.status, read.status_reason) == (CommunicationStatus.BOUNCED, "bounce: Permanent/General")
    assert (read.subject, read.provider_message_id, read.sent_at) == ("Bienvenue", "ses-1", NOW)
    assert communications.due_for_retry(NOW + timedelta(days=1), limit=10) == []


def test_ses_accepting_an_email_after_its_bounce_records_the_sending_once_under_the_bounce(
    store: tuple[Any, Any],
) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    bounced = claimed.with_feedback(CommunicationStatus.BOUNCED, "bounce: Permanent/General")
    communications.settle(bounced, expected=CommunicationStatus.SENDING)
    marked = communications.record_delivered("01ACCOUNT", "cm_1", ("lea@martin.fr",))
    assert marked is not None
    assert marked.delivered_to == ("lea@martin.fr",)
    assert communications.accept("01ACCOUNT", "cm_1", None, "ses-1", "Bienvenue", NOW) == []
    assert communications.accept("01ACCOUNT", "cm_1", None, "ses-1", "Bienvenue", NOW) is None
    assert communications.record_delivered("01ACCOUNT", "cm_1", ("lea@martin.fr",)) is None
    read = communications.get("01ACCOUNT", "cm_1")
    assert (read.status, read.provider_message_id, read.sent_at) == (
        CommunicationStatus.BOUNCED,
        "ses-1",
        NOW,
    )


def test_a_retry_backlog_drains_oldest_first_whatever_shard_holds_it(store: tuple[Any, Any]) -> None:
    _, communications = store
    ids = [f"cm_{n}" for n in range(12)]
    for n, comm_id in enumerate(ids):
        communications.add(_communication(comm_id), retry_at=NOW - timedelta(minutes=60 - n))
    oldest = communications.due_for_retry(NOW, limit=3)
    assert oldest == [("01ACCOUNT", "cm_0"), ("01ACCOUNT", "cm_1"), ("01ACCOUNT", "cm_2")]


def test_a_settled_outcome_keeps_the_parties_left_out_when_sending(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    claimed = communications.claim("01ACCOUNT", "cm_1", NOW, timedelta(minutes=15))
    skipped = claimed.without_parties(("account",)).skipped("every recipient is on the suppression list")
    assert communications.settle(skipped, expected=CommunicationStatus.SENDING) == []
    read = communications.get("01ACCOUNT", "cm_1")
    assert (read.status, read.skipped_parties) == (CommunicationStatus.SKIPPED, ("account",))


def test_accepted_copies_add_up_while_sending_and_a_release_keeps_them(store: tuple[Any, Any]) -> None:
    _, communications = store
    communications.add(_communication(), retry_at=NOW)
    assert communications.record_delivered("01ACCOUNT", "cm_1", ("jean@dupont.fr",)) is None  # queued
    lease = timedelta(minutes=15)
    communications.claim("01ACCOUNT", "cm_1", NOW, lease)
    first = communications.record_delivered("01ACCOUNT", "cm_1", ("jean@dupont.fr",))
    assert first is not None
    assert (first.status, first.delivered_to) == (CommunicationStatus.SENDING, ("jean@dupont.fr",))
    again = communications.record_delivered("01ACCOUNT", "cm_1", ("jean@dupont.fr",))
    assert again is not None
    assert again.delivered_to == ("jean@dupont.fr",)
    communications.release("01ACCOUNT", "cm_1", ("b@bernard.fr",))
    released = communications.get("01ACCOUNT", "cm_1")
    assert (released.status, released.delivered_to) == (
        CommunicationStatus.QUEUED,
        ("b@bernard.fr", "jean@dupont.fr"),
    )
    retaken = communications.claim("01ACCOUNT", "cm_1", NOW, lease)
    assert retaken.delivered_to == ("b@bernard.fr", "jean@dupont.fr")


def _removal(digest: str) -> Any:
    from chalicelib.domain.audit import AuditEntry, AuditType
    from chalicelib.domain.events import staff

    return AuditEntry("01ACCOUNT", AuditType.SUPPRESSION_REMOVED, NOW, staff("u1"), {"address_hash": digest})


def test_the_suppression_list_pages_by_hash_and_an_entry_is_removed_once(suppressions: Any) -> None:
    from chalicelib.domain.deliverability import address_hash

    for n in range(3):
        suppressions.add("01ACCOUNT", f"c{n}@dupont.fr", "complaint", f"cm_{n}", NOW)
    suppressions.add("01OTHER", "c9@dupont.fr", "complaint", None, NOW)
    first, cursor = suppressions.entries("01ACCOUNT", 2, None)
    second, end = suppressions.entries("01ACCOUNT", 2, cursor)
    assert end is None
    listed = [s.address_hash for s in first + second]
    assert listed == sorted(address_hash(f"c{n}@dupont.fr") for n in range(3))
    assert suppressions.remove("01ACCOUNT", address_hash("c1@dupont.fr"), _removal("x")) is True
    assert suppressions.remove("01ACCOUNT", address_hash("c1@dupont.fr"), _removal("x")) is False
    assert suppressions.remove("01ACCOUNT", address_hash("c9@dupont.fr"), _removal("x")) is False
    assert suppressions.suppressed("01ACCOUNT", ["c1@dupont.fr", "c2@dupont.fr"]) == {"c2@dupont.fr"}


def test_a_clients_history_is_newest_first_and_a_forgotten_email_keeps_only_its_kind_status_and_dates(
    store: tuple[Any, Any],
) -> None:
    _, communications = store
    for n in range(3):
        email = replace(_communication(f"cm_{n}"), client_id="CL1", created_at=NOW + timedelta(minutes=n))
        communications.add(email, retry_at=NOW)
    communications.add(replace(_communication("cm_other"), client_id="CL2"), retry_at=NOW)
    first, cursor = communications.client_history("01ACCOUNT", "CL1", 2, None)
    second, _ = communications.client_history("01ACCOUNT", "CL1", 2, cursor)
    assert [c.id for c in first + second] == ["cm_2", "cm_1", "cm_0"]
    communications.forget("01ACCOUNT", "cm_1")
    forgotten = communications.get("01ACCOUNT", "cm_1")
    assert (forgotten.to, forgotten.variables, forgotten.subject) == ((), {}, None)
    assert (forgotten.kind, forgotten.status, forgotten.created_at) == (
        _communication().kind,
        CommunicationStatus.QUEUED,
        NOW + timedelta(minutes=1),
    )
