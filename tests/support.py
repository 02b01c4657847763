"""Test helpers: a Chalice test client that answers like the deployed gateway, tokens, and JSON calls."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from chalice.test import Client

from chalicelib.local.gateway import RelaisLocalGateway
from chalicelib.local.stack import REGION, ROOT, mint_token

SECRET = "local-dev-secret"


class RelaisTestClient(Client):
    """chalice.test.Client whose gateway gives API Gateway's own refusals the API.md shape,
    as the GatewayResponses of infra/resources.yaml do in AWS."""

    def __init__(self) -> None:
        import app as relais

        super().__init__(relais.app, stage_name="local", project_dir=str(ROOT))

    @property
    def http(self) -> Any:
        http = super().http
        if not isinstance(http._local_gateway, RelaisLocalGateway):
            http._local_gateway = RelaisLocalGateway(self._app, self._chalice_config)
        return http


def token(role: str, account_id: str | None = None, lifetime: timedelta = timedelta(hours=1)) -> str:
    return mint_token(SECRET, f"user-{role}", role, account_id, lifetime)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """Calls the API as a user would: JSON in, JSON out, a bearer token when given."""

    def __init__(self, client: RelaisTestClient, bearer: str | None = None) -> None:
        self.client = client
        self.bearer = bearer

    def as_(self, bearer: str | None) -> Api:
        return Api(self.client, bearer)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json"}
        if self.bearer:
            sent["Authorization"] = f"Bearer {self.bearer}"
        sent.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = self.client.http.request(method, path, headers=sent, body=payload)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(response.status_code, parsed, dict(response.headers))

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("POST", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("PATCH", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("PUT", path, body, **kwargs)


@contextmanager
def serve_jwks(public_key: Any, kid: str = "key-1") -> Iterator[str]:
    """A JWKS document served on loopback, as a Cognito user pool serves its keys; yields its URL."""
    from jwt.algorithms import RSAAlgorithm

    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    document = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def local_stack() -> Iterator[Any]:
    """`make run` in miniature: the whole stack in this process on free ports, the tick left to the test;
    the environment and the container are restored afterwards."""
    import os

    from chalicelib import wiring
    from chalicelib.local.stack import start

    saved = dict(os.environ)
    running = start(port=0, moto_port=0, tick_seconds=3600, pump_seconds=0.2)
    try:
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


def open_account(platform: Api, name: str = "Cabinet Martin", plan: str = "premium") -> tuple[Api, str]:
    """A new account with the partner rules switched on; its manager's Api and its id."""
    from chalicelib.local.pumps import drain

    body = {"name": name, "plan": plan, "sender_email": "contact@martin.fr"}
    account_id = platform.post("/admin/accounts", body).body["id"]
    admin = platform.as_(token("admin", account_id))
    assert admin.patch("/account/settings", {"partner_communications_enabled": True}).status == 200
    drain()
    return platform.as_(token("manager", account_id)), account_id


def http_call(url: str, method: str = "GET", token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A real HTTP call to a running stack: its status and JSON answer (errors included)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def sqs_event(queue: str, bodies: list[str]) -> dict[str, Any]:
    """A Lambda SQS event from `queue`; every record gets its own messageId, as SQS gives them."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": str(uuid.uuid4()),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue}",
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }
