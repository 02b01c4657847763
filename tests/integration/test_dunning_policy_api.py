"""The dunning policy through the HTTP API: defaults, the legal floor, templates, who may touch it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, token

DEFAULTS = {
    "unpaid": {
        "call_days_before": 15,
        "reminder_days": [7],
        "formal_notice_days": 10,
        "suspension_days": 30,
        "termination_days": 10,
        "termination": "confirm",
    },
    "documents": {"reminder_days": [7, 14]},
    "templates": {},
}


@pytest.fixture
def account_id(platform: Api) -> str:
    body = {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"}
    return str(platform.post("/admin/accounts", body).body["id"])


@pytest.fixture
def admin(platform: Api, account_id: str) -> Api:
    return platform.as_(token("admin", account_id))


def _without_version(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "version"}


def test_an_account_that_never_set_a_policy_reads_the_legal_defaults(admin: Api) -> None:
    answer = admin.get("/account/dunning-policy")
    assert answer.status == 200
    assert _without_version(answer.body) == DEFAULTS


def test_a_policy_put_is_read_back_whole_and_what_it_leaves_out_takes_the_default(admin: Api) -> None:
    put = admin.put(
        "/account/dunning-policy",
        {
            "unpaid": {"reminder_days": [5, 8], "suspension_days": 45},
            "templates": {
                "formal_notice": {
                    "subject": "Mise en demeure {{ contract.reference }}",
                    "body": "Bonjour {{ recipient.name }}, {{ installment.amount }} reste dû.",
                }
            },
        },
    )
    assert put.status == 200, put.body
    expected = {
        **DEFAULTS,
        "unpaid": {**DEFAULTS["unpaid"], "reminder_days": [5, 8], "suspension_days": 45},
        "templates": {
            "formal_notice": {
                "subject": "Mise en demeure {{ contract.reference }}",
                "body": "Bonjour {{ recipient.name }}, {{ installment.amount }} reste dû.",
            }
        },
    }
    assert _without_version(put.body) == expected
    assert _without_version(admin.get("/account/dunning-policy").body) == expected
    again = admin.put("/account/dunning-policy", {})
    assert _without_version(again.body) == DEFAULTS
    assert again.body["version"] == put.body["version"] + 1


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"unpaid": {"formal_notice_days": 5}}, "unpaid.formal_notice_days"),
        ({"unpaid": {"suspension_days": 20}}, "unpaid.suspension_days"),
        ({"unpaid": {"termination_days": 7}}, "unpaid.termination_days"),
        ({"unpaid": {"reminder_days": [12]}}, "unpaid.reminder_days.0"),
        ({"unpaid": {"reminder_days": [3, 3]}}, "unpaid.reminder_days"),
        ({"unpaid": {"formal_notice_days": "10"}}, "unpaid.formal_notice_days"),
        ({"unpaid": {"formal_notice_days": 10.5}}, "unpaid.formal_notice_days"),
        ({"unpaid": {"grace_days": 3}}, "unpaid.grace_days"),
        ({"documents": {"reminder_days": [0]}}, "documents.reminder_days.0"),
        ({"templates": {"mailing": {"subject": "s", "body": "b"}}}, "templates.mailing"),
        ({"templates": {"formal_notice": {"subject": "s"}}}, "templates.formal_notice.body"),
        (
            {"templates": {"formal_notice": {"subject": "s", "body": "{{ dossier.portal_link }}"}}},
            "templates.formal_notice.body",
        ),
        (
            {"templates": {"unpaid_call": {"subject": "{{ client.name.__class__ }}", "body": "b"}}},
            "templates.unpaid_call.subject",
        ),
        (
            {"templates": {"unpaid_call": {"subject": "{% if %}", "body": "b"}}},
            "templates.unpaid_call.subject",
        ),
    ],
)
def test_a_policy_the_law_or_the_templates_do_not_allow_is_refused_naming_the_field(
    admin: Api, policy: dict[str, Any], field: str
) -> None:
    answer = admin.put("/account/dunning-policy", policy)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "validation_error"
    assert field in [d["field"] for d in answer.body["error"]["details"]]
    assert _without_version(admin.get("/account/dunning-policy").body) == DEFAULTS


def test_the_legal_refusal_cites_l113_3(admin: Api) -> None:
    answer = admin.put("/account/dunning-policy", {"unpaid": {"suspension_days": 20}})
    [detail] = answer.body["error"]["details"]
    assert "L113-3" in detail["issue"]


def test_managers_and_platform_administrators_may_neither_read_nor_change_it(
    platform: Api, account_id: str
) -> None:
    manager = platform.as_(token("manager", account_id))
    for api in (manager, platform):
        assert api.get("/account/dunning-policy").status == 403
        assert api.put("/account/dunning-policy", {}).status == 403


def test_each_account_has_its_own_policy(platform: Api, admin: Api) -> None:
    other_body = {"name": "Autre cabinet", "plan": "essential", "sender_email": "a@autre.fr"}
    other = platform.as_(token("admin", platform.post("/admin/accounts", other_body).body["id"]))
    assert admin.put("/account/dunning-policy", {"unpaid": {"suspension_days": 40}}).status == 200
    assert other.get("/account/dunning-policy").body["unpaid"]["suspension_days"] == 30


def test_a_token_for_an_account_that_does_not_exist_reads_not_found(platform: Api) -> None:
    ghost = platform.as_(token("admin", "01NOSUCHACCOUNT0000000000"))
    assert ghost.get("/account/dunning-policy").status == 404
    assert ghost.put("/account/dunning-policy", {}).status == 404
