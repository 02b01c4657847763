"""`Idempotency-Key` on POSTs: a client that retries a creating request after a timeout or a 500 gets the
first answer back instead of a second dossier, contract or email (API.md "Rules made precise").

The key is scoped to the caller (the authorizer's principal and account) and to the route, and the body's
hash travels with it: the same key with another body within 24 hours answers 409, never a mix of the two.
Only successful answers are kept; a refusal or a failure is forgotten, so the client may correct and retry
with the same key. The Powertools idempotency utility does the bookkeeping (in progress, completed,
expiry) in the shared table, on sharded partitions; it is imported only when a request carries the header.

A kept answer holds no secret: a `portal_link` (a live bearer secret) is blanked before the answer is
stored, and a replay carries a new link minted by the route's relinker (the first one keeps working). A
webhook's signing `secret` is blanked too and comes back null in a replay: it is shown once, and a client
that lost it rotates it (`POST /webhooks/{id}/secret`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from chalice.app import Request, Response

from chalicelib.errors import error_response
from chalicelib.wiring import container

SECRET_FIELD = "portal_link"
SIGNING_SECRET_FIELD = "secret"
HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_SECONDS = 24 * 3600
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


Relinker = Callable[[Request, dict[str, Any]], "str | None"]
"""Mints a new portal link for a replayed answer (None when the participant has left since)."""
_relinkers: dict[str, Relinker] = {}


def replays_with_fresh_link(resource_path: str) -> Callable[[Relinker], Relinker]:
    """Register how a route that answers a `portal_link` mints a new one for a replay."""

    def register(relinker: Relinker) -> Relinker:
        _relinkers[resource_path] = relinker
        return relinker

    return register


class _NotKept(Exception):
    """Carries an answer that must not be replayed (anything but a 2xx) out of the idempotent call."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _fingerprint(request: Request, key: str) -> dict[str, str]:
    context = request.context or {}
    authorizer = context.get("authorizer") or {}
    caller = f"{authorizer.get('principalId', '')}|{authorizer.get('account_id', '')}"
    route = f"{request.method} {context.get('resourcePath') or request.path}|{request.path}"
    scope = hashlib.sha256(f"{caller}\x1f{route}\x1f{key}".encode()).hexdigest()
    raw = request.raw_body or b""
    body = hashlib.sha256(raw.encode() if isinstance(raw, str) else raw).hexdigest()
    return {"scope": scope, "body": body}


def answer_once(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Answer a POST that carries an `Idempotency-Key`: the first time by running it, later by replaying."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    key = request.headers.get(HEADER, "")
    if not _VALID_KEY.match(key):
        return error_response(
            400,
            "validation_error",
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
            [{"field": "Idempotency-Key", "issue": "must be 1 to 255 visible ASCII characters"}],
        )
    first: list[Response] = []

    def run(fingerprint: dict[str, str]) -> dict[str, Any]:
        response = get_response(request)
        if not 200 <= response.status_code < 300:
            raise _NotKept(response)
        first.append(response)
        body = response.body
        if isinstance(body, dict):
            body = {**body, **{f: None for f in (SECRET_FIELD, SIGNING_SECRET_FIELD) if body.get(f)}}
        return {"status": response.status_code, "body": body, "headers": dict(response.headers)}

    config = IdempotencyConfig(
        event_key_jmespath="scope",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=KEEP_SECONDS,
    )
    lambda_context = getattr(request, "lambda_context", None)
    if lambda_context is not None:
        # A request cut off by the Lambda timeout leaves its record "in progress" only until then.
        config.register_lambda_context(lambda_context)
    once = idempotent_function(
        data_keyword_argument="fingerprint",
        persistence_store=container().request_idempotency_store,
        config=config,
    )(run)
    try:
        kept = once(fingerprint=_fingerprint(request, key))
    except _NotKept as refused:
        return refused.response
    except IdempotencyValidationError:
        return error_response(
            409, "conflict", "This Idempotency-Key was already used with another request body."
        )
    except IdempotencyAlreadyInProgressError:
        return error_response(
            409, "conflict", "A request with this Idempotency-Key is still being processed; retry shortly."
        )
    if first:
        return first[0]
    return _replay(request, kept)


def _replay(request: Request, kept: dict[str, Any]) -> Response:
    headers: dict[str, str | list[str]] = {str(k): v for k, v in kept["headers"].items()}
    headers[REPLAYED_HEADER] = "true"
    body = kept["body"]
    relinker = _relinkers.get(str((request.context or {}).get("resourcePath")))
    if isinstance(body, dict) and SECRET_FIELD in body and relinker is not None:
        body = {**body, SECRET_FIELD: relinker(request, body)}
    return Response(body=body, status_code=int(kept["status"]), headers=headers)
