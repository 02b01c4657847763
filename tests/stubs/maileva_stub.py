"""A stand-in for Maileva's registered_mail v4 API and its OAuth2 token endpoint, on 127.0.0.1.

It serves the endpoints the adapter uses with the shapes of Maileva's OpenAPI (registered_mail v4.9,
authentication v2.1; see `chalicelib/adapters/maileva.py`), checks what it receives as the description says
Maileva does (bearer token, field names and lengths, a PDF in the multipart, a French line 6 "CODE VILLE",
submit only from DRAFT) and answers Maileva's error codes. It is stricter than the description on one
point: an unknown field is refused, so that a misspelt field name cannot pass unnoticed.

Tests move a sending through Maileva's statuses with `progress`, and make any call fail once with
`fail_next` (a timeout, a 500, a 429, a 401 for a token Maileva stopped honouring, or a malformed answer),
before or after the call took effect.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

CLIENT_ID = "relais-app"
CLIENT_SECRET = "client-secret-s3cr3t"
USERNAME = "cabinet.martin"
PASSWORD = "user-password-p4ss"

Failure = Literal["timeout", "500", "429", "401", "malformed"]
Stage = Literal["accepted", "processed", "deposited", "delivered", "returned", "rejected"]

COUNTRY_CODES = {"FR", "MC", "RE", "YT", "MQ", "GP", "MF", "BL", "GF"}
ADDRESS_FIELDS = {f"address_line_{n}" for n in range(1, 7)}
SENDER_FIELDS = {f"sender_{name}" for name in ADDRESS_FIELDS} | {"sender_country_code"}
SENDING_FIELDS = SENDER_FIELDS | {
    "name",
    "custom_id",
    "custom_data",
    "acknowledgement_of_receipt",
    "expected_date",
    "color_printing",
    "duplex_printing",
    "optional_address_sheet",
    "notification_email",
    "notification_types",
    "reference_to_print_enabled",
    "print_sender_address",
    "returned_mail_scanning",
    "archiving_duration",
    "postage_type",
    "return_envelope",
}
RECIPIENT_FIELDS = (
    ADDRESS_FIELDS
    | SENDER_FIELDS
    | {
        "custom_id",
        "reference_to_print",
        "custom_data",
        "custom_fields",
        "country_code",
        "documents_override",
        "scheduled_date",
    }
)
_FRENCH_LINE_6 = re.compile(r"^\d{5} \S")


class Refusal(Exception):
    def __init__(self, status: int, *codes: str) -> None:
        super().__init__(status, codes)
        self.status = status
        self.codes = codes


@dataclass
class StubSending:
    id: str
    fields: dict[str, Any]
    created_at: datetime
    status: str = "DRAFT"
    documents: list[dict[str, Any]] = field(default_factory=list)
    pdfs: list[bytes] = field(default_factory=list)
    recipients: list[dict[str, Any]] = field(default_factory=list)
    submissions: int = 0

    def answer(self) -> dict[str, Any]:
        return {
            **self.fields,
            "id": self.id,
            "status": self.status,
            "creation_date": _iso(self.created_at),
            "documents_count": len(self.documents),
            "recipients_counts": {"total": len(self.recipients)},
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MailevaStub:
    def __init__(self, token_lifetime: int = 3600, hang_seconds: float = 1.5) -> None:
        self.token_lifetime = token_lifetime
        self.hang_seconds = hang_seconds
        self.sendings: dict[str, StubSending] = {}
        self.issued_tokens: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._tokens: set[str] = set()
        self._failures: dict[str, list[tuple[Failure, bool]]] = defaultdict(list)
        self._numbers = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/registered_mail/v4"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/auth/realms/services/protocol/openid-connect"

    def __enter__(self) -> MailevaStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # What tests tell the stub

    def fail_next(self, operation: str, failure: Failure, after_effect: bool = False) -> None:
        """The next call to `operation` fails; with `after_effect`, once it has done what it was asked."""
        self._failures[operation].append((failure, after_effect))

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def add_other_sendings(self, count: int) -> None:
        """Sendings of other letters, as an account that has used Maileva for a while holds."""
        now = datetime.now(UTC)
        for index in range(count):
            sending = StubSending(id=secrets.token_hex(16), fields={"name": f"other {index}"}, created_at=now)
            sending.fields["custom_id"] = f"other_{index}"
            sending.status = "PROCESSED"
            self.sendings[sending.id] = sending

    def progress(self, sending_id: str, stage: Stage, at: datetime) -> None:
        """Moves a submitted sending and its recipient to `stage`, as Maileva's production and La Poste do."""
        sending = self.sendings[sending_id]
        recipient = sending.recipients[0]
        if stage == "rejected":
            sending.status, recipient["status"] = "REJECTED", "SENDING_REJECTED"
            return
        if stage == "accepted":
            sending.status, recipient["status"] = "ACCEPTED", "ACCEPTED"
            return
        sending.status, recipient["status"] = "PROCESSED", "PROCESSED"
        if "registered_number" not in recipient:
            self._numbers += 1
            recipient["registered_number"] = f"1A{self._numbers:011d}"
        if stage == "processed":
            return
        recipient.setdefault("deposit_proof_date", _iso(at))
        recipient["deposit_proof_url"] = (
            f"/sendings/{sending_id}/recipients/{recipient['id']}/download_deposit_proof"
        )
        category = {"deposited": "DELIVERING", "delivered": "DELIVERED", "returned": "UNDELIVERED"}[stage]
        recipient["last_main_delivery_status"] = {"date": _iso(at), "category": category}
        if stage == "delivered":
            recipient["acknowledgement_of_receipt_date"] = _iso(at)
        if stage == "returned":
            recipient["undelivered_mail_date"] = _iso(at)
            recipient["undelivered_mail_reason"] = "N03"

    def only_sending(self, custom_id: str) -> StubSending:
        [sending] = [s for s in self.sendings.values() if s.fields.get("custom_id") == custom_id]
        return sending

    # Serving

    def serve(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        route = urllib.parse.urlsplit(path)
        operation, args = _route(method, route.path)
        with self._lock:
            self.requests.append((method, route.path))
            failure, after_effect = (
                self._failures[operation].pop(0) if self._failures[operation] else (None, False)
            )
        if failure and not after_effect:
            return self._fail(failure, headers)
        try:
            with self._lock:
                status, answer = self._answer(operation, args, route.query, headers, body)
        except Refusal as refusal:
            errors = [{"code": code, "message": f"stub refused: {code}"} for code in refusal.codes]
            if refusal.status == 400:
                return 400, json.dumps({"errors": errors}).encode()
            return refusal.status, json.dumps(errors[0]).encode()
        if failure:
            return self._fail(failure, headers)
        return status, b"" if answer is None else json.dumps(answer).encode()

    def _fail(self, failure: Failure, headers: Any) -> tuple[int, bytes]:
        if failure == "timeout":
            time.sleep(self.hang_seconds)
            return 504, b""
        if failure == "401":
            self._tokens.discard(headers.get("Authorization", "").removeprefix("Bearer "))
            return 401, json.dumps({"code": "UNAUTHORIZED", "message": "token expired"}).encode()
        if failure == "malformed":
            return 200, b"<html>maintenance</html>"
        return int(failure), json.dumps({"errors": [{"code": "TECHNICAL_ERROR", "message": "oops"}]}).encode()

    def _answer(
        self, operation: str, args: list[str], query: str, headers: Any, body: bytes
    ) -> tuple[int, Any]:
        if operation == "token":
            return self._token(headers, body)
        if operation == "unknown":
            raise Refusal(404, "NOT_FOUND")
        if headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            raise Refusal(401, "UNAUTHORIZED")
        if operation == "list_sendings":
            return 200, self._list_sendings(query)
        if operation == "create_sending":
            return 201, self._create_sending(_json_body(headers, body))
        sending = self.sendings.get(args[0])
        if sending is None:
            raise Refusal(404, "SENDING_NOT_FOUND")
        if operation == "get_sending":
            return 200, sending.answer()
        if operation == "list_documents":
            return 200, {"documents": sending.documents, "paging": {"total_results": len(sending.documents)}}
        if operation == "list_recipients":
            return 200, {
                "recipients": sending.recipients,
                "paging": {"total_results": len(sending.recipients)},
            }
        if operation == "get_recipient":
            found = [r for r in sending.recipients if r["id"] == args[1]]
            if not found:
                raise Refusal(404, "RECIPIENT_NOT_FOUND")
            return 200, found[0]
        if sending.status != "DRAFT":
            raise Refusal(400, "SENDING_STATUS_IS_NOT_DRAFT")
        if operation == "add_document":
            return 201, self._add_document(sending, headers, body)
        if operation == "add_recipient":
            return 201, self._add_recipient(sending, _json_body(headers, body))
        self._submit(sending)
        return 200, None

    def _token(self, headers: Any, body: bytes) -> tuple[int, Any]:
        if headers.get("Content-Type") != "application/x-www-form-urlencoded":
            raise Refusal(400, "CLIENT_ERROR")
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if form.get("grant_type") != "password":
            raise Refusal(400, "CLIENT_ERROR")
        expected = (CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD)
        given = tuple(form.get(name) for name in ("client_id", "client_secret", "username", "password"))
        if given != expected:
            raise Refusal(401, "CLIENT_ERROR")
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        self.issued_tokens.append(token)
        return 200, {
            "access_token": token,
            "expires_in": self.token_lifetime,
            "refresh_expires_in": 2 * self.token_lifetime,
            "refresh_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
        }

    def _list_sendings(self, query: str) -> dict[str, Any]:
        params = dict(urllib.parse.parse_qsl(query))
        start, count = int(params.get("start_index", 1)), int(params.get("count", 50))
        if start < 1 or not 1 <= count <= 500:
            raise Refusal(400, "INVALID_PAGING")
        every = [s.answer() for s in self.sendings.values()]
        page = every[start - 1 : start - 1 + count]
        paging: dict[str, Any] = {"total_results": len(every)}
        if start - 1 + count < len(every):
            paging["next"] = f"/sendings?start_index={start + count}&count={count}"
        return {"sendings": page, "paging": paging}

    def _create_sending(self, fields: dict[str, Any]) -> dict[str, Any]:
        _known(fields, SENDING_FIELDS)
        name = fields.get("name")
        if not isinstance(name, str) or not name:
            raise Refusal(400, "EMPTY_NAME")
        if len(name) > 256:
            raise Refusal(400, "NAME_TOO_LONG")
        custom_id = fields.get("custom_id")
        if custom_id is not None and (not isinstance(custom_id, str) or len(custom_id) > 38):
            raise Refusal(400, "CUSTOM_ID_WRONG_FORMAT")
        _check_lines(fields, "sender_")
        sending = StubSending(id=secrets.token_hex(16), fields=fields, created_at=datetime.now(UTC))
        self.sendings[sending.id] = sending
        return sending.answer()

    def _add_document(self, sending: StubSending, headers: Any, body: bytes) -> dict[str, Any]:
        content_type = headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data; boundary="):
            raise Refusal(400, "EMPTY_DOCUMENT")
        form = message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=policy.default
        )
        assert isinstance(form, EmailMessage)
        parts = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()}
        document, metadata = parts.get("document"), parts.get("metadata")
        if len(list(form.iter_parts())) != len(parts):
            raise Refusal(400, "TOO_MANY_PARAMETER_DOCUMENT")
        if document is None:
            raise Refusal(400, "EMPTY_DOCUMENT")
        if metadata is None:
            raise Refusal(400, "EMPTY_METADATA")
        pdf = document.get_payload(decode=True)
        if not isinstance(pdf, bytes) or not pdf.startswith(b"%PDF"):
            raise Refusal(400, "CORRUPTED_DOCUMENT")
        raw = metadata.get_payload(decode=True)
        try:
            meta = json.loads(raw if isinstance(raw, bytes) else b"")
        except ValueError:
            raise Refusal(400, "METADATA_WRONG_FORMAT") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("priority"), int) or meta["priority"] < 1:
            raise Refusal(400, "INVALID_PRIORITY")
        entry = {
            "id": secrets.token_hex(16),
            "priority": meta["priority"],
            "name": meta.get("name") or document.get_filename(),
            "type": document.get_content_type(),
            "size": len(pdf),
        }
        sending.documents.append(entry)
        sending.pdfs.append(pdf)
        return entry

    def _add_recipient(self, sending: StubSending, fields: dict[str, Any]) -> dict[str, Any]:
        _known(fields, RECIPIENT_FIELDS)
        _check_lines(fields, "")
        if not fields.get("address_line_6"):
            raise Refusal(400, "EMPTY_ADDRESS_LINE_6")
        if not (fields.get("address_line_1") or fields.get("address_line_2")):
            raise Refusal(400, "ADDRESS_LINE_1_OR_ADDRESS_LINE_2_MANDATORY")
        country = fields.get("country_code")
        if not country:
            raise Refusal(400, "COUNTRY_CODE_EMPTY")
        if country not in COUNTRY_CODES:
            raise Refusal(400, "INVALID_COUNTRY_CODE")
        if country == "FR" and not _FRENCH_LINE_6.match(fields["address_line_6"]):
            raise Refusal(400, "INVALID_ADDRESS_LINE_6")
        recipient = {**fields, "id": secrets.token_hex(16), "status": "DRAFT"}
        sending.recipients.append(recipient)
        return recipient

    def _submit(self, sending: StubSending) -> None:
        if not sending.documents:
            raise Refusal(400, "EMPTY_DOCUMENT")
        if not sending.recipients:
            raise Refusal(400, "INVALID_RECIPIENTS_COUNT")
        sending.status = "PENDING"
        sending.submissions += 1
        for recipient in sending.recipients:
            recipient["status"] = "PENDING"


