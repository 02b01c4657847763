"""The L113-3 timeline of EXAMPLES.md ("Unpaid installment, default policy"), every row over HTTP: the
registered letter prepared by the tick, posted by staff (or by the simulated provider), the suspension
counted from its sending in Paris time, the termination confirmed by staff; payments, reversals and the
faults API.md names. The whole table also runs on the real local stack (`make run` in miniature)."""

from __future__ import annotations

import io
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import pytest

from tests.support import Api, RelaisTestClient, http_call, local_stack, token

PARIS = ZoneInfo("Europe/Paris")
IDENTITY = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
    "mediator": {"name": "La Médiation de l'Assurance", "url": "https://www.mediation-assurance.org"},
    "payment_instructions": "Par virement, en rappelant le numéro du contrat.",
}
ADDRESS = {"lines": ["3 allée des Tilleuls"], "postal_code": "69003", "city": "Lyon"}
Call = Callable[..., tuple[int, Any]]


def paris(day: str, hour: int = 8, minute: int = 0) -> str:
    """A Paris wall-clock time, as the table gives it, as the UTC timestamp `/_local/tick` takes."""
    moment = datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=PARIS)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Office:
    """A broker's back office over HTTP, on the Chalice test client or a running local stack."""

    def __init__(self, call: Call, fetch: Callable[[str], bytes]) -> None:
        self._call = call
        self.fetch = fetch

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, answer = self._call(method, path, body)
        assert got == status, (method, path, answer)
        return answer

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self._call(method, path, body)

    def tick(self, at: str) -> None:
        status, answer = self._call("POST", "/_local/tick", {"time": at}, anonymous=True)
        assert status == 200, answer

    def drain(self) -> None:
        self._call("POST", "/_local/drain", None, anonymous=True)

    def emails(self, contract_ref: str = "HAB-2027-001") -> list[dict[str, Any]]:
        _, outbox = self._call("GET", "/_local/outbox", None, anonymous=True)
        return [m for m in outbox["messages"] if contract_ref in m["subject"] + m["text"]]

    def kinds(self) -> list[str]:
        return [m["kind"] for m in self.emails()]

    def letters(self) -> list[dict[str, Any]]:
        _, answer = self._call("GET", "/_local/letters", None, anonymous=True)
        return list(answer["letters"])


def _chalice_office(client: RelaisTestClient, aws: Any) -> Office:
    platform = Api(client, token("platform_admin"))
    account_id = platform.post(
        "/admin/accounts", {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"}
    ).body["id"]
    admin = platform.as_(token("admin", account_id))

    def call(method: str, path: str, body: Any = None, anonymous: bool = False) -> tuple[int, Any]:
        answer = (platform.as_(None) if anonymous else admin).call(method, path, body)
        return answer.status, answer.body

    def fetch(url: str) -> bytes:
        # Under moto's in-process mock a presigned link cannot be followed: read the object it names.
        from urllib.parse import unquote, urlsplit

        bucket = aws.settings.documents_bucket
        parts = urlsplit(url)
        path = unquote(parts.path).lstrip("/")
        key = path if parts.netloc.startswith(bucket) else path.split("/", 1)[1]
        return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())

    return Office(call, fetch)


@pytest.fixture
def office(client: RelaisTestClient, aws: Any) -> Office:
    broker = _chalice_office(client, aws)
    broker.ok("PATCH", "/account/settings", {"partner_communications_enabled": True})
    broker.drain()
    return broker


