"""Every 400 is written for the person calling the API: field paths they sent, sentences they can act on,
dates that are dates, and never a name from inside Relais (a model class, a validator, a library's link)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import Api, token

INTERNAL = re.compile(r"Body\b|instance of|Input should|pydantic|errors\.pydantic\.dev|function-|\[type=")


@pytest.fixture
def admin(platform: Api) -> Api:
    account = platform.post(
        "/admin/accounts", {"name": "Cabinet Petit", "plan": "platinum", "sender_email": "petit@cabinet.fr"}
    ).body
    return platform.as_(token("admin", account["id"]))


@pytest.fixture
def contract(admin: Api) -> dict[str, Any]:
    client = admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}).body
    return dict(admin.post("/contracts", {"client_id": client["id"], "reference": "HAB-1"}).body)


@pytest.fixture
def installment(admin: Api, contract: dict[str, Any]) -> dict[str, Any]:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments",
        {"due_date": "2027-03-01", "amount": {"amount": "84.20", "currency": "EUR"}},
    )
    assert answer.status == 201, answer.body
    return dict(answer.body)


def refused(answer: Any) -> list[dict[str, str]]:
    """The details of a 400, checked to speak to the caller only."""
    assert answer.status == 400, answer.body
    error = answer.body["error"]
    assert error["code"] == "validation_error"
    for text in [error["message"], *(d["issue"] for d in error["details"])]:
        assert not INTERNAL.search(text), f"internal wording leaked: {text!r}"
    return list(error["details"])


def test_a_bare_string_where_money_is_expected_says_money_is_an_object(
    admin: Api, contract: dict[str, Any]
) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments", {"due_date": "2027-03-01", "amount": "84"}
    )
    assert refused(answer) == [
        {
            "field": "amount",
            "issue": 'must be money, an object such as {"amount": "84.20", "currency": "EUR"}',
        }
    ]


@pytest.mark.parametrize("written", ["2027-03-01T00:00:00Z", "2027-03-01T10:00", "20270301", "1/3/2027", ""])
def test_a_due_date_must_be_a_date_and_nothing_else(
    admin: Api, contract: dict[str, Any], written: str
) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments",
        {"due_date": written, "amount": {"amount": "84.20", "currency": "EUR"}},
    )
    assert refused(answer) == [{"field": "due_date", "issue": "must be a date written YYYY-MM-DD"}]


@pytest.mark.parametrize(
    ("written", "issue"),
    [
        (1_800_000_000, "must be a date written YYYY-MM-DD"),
        ("2027-04-15T00:00:00+02:00", "must be a date written YYYY-MM-DD"),
        (None, "must not be null"),
    ],
)
def test_a_payment_date_must_be_a_date_and_nothing_else(
    admin: Api, contract: dict[str, Any], installment: dict[str, Any], written: Any, issue: str
) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments/{installment['id']}/payments", {"paid_at": written}
    )
    assert refused(answer) == [{"field": "paid_at", "issue": issue}]


def test_an_expected_document_and_a_dossier_take_dates_only(admin: Api, contract: dict[str, Any]) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/expected-documents",
        {"label": "Permis", "due_date": "2027-03-01T00:00:00Z"},
    )
    assert refused(answer) == [{"field": "due_date", "issue": "must be a date written YYYY-MM-DD"}]
    procedure = admin.post("/procedures", {"name": "Location"}).body
    answer = admin.post(
        "/dossiers",
        {
            "procedure_id": procedure["id"],
            "recipient": {"name": "Léa Martin", "email": "lea@martin.fr"},
            "due_date": "2027-03-01T00:00:00Z",
        },
    )
    assert refused(answer) == [{"field": "due_date", "issue": "must be a date written YYYY-MM-DD"}]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/clients", {"name": 12}, {"field": "name", "issue": "must be a string"}),
        ("/clients", {"name": ""}, {"field": "name", "issue": "must not be blank"}),
        (
            "/clients",
            {"name": "Jean", "commissioning": "apporteur"},
            {"field": "commissioning", "issue": "must be an object"},
        ),
        (
            "/clients",
            {"name": "Jean", "commissioning": {"communication_rule": "nobody"}},
            {
                "field": "commissioning.communication_rule",
                "issue": "must be one of 'client', 'apporteur' or 'client_and_apporteur'",
            },
        ),
        ("/procedures", {"name": ["Location"]}, {"field": "name", "issue": "must be a string"}),
        (
            "/contracts/bulk-updates",
            {"ids": "k1", "set": {"communication_rule": "client"}},
            {"field": "ids", "issue": "must be a list"},
        ),
    ],
)
def test_each_wrong_value_is_named_in_words_for_the_caller(
    admin: Api, path: str, body: dict[str, Any], expected: dict[str, str]
) -> None:
    assert expected in refused(admin.post(path, body))


def test_a_wrong_type_inside_a_payment_amount_is_refused(
    admin: Api, contract: dict[str, Any], installment: dict[str, Any]
) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments/{installment['id']}/payments",
        {"paid_at": "2027-03-02", "amount": {"amount": "10.00", "currency": 978}},
    )
    assert refused(answer) == [{"field": "amount.currency", "issue": "must be a string"}]


def test_a_payment_amount_whose_currency_is_null_is_refused(
    admin: Api, contract: dict[str, Any], installment: dict[str, Any]
) -> None:
    answer = admin.post(
        f"/contracts/{contract['id']}/installments/{installment['id']}/payments",
        {"paid_at": "2027-03-02", "amount": {"amount": "10.00", "currency": None}},
    )
    assert refused(answer) == [{"field": "amount.currency", "issue": "must not be null"}]


@pytest.mark.parametrize(
    ("time", "issue"),
    [
        (None, "must not be null"),
        (1_800_000_000, "must be a date and time with its offset, such as 2027-03-11T08:00:00Z"),
        ("2027-03-11T08:00:00", "must be a date and time with its offset, such as 2027-03-11T08:00:00Z"),
    ],
)
def test_the_local_tick_refuses_a_time_that_is_not_a_moment(admin: Api, time: Any, issue: str) -> None:
    assert refused(admin.post("/_local/tick", {"time": time})) == [{"field": "time", "issue": issue}]


def test_an_empty_cursor_is_refused_like_any_cursor_the_api_did_not_give(admin: Api) -> None:
    assert refused(admin.get("/clients?cursor=")) == [
        {"field": "cursor", "issue": "not a cursor of this API"}
    ]


def test_a_contract_sent_with_a_null_status_is_refused(admin: Api) -> None:
    client = admin.post("/clients", {"name": "Jean Dupont"}).body
    answer = admin.post("/contracts", {"client_id": client["id"], "reference": "HAB-9", "status": None})
    assert refused(answer) == [{"field": "status", "issue": "must not be null"}]


def test_a_null_nested_where_none_is_allowed_is_named_by_its_full_path(admin: Api) -> None:
    answer = admin.post(
        "/mailings",
        {
            "name": "Voeux",
            "subject": "Bonne année",
            "body": "Bonjour",
            "audience": {"entity": "clients", "filters": {"ids": None}},
        },
    )
    assert refused(answer) == [{"field": "audience.filters.ids", "issue": "must not be null"}]


def test_null_is_accepted_where_the_contract_allows_it(admin: Api) -> None:
    answer = admin.post(
        "/apporteurs", {"name": "Ouest", "email": None, "commissioning": {"commission_rate": None}}
    )
    assert answer.status == 201, answer.body


def test_a_mailing_draft_patched_with_a_null_audience_is_refused(admin: Api) -> None:
    mailing = admin.post(
        "/mailings",
        {"name": "Voeux", "subject": "Bonne année", "body": "Bonjour", "audience": {"entity": "clients"}},
    ).body
    answer = admin.patch(f"/mailings/{mailing['id']}", {"audience": None})
    assert refused(answer) == [{"field": "audience", "issue": "must not be null"}]