def _route(method: str, path: str) -> tuple[str, list[str]]:
    if method == "POST" and path.endswith("/protocol/openid-connect/token"):
        return "token", []
    parts = path.removeprefix("/registered_mail/v4").strip("/").split("/")
    if parts[0] != "sendings" or not path.startswith("/registered_mail/v4/"):
        return "unknown", []
    shape: tuple[str | int, ...] = (method, len(parts), *parts[2:3])
    routes: dict[tuple[str | int, ...], str] = {
        ("GET", 1): "list_sendings",
        ("POST", 1): "create_sending",
        ("GET", 2): "get_sending",
        ("POST", 3, "submit"): "submit",
        ("GET", 3, "documents"): "list_documents",
        ("POST", 3, "documents"): "add_document",
        ("GET", 3, "recipients"): "list_recipients",
        ("POST", 3, "recipients"): "add_recipient",
        ("GET", 4, "recipients"): "get_recipient",
    }
    operation = routes.get(shape, "unknown")
    return operation, [urllib.parse.unquote(part) for part in parts[1:2] + parts[3:4]]


def _json_body(headers: Any, body: bytes) -> dict[str, Any]:
    if headers.get("Content-Type") != "application/json":
        raise Refusal(400, "UNEXPECTED_NOT_VALID_ERROR")
    try:
        fields = json.loads(body)
    except ValueError:
        raise Refusal(400, "UNEXPECTED_NOT_VALID_ERROR") from None
    if not isinstance(fields, dict):
        raise Refusal(400, "UNEXPECTED_NOT_VALID_ERROR")
    return fields


def _known(fields: dict[str, Any], known: set[str]) -> None:
    if set(fields) - known:
        raise Refusal(400, "UNEXPECTED_NOT_VALID_ERROR")


def _check_lines(fields: dict[str, Any], prefix: str) -> None:
    codes = [
        f"ADDRESS_LINE_{n}_TOO_LONG"
        for n in range(1, 7)
        if not isinstance(fields.get(f"{prefix}address_line_{n}", ""), str)
        or len(fields.get(f"{prefix}address_line_{n}", "")) > 38
    ]
    if codes:
        raise Refusal(400, *codes)


def _handler(stub: MailevaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = stub.serve(self.command, self.path, self.headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up waiting (a timeout test): nobody reads this answer

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