def _book(
    broker: Office, address: dict[str, Any] | None = ADDRESS, email: str | None = "jean@dupont.fr"
) -> Any:
    """The worked example's contract: rule client_and_apporteur, product insured by Mutuelle Exemple."""
    broker.ok("PATCH", "/account/legal", IDENTITY)
    b = broker.ok("POST", "/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"}, 201)
    client: dict[str, Any] = {"name": "Jean Dupont", "email": email}
    if address:
        client["postal_address"] = address
    c = broker.ok("POST", "/clients", client, 201)
    p = broker.ok(
        "POST", "/products", {"name": "Multirisque habitation", "insurer": {"name": "Mutuelle Exemple"}}, 201
    )
    k = broker.ok(
        "POST",
        "/contracts",
        {
            "client_id": c["id"],
            "reference": "HAB-2027-001",
            "product_id": p["id"],
            "apporteur_id": b["id"],
            "commissioning": {"communication_rule": "client_and_apporteur"},
        },
        201,
    )
    i = broker.ok(
        "POST",
        f"/contracts/{k['id']}/installments",
        {"due_date": "2027-03-01", "amount": {"amount": "1234.50", "currency": "EUR"}},
        201,
    )
    return {"contract": k, "client": c, "installment": i}


def _paths(book: Any) -> tuple[str, str]:
    k = book["contract"]["id"]
    return f"/contracts/{k}", f"/contracts/{k}/installments/{book['installment']['id']}"


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _run_the_worked_example(broker: Office) -> None:
    book = _book(broker)
    contract, installment = _paths(book)

    def shows(status: str, stage: str | None = None) -> dict[str, Any]:
        shown = broker.ok("GET", contract)
        assert shown["status"] == status, shown
        if stage is not None:
            assert shown["dunning_stage"] == stage, shown
        return dict(shown)

    broker.tick(paris("2027-02-14", 7, 59))
    assert broker.kinds() == []
    broker.tick(paris("2027-02-14"))
    assert broker.kinds() == ["unpaid_call"]
    call = broker.emails()[0]
    assert (call["to"], call["cc"]) == (["jean@dupont.fr"], ["b@bernard.fr"])
    shows("active")
    broker.tick(paris("2027-03-08"))
    assert broker.kinds() == ["unpaid_call", "unpaid_reminder"]
    shows("active")
    broker.tick(paris("2027-03-11", 23, 30))
    assert broker.kinds() == ["unpaid_call", "unpaid_reminder"]
    shows("active")

    broker.tick(paris("2027-03-12"))
    assert broker.kinds() == ["unpaid_call", "unpaid_reminder"]
    shows("active", "formal_notice")
    notice = broker.ok("GET", installment)["formal_notice"]
    assert notice["status"] == "to_send"
    assert notice["channel"] == "manual"
    assert notice["prepared_at"] == paris("2027-03-12")
    assert len(notice["sha256"]) == 64
    assert notice["sha256"] == notice["sha256"].lower()
    pdf = broker.fetch(notice["document_url"])
    import hashlib

    assert hashlib.sha256(pdf).hexdigest() == notice["sha256"]
    text = _pdf_text(pdf)
    for words in ("Mutuelle Exemple", "Jean Dupont", "69003 LYON", "HAB-2027-001", "1 234,50", "L113-3"):
        assert words in text.replace("\u202f", " ").replace("\u00a0", " "), words

    broker.tick(paris("2027-05-01"))
    assert broker.kinds() == ["unpaid_call", "unpaid_reminder"]
    shows("active", "formal_notice")

    sent = broker.ok(
        "POST",
        f"{installment}/formal-notice/sent",
        {"sent_on": "2027-03-12", "tracking_number": "1A12345678901"},
    )
    assert (sent["formal_notice"]["status"], sent["formal_notice"]["sent_on"]) == ("sent", "2027-03-12")
    assert sent["next_step"] == {"kind": "suspension_notice", "due_on": "2027-04-12"}
    broker.drain()
    assert broker.kinds()[-1] == "formal_notice"
    email = broker.emails()[-1]
    assert "12/03/2027" in email["text"]
    assert "1A12345678901" in email["text"]
    assert "234,50" in email["text"]
    shows("active", "formal_notice")

    broker.tick(paris("2027-04-11", 22))
    assert broker.kinds()[-1] == "formal_notice"
    shows("active")
    broker.tick(paris("2027-04-12"))
    assert broker.kinds()[-1] == "suspension_notice"
    assert "suspendues à compter du 12/04/2027 à 0\u00a0h" in broker.emails()[-1]["text"]
    shows("suspended", "suspended")
    broker.tick(paris("2027-04-22"))
    assert broker.kinds()[-1] == "suspension_notice"
    shows("suspended", "termination_due")

    terminated = broker.ok("POST", f"{contract}/termination", {"effective_on": "2027-04-23"})
    assert (terminated["status"], terminated["dunning_stage"]) == ("terminated", "terminated")
    broker.drain()
    assert broker.kinds() == [
        "unpaid_call",
        "unpaid_reminder",
        "formal_notice",
        "suspension_notice",
        "termination_notice",
    ]
    last = broker.emails()[-1]
    assert "Mutuelle Exemple" in last["text"]
    assert "23/04/2027" in last["text"]
    assert (last["to"], last["cc"]) == (["jean@dupont.fr"], ["b@bernard.fr"])
    assert broker.call("POST", f"{contract}/termination", {})[0] == 409


