"""Every failure answers in the API.md error shape: never a stack trace, never Chalice's own shape."""

from __future__ import annotations

import json

import pytest

from chalicelib.config import ConfigurationError, load_settings
from tests.support import Api, token


@pytest.fixture
def admin(platform: Api) -> Api:
    account = platform.post(
        "/admin/accounts", {"name": "Cabinet Petit", "plan": "premium", "sender_email": "petit@cabinet.fr"}
    ).body
    return platform.as_(token("admin", account["id"]))


def assert_error(answer: object, status: int, code: str) -> None:
    assert answer.status == status, answer.body  # type: ignore[attr-defined]
    body = answer.body  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "issue"),
    [
        (b'{"partner_communications_enabled": tru', "malformed JSON"),
        (b"\xff\xfe not utf-8", "malformed JSON"),
        (b"[true]", "not a JSON object"),
        (b'"true"', "not a JSON object"),
        (b"", "not a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_validation_error(admin: Api, raw: bytes, issue: str) -> None:
    answer = admin.patch("/account/settings", raw=raw)
    assert_error(answer, 400, "validation_error")
    assert answer.body["error"]["details"] == [{"field": "body", "issue": issue}]


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_a_body_nested_too_deep_to_parse_is_a_validation_error_not_a_crash(admin: Api, opening: str) -> None:
    answer = admin.patch("/account/settings", raw=(opening * 200_000).encode())
    assert_error(answer, 400, "validation_error")
    assert answer.body["error"]["details"] == [{"field": "body", "issue": "nested too deeply"}]


def test_an_unknown_field_is_refused_by_name(admin: Api) -> None:
    answer = admin.patch("/account/settings", {"partner_communications_enabled": True, "colour": "blue"})
    assert_error(answer, 400, "validation_error")
    assert answer.body["error"]["details"] == [{"field": "colour", "issue": "is not a known field"}]


def test_a_body_over_one_mebibyte_is_refused_and_nothing_changes(admin: Api) -> None:
    padding = "x" * (1024 * 1024)
    answer = admin.patch(
        "/account/settings", raw=json.dumps({"partner_communications_enabled": True, "p": padding}).encode()
    )
    assert_error(answer, 413, "payload_too_large")
    assert admin.get("/account").body["settings"]["partner_communications_enabled"] is False


def test_an_unknown_route_is_not_found(admin: Api, anonymous: Api) -> None:
    assert_error(admin.get("/no/such/route"), 404, "not_found")
    assert_error(anonymous.get("/no/such/route"), 404, "not_found")


def test_a_method_the_route_does_not_have_is_refused_in_our_shape(admin: Api) -> None:
    answer = admin.call("DELETE", "/account")
    assert_error(answer, 405, "method_not_allowed")


def test_a_body_that_is_not_json_by_its_content_type_is_refused_in_our_shape(admin: Api) -> None:
    answer = admin.patch(
        "/account/settings",
        raw=b"partner_communications_enabled=true",
        headers={"Content-Type": "text/plain"},
    )
    assert_error(answer, 415, "unsupported_media_type")


def test_an_unexpected_failure_answers_500_with_a_request_id_and_logs_the_exception(
    admin: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chalicelib.services import accounts

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(accounts, "get_account", explode)
    answer = admin.get("/account")
    assert_error(answer, 500, "internal_error")
    assert answer.body["error"]["request_id"]
    assert "hunter2" not in json.dumps(answer.body)
    assert "Traceback" not in json.dumps(answer.body)
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error in route"]
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert answer.headers["X-Request-Id"] == answer.body["error"]["request_id"]


def test_logs_never_hold_the_bearer_token(admin: Api, caplog: pytest.LogCaptureFixture) -> None:
    assert admin.get("/account").status == 200
    assert admin.as_("not-a-valid-token").get("/account").status == 401
    assert admin.bearer is not None
    assert caplog.records
    for record in caplog.records:
        assert admin.bearer not in record.getMessage()
        assert admin.bearer not in json.dumps(record.__dict__, default=str)
        assert "not-a-valid-token" not in json.dumps(record.__dict__, default=str)


def test_a_missing_setting_fails_loudly_naming_every_missing_variable() -> None:
    with pytest.raises(ConfigurationError) as missing:
        load_settings({"RELAIS_STAGE": "prod", "RELAIS_JWKS_URL": "https://example/jwks.json"})
    message = str(missing.value)
    for name in (
        "RELAIS_TABLE_NAME",
        "AWS_REGION",
        "RELAIS_JWT_ISSUER",
        "RELAIS_JWT_AUDIENCE",
    ):
        assert name in message
