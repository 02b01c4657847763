"""A local API Gateway that answers its own failures the way the deployed one does.

In AWS, the GatewayResponses of `infra/resources.yaml` give API Gateway's own refusals (unknown route,
missing or refused token) the API.md error shape. Chalice's local gateway answers them in its own shape,
so this subclass mirrors the deployed answers for `make run` and for the tests.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LocalGateway,
    NotAuthorizedError,
    RouteMatcher,
)

from chalicelib.api.authorizers import Unauthorized
from chalicelib.errors import error_body


def gateway_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "multiValueHeaders": {},
        "body": json.dumps(error_body(code, message)),
    }


class RelaisLocalGateway(LocalGateway):
    def __init__(self, app_object: Chalice, config: Config) -> None:
        super().__init__(app_object, config)
        self._routes = RouteMatcher(list(app_object.routes))

    def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            self._routes.match_route(path)
        except ValueError:
            return gateway_response(404, "not_found", "No such route.")
        try:
            return super().handle_request(method, path, headers, body)
        except (Unauthorized, NotAuthorizedError):
            return gateway_response(401, "unauthorized", "A valid bearer token is required.")
        except ForbiddenError:
            return gateway_response(403, "forbidden", "This token may not call this route.")

    def refuse_method(self, method: str, path: str) -> Any:
        """A method no route has (TRACE, CONNECT, WebDAV's…): 405 with `Allow`, or 404 off every route."""
        try:
            matched = self._routes.match_route(path)
        except ValueError:
            return gateway_response(404, "not_found", "No such route.")
        allowed = ", ".join(sorted(self._app_object.routes[matched.route]))
        return gateway_response(
            405, "method_not_allowed", f"{method} is not allowed here.", {"Allow": allowed}
        )


class RelaisRequestHandler(ChaliceRequestHandler):
    def __init__(
        self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config
    ) -> None:
        self.local_gateway: RelaisLocalGateway = RelaisLocalGateway(app_object, config)
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method without a `do_<METHOD>` with its own 501 HTML page; every method
        # that no route has is answered 405 in the API's error shape instead, as for a known one.
        if name.startswith("do_"):
            return self._refuse_method
        raise AttributeError(name)

    def _refuse_method(self) -> None:
        self._parse_payload()
        response = self.local_gateway.refuse_method(self.command, self.path)
        self._send_http_response(response["statusCode"], dict(response["headers"]), response["body"])