def test_every_row_of_the_worked_example_through_the_api_and_the_tick(office: Office) -> None:
    _run_the_worked_example(office)


def test_every_row_of_the_worked_example_on_the_running_local_stack() -> None:
    with local_stack() as stack:
        _, account = http_call(
            f"{stack.api_url}/admin/accounts",
            "POST",
            stack.platform_admin_token,
            {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"},
        )
        admin = token("admin", account["id"])

        def call(method: str, path: str, body: Any = None, anonymous: bool = False) -> tuple[int, Any]:
            got = http_call(f"{stack.api_url}{path}", method, None if anonymous else admin, body)
            if method == "POST" and not path.startswith("/_local"):
                # Emails of staff actions leave through the pump threads: let them.
                time.sleep(0.5)
            return got

        def fetch(url: str) -> bytes:
            with urllib.request.urlopen(url, timeout=10) as response:
                return bytes(response.read())

        broker = Office(call, fetch)
        broker.ok("PATCH", "/account/settings", {"partner_communications_enabled": True})
        _run_the_worked_example(broker)


def _to_suspension(broker: Office, book: Any) -> tuple[str, str]:
    contract, installment = _paths(book)
    broker.tick(paris("2027-03-12"))
    broker.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A1"}
    )
    broker.tick(paris("2027-04-12"))
    assert broker.ok("GET", contract)["status"] == "suspended"
    return contract, installment


def test_paid_in_full_after_the_suspension_the_cover_resumes_at_noon_paris_the_next_day(
    office: Office,
) -> None:
    contract, installment = _to_suspension(office, _book(office))
    paid = office.ok("POST", f"{installment}/payments", {"paid_at": "2027-04-15"})
    assert paid["contract"]["status"] == "active"
    assert paid["contract"]["cover_resumes_at"] == "2027-04-16T10:00:00Z"
    assert paid["contract"]["suspension_voided"] is False
    office.drain()
    assert office.kinds()[-1] == "reinstatement_notice"
    assert "16/04/2027 à 12 h" in office.emails()[-1]["text"]
    office.tick(paris("2027-04-22"))
    office.tick(paris("2027-06-01"))
    assert office.kinds()[-1] == "reinstatement_notice"
    assert office.ok("GET", contract)["status"] == "active"


def test_a_partial_payment_leaves_it_due_and_the_letter_and_every_later_email_say_what_remains(
    office: Office,
) -> None:
    book = _book(office)
    _contract, installment = _paths(book)
    partial = office.ok("POST", f"{installment}/payments", {"paid_at": "2027-03-05", "amount": "1000.00"})
    assert (partial["status"], partial["amount_due"]["amount"]) == ("due", "234.50")
    office.tick(paris("2027-03-08"))
    office.tick(paris("2027-03-12"))
    notice = office.ok("GET", installment)["formal_notice"]
    assert "234,50" in _pdf_text(office.fetch(notice["document_url"]))
    office.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-13", "tracking_number": "1A2"}
    )
    office.tick(paris("2027-04-13"))
    for email in office.emails():
        assert "234,50" in email["text"], email["kind"]
    assert office.kinds() == ["unpaid_reminder", "formal_notice", "suspension_notice"]


