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

_REQUIRED_CLAIMS = ["exp", "sub"]


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

        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
            claims = dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    issuer=self._issuer,
                    # Cognito access tokens carry the app client in `client_id`, not in `aud`: checked below.
                    options={"require": [*_REQUIRED_CLAIMS, "iss"], "verify_aud": False},
                )
            )
            _check_audience(claims, self._audience)
            return claims
        if self._secret is None:
            raise Unauthenticated("no token verifier is configured")
        options: Options = {"require": _REQUIRED_CLAIMS, "verify_aud": self._audience is not None}
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


def _check_audience(claims: dict[str, Any], audience: str | None) -> None:
    """An ID token names the app client in `aud`; a Cognito access token (`token_use: access`) has no
    `aud` and names it in `client_id`. Either must be the configured audience."""
    import jwt

    if audience is None:
        raise jwt.InvalidAudienceError("no audience is configured for RS256 tokens")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or [])
    if claims.get("token_use") == "access" and "aud" not in claims:
        audiences = [str(claims.get("client_id", ""))]
    if audience not in audiences:
        raise jwt.InvalidAudienceError("the token is for another audience")


def _claim(claims: dict[str, Any], name: str) -> Any:
    """Our claim, or Cognito's name for a custom attribute (`custom:role`, `custom:account_id`)."""
    return claims[name] if name in claims else claims.get(f"custom:{name}")


def _principal_from(claims: dict[str, Any]) -> StaffPrincipal:
    try:
        role = Role(_claim(claims, "role"))
    except ValueError as exc:
        raise Unauthenticated("token refused: unknown or missing role") from exc
    account_id = _claim(claims, "account_id")
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
