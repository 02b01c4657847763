"""HTTP middleware: request-scoped log keys, the 1 MiB body limit, `Idempotency-Key` replays of POSTs,
Chalice's own errors reshaped, one EMF metrics flush per request, and the request id echoed in
`X-Request-Id` (API Gateway's, or a fresh one where no gateway gave any) so that a user's report leads
straight to the log lines."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit
from chalice.app import Request, Response

from chalicelib.api import idempotency
from chalicelib.api.requests import MAX_BODY_BYTES
from chalicelib.errors import error_response, from_chalice_error
from chalicelib.observability import logger, metrics

_REQUEST_KEYS = ["account_id", "route", "method"]


def http_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    context = request.context or {}
    request_id = context.get("requestId") or str(uuid.uuid4())
    authorizer = context.get("authorizer") or {}
    logger.set_correlation_id(request_id)
    logger.append_keys(
        account_id=authorizer.get("account_id") or None,
        route=context.get("resourcePath"),
        method=request.method,
    )
    try:
        if len(request.raw_body or b"") > MAX_BODY_BYTES:
            response = error_response(413, "payload_too_large", "The request body is larger than 1 MiB.")
        elif request.method == "POST" and request.headers.get(idempotency.HEADER) is not None:
            response = from_chalice_error(idempotency.answer_once(request, get_response), request_id)
        else:
            response = from_chalice_error(get_response(request), request_id)
        metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
        if response.status_code >= 500:
            metrics.add_metric(name="ApiServerErrors", unit=MetricUnit.Count, value=1)
        logger.info("request answered", extra={"status": response.status_code})
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        metrics.flush_metrics()
        logger.remove_keys(_REQUEST_KEYS)
        logger.set_correlation_id(None)