def test_a_payment_dated_before_the_suspension_took_effect_voids_it_and_the_client_gets_a_correction(
    office: Office,
) -> None:
    contract, installment = _to_suspension(office, _book(office))
    paid = office.ok("POST", f"{installment}/payments", {"paid_at": "2027-04-10"})
    assert paid["contract"]["status"] == "active"
    assert paid["contract"]["cover_resumes_at"] is None
    assert paid["contract"]["suspension_voided"] is True
    assert office.ok("GET", contract)["suspension_voided"] is True
    office.drain()
    correction = office.emails()[-1]
    assert correction["kind"] == "reinstatement_notice"
    assert "jamais été suspendues" in correction["text"]
    assert correction["to"] == ["jean@dupont.fr"]


def test_an_installment_entered_19_days_late_gets_only_its_letter_and_counts_from_its_sending(
    office: Office,
) -> None:
    book = _book(office)
    contract, installment = _paths(book)
    office.tick(paris("2027-03-20"))
    assert office.kinds() == []
    assert office.ok("GET", installment)["formal_notice"]["status"] == "to_send"
    office.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-21", "tracking_number": "1A3"}
    )
    office.tick(paris("2027-04-20"))
    assert office.ok("GET", contract)["status"] == "active"
    office.tick(paris("2027-04-21"))
    assert office.ok("GET", contract)["status"] == "suspended"
    assert office.kinds() == ["formal_notice", "suspension_notice"]


def test_a_client_without_a_postal_address_blocks_the_letter_until_one_is_added(office: Office) -> None:
    book = _book(office, address=None)
    contract, installment = _paths(book)
    office.tick(paris("2027-03-12"))
    notice = office.ok("GET", installment)["formal_notice"]
    assert (notice["status"], notice["reason"], notice["document_url"]) == (
        "blocked",
        "no_postal_address",
        None,
    )
    assert office.ok("GET", contract)["dunning_stage"] == "formal_notice"
    office.tick(paris("2027-03-13"))
    assert office.ok("GET", installment)["formal_notice"]["status"] == "blocked"
    version = office.ok("GET", f"/clients/{book['client']['id']}")["version"]
    office.ok("PATCH", f"/clients/{book['client']['id']}", {"postal_address": ADDRESS, "version": version})
    office.tick(paris("2027-03-14"))
    notice = office.ok("GET", installment)["formal_notice"]
    assert (notice["status"], notice["reason"]) == ("to_send", None)
    assert notice["prepared_at"] == paris("2027-03-14")
    refused = office.call(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-13", "tracking_number": "1A4"}
    )
    assert refused[0] == 400


def test_the_same_tick_twice_or_two_ticks_at_once_make_one_letter_and_one_email(office: Office) -> None:
    from chalicelib.handlers import dunning_tick

    book = _book(office)
    _, installment = _paths(book)
    at = datetime.fromisoformat(paris("2027-03-12").replace("Z", "+00:00"))
    assert [dunning_tick.run(at), dunning_tick.run(at)] == [1, 1]
    office.drain()
    office.tick(paris("2027-03-12"))
    first = office.ok("GET", installment)["formal_notice"]
    office.tick(paris("2027-03-12", 9))
    assert office.ok("GET", installment)["formal_notice"]["sha256"] == first["sha256"]
    office.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A5"}
    )
    assert (
        office.call(
            "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A5"}
        )[0]
        == 409
    )
    office.tick(paris("2027-04-12"))
    office.tick(paris("2027-04-12"))
    office.drain()
    assert office.kinds() == ["formal_notice", "suspension_notice"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sent_on": "2027-03-11", "tracking_number": "1A12345678901"}, "sent_on"),
        ({"sent_on": "2027-03-12", "tracking_number": "1A 1234"}, "tracking_number"),
        ({"sent_on": "2027-03-12", "tracking_number": "1A1234é"}, "tracking_number"),
        ({"sent_on": "12/03/2027", "tracking_number": "1A1"}, "sent_on"),
        ({"sent_on": "2027-03-12"}, "tracking_number"),
    ],
)
def test_a_posting_that_cannot_be_true_is_refused_naming_the_field(
    office: Office, body: dict[str, Any], field: str
) -> None:
    book = _book(office)
    _, installment = _paths(book)
    office.tick(paris("2027-03-12"))
    status, answer = office.call("POST", f"{installment}/formal-notice/sent", body)
    assert status == 400, answer
    assert answer["error"]["code"] == "validation_error"
    assert field in [d["field"] for d in answer["error"]["details"]]
    assert office.ok("GET", installment)["formal_notice"]["status"] == "to_send"


