"""The events read off a change, as pure rules: what a letter's and a contract's moves say, what an
email's outcome says and where it goes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from chalicelib.domain.communications import Communication, CommunicationKind, Recipient, communication_event
from chalicelib.domain.contract_events import dunning_events
from chalicelib.domain.events import ActorKind, SubjectKind, staff
from chalicelib.domain.installments import FormalNotice, Installment, LetterStatus, Money
from chalicelib.domain.legal import RegisteredMailChannel
from chalicelib.domain.partners import Commissioning, Deal, RecordKind

AT = datetime(2027, 3, 12, 7, 0, tzinfo=UTC)
CONTRACT = Deal(
    id="K1",
    account_id="A1",
    kind=RecordKind.CONTRACT,
    client_id="C1",
    reference="HAB-1",
    product_id=None,
    apporteur_id=None,
    commissioning=Commissioning(),
    status="active",
    created_at=AT,
)
DUE = Installment("I1", "K1", date(2027, 3, 1), Money(Decimal("84.20")))
NOTICE = FormalNotice(
    letter_id="I1-MD",
    status=LetterStatus.TO_SEND,
    channel=RegisteredMailChannel.PROVIDER,
    prepared_on=date(2027, 3, 12),
    attempted_at=AT,
    prepared_at=AT,
    sha256="ab" * 32,
)


def test_a_letter_prepared_and_posted_in_one_step_says_both_in_that_order() -> None:
    posted = replace(
        NOTICE, status=LetterStatus.SENT, sent_on=date(2027, 3, 12), tracking_number="1A", provider_id="p"
    )
    events = dunning_events(CONTRACT, CONTRACT, DUE, DUE.letter_prepared(posted), AT)
    assert [e.type.value for e in events] == ["formal_notice.prepared", "formal_notice.sent"]
    assert events[0].id < events[1].id
    assert events[1].data == {
        "contract_id": "K1",
        "client_id": "C1",
        "installment_id": "I1",
        "letter_id": "I1-MD",
        "channel": "provider",
        "status": "sent",
        "sent_on": "2027-03-12",
        "tracking_number": "1A",
        "provider_id": "p",
    }
    assert {(e.subject.kind, e.subject.id, e.actor.kind) for e in events} == {
        (SubjectKind.CONTRACT, "K1", ActorKind.SYSTEM)
    }


def test_a_blocked_letter_or_a_change_that_moved_nothing_says_nothing() -> None:
    blocked = replace(NOTICE, status=LetterStatus.BLOCKED, prepared_at=None, reason="no_postal_address")
    assert dunning_events(CONTRACT, CONTRACT, DUE, DUE.letter_prepared(blocked), AT) == []
    prepared = DUE.letter_prepared(NOTICE)
    assert dunning_events(CONTRACT, CONTRACT, prepared, prepared, AT) == []


def test_a_letter_tracked_delivered_says_delivered_once() -> None:
    sent = DUE.letter_prepared(replace(NOTICE, status=LetterStatus.SENT, sent_on=date(2027, 3, 12)))
    delivered = sent.tracked(LetterStatus.DELIVERED, AT)
    assert [e.type.value for e in dunning_events(CONTRACT, CONTRACT, sent, delivered, AT)] == [
        "formal_notice.delivered"
    ]
    assert (
        dunning_events(CONTRACT, CONTRACT, delivered, delivered.tracked(LetterStatus.DELIVERED, AT), AT) == []
    )


def test_the_contracts_moves_carry_their_effective_day_and_who_made_them() -> None:
    suspended = replace(CONTRACT, status="suspended", dunning_stage="suspended")
    by = staff("user-1")
    [event] = dunning_events(CONTRACT, suspended, DUE, DUE.suspended(date(2027, 4, 12)), AT, by)
    assert (event.type.value, event.data["effective_on"], event.actor) == (
        "contract.suspended",
        "2027-04-12",
        by,
    )
    due = replace(suspended, dunning_stage="termination_due")
    [event] = dunning_events(suspended, due, DUE, DUE.termination_became_due(date(2027, 4, 22)), AT)
    assert (event.type.value, event.data["effective_on"]) == ("contract.termination_due", "2027-04-22")
    reinstated = replace(CONTRACT, cover_resumes_at=datetime(2027, 4, 16, 10, tzinfo=UTC))
    [event] = dunning_events(suspended, reinstated, None, None, AT)
    assert event.data == {
        "contract_id": "K1",
        "client_id": "C1",
        "cover_resumes_at": "2027-04-16T10:00:00Z",
        "suspension_voided": False,
    }
    [event] = dunning_events(CONTRACT, replace(CONTRACT, status="terminated"), None, None, AT)
    assert (event.type.value, event.data["effective_on"]) == ("contract.terminated", "2027-03-12")


def _email(**fields: object) -> Communication:
    base = Communication(
        id="cm_1",
        account_id="A1",
        kind=CommunicationKind.FORMAL_NOTICE,
        sender_name="Cabinet",
        reply_to=None,
        to=(Recipient("Jean", "jean@dupont.fr", "client"),),
        cc=(Recipient("Bernard", "b@bernard.fr", "apporteur"),),
        created_at=AT,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_an_emails_event_goes_to_its_contract_its_dossier_or_the_account() -> None:
    sent = _email(contract_id="K1", client_id="C1").sent("Objet", "ses-1", AT)
    event = communication_event(sent, AT)
    assert event is not None
    assert (event.subject.kind, event.subject.id) == (SubjectKind.CONTRACT, "K1")
    dossier = communication_event(_email(dossier_id="D1").sent("Objet", "ses-1", AT), AT)
    assert dossier is not None
    assert (dossier.subject.kind, dossier.subject.id) == (SubjectKind.DOSSIER, "D1")
    mailing = communication_event(_email(contract_id="K1", mailing_id="ml_1").sent("Objet", "ses-1", AT), AT)
    assert mailing is not None
    assert (mailing.subject.kind, mailing.subject.id) == (SubjectKind.ACCOUNT, "A1")


def test_an_emails_event_names_parties_never_addresses_nor_content() -> None:
    bounced = _email(
        contract_id="K1", variables={"client.email": "jean@dupont.fr"}, subject="Mise en demeure"
    )
    event = communication_event(
        bounced.with_feedback(bounced.status.BOUNCED, "bounce: Permanent/General"),
        AT,
        parties=("client",),
        bounce_type="Permanent",
    )
    assert event is not None
    assert event.data == {
        "communication_id": "cm_1",
        "kind": "formal_notice",
        "status": "bounced",
        "contract_id": "K1",
        "parties": ["client"],
        "bounce_type": "Permanent",
    }
    assert communication_event(_email().failed("refused"), AT) is None
