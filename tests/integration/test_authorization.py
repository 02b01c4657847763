"""Who may call what: the staff authorizer and each route's role check, through the HTTP API."""

from __future__ import annotations

import os
from datetime import timedelta

import jwt
import pytest

from tests.support import SECRET, Api, serve_jwks, token

ACCOUNT = {"name": "Cabinet Durand", "plan": "premium", "sender_email": "contact@durand.fr"}


@pytest.fixture
def account_id(platform: Api) -> str:
    return str(platform.post("/admin/accounts", ACCOUNT).body["id"])


ROUTES = [
    ("POST", "/admin/accounts", ACCOUNT),
    ("PATCH", "/admin/accounts/01ANYACCOUNT00000000000000", {"plan": "premium"}),
    ("GET", "/account", None),
    ("PATCH", "/account/settings", {"partner_communications_enabled": True}),
    ("POST", "/account/trials", {"feature": "contributors"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_staff_route_refuses_a_call_without_a_token(
    anonymous: Api, method: str, path: str, body: object
) -> None:
    answer = anonymous.call(method, path, body)
    assert answer.status == 401
    assert answer.body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "bad_token",
    [
        jwt.encode(
            {"sub": "x", "role": "admin", "account_id": "A"}, "wrong-secret-wrong-secret-wrong!", "HS256"
        ),
        token("admin", "A", lifetime=timedelta(seconds=-5)),
        jwt.encode({"sub": "x", "role": "root", "account_id": "A", "exp": 4102444800}, SECRET, "HS256"),
        "garbage",
    ],
    ids=["bad signature", "expired", "unknown role", "not a JWT"],
)
def test_a_bad_token_is_unauthorized(anonymous: Api, bad_token: str) -> None:
    answer = anonymous.as_(bad_token).get("/account")
    assert (answer.status, answer.body["error"]["code"]) == (401, "unauthorized")


def test_a_non_bearer_authorization_header_is_unauthorized(anonymous: Api) -> None:
    answer = anonymous.get("/account", headers={"Authorization": f"Basic {token('admin', 'A')}"})
    assert answer.status == 401


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_only_a_platform_admin_may_use_admin_routes(platform: Api, account_id: str, role: str) -> None:
    staff = platform.as_(token(role, account_id))
    for answer in (
        staff.post("/admin/accounts", ACCOUNT),
        staff.patch(f"/admin/accounts/{account_id}", {"plan": "platinum"}),
    ):
        assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    assert platform.as_(token("admin", account_id)).get("/account").body["plan"] == "premium"


def test_a_platform_admin_token_does_not_open_account_routes(platform: Api) -> None:
    answer = platform.get("/account")
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/account/settings", {"partner_communications_enabled": True}),
        ("POST", "/account/trials", {"feature": "contributors"}),
    ],
)
def test_a_manager_may_not_change_settings_or_start_trials(
    platform: Api, account_id: str, method: str, path: str, body: object
) -> None:
    answer = platform.as_(token("manager", account_id)).call(method, path, body)
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    view = platform.as_(token("admin", account_id)).get("/account").body
    assert view["trials"] == {}
    assert view["settings"]["partner_communications_enabled"] is False


def test_the_tenant_comes_from_the_token_never_from_the_request(platform: Api, account_id: str) -> None:
    other = platform.post("/admin/accounts", {**ACCOUNT, "name": "Autre cabinet"}).body["id"]
    admin = platform.as_(token("admin", account_id))
    answer = admin.patch("/account/settings", {"partner_communications_enabled": True, "account_id": other})
    assert answer.status == 400
    assert (
        platform.as_(token("admin", other)).get("/account").body["settings"]["partner_communications_enabled"]
        is False
    )


def test_with_neither_secret_nor_jwks_every_staff_route_is_unauthorized(
    anonymous: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import wiring
    from chalicelib.config import load_settings

    environment = {k: v for k, v in os.environ.items() if k not in {"RELAIS_JWT_SECRET", "RELAIS_JWKS_URL"}}
    unconfigured = load_settings(environment)
    assert (unconfigured.jwt_secret, unconfigured.jwks_url) == (None, None)
    monkeypatch.setattr(wiring, "_container", wiring.Container(unconfigured))
    answer = anonymous.as_(token("admin", "A")).get("/account")
    assert (answer.status, answer.body["error"]["code"]) == (401, "unauthorized")


def test_with_a_jwks_configured_a_cognito_rs256_token_opens_the_account_and_an_hs256_one_does_not(
    platform: Api, account_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from chalicelib import wiring
    from chalicelib.config import load_settings

    issuer, audience = "https://cognito-idp.eu-west-3.amazonaws.com/pool", "relais-staff"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "sub": "u-1",
        "role": "admin",
        "account_id": account_id,
        "iss": issuer,
        "aud": audience,
        "exp": 4102444800,
    }
    with serve_jwks(key.public_key()) as url:
        configured = load_settings(
            {
                **os.environ,
                "RELAIS_JWKS_URL": url,
                "RELAIS_JWT_ISSUER": issuer,
                "RELAIS_JWT_AUDIENCE": audience,
            }
        )
        monkeypatch.setattr(wiring, "_container", wiring.Container(configured))
        cognito = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "key-1"})
        answer = platform.as_(cognito).get("/account")
        assert (answer.status, answer.body["id"]) == (200, account_id)
        assert platform.as_(token("admin", account_id)).get("/account").status == 401