def test_a_letter_not_prepared_yet_cannot_be_recorded(office: Office) -> None:
    _, installment = _paths(_book(office))
    status, answer = office.call(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A1"}
    )
    assert (status, answer["error"]["code"]) == (409, "conflict")


def test_a_termination_before_it_is_due_or_after_payment_is_refused(office: Office) -> None:
    book = _book(office)
    contract, installment = _paths(book)
    assert office.call("POST", f"{contract}/termination", {})[0] == 409
    _to_suspension(office, book)
    assert office.call("POST", f"{contract}/termination", {})[0] == 409
    office.tick(paris("2027-04-22"))
    early = office.call("POST", f"{contract}/termination", {"effective_on": "2027-04-21"})
    assert early[0] == 400
    assert [d["field"] for d in early[1]["error"]["details"]] == ["effective_on"]
    office.ok("POST", f"{installment}/payments", {"paid_at": "2027-04-22"})
    assert office.call("POST", f"{contract}/termination", {})[0] == 409


def test_automatic_termination_is_taken_by_the_tick_on_its_day(office: Office) -> None:
    policy = office.ok("GET", "/account/dunning-policy")
    assert policy["unpaid"]["termination"] == "confirm"
    unpaid = {**policy["unpaid"], "termination": "automatic"}
    office.ok("PUT", "/account/dunning-policy", {"unpaid": unpaid, "documents": policy["documents"]})
    book = _book(office)
    contract, _ = _to_suspension(office, book)
    office.tick(paris("2027-04-21", 23))
    assert office.ok("GET", contract)["status"] == "suspended"
    office.tick(paris("2027-04-22"))
    assert office.ok("GET", contract)["status"] == "terminated"
    assert office.kinds()[-1] == "termination_notice"
    assert "22/04/2027" in office.emails()[-1]["text"]


def test_a_reversed_payment_re_opens_the_installment_and_its_dunning_where_the_timeline_stands(
    office: Office,
) -> None:
    contract, installment = _to_suspension(office, _book(office))
    paid = office.ok("POST", f"{installment}/payments", {"paid_at": "2027-04-15"})
    payment_id = paid["payments"][0]["id"]
    reversed_ = office.ok(
        "POST", f"{installment}/payments/{payment_id}/reversal", {"reason": "chèque impayé"}
    )
    assert (reversed_["status"], reversed_["amount_due"]["amount"]) == ("due", "1234.50")
    assert reversed_["payments"][0]["reversed_by"] == "user-admin"
    assert reversed_["payments"][0]["reversal_reason"] == "chèque impayé"
    assert reversed_["contract"]["status"] == "active"
    assert reversed_["next_step"]["kind"] == "suspension_notice"
    again = office.call("POST", f"{installment}/payments/{payment_id}/reversal", {"reason": "deux fois"})
    assert again[0] == 409
    assert office.call("POST", f"{installment}/payments/nope/reversal", {"reason": "x"})[0] == 404
    office.tick(paris("2027-04-20"))
    assert office.ok("GET", contract)["status"] == "suspended"
    assert office.kinds().count("suspension_notice") == 2


