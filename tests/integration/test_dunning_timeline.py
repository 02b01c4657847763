"""The unpaid-premium timeline through the API and the tick (`/_local/tick` as of given times, and
`dunning_tick` invoked with the event's time), addressed by the contract's partner rule. The registered
letter's own rules (every row of EXAMPLES.md, the faults) are in test_formal_notice.py; here the timeline
meets payments, expected documents, listings and contracts ended and resumed by PATCH."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, RelaisTestClient, open_account, token

IDENTITY = {
    "legal_name": "Cabinet Martin SAS",
    "orias_number": "12345678",
    "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
}


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body)


@pytest.fixture
def book(platform: Api) -> dict[str, Any]:
    account_id = _ok(
        platform.post(
            "/admin/accounts",
            {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"},
        )
    )["id"]
    admin = platform.as_(token("admin", account_id))
    _ok(admin.patch("/account/settings", {"partner_communications_enabled": True}), 200)
    drain()
    _ok(admin.patch("/account/legal", IDENTITY), 200)
    b = _ok(admin.post("/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"}))
    c = _ok(
        admin.post(
            "/clients",
            {
                "name": "Jean Dupont",
                "email": "jean@dupont.fr",
                "postal_address": {"lines": ["3 allée des Tilleuls"], "postal_code": "69003", "city": "Lyon"},
            },
        )
    )
    p = _ok(admin.post("/products", {"name": "Habitation", "insurer": {"name": "Mutuelle Exemple"}}))
    k = _ok(
        admin.post(
            "/contracts",
            {
                "client_id": c["id"],
                "reference": "HAB-2027-001",
                "product_id": p["id"],
                "apporteur_id": b["id"],
                "commissioning": {"communication_rule": "client_and_apporteur"},
            },
        )
    )
    return {"admin": admin, "contract": k, "client": c}


def _tick(api: Api, day: str) -> None:
    """A tick on `day` at 08:00 UTC: 09:00 or 10:00 in Paris, after the timeline's sending hour."""
    _ok(api.post("/_local/tick", {"time": f"{day}T08:00:00Z"}), 200)


def _post_letter(api: Api, contract_id: str, installment_id: str, day: str) -> None:
    """Staff record that they posted the installment's letter on `day` (the manual channel)."""
    _ok(
        api.post(
            f"/contracts/{contract_id}/installments/{installment_id}/formal-notice/sent",
            {"sent_on": day, "tracking_number": "1A12345678901"},
        ),
        200,
    )
    drain()


def _take(api: Api, contract_id: str, installment_id: str, day: str) -> None:
    """What happens on `day` of the timeline: the tick, and on the letter's day staff posting it; on the
    termination's day staff confirming it."""
    _tick(api, day)
    if day == "2027-03-12":
        _post_letter(api, contract_id, installment_id, day)
    if day == "2027-04-22":
        _ok(api.post(f"/contracts/{contract_id}/termination", {}), 200)
        drain()


def _steps() -> list[tuple[str, list[str], list[str]]]:
    return [
        (m["kind"], m["to"], m["cc"]) for m in sent_messages(REGION) if m["kind"] not in ("account_welcome",)
    ]


TIMELINE = [
    ("2027-02-14", "unpaid_call", "active"),
    ("2027-03-08", "unpaid_reminder", "active"),
    ("2027-03-12", "formal_notice", "active"),
    ("2027-04-12", "suspension_notice", "suspended"),
    ("2027-04-22", "termination_notice", "terminated"),
]
"""The default timeline of an installment due 01/03/2027 whose letter is posted the day it is prepared and
whose termination staff confirm the day it is due."""


