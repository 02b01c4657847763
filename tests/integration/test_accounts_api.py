"""Accounts and plans through the HTTP API (chalice test client, moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.wiring import Container
from tests.support import Api, token

NEW_ACCOUNT = {
    "name": "Cabinet Léa Martin",
    "plan": "essential",
    "sender_email": "contact@martin-courtage.fr",
}


def open_account(platform: Api, **overrides: Any) -> dict[str, Any]:
    created = platform.post("/admin/accounts", {**NEW_ACCOUNT, **overrides})
    assert created.status == 201, created.body
    return dict(created.body)


def test_a_new_account_shows_its_plan_features_and_no_trial(platform: Api) -> None:
    account = open_account(platform, boosters=["contributors"])
    assert account["name"] == "Cabinet Léa Martin"
    assert account["plan"] == "essential"
    assert account["boosters"] == ["contributors"]
    assert account["sender_email"] == "contact@martin-courtage.fr"
    assert account["settings"] == {
        "partner_communications_enabled": False,
        "registered_mail_channel": "manual",
        "brand_color": None,
        "dossier_retention_days": 365,
    }
    assert account["legal"] is None
    assert account["trials"] == {}
    assert account["features"] == {
        "contributors": {"enabled": True, "via": "booster"},
        "partner_communications": {"enabled": False, "via": None},
    }
    assert len(account["id"]) == 26
    assert account["version"] == 1
    assert platform.as_(token("admin", account["id"])).get("/account").body == account


def test_the_account_admin_and_manager_read_their_own_account(platform: Api) -> None:
    account = open_account(platform, plan="premium")
    for role in ("admin", "manager"):
        mine = platform.as_(token(role, account["id"])).get("/account")
        assert mine.status == 200
        assert mine.body["id"] == account["id"]
        assert mine.body["features"]["partner_communications"] == {"enabled": True, "via": "premium"}


def test_a_token_for_an_account_that_does_not_exist_reads_not_found(platform: Api) -> None:
    answer = platform.as_(token("admin", "01NOSUCHACCOUNT0000000000")).get("/account")
    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW_ACCOUNT, "plan": "gold"}, "plan"),
        ({**NEW_ACCOUNT, "sender_email": "not-an-email"}, "sender_email"),
        ({**NEW_ACCOUNT, "sender_email": "a@b.fr\r\nBcc: spy@evil.fr"}, "sender_email"),
        ({**NEW_ACCOUNT, "name": "Martin\nBcc: spy@evil.fr"}, "name"),
        ({**NEW_ACCOUNT, "name": "  "}, "name"),
        ({**NEW_ACCOUNT, "boosters": ["everything"]}, "boosters.0"),
        ({**NEW_ACCOUNT, "boosters": "contributors"}, "boosters"),
        ({"plan": "premium", "sender_email": "a@b.fr"}, "name"),
        ({**NEW_ACCOUNT, "owner": "me"}, "owner"),
    ],
)
def test_an_invalid_new_account_is_refused_naming_the_field(
    platform: Api, body: dict[str, Any], field: str
) -> None:
    answer = platform.post("/admin/accounts", body)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "validation_error"
    assert field in [d["field"] for d in answer.body["error"]["details"]]


def test_a_platform_admin_changes_plan_and_boosters(platform: Api) -> None:
    account = open_account(platform)
    upgraded = platform.patch(f"/admin/accounts/{account['id']}", {"plan": "platinum"})
    assert upgraded.status == 200
    assert upgraded.body["plan"] == "platinum"
    assert upgraded.body["features"]["contributors"] == {"enabled": True, "via": "platinum"}
    boosted = platform.patch(
        f"/admin/accounts/{account['id']}", {"plan": "essential", "boosters": ["contributors"]}
    )
    assert (boosted.body["plan"], boosted.body["boosters"]) == ("essential", ["contributors"])
    unchanged = platform.patch(f"/admin/accounts/{account['id']}", {})
    assert (unchanged.status, unchanged.body["plan"]) == (200, "essential")
    assert unchanged.body["version"] == boosted.body["version"]
    assert platform.as_(token("admin", account["id"])).get("/account").body["boosters"] == ["contributors"]


def test_changing_the_plan_of_an_unknown_account_is_not_found(platform: Api) -> None:
    answer = platform.patch("/admin/accounts/01NOSUCHACCOUNT0000000000", {"plan": "premium"})
    assert (answer.status, answer.body["error"]["code"]) == (404, "not_found")


def test_a_plan_change_may_not_null_a_field(platform: Api) -> None:
    account = open_account(platform)
    answer = platform.patch(f"/admin/accounts/{account['id']}", {"plan": None})
    assert answer.status == 400
    assert answer.body["error"]["details"] == [{"field": "plan", "issue": "must not be null"}]


def test_partner_communications_can_be_switched_on_premium_and_off_again(platform: Api) -> None:
    account = open_account(platform, plan="premium")
    admin = platform.as_(token("admin", account["id"]))
    on = admin.patch("/account/settings", {"partner_communications_enabled": True})
    assert on.status == 200
    assert on.body["settings"]["partner_communications_enabled"] is True
    off = admin.patch("/account/settings", {"partner_communications_enabled": False})
    assert off.body["settings"]["partner_communications_enabled"] is False


def test_partner_communications_are_locked_on_the_essential_plan(platform: Api) -> None:
    account = open_account(platform)
    answer = platform.as_(token("admin", account["id"])).patch(
        "/account/settings", {"partner_communications_enabled": True}
    )
    assert answer.status == 402
    assert answer.body["error"]["code"] == "feature_locked"
    assert answer.body["error"]["details"] == {
        "feature": "partner_communications",
        "unlock": ["premium", "platinum"],
    }


def test_the_settings_switch_takes_a_real_boolean(platform: Api) -> None:
    account = open_account(platform, plan="premium")
    admin = platform.as_(token("admin", account["id"]))
    for wrong in ("yes", 1, None):
        answer = admin.patch("/account/settings", {"partner_communications_enabled": wrong})
        assert answer.status == 400, wrong
    nothing = admin.patch("/account/settings", {})
    assert (nothing.status, nothing.body["version"]) == (200, account["version"])


def test_a_contributors_trial_lasts_seven_days_and_opens_the_feature(platform: Api, aws: Container) -> None:
    started = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    aws.clock = lambda: started
    account = open_account(platform)
    admin = platform.as_(token("admin", account["id"]))
    trial = admin.post("/account/trials", {"feature": "contributors"})
    assert trial.status == 201
    assert trial.body == {
        "feature": "contributors",
        "started_at": "2026-11-23T10:00:00Z",
        "ends_at": "2026-11-30T10:00:00Z",
    }
    view = admin.get("/account").body
    assert view["trials"] == {
        "contributors": {"started_at": "2026-11-23T10:00:00Z", "ends_at": "2026-11-30T10:00:00Z"}
    }
    assert view["features"]["contributors"] == {"enabled": True, "via": "trial"}

    aws.clock = lambda: started + timedelta(days=7, seconds=-1)
    assert admin.get("/account").body["features"]["contributors"] == {"enabled": True, "via": "trial"}
    aws.clock = lambda: started + timedelta(days=7)
    after = admin.get("/account").body
    assert after["features"]["contributors"] == {"enabled": False, "via": None}
    assert after["trials"]["contributors"]["ends_at"] == "2026-11-30T10:00:00Z"


def test_a_trial_can_be_started_once_ever(platform: Api, aws: Container) -> None:
    account = open_account(platform)
    admin = platform.as_(token("admin", account["id"]))
    assert admin.post("/account/trials", {"feature": "contributors"}).status == 201
    again = admin.post("/account/trials", {"feature": "contributors"})
    assert (again.status, again.body["error"]["code"]) == (409, "conflict")
    aws.clock = lambda: datetime.now(UTC) + timedelta(days=60)
    assert admin.post("/account/trials", {"feature": "contributors"}).status == 409


@pytest.mark.parametrize("feature", ["partner_communications", "anything", 42])
def test_only_the_contributors_feature_has_a_trial(platform: Api, feature: Any) -> None:
    account = open_account(platform)
    answer = platform.as_(token("admin", account["id"])).post("/account/trials", {"feature": feature})
    assert (answer.status, answer.body["error"]["code"]) == (400, "validation_error")
    assert answer.body["error"]["details"][0]["field"] == "feature"
