"""The two API Gateway authorizers: staff JWTs and portal links.

They only authenticate: the policy allows every route, and each route checks the role itself so that a
refusal comes back in the API.md error shape (a 403 decided by API Gateway would not). A refused token
raises `Unauthorized`, which is how a Lambda authorizer tells API Gateway to answer 401. The portal one is
not cached by API Gateway (`ttl_seconds=0`), so a revoked or rotated link dies at once; a staff decision
is cached one minute at most (Chalice's default is five), so a disabled user or a changed role takes
effect within a minute while a page's burst of calls still costs one verification.
"""

from __future__ import annotations

from chalice.app import AuthRequest, AuthResponse, Blueprint

from chalicelib.domain.errors import Unauthenticated
from chalicelib.observability import logger
from chalicelib.services.identity import authenticate_portal, bearer_token
from chalicelib.wiring import container

authorizers = Blueprint(__name__)


class Unauthorized(Exception):
    """API Gateway maps an authorizer failing with exactly this message to a 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


STAFF_DECISION_SECONDS = 60


@authorizers.authorizer(ttl_seconds=STAFF_DECISION_SECONDS)
def staff_authorizer(auth_request: AuthRequest) -> AuthResponse:
    try:
        principal = container().staff_tokens.verify(bearer_token(auth_request.token or ""))
    except Unauthenticated as exc:
        logger.info("staff token refused", extra={"reason": exc.message})
        raise Unauthorized() from exc
    return AuthResponse(
        routes=["*"],
        principal_id=principal.subject,
        context={"role": principal.role.value, "account_id": principal.account_id or ""},
    )


@authorizers.authorizer(ttl_seconds=0)
def portal_authorizer(auth_request: AuthRequest) -> AuthResponse:
    services = container()
    try:
        principal = authenticate_portal(
            bearer_token(auth_request.token or ""), services.portal_tokens, services.now()
        )
    except Unauthenticated as exc:
        logger.info("portal token refused", extra={"reason": exc.message})
        raise Unauthorized() from exc
    return AuthResponse(
        routes=["*"],
        principal_id=f"portal:{principal.dossier_id}:{principal.participant_id}",
        context={
            "account_id": principal.account_id,
            "dossier_id": principal.dossier_id,
            "role_id": principal.role_id,
            "participant_id": principal.participant_id,
            "generation": str(principal.generation),
        },
    )