def test_the_timeline_from_the_call_to_the_termination_each_step_once_to_client_and_apporteur(
    book: dict[str, Any],
) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments",
            {"due_date": "2027-03-01", "amount": {"amount": "84.20", "currency": "EUR"}},
        )
    )
    assert installment["next_step"] == {"kind": "unpaid_call", "due_on": "2027-02-14"}
    assert installment["formal_notice"] is None
    _tick(admin, "2027-02-13")
    assert _steps() == []
    expected = []
    for day, kind, status in TIMELINE:
        _take(admin, k["id"], installment["id"], day)
        _tick(admin, day)
        expected.append((kind, ["jean@dupont.fr"], ["b@bernard.fr"]))
        assert _steps() == expected, day
        assert admin.get(f"/contracts/{k['id']}").body["status"] == status
    assert admin.get(f"/contracts/{k['id']}").body["dunning_stage"] == "terminated"
    notice = next(m for m in sent_messages(REGION) if m["kind"] == "formal_notice")
    assert "84,20\u00a0€" in notice["text"]
    assert "01/03/2027" in notice["text"]
    assert "L113-3" in notice["text"]
    history = admin.get(f"/clients/{book['client']['id']}/communications").body["items"]
    # Staff confirmed the termination with today's clock (2026), the tick sent the rest as of 2027.
    assert sorted(e["kind"] for e in history) == sorted(kind for _, kind, _ in TIMELINE)


def test_a_payment_stops_the_sequence_and_reinstates_a_suspended_contract(book: dict[str, Any]) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments", {"due_date": "2027-03-01", "amount": {"amount": "84.20"}}
        )
    )
    for day in ("2027-02-14", "2027-03-08", "2027-03-12", "2027-04-12"):
        _take(admin, k["id"], installment["id"], day)
    assert admin.get(f"/contracts/{k['id']}").body["status"] == "suspended"
    partial = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments/{installment['id']}/payments",
            {"paid_at": "2027-04-14", "amount": "50.00"},
        ),
        200,
    )
    assert (partial["status"], partial["contract"]["status"]) == ("due", "suspended")
    paid = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments/{installment['id']}/payments", {"paid_at": "2027-04-15"}
        ),
        200,
    )
    assert (paid["status"], paid["contract"]["status"]) == ("paid", "active")
    assert paid["contract"]["cover_resumes_at"] == "2027-04-16T10:00:00Z"
    drain()
    _tick(admin, "2027-04-22")
    assert [kind for kind, _, _ in _steps()] == [
        "unpaid_call",
        "unpaid_reminder",
        "formal_notice",
        "suspension_notice",
        "reinstatement_notice",
    ]
    assert (
        admin.post(
            f"/contracts/{k['id']}/installments/{installment['id']}/payments", {"paid_at": "2027-04-16"}
        ).status
        == 409
    )


def test_an_installment_entered_late_gets_only_its_letter_then_counts_from_its_sending(
    book: dict[str, Any], client: RelaisTestClient
) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments", {"due_date": "2027-03-01", "amount": {"amount": "84.20"}}
        )
    )
    event = {
        "version": "0",
        "id": "t",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "1",
        "region": REGION,
        "resources": [],
        "detail": {},
    }
    client.lambda_.invoke("dunning_tick", {**event, "time": "2027-03-20T08:00:00Z"})
    drain()
    assert _steps() == []
    _post_letter(admin, k["id"], installment["id"], "2027-03-20")
    for day in ("2027-04-19", "2027-04-20"):
        client.lambda_.invoke("dunning_tick", {**event, "time": f"{day}T08:00:00Z"})
        drain()
    assert [kind for kind, _, _ in _steps()] == ["formal_notice", "suspension_notice"]


