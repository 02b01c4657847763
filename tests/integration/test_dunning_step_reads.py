"""What a dunning step reads: its installment with the contract's others (one Query), then the account,
the contract, the client, the product, the apporteur and the policy in one BatchGetItem, from the ids
copied on the installment, then its one write. A contract given another client or apporteur since its
installment was written has the new ids copied on its pending steps and is addressed to the new one; a
step that finds the former ids all the same (it lost a race with the change) reads the new records, one
read more; and an installment written before those ids were copied takes its step all the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.client import BaseClient

from chalicelib.local.outbox import sent_messages
from chalicelib.local.pumps import drain
from chalicelib.local.stack import REGION
from tests.support import Api, token

CALL_DAY = datetime(2027, 2, 14, 8, 0, tzinfo=UTC)
"""The tick that sends the unpaid call of an installment due on 1 March 2027."""


def _ok(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status == status, answer.body
    return dict(answer.body)


@pytest.fixture
def book(platform: Api) -> dict[str, Any]:
    """A contract of Jean Dupont's with Cabinet Bernard, written to both, and its installment due on
    1 March 2027."""
    account_id = _ok(
        platform.post(
            "/admin/accounts",
            {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"},
        )
    )["id"]
    admin = platform.as_(token("admin", account_id))
    _ok(admin.patch("/account/settings", {"partner_communications_enabled": True}), 200)
    drain()
    bernard = _ok(admin.post("/apporteurs", {"name": "Cabinet Bernard", "email": "b@bernard.fr"}))
    jean = _ok(admin.post("/clients", {"name": "Jean Dupont", "email": "jean@dupont.fr"}))
    product = _ok(admin.post("/products", {"name": "Habitation", "insurer": {"name": "Mutuelle Exemple"}}))
    contract = _ok(
        admin.post(
            "/contracts",
            {
                "client_id": jean["id"],
                "reference": "HAB-2027-001",
                "product_id": product["id"],
                "apporteur_id": bernard["id"],
                "commissioning": {"communication_rule": "client_and_apporteur"},
            },
        )
    )
    body = {"due_date": "2027-03-01", "amount": {"amount": "84.20"}}
    installment = _ok(admin.post(f"/contracts/{contract['id']}/installments", body))
    return {"admin": admin, "account_id": account_id, "contract": contract, "installment": installment}


class DynamoCalls:
    """The DynamoDB operations made while it listens, in order."""

    def __init__(self) -> None:
        self.operations: list[str] = []
        self.listening = False


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> DynamoCalls:
    calls = DynamoCalls()
    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation: str, params: Any) -> Any:
        if calls.listening and self.meta.service_model.service_name == "dynamodb":
            calls.operations.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    return calls


def _take_the_call(book: dict[str, Any], aws: Any, calls: DynamoCalls) -> bool:
    """The worker takes the installment's unpaid call as of the tick's time, its DynamoDB calls counted."""
    from chalicelib.services.dunning import StepRequest, run_step

    request = StepRequest(
        book["account_id"], book["contract"]["id"], "INSTALLMENT", book["installment"]["id"], CALL_DAY
    )
    context = aws.dunning_context()
    calls.listening = True
    try:
        return run_step(request, context)
    finally:
        calls.listening = False


def _calls_sent() -> list[tuple[list[str], list[str]]]:
    return [(m["to"], m["cc"]) for m in sent_messages(REGION) if m["kind"] == "unpaid_call"]


def test_a_step_reads_its_installment_then_everything_else_at_once_then_writes_once(
    book: dict[str, Any], aws: Any, dynamodb_calls: DynamoCalls
) -> None:
    assert _take_the_call(book, aws, dynamodb_calls) is True
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactWriteItems"]
    drain()
    assert _calls_sent() == [(["jean@dupont.fr"], ["b@bernard.fr"])]


def _installment_item(book: dict[str, Any]) -> Any:
    from chalicelib.adapters.dynamodb.models import ScheduledItem

    return ScheduledItem.get(
        f"ACCOUNT#{book['account_id']}#CONTRACT#{book['contract']['id']}",
        f"INSTALLMENT#{book['installment']['id']}",
    )


def _give_the_contract(book: dict[str, Any], changes: dict[str, Any]) -> None:
    contract = book["contract"]
    patch = {**changes, "version": contract["version"]}
    _ok(book["admin"].patch(f"/contracts/{contract['id']}", patch), 200)


def test_a_contract_given_another_client_calls_the_new_client_in_the_same_three_calls(
    book: dict[str, Any], aws: Any, dynamodb_calls: DynamoCalls
) -> None:
    marie = _ok(book["admin"].post("/clients", {"name": "Marie Durand", "email": "marie@durand.fr"}))
    _give_the_contract(book, {"client_id": marie["id"]})
    assert _take_the_call(book, aws, dynamodb_calls) is True
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactWriteItems"]
    drain()
    assert _calls_sent() == [(["marie@durand.fr"], ["b@bernard.fr"])]
    unpaid_call = next(m for m in sent_messages(REGION) if m["kind"] == "unpaid_call")
    assert "Marie Durand" in unpaid_call["text"]
    assert "Jean Dupont" not in unpaid_call["text"]


def test_a_contract_given_another_apporteur_copies_the_new_apporteur(
    book: dict[str, Any], aws: Any, dynamodb_calls: DynamoCalls
) -> None:
    leroy = _ok(book["admin"].post("/apporteurs", {"name": "Courtage Leroy", "email": "c@leroy.fr"}))
    _give_the_contract(
        book,
        {"apporteur_id": leroy["id"], "commissioning": {"communication_rule": "client_and_apporteur"}},
    )
    assert _take_the_call(book, aws, dynamodb_calls) is True
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactWriteItems"]
    drain()
    assert _calls_sent() == [(["jean@dupont.fr"], ["c@leroy.fr"])]


def test_an_installment_still_naming_the_former_client_calls_the_new_one_and_names_it_for_the_next_step(
    book: dict[str, Any], aws: Any, dynamodb_calls: DynamoCalls
) -> None:
    """A step that read the contract just before it changed wrote the former parties on the installment
    after the change copied the new ones: the next step reads the contract's client, never the copy's."""
    from chalicelib.services.dunning import StepRequest, run_step

    item = _installment_item(book)
    former = dict(item.parties)
    marie = _ok(book["admin"].post("/clients", {"name": "Marie Durand", "email": "marie@durand.fr"}))
    _give_the_contract(book, {"client_id": marie["id"]})
    item = _installment_item(book)
    assert item.parties["client_id"] == marie["id"]
    item.update(actions=[type(item).parties.set(former)])
    assert _take_the_call(book, aws, dynamodb_calls) is True
    # The new client is read once more; the former one, read from the copy, is not used.
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactGetItems", "TransactWriteItems"]
    drain()
    assert _calls_sent() == [(["marie@durand.fr"], ["b@bernard.fr"])]
    dynamodb_calls.operations.clear()
    reminder_day = datetime(2027, 3, 8, 8, 0, tzinfo=UTC)
    request = StepRequest(
        book["account_id"], book["contract"]["id"], "INSTALLMENT", book["installment"]["id"], reminder_day
    )
    dynamodb_calls.listening = True
    assert run_step(request, aws.dunning_context()) is True
    dynamodb_calls.listening = False
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactWriteItems"]
    drain()
    reminders = [m["to"] for m in sent_messages(REGION) if m["kind"] == "unpaid_reminder"]
    assert reminders == [["marie@durand.fr"]]


def test_an_installment_written_before_parties_were_copied_still_takes_its_step(
    book: dict[str, Any], aws: Any, dynamodb_calls: DynamoCalls
) -> None:
    item = _installment_item(book)
    item.update(actions=[type(item).parties.remove()])
    assert _take_the_call(book, aws, dynamodb_calls) is True
    # Today's reads: the contract with the account, then the records it names.
    assert dynamodb_calls.operations == ["Query", "BatchGetItem", "TransactGetItems", "TransactWriteItems"]
    drain()
    assert _calls_sent() == [(["jean@dupont.fr"], ["b@bernard.fr"])]
    assert _installment_item(book).parties["client_id"] == book["contract"]["client_id"]