def test_a_client_who_cannot_be_emailed_gets_the_letter_and_the_notice_is_skipped_not_moved(
    office: Office,
) -> None:
    book = _book(office, email=None)
    _, installment = _paths(book)
    office.tick(paris("2027-03-12"))
    office.ok(
        "POST", f"{installment}/formal-notice/sent", {"sent_on": "2027-03-12", "tracking_number": "1A6"}
    )
    office.drain()
    history = office.ok("GET", f"/clients/{book['client']['id']}/communications")["items"]
    notice = next(c for c in history if c["kind"] == "formal_notice")
    assert notice["status"] == "skipped"
    assert notice["skipped_parties"] == ["client"]
    assert "formal_notice" not in office.kinds()


def test_the_provider_channel_posts_the_letter_at_the_tick_and_a_failing_provider_is_retried(
    office: Office, aws: Any
) -> None:
    office.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    book = _book(office)
    contract, installment = _paths(book)
    aws.registered_mail.fail_next_deposits(1)
    office.tick(paris("2027-03-12"))
    notice = office.ok("GET", installment)["formal_notice"]
    assert (notice["status"], notice["channel"], notice["reason"]) == (
        "to_send",
        "provider",
        "provider_unavailable",
    )
    assert office.letters() == []
    assert office.kinds() == []
    office.tick(paris("2027-03-12", 8, 30))
    assert office.ok("GET", installment)["formal_notice"]["status"] == "to_send"
    office.tick(paris("2027-03-12", 9, 5))
    notice = office.ok("GET", installment)["formal_notice"]
    assert (notice["status"], notice["sent_on"]) == ("sent", "2027-03-12")
    [letter] = office.letters()
    assert letter["installment_id"] == book["installment"]["id"]
    assert letter["contract_id"] == book["contract"]["id"]
    assert letter["tracking_number"] == notice["tracking_number"]
    assert letter["recipient"]["lines"][-1] == "69003 LYON"
    assert office.kinds() == ["unpaid_call", "unpaid_reminder", "formal_notice"][2:]
    office.tick(paris("2027-03-12", 11))
    assert len(office.letters()) == 1
    from chalicelib.services.ports import LetterTrackingStatus

    aws.registered_mail.settle(letter["id"], LetterTrackingStatus.DELIVERED)
    office.tick(paris("2027-04-12"))
    assert office.ok("GET", contract)["status"] == "suspended"
    assert office.ok("GET", installment)["formal_notice"]["status"] == "delivered"