def test_expected_documents_are_called_then_reminded_until_received(book: dict[str, Any], aws: Any) -> None:
    from datetime import UTC, datetime

    admin, k = book["admin"], book["contract"]
    aws.clock = lambda: datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    doc = _ok(
        admin.post(
            f"/contracts/{k['id']}/expected-documents",
            {"label": "Attestation d'assurance", "due_date": "2027-01-31"},
        )
    )
    assert doc["status"] == "expected"
    _tick(admin, "2027-01-10")
    _tick(admin, "2027-01-17")
    received = _ok(admin.post(f"/contracts/{k['id']}/expected-documents/{doc['id']}/received"), 200)
    assert received["status"] == "received"
    _tick(admin, "2027-01-24")
    assert [kind for kind, _, _ in _steps()] == ["documents_call", "documents_reminder"]
    for email in sent_messages(REGION)[-2:]:
        assert "au plus tard le 31/01/2027" in email["text"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"due_date": "2027-03-01", "amount": {"amount": 84.2}}, "amount.amount"),
        ({"due_date": "2027-03-01", "amount": {"amount": "-3"}}, "amount.amount"),
        ({"due_date": "2027-03-01", "amount": {"amount": "1.234"}}, "amount.amount"),
        ({"due_date": "2027-03-01", "amount": {"amount": "10", "currency": "BTC"}}, "amount.currency"),
        ({"due_date": "01/03/2027", "amount": {"amount": "10"}}, "due_date"),
        ({"amount": {"amount": "10"}}, "due_date"),
    ],
)
def test_an_invalid_installment_is_refused_naming_the_field(
    book: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    answer = book["admin"].post(f"/contracts/{book['contract']['id']}/installments", body)
    assert answer.status == 400
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_another_accounts_contract_takes_no_installment(book: dict[str, Any], platform: Api) -> None:
    other = platform.as_(
        token(
            "admin",
            _ok(platform.post("/admin/accounts", {"name": "X", "plan": "premium", "sender_email": "x@x.fr"}))[
                "id"
            ],
        )
    )
    assert (
        other.post(
            f"/contracts/{book['contract']['id']}/installments",
            {"due_date": "2027-03-01", "amount": {"amount": "10"}},
        ).status
        == 404
    )
    assert other.post(f"/contracts/{book['contract']['id']}/expected-documents", {"label": "X"}).status == 404


@pytest.mark.parametrize("ended", ["terminated", "cancelled"])
def test_ending_a_contract_by_patch_cancels_its_pending_steps_at_once(
    book: dict[str, Any], aws: Any, ended: str
) -> None:
    from datetime import UTC, datetime

    admin, k = book["admin"], book["contract"]
    _ok(
        admin.post(
            f"/contracts/{k['id']}/installments", {"due_date": "2027-03-01", "amount": {"amount": "84.20"}}
        )
    )
    _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Attestation d'emploi"}))
    far = datetime(2030, 1, 1, tzinfo=UTC)
    assert {step.parent_id for step in aws.due_steps.due(far, 100)} == {k["id"]}
    version = admin.get(f"/contracts/{k['id']}").body["version"]
    _ok(admin.patch(f"/contracts/{k['id']}", {"status": ended, "version": version}), 200)
    assert aws.due_steps.due(far, 100) == []
    for day in ("2027-02-14", "2027-03-08", "2027-03-11"):
        _tick(admin, day)
    assert _steps() == []


@pytest.mark.parametrize("paid_after", range(len(TIMELINE)))
def test_a_payment_at_each_stage_stops_what_follows(book: dict[str, Any], paid_after: int) -> None:
    admin, k = book["admin"], book["contract"]
    body = {"due_date": "2027-03-01", "amount": {"amount": "84.20"}}
    installment = _ok(admin.post(f"/contracts/{k['id']}/installments", body))
    for day, _, _ in TIMELINE[: paid_after + 1]:
        _take(admin, k["id"], installment["id"], day)
    day, _, status = TIMELINE[paid_after]
    assert admin.get(f"/contracts/{k['id']}").body["status"] == status
    paid = _ok(
        admin.post(f"/contracts/{k['id']}/installments/{installment['id']}/payments", {"paid_at": day}), 200
    )
    # A suspended contract is active again (with a reinstatement notice); a terminated one stays terminated.
    assert paid["contract"]["status"] == {"suspended": "active"}.get(status, status)
    drain()
    for later, _, _ in TIMELINE[paid_after + 1 :]:
        _tick(admin, later)
    _tick(admin, "2027-06-01")
    reinstated = ["reinstatement_notice"] if status == "suspended" else []
    assert [kind for kind, _, _ in _steps()] == [
        kind for _, kind, _ in TIMELINE[: paid_after + 1]
    ] + reinstated


def _installment(admin: Api, contract_id: str, due_date: str) -> dict[str, Any]:
    body = {"due_date": due_date, "amount": {"amount": "84.20"}}
    return _ok(admin.post(f"/contracts/{contract_id}/installments", body))


def test_staff_see_a_contracts_installments_and_expected_documents_as_the_tick_moves_them(
    book: dict[str, Any], platform: Api
) -> None:
    admin, k = book["admin"], book["contract"]
    march = _installment(admin, k["id"], "2027-03-01")
    april = _installment(admin, k["id"], "2027-04-01")
    doc = _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Relevé d'information"}))
    for day in ("2027-02-14", "2027-03-12"):
        _take(admin, k["id"], march["id"], day)

    listed = _ok(admin.get(f"/contracts/{k['id']}/installments"), 200)
    assert [i["id"] for i in listed["items"]] == [march["id"], april["id"]]
    assert listed["next_cursor"] is None
    first = listed["items"][0]
    assert (first["dunning_stage"], first["next_step"]) == (
        "formal_notice",
        {"kind": "suspension_notice", "due_on": "2027-04-12"},
    )
    assert first["formal_notice"]["status"] == "sent"
    assert first["formal_notice"]["document_url"]
    one_page = _ok(admin.get(f"/contracts/{k['id']}/installments?limit=1"), 200)
    assert [i["id"] for i in one_page["items"]] == [march["id"]]
    rest = _ok(admin.get(f"/contracts/{k['id']}/installments?limit=1&cursor={one_page['next_cursor']}"), 200)
    assert [i["id"] for i in rest["items"]] == [april["id"]]

    _ok(
        admin.post(f"/contracts/{k['id']}/installments/{march['id']}/payments", {"paid_at": "2027-03-13"}),
        200,
    )
    paid = _ok(admin.get(f"/contracts/{k['id']}/installments/{march['id']}"), 200)
    assert (paid["status"], paid["paid_on"], paid["next_step"]) == ("paid", "2027-03-13", None)

    documents = _ok(admin.get(f"/contracts/{k['id']}/expected-documents"), 200)["items"]
    assert [(d["id"], d["status"], d["last_sent"]) for d in documents] == [
        (doc["id"], "expected", "documents_reminder")
    ]
    assert _ok(admin.get(f"/contracts/{k['id']}/expected-documents/{doc['id']}"), 200)["label"] == (
        "Relevé d'information"
    )

    # Another account sees none of it; a cursor of another list, or a misspelt parameter, is a 400.
    other, _ = open_account(platform, "Cabinet Autre")
    for path in (
        f"/contracts/{k['id']}/installments",
        f"/contracts/{k['id']}/installments/{march['id']}",
        f"/contracts/{k['id']}/expected-documents",
        f"/contracts/{k['id']}/expected-documents/{doc['id']}",
    ):
        assert other.get(path).status == 404, path
    assert admin.get(f"/contracts/{k['id']}/installments/{doc['id']}").status == 404
    cursor = _ok(admin.get("/contracts?limit=1"), 200)["next_cursor"] or "e30"
    for query in (f"cursor={cursor}", "limt=5"):
        answer = admin.get(f"/contracts/{k['id']}/installments?{query}")
        assert answer.status == 400, query
        assert answer.body["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    ("amount", "status", "paid_amount"),
    [
        ({"amount": "20.00", "currency": "EUR"}, "due", "20.00"),
        ("20.00", "due", "20.00"),
        ({"amount": "84.20"}, "paid", "84.20"),
    ],
)
def test_a_payment_names_its_amount_as_money_or_as_a_bare_decimal_string(
    book: dict[str, Any], amount: Any, status: str, paid_amount: str
) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _installment(admin, k["id"], "2027-03-01")
    paid = _ok(
        admin.post(
            f"/contracts/{k['id']}/installments/{installment['id']}/payments",
            {"paid_at": "2027-03-02", "amount": amount},
        ),
        200,
    )
    assert (paid["status"], paid["paid_amount"]) == (status, paid_amount)
    # What is still due keeps its dunning: the call waits as before.
    waiting = {"kind": "unpaid_call", "due_on": "2027-02-14"} if status == "due" else None
    assert paid["next_step"] == waiting


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        ({"amount": "20.00", "currency": "USD"}, "amount.currency"),
        ({"amount": "-1"}, "amount.amount"),
        ("deux euros", "amount.amount"),
        (20, "amount"),
    ],
)
def test_a_payment_in_another_currency_or_not_an_amount_is_refused(
    book: dict[str, Any], amount: Any, field: str
) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _installment(admin, k["id"], "2027-03-01")
    answer = admin.post(
        f"/contracts/{k['id']}/installments/{installment['id']}/payments",
        {"paid_at": "2027-03-02", "amount": amount},
    )
    assert answer.status == 400, answer.body
    assert field in [d["field"] for d in answer.body["error"]["details"]]
    assert (
        _ok(admin.get(f"/contracts/{k['id']}/installments/{installment['id']}"), 200)["paid_amount"] == "0.00"
    )


