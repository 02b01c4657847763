"""Staff token verification: HS256 with the shared secret, RS256 against a JWKS served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.domain.errors import Unauthenticated
from chalicelib.domain.identity import Role, StaffPrincipal
from chalicelib.services.identity import StaffTokenVerifier, bearer_token
from tests.support import serve_jwks

SECRET = "a-test-secret-long-enough-for-hs256!"
ISSUER = "https://cognito-idp.eu-west-3.amazonaws.com/eu-west-3_Relais"
AUDIENCE = "relais-staff"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "u-1",
        "account_id": "A1",
        "role": "admin",
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_valid_hs256_token_gives_its_principal() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert StaffTokenVerifier(SECRET).verify(token) == StaffPrincipal("u-1", Role.ADMIN, "A1")


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), "another-secret-another-secret-123", algorithm="HS256"),
        jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(seconds=1)), SECRET, algorithm="HS256"),
        jwt.encode(_claims(role="superuser"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(role=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(account_id=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(), SECRET, algorithm="HS256")[:-3] + "abc",
        "not-a-jwt",
    ],
    ids=[
        "bad signature",
        "expired",
        "unknown role",
        "no role",
        "no expiry",
        "no account",
        "tampered",
        "garbage",
    ],
)
def test_a_bad_hs256_token_is_refused(token: str) -> None:
    with pytest.raises(Unauthenticated):
        StaffTokenVerifier(SECRET).verify(token)


def test_an_unsigned_token_is_refused_even_with_the_right_claims() -> None:
    token = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(Unauthenticated):
        StaffTokenVerifier(SECRET).verify(token)


def test_a_platform_admin_needs_no_account() -> None:
    token = jwt.encode(_claims(role="platform_admin", account_id=None), SECRET, algorithm="HS256")
    assert StaffTokenVerifier(SECRET).verify(token).account_id is None


def test_with_no_secret_and_no_jwks_every_token_is_refused() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        StaffTokenVerifier(None).verify(token)


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer   ", "Basic abc", "abc"])
def test_only_a_bearer_authorization_header_carries_a_token(header: str) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(header)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    with serve_jwks(signing_key.public_key()) as url:
        yield url


def _rs256(key: rsa.RSAPrivateKey, kid: str = "key-1", **overrides: Any) -> str:
    claims = _claims(**{"iss": ISSUER, "aud": AUDIENCE, **overrides})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _jwks_verifier(url: str) -> StaffTokenVerifier:
    return StaffTokenVerifier(secret=SECRET, jwks=jwt.PyJWKClient(url), issuer=ISSUER, audience=AUDIENCE)


def test_an_rs256_token_signed_by_the_pool_key_is_accepted(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    principal = _jwks_verifier(jwks_url).verify(_rs256(signing_key))
    assert principal == StaffPrincipal("u-1", Role.ADMIN, "A1")


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://evil.example"},
        {"aud": "another-app"},
        {"exp": datetime.now(UTC) - timedelta(minutes=1)},
    ],
    ids=["wrong issuer", "wrong audience", "expired"],
)
def test_an_rs256_token_with_the_wrong_issuer_audience_or_expiry_is_refused(
    signing_key: rsa.RSAPrivateKey, jwks_url: str, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthenticated):
        _jwks_verifier(jwks_url).verify(_rs256(signing_key, **overrides))


def test_an_rs256_token_signed_by_another_key_is_refused(jwks_url: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthenticated):
        _jwks_verifier(jwks_url).verify(_rs256(stranger))


def test_once_a_jwks_is_configured_an_hs256_token_made_with_the_secret_is_refused(jwks_url: str) -> None:
    token = jwt.encode(_claims(iss=ISSUER, aud=AUDIENCE), SECRET, algorithm="HS256", headers={"kid": "key-1"})
    with pytest.raises(Unauthenticated):
        _jwks_verifier(jwks_url).verify(token)


def test_an_unreachable_jwks_refuses_the_token_rather_than_failing(signing_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(Unauthenticated):
        _jwks_verifier("http://127.0.0.1:9/jwks.json").verify(_rs256(signing_key))


def test_a_cognito_id_token_with_custom_attributes_gives_its_principal(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    token = _rs256(
        signing_key,
        role=None,
        account_id=None,
        token_use="id",
        **{"custom:role": "manager", "custom:account_id": "A7"},
    )
    assert _jwks_verifier(jwks_url).verify(token) == StaffPrincipal("u-1", Role.MANAGER, "A7")


def test_a_cognito_access_token_names_its_app_client_in_client_id_instead_of_aud(
    signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    token = _rs256(signing_key, aud=None, token_use="access", client_id=AUDIENCE)
    assert _jwks_verifier(jwks_url).verify(token) == StaffPrincipal("u-1", Role.ADMIN, "A1")


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": None, "token_use": "access", "client_id": "another-app-client"},
        {"aud": None, "token_use": "access"},
        {"aud": None, "token_use": "id", "client_id": AUDIENCE},
        {"aud": None},
    ],
    ids=["another client", "no client", "an id token without aud", "no audience at all"],
)
def test_a_cognito_token_for_another_app_client_is_refused(
    signing_key: rsa.RSAPrivateKey, jwks_url: str, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthenticated):
        _jwks_verifier(jwks_url).verify(_rs256(signing_key, **overrides))
