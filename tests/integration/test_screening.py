"""An email is screened against the account's suppression list when it is written (the transaction that
writes it checks each address's suppression item), so that the worker sends it in three calls: the claim,
SES, the settling write. An address suppressed meanwhile is looked up again by the worker only when the
email waited beyond the claim's lease, or its claim was given back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamodb.models import SuppressionItem
from chalicelib.domain.communications import Communication, CommunicationKind, CommunicationStatus, Recipient
from chalicelib.domain.events import SubjectKind
from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from chalicelib.services.communications import CLAIM_LEASE, DeliveryRequest, deliver
from chalicelib.services.ports import RecipientsSuppressed
from tests.announced import activity
from tests.integration.test_formal_notice import Office, _book, _chalice_office, _paths, paris
from tests.support import Api, RelaisTestClient, token

pytestmark = pytest.mark.usefixtures("webhooks_left_queued")

CLIENT, APPORTEUR = "jean@dupont.fr", "b@bernard.fr"


@pytest.fixture
def office(client: RelaisTestClient, aws: Any) -> Office:
    broker = _chalice_office(client, aws)
    broker.ok("PATCH", "/account/settings", {"partner_communications_enabled": True})
    broker.drain()
    return broker


def _suppress(aws: Any, office: Office, *addresses: str) -> str:
    account_id = str(office.ok("GET", "/account")["id"])
    for address in addresses:
        aws.suppressions.add(account_id, address, "bounce: Permanent/General", None, aws.now())
    return account_id


def _history(office: Office, book: Any, kind: str) -> dict[str, Any]:
    history = office.ok("GET", f"/clients/{book['client']['id']}/communications")["items"]
    return dict(next(c for c in history if c["kind"] == kind))


def test_an_unpaid_call_to_suppressed_addresses_is_written_skipped_with_its_reason_and_no_email_leaves(
    office: Office, aws: Any
) -> None:
    book = _book(office)
    account_id = _suppress(aws, office, CLIENT, APPORTEUR)
    office.tick(paris("2027-02-14"))
    assert office.kinds() == []
    call = _history(office, book, "unpaid_call")
    assert call["status"] == "skipped"
    assert call["status_reason"] == "every recipient is on the suppression list (bounced or complained)"
    assert call["skipped_parties"] == ["client", "apporteur"]
    told = activity(aws, account_id, SubjectKind.CONTRACT, book["contract"]["id"])
    [skipped] = [e for e in told if e.type.value == "communication.skipped"]
    assert skipped.data["reason"] == call["status_reason"]


def test_with_the_apporteur_in_cc_suppressed_the_client_still_gets_the_call_without_cc(
    office: Office, aws: Any
) -> None:
    book = _book(office)
    _suppress(aws, office, APPORTEUR)
    office.tick(paris("2027-02-14"))
    [call] = office.emails()
    assert (call["kind"], call["to"], call["cc"]) == ("unpaid_call", [CLIENT], [])
    recorded = _history(office, book, "unpaid_call")
    assert (recorded["status"], recorded["skipped_parties"]) == ("sent", ["apporteur"])


def test_a_legal_notice_whose_client_is_suppressed_is_never_sent_to_the_apporteur_alone(
    office: Office, aws: Any
) -> None:
    book = _book(office)
    _, installment = _paths(book)
    _suppress(aws, office, CLIENT)
    office.tick(paris("2027-03-12"))
    office.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A7"}
    )
    office.drain()
    notice = _history(office, book, "formal_notice")
    assert notice["status"] == "skipped"
    assert notice["skipped_parties"] == ["client"]
    assert notice["status_reason"] == (
        "the client's address is on the suppression list (bounced or complained); "
        "a legal notice is never sent to the apporteur alone"
    )
    assert "formal_notice" not in office.kinds()


def test_a_dossier_email_to_a_suppressed_participant_is_skipped_and_told_in_the_dossiers_log(
    platform: Api, aws: Any
) -> None:
    account_id = str(
        platform.post(
            "/admin/accounts",
            {"name": "Cabinet Martin", "plan": "platinum", "sender_email": "contact@martin.fr"},
        ).body["id"]
    )
    drain()
    staff = platform.as_(token("manager", account_id))
    aws.suppressions.add(account_id, "lea@exemple.fr", "complaint", None, aws.now())
    procedure = staff.post("/procedures", {"name": "Location"}).body["id"]
    body = {"procedure_id": procedure, "recipient": {"name": "Léa Martin", "email": "Lea@Exemple.fr"}}
    opened = staff.post("/dossiers", {**body, "notify": True})
    assert opened.status == 201, opened.body
    assert opened.body["notified"] is False
    drain()
    assert [m for m in sent_messages(REGION) if m["kind"] == "dossier_created"] == []
    told = activity(aws, account_id, SubjectKind.DOSSIER, opened.body["id"])
    assert [e.type.value for e in told] == ["dossier.created", "communication.skipped"]
    assert told[1].data["reason"] == "every recipient is on the suppression list (bounced or complained)"


def _reminder(account_id: str, created_at: datetime) -> Communication:
    return Communication(
        id="cm_waited",
        account_id=account_id,
        kind=CommunicationKind.UNPAID_REMINDER,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=(Recipient("Jean Dupont", CLIENT, "client"),),
        cc=(Recipient("Cabinet Bernard", APPORTEUR, "apporteur"),),
        created_at=created_at,
        variables={"account.name": "Cabinet Martin", "client.name": "Jean Dupont"},
    )


def test_an_email_written_before_its_address_was_suppressed_and_sent_after_the_lease_is_screened_again(
    aws: Any,
) -> None:
    written_at = aws.now()
    aws.communications.add(_reminder("01SCREEN", written_at), retry_at=written_at)
    aws.suppressions.add("01SCREEN", CLIENT, "bounce: Permanent/General", None, written_at)
    aws.suppressions.add("01SCREEN", APPORTEUR, "complaint", None, written_at)
    # SES paused the account beyond the claim's lease: the worker looks the addresses up again.
    later = written_at + CLAIM_LEASE + timedelta(seconds=1)
    request = DeliveryRequest("01SCREEN", "cm_waited")
    status = deliver(request, aws.communications, aws.mailer, aws.suppressions, later)
    assert status is CommunicationStatus.SKIPPED
    assert sent_messages(REGION) == []


def test_a_suppression_written_before_the_hashing_still_stops_the_writing_and_every_address_is_named(
    aws: Any,
) -> None:
    SuppressionItem(
        "ACCOUNT#01SCREEN",
        f"SUPPRESSED#{APPORTEUR}",
        address=APPORTEUR,
        reason="bounce: Permanent/General",
        suppressed_at=datetime(2026, 1, 5, tzinfo=UTC),
    ).save()
    aws.suppressions.add("01SCREEN", CLIENT, "complaint", None, aws.now())
    with pytest.raises(RecipientsSuppressed) as refused:
        aws.communications.add(_reminder("01SCREEN", aws.now()), retry_at=aws.now())
    assert refused.value.addresses == {CLIENT, APPORTEUR}
    assert aws.communications.get("01SCREEN", "cm_waited") is None
