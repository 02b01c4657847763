"""Nothing half-written: a request that writes several items writes them in one TransactWriteItems, so a
failure leaves nothing behind, the API answers 500 `internal_error`, and the same request then succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.handlers import BUILTIN_HANDLERS

from tests.support import Api, token


class FailingTransactions:
    """A botocore hook that makes the next TransactWriteItems calls fail, as a DynamoDB outage would."""

    def __init__(self) -> None:
        self.remaining = 0

    def __call__(self, model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems" and self.remaining > 0:
            self.remaining -= 1
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems"
            )


@pytest.fixture
def failing(aws: Any) -> Iterator[FailingTransactions]:
    hook = FailingTransactions()
    entry = ("before-call.dynamodb.TransactWriteItems", hook)
    BUILTIN_HANDLERS.append(entry)
    try:
        yield hook
    finally:
        BUILTIN_HANDLERS.remove(entry)


def _items(aws: Any) -> list[dict[str, Any]]:
    return list(aws.client("dynamodb").scan(TableName=aws.settings.table_name)["Items"])


def test_an_account_and_its_welcome_are_written_together_or_not_at_all(
    platform: Api, aws: Any, failing: FailingTransactions
) -> None:
    body = {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"}
    failing.remaining = 1
    answer = platform.post("/admin/accounts", body)
    assert answer.status == 500
    assert answer.body["error"]["code"] == "internal_error"
    assert _items(aws) == []
    retried = platform.post("/admin/accounts", body)
    assert retried.status == 201
    kinds = sorted(item["SK"]["S"].split("#")[0] for item in _items(aws))
    assert kinds == ["ACCOUNT", "COMM"]


def test_a_dossier_its_link_and_its_email_are_written_together_or_not_at_all(
    platform: Api, aws: Any, failing: FailingTransactions
) -> None:
    account_id = platform.post(
        "/admin/accounts", {"name": "C", "plan": "platinum", "sender_email": "c@c.fr"}
    ).body["id"]
    staff = platform.as_(token("manager", account_id))
    pid = staff.post("/procedures", {"name": "Location"}).body["id"]
    before = len(_items(aws))
    body = {"procedure_id": pid, "recipient": {"name": "Léa", "email": "lea@exemple.fr"}, "notify": True}
    failing.remaining = 1
    assert staff.post("/dossiers", body).status == 500
    assert len(_items(aws)) == before
    created = staff.post("/dossiers", body)
    assert created.status == 201
    assert created.body["notified"] is True
    # The dossier, the main recipient's link (and its trace beside the dossier), the dossier-created email
    # with the link it carries (and that link's trace), and the dossier.created event.
    assert len(_items(aws)) - before == 7