def test_two_ticks_at_once_queue_each_step_twice_and_it_is_sent_once(book: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from chalicelib.handlers import dunning_tick

    admin, k = book["admin"], book["contract"]
    _installment(admin, k["id"], "2027-03-01")
    _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Relevé d'information"}))
    at = datetime(2027, 2, 14, 8, 0, tzinfo=UTC)
    # Both ticks read the index before any step is written: each queues both steps.
    assert [dunning_tick.run(at), dunning_tick.run(at)] == [2, 2]
    drain()
    assert sorted(kind for kind, _, _ in _steps()) == ["documents_reminder", "unpaid_call"]
    _tick(admin, "2027-02-14")
    assert len(_steps()) == 2


def test_two_workers_on_one_step_at_once_send_it_once(
    book: dict[str, Any], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other worker, handed the same step at the same moment, writes it first: this one loses the
    race on the step's version and sends nothing."""
    from datetime import UTC, datetime

    from chalicelib.adapters.dynamodb.scheduled import DynamoScheduledRepository
    from chalicelib.services.dunning import StepRequest, run_step

    admin, k = book["admin"], book["contract"]
    installment = _installment(admin, k["id"], "2027-03-01")
    account_id = next(step.account_id for step in aws.due_steps.due(datetime(2030, 1, 1, tzinfo=UTC), 10))
    request = StepRequest(
        account_id, k["id"], "INSTALLMENT", installment["id"], datetime(2027, 2, 14, 8, 0, tzinfo=UTC)
    )
    original = DynamoScheduledRepository.commit
    other_worker: dict[str, bool] = {}

    def commit_after_the_other_worker(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("communication") is not None and "sent" not in other_worker:
            other_worker["sent"] = False
            other_worker["sent"] = run_step(request, aws.dunning_context())
        original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoScheduledRepository, "commit", commit_after_the_other_worker)
    assert run_step(request, aws.dunning_context()) is False
    assert other_worker["sent"] is True
    drain()
    assert [kind for kind, _, _ in _steps()] == ["unpaid_call"]


def test_an_expected_document_shows_the_step_that_waits_for_it_until_it_is_received(
    book: dict[str, Any], aws: Any
) -> None:
    from datetime import UTC, datetime

    admin, k = book["admin"], book["contract"]
    aws.clock = lambda: datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    doc = _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Attestation d'assurance"}))
    assert doc["next_step"] == {"kind": "documents_call", "due_on": "2027-01-10"}
    _tick(admin, "2027-01-10")
    path = f"/contracts/{k['id']}/expected-documents/{doc['id']}"
    assert _ok(admin.get(path), 200)["next_step"] == {"kind": "documents_reminder", "due_on": "2027-01-17"}
    listed = _ok(admin.get(f"/contracts/{k['id']}/expected-documents"), 200)["items"]
    assert [d["next_step"] for d in listed] == [{"kind": "documents_reminder", "due_on": "2027-01-17"}]
    _tick(admin, "2027-01-17")
    assert _ok(admin.get(path), 200)["next_step"] == {"kind": "documents_reminder", "due_on": "2027-01-24"}
    assert _ok(admin.post(f"{path}/received"), 200)["next_step"] is None
    assert _ok(admin.get(path), 200)["next_step"] is None


def test_an_expected_document_of_a_cancelled_contract_has_no_step_waiting(book: dict[str, Any]) -> None:
    admin, k = book["admin"], book["contract"]
    doc = _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Attestation d'assurance"}))
    _ok(admin.patch(f"/contracts/{k['id']}", {"status": "cancelled", "version": k["version"]}), 200)
    path = f"/contracts/{k['id']}/expected-documents/{doc['id']}"
    assert _ok(admin.get(path), 200)["next_step"] is None


@pytest.mark.parametrize("day", ["0001-01-03", "1999-12-31", "2101-01-01", "9999-12-30"])
def test_a_date_outside_2000_to_2100_is_refused_on_an_installment_a_payment_or_an_expected_document(
    book: dict[str, Any], day: str
) -> None:
    admin, k = book["admin"], book["contract"]
    answers = {
        "due_date": admin.post(
            f"/contracts/{k['id']}/installments", {"due_date": day, "amount": {"amount": "84.20"}}
        ),
        "paid_at": admin.post(
            f"/contracts/{k['id']}/installments/{_installment(admin, k['id'], '2027-03-01')['id']}/payments",
            {"paid_at": day},
        ),
        "due_date ": admin.post(
            f"/contracts/{k['id']}/expected-documents", {"label": "Attestation", "due_date": day}
        ),
    }
    for field, answer in answers.items():
        assert answer.status == 400, (field, answer.body)
        assert answer.body["error"]["code"] == "validation_error"
        assert [d["field"] for d in answer.body["error"]["details"]] == [field.strip()]
    listed = _ok(admin.get(f"/contracts/{k['id']}/installments"), 200)["items"]
    assert [(i["due_date"], i["paid_amount"]) for i in listed] == [("2027-03-01", "0.00")]


@pytest.mark.parametrize("day", ["2000-01-01", "2100-12-31"])
def test_the_first_and_last_days_of_the_range_are_accepted(book: dict[str, Any], day: str) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _installment(admin, k["id"], day)
    paid = _ok(
        admin.post(f"/contracts/{k['id']}/installments/{installment['id']}/payments", {"paid_at": day}), 200
    )
    assert (paid["due_date"], paid["paid_on"]) == (day, day)


def test_a_payment_above_what_remains_is_refused_and_the_installment_lists_its_payments(
    book: dict[str, Any],
) -> None:
    admin, k = book["admin"], book["contract"]
    installment = _installment(admin, k["id"], "2027-03-01")
    path = f"/contracts/{k['id']}/installments/{installment['id']}"
    assert (installment["payments"], installment["amount_due"]) == (
        [],
        {"amount": "84.20", "currency": "EUR"},
    )
    partial = _ok(admin.post(f"{path}/payments", {"paid_at": "2027-04-14", "amount": "40.00"}), 200)
    assert partial["amount_due"] == {"amount": "44.20", "currency": "EUR"}

    refused = admin.post(f"{path}/payments", {"paid_at": "2027-04-15", "amount": {"amount": "84.20"}})
    assert refused.status == 400, refused.body
    assert refused.body["error"]["code"] == "validation_error"
    assert [d["field"] for d in refused.body["error"]["details"]] == ["amount"]
    assert "44.20" in refused.body["error"]["details"][0]["issue"]
    unchanged = _ok(admin.get(path), 200)
    assert (unchanged["status"], unchanged["paid_amount"]) == ("due", "40.00")

    rest = _ok(admin.post(f"{path}/payments", {"paid_at": "2027-04-16", "amount": "44.20"}), 200)
    assert (rest["status"], rest["paid_amount"], rest["amount_due"]["amount"]) == ("paid", "84.20", "0.00")
    shown = _ok(admin.get(path), 200)
    payments = shown["payments"]
    assert [(p["paid_at"], p["amount"]) for p in payments] == [
        ("2027-04-14", {"amount": "40.00", "currency": "EUR"}),
        ("2027-04-16", {"amount": "44.20", "currency": "EUR"}),
    ]
    assert len({p["id"] for p in payments}) == 2
    listed = _ok(admin.get(f"/contracts/{k['id']}/installments"), 200)["items"]
    assert listed[0]["payments"] == payments


def test_a_payment_dated_in_2027_is_accepted_whatever_todays_date(book: dict[str, Any], aws: Any) -> None:
    from datetime import UTC, datetime

    admin, k = book["admin"], book["contract"]
    aws.clock = lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    installment = _installment(admin, k["id"], "2027-03-01")
    paid = admin.post(
        f"/contracts/{k['id']}/installments/{installment['id']}/payments", {"paid_at": "2027-12-31"}
    )
    assert (paid.status, paid.body["status"]) == (200, "paid")


def test_a_contract_cancelled_by_mistake_then_set_back_to_active_is_dunned_again_from_where_it_stood(
    book: dict[str, Any], aws: Any
) -> None:
    from datetime import UTC, datetime

    admin, k = book["admin"], book["contract"]
    aws.clock = lambda: datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
    installment = _installment(admin, k["id"], "2027-03-01")
    doc = _ok(admin.post(f"/contracts/{k['id']}/expected-documents", {"label": "Attestation d'emploi"}))
    _tick(admin, "2027-02-14")
    assert sorted(kind for kind, _, _ in _steps()) == ["documents_reminder", "unpaid_call"]

    version = admin.get(f"/contracts/{k['id']}").body["version"]
    cancelled = _ok(admin.patch(f"/contracts/{k['id']}", {"status": "cancelled", "version": version}), 200)
    _tick(admin, "2027-03-08")
    assert len(_steps()) == 2
    _ok(admin.patch(f"/contracts/{k['id']}", {"status": "active", "version": cancelled["version"]}), 200)

    shown = _ok(admin.get(f"/contracts/{k['id']}/installments/{installment['id']}"), 200)
    assert shown["next_step"] == {"kind": "unpaid_reminder", "due_on": "2027-03-08"}
    far = datetime(2030, 1, 1, tzinfo=UTC)
    assert sorted(step.thing_id for step in aws.due_steps.due(far, 100)) == sorted(
        [installment["id"], doc["id"]]
    )
    _tick(admin, "2027-03-12")
    # The reminder's day passed while the contract was cancelled: the next tick takes the latest step due
    # (the letter, which sends no email until it is posted), and the document's second reminder.
    assert sorted(kind for kind, _, _ in _steps()[2:]) == ["documents_reminder"]
    assert admin.get(f"/contracts/{k['id']}").body["dunning_stage"] == "formal_notice"
    shown = _ok(admin.get(f"/contracts/{k['id']}/installments/{installment['id']}"), 200)
    assert shown["formal_notice"]["status"] == "to_send"


def test_a_terminated_contract_set_back_to_active_resumes_what_was_not_over(book: dict[str, Any]) -> None:
    admin, k = book["admin"], book["contract"]
    paid = _installment(admin, k["id"], "2027-03-01")
    _ok(
        admin.post(f"/contracts/{k['id']}/installments/{paid['id']}/payments", {"paid_at": "2027-02-01"}), 200
    )
    later = _installment(admin, k["id"], "2027-06-01")
    ended = _ok(admin.patch(f"/contracts/{k['id']}", {"status": "terminated", "version": k["version"]}), 200)
    suspended = _ok(
        admin.patch(f"/contracts/{k['id']}", {"status": "suspended", "version": ended["version"]}), 200
    )
    assert suspended["status"] == "suspended"
    _tick(admin, "2027-05-17")
    assert [kind for kind, _, _ in _steps()] == ["unpaid_call"]
    listed = _ok(admin.get(f"/contracts/{k['id']}/installments"), 200)["items"]
    assert [(i["id"], i["next_step"]) for i in listed] == [
        (paid["id"], None),
        (later["id"], {"kind": "unpaid_reminder", "due_on": "2027-06-08"}),
    ]
