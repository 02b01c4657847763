"""Turning bearer tokens into principals: staff JWTs (HS256 or RS256 via JWKS) and portal links."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain.errors import Unauthenticated
from chalicelib.domain.identity import PortalPrincipal, Role, StaffPrincipal
from chalicelib.services.ports import PortalTokenRepository

if TYPE_CHECKING:
    from jwt.types import Options

_REQUIRED_CLAIMS = ["exp", "sub", "role"]


class SigningKeySource(Protocol):
    def get_signing_key_from_jwt(self, token: str) -> Any: ...


def bearer_token(header_value: str) -> str:
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


class StaffTokenVerifier:
    """Checks a staff JWT. With a JWKS (Cognito), RS256 with issuer and audience; otherwise HS256.

    With neither a secret nor a JWKS configured every token is refused: never an open door.
    """

    def __init__(
        self,
        secret: str | None,
        jwks: SigningKeySource | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._secret = secret
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> StaffPrincipal:
        # PyJWT and cryptography weigh ~60 ms: imported when a token is verified, not by every route.
        import jwt

        try:
            claims = self._decode(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token refused: {type(exc).__name__}") from exc
        return _principal_from(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        options: Options = {"require": _REQUIRED_CLAIMS, "verify_aud": self._audience is not None}
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
            return dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": [*_REQUIRED_CLAIMS, "iss"], "verify_aud": True},
                )
            )
        if self._secret is None:
            raise Unauthenticated("no token verifier is configured")
        return dict(
            jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._issuer,
                audience=self._audience,
                options=options,
            )
        )


def _principal_from(claims: dict[str, Any]) -> StaffPrincipal:
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthenticated("token refused: unknown role") from exc
    account_id = claims.get("account_id")
    if account_id is not None and (not isinstance(account_id, str) or not account_id):
        raise Unauthenticated("token refused: malformed account_id")
    if role is not Role.PLATFORM_ADMIN and account_id is None:
        raise Unauthenticated("token refused: no account_id")
    return StaffPrincipal(subject=str(claims["sub"]), role=role, account_id=account_id)


def hash_portal_secret(secret: str) -> str:
    """Only this digest is stored: a leaked table holds no usable portal link."""
    return hashlib.sha256(secret.encode()).hexdigest()


def authenticate_portal(secret: str, tokens: PortalTokenRepository, now: datetime) -> PortalPrincipal:
    principal = tokens.find_active(hash_portal_secret(secret), now)
    if principal is None:
        raise Unauthenticated("This link is unknown, expired or revoked.")
    return principal