def _counting_checks(aws: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The provider ids the tick asks the simulated provider about, in order."""
    asked: list[str] = []
    track = aws.registered_mail.track

    def counted(provider_id: str, now: datetime) -> Any:
        asked.append(provider_id)
        return track(provider_id, now)

    monkeypatch.setattr(aws.registered_mail, "track", counted)
    return asked


def _status(office: Office, installment: str) -> str:
    return str(office.ok("GET", installment)["formal_notice"]["status"])


def test_a_provider_letter_is_tracked_once_a_day_until_delivered_and_another_until_returned(
    office: Office, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.services.ports import LetterTrackingStatus

    office.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    book = _book(office)
    contract, first = _paths(book)
    other = office.ok(
        "POST",
        f"{contract}/installments",
        {"due_date": "2027-03-01", "amount": {"amount": "80.00", "currency": "EUR"}},
        201,
    )
    second = f"{contract}/installments/{other['id']}"
    office.tick(paris("2027-03-12"))
    letter_a, letter_b = (office.ok("GET", i)["formal_notice"]["id"] for i in (first, second))
    asked = _counting_checks(aws, monkeypatch)

    office.tick(paris("2027-03-12", 18))
    assert asked == []
    office.tick(paris("2027-03-13"))
    assert len(asked) == 2
    assert [_status(office, first), _status(office, second)] == ["sent", "sent"]
    aws.registered_mail.settle(letter_a, LetterTrackingStatus.DELIVERED)
    office.tick(paris("2027-03-13", 15))
    assert (len(asked), _status(office, first)) == (2, "sent")

    office.tick(paris("2027-03-14"))
    assert [_status(office, first), _status(office, second)] == ["delivered", "sent"]
    assert [letter["status"] for letter in office.letters()] == ["delivered", "sent"]
    aws.registered_mail.settle(letter_b, LetterTrackingStatus.RETURNED)
    office.tick(paris("2027-03-15"))
    assert [_status(office, first), _status(office, second)] == ["delivered", "returned"]
    assert [letter["status"] for letter in office.letters()] == ["delivered", "returned"]
    assert len(asked) == 5

    office.tick(paris("2027-03-16"))
    office.tick(paris("2027-04-11"))
    assert len(asked) == 5
    assert office.ok("GET", contract)["status"] == "active"
    office.tick(paris("2027-04-12"))
    assert office.ok("GET", contract)["status"] == "suspended"
    notices = [office.ok("GET", i)["formal_notice"] for i in (first, second)]
    assert [(n["status"], n["sent_on"]) for n in notices] == [
        ("delivered", "2027-03-12"),
        ("returned", "2027-03-12"),
    ]
    assert office.kinds() == ["formal_notice", "formal_notice", "suspension_notice", "suspension_notice"]


def test_a_provider_failing_a_tracking_check_changes_nothing_and_is_asked_again_the_next_day(
    office: Office, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.services.ports import LetterTrackingStatus

    office.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    _contract, installment = _paths(_book(office))
    office.tick(paris("2027-03-12"))
    before = office.ok("GET", installment)
    asked = _counting_checks(aws, monkeypatch)
    aws.registered_mail.settle(before["formal_notice"]["id"], LetterTrackingStatus.DELIVERED)
    aws.registered_mail.fail_next_checks(1)

    office.tick(paris("2027-03-13"))
    assert office.ok("GET", installment) == {
        **before,
        "formal_notice": {**before["formal_notice"], "document_url": ANY},
    }
    office.tick(paris("2027-03-13", 9))
    office.tick(paris("2027-03-13", 23))
    assert (len(asked), _status(office, installment)) == (1, "sent")

    office.tick(paris("2027-03-14"))
    assert (len(asked), _status(office, installment)) == (2, "delivered")
    assert office.ok("GET", installment)["next_step"] == {"kind": "suspension_notice", "due_on": "2027-04-12"}
    assert office.kinds() == ["formal_notice"]


def test_a_provider_letter_never_settled_is_asked_thirty_times_then_left_sent(
    office: Office, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    office.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    contract, installment = _paths(_book(office))
    office.tick(paris("2027-03-12"))
    asked = _counting_checks(aws, monkeypatch)

    for day in range(33):
        office.tick(paris((date(2027, 3, 13) + timedelta(days=day)).isoformat()))

    assert len(asked) == 30
    assert _status(office, installment) == "sent"
    assert office.ok("GET", contract)["status"] == "suspended"


def test_a_paid_installment_stops_its_letters_tracking(
    office: Office, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    office.ok("PATCH", "/account/settings", {"registered_mail_channel": "provider"})
    _contract, installment = _paths(_book(office))
    office.tick(paris("2027-03-12"))
    office.tick(paris("2027-03-13"))
    asked = _counting_checks(aws, monkeypatch)

    office.ok("POST", f"{installment}/payments", {"paid_at": "2027-03-13"})
    office.tick(paris("2027-03-14"))
    office.tick(paris("2027-03-15"))

    assert asked == []
    assert _status(office, installment) == "sent"


def test_policies_saved_before_the_termination_setting_confirm_it(office: Office) -> None:
    policy = office.ok("GET", "/account/dunning-policy")
    saved = office.ok("PUT", "/account/dunning-policy", {"unpaid": {"formal_notice_days": 12}})
    assert saved["unpaid"]["termination"] == "confirm"
    assert policy["unpaid"]["termination"] == "confirm"
    bad = office.call("PUT", "/account/dunning-policy", {"unpaid": {"termination": "never"}})
    assert bad[0] == 400


def test_the_letter_is_dated_and_counted_in_paris_even_when_utc_is_still_the_day_before() -> None:
    from chalicelib.domain.legal_time import paris_date

    assert paris_date(datetime(2027, 3, 11, 23, 30, tzinfo=UTC)) == date(2027, 3, 12)
