"""The one place where failures become HTTP answers in the API.md error shape.

    {"error": {"code": "validation_error", "message": "...", "details": [...]}}

Domain and service errors are typed (`chalicelib.domain.errors`); this module maps each type to a status
and a code, once. Anything else is a bug: it is logged with its stack trace and the client gets a 500
that carries only the request id.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chalice.app import Response

from chalicelib.domain import errors as domain
from chalicelib.observability import logger

_STATUS: list[tuple[type[domain.DomainError], int, str]] = [
    (domain.InvalidInput, 400, "validation_error"),
    (domain.Unauthenticated, 401, "unauthorized"),
    (domain.FeatureLocked, 402, "feature_locked"),
    (domain.Forbidden, 403, "forbidden"),
    (domain.NotFound, 404, "not_found"),
    (domain.Conflict, 409, "conflict"),
    (domain.PayloadTooLarge, 413, "payload_too_large"),
    (domain.UnsupportedMediaType, 415, "unsupported_media_type"),
]

JSON_HEADERS = {"Content-Type": "application/json"}


def error_body(code: str, message: str, details: Any = None, request_id: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if request_id is not None:
        error["request_id"] = request_id
    return {"error": error}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    return Response(body=error_body(code, message, details), status_code=status, headers=dict(JSON_HEADERS))


def _details(exc: domain.DomainError) -> Any:
    if isinstance(exc, domain.InvalidInput):
        return [{"field": d.field, "issue": d.issue} for d in exc.details]
    if isinstance(exc, domain.FeatureLocked):
        return {"feature": exc.feature, "unlock": exc.unlock}
    return None


def response_for(exc: domain.DomainError) -> Response:
    for error_type, status, code in _STATUS:
        if isinstance(exc, error_type):
            return error_response(status, code, exc.message, _details(exc))
    raise TypeError(f"{type(exc).__name__} has no HTTP mapping") from exc


def internal_error_response(request_id: str | None) -> Response:
    body = error_body("internal_error", "An unexpected error occurred; it has been logged.", None, request_id)
    return Response(body=body, status_code=500, headers=dict(JSON_HEADERS))


View = TypeVar("View", bound=Callable[..., Any])


def error_boundary(view: View) -> View:
    """Turn a route's typed failures into their answer; log anything else and answer 500.

    Chalice converts route exceptions before middleware sees them, so the mapping happens here, around
    each view (STYLE.md, "Chalice facts that bite").
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except domain.DomainError as exc:
            return response_for(exc)
        except Exception:
            logger.exception("unhandled error in route")
            return internal_error_response(logger.get_correlation_id())

    return cast(View, guarded)


CHALICE_ERROR_CODES = {
    400: "validation_error",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def from_chalice_error(response: Response, request_id: str | None) -> Response:
    """Chalice answers a few requests itself (405, 415, a 500 outside any route) in its own shape;
    reshape those into ours so a client meets a single error format."""
    if response.status_code < 400:
        return response
    body = response.body
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return response
    if not (isinstance(body, dict) and "Code" in body and "error" not in body):
        return response
    if response.status_code >= 500:
        logger.error("chalice answered an internal error", extra={"chalice_code": body.get("Code")})
        return internal_error_response(request_id)
    code = CHALICE_ERROR_CODES.get(response.status_code, "bad_request")
    reshaped = error_response(response.status_code, code, str(body.get("Message", "")))
    reshaped.headers.update({k: v for k, v in response.headers.items() if k.lower() == "allow"})
    return reshaped
