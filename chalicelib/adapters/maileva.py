"""Maileva's "Lettres Recommandées En Ligne" (registered_mail v4) behind the `RegisteredMail` port: Maileva
prints the formal notice, posts it as a registered letter with acknowledgement of receipt, and tracks it.

Built from Maileva's own OpenAPI descriptions, as published in public repositories (no Maileva account was
used; nothing here was tried against the real service):
- registered_mail v4.9: `Justisy/maileva`, `openapi/api-registered_mail-v4-9.yaml` (commit e142479e);
- authentication v2.1: same repository, `openapi/api-authentication-v2-1b.yaml`;
- cross-checked with registered_mail v2.5 and authentication v2.0 in `mmeisso/maileva-api-adapter-v2`,
  `App/Client/LrelClient/spec.yaml` and `App/Client/AuthClient/spec.yaml`.
La Poste's own LReL API was set aside: its public OpenAPI is a raw springdoc export with placeholder servers
and security, where Maileva's describes every field, status and error code.

What this adapter relies on (base URL `https://api.maileva.com/registered_mail/v4`, sandbox
`https://api.sandbox.maileva.net/registered_mail/v4`):
- `POST {auth_url}/token`, form `grant_type=password, username, password, client_id, client_secret`
  (auth_url `https://connexion.maileva.com/auth/realms/services/protocol/openid-connect`) → `{access_token,
  expires_in}`; every other call carries `Authorization: Bearer <access_token>`. The authentication
  description marks `client_credentials` "non implémenté pour Maileva", hence the password grant.
- `GET /sendings?start_index=&count=` (≤ 500) → `{sendings: [sending], paging}`: the sending whose
  `custom_id` is our letter id, if one exists. The v4 list offers no filter, so the account's sendings are
  paged through.
- `POST /sendings` `{name, custom_id (≤ 38), acknowledgement_of_receipt, optional_address_sheet,
  sender_address_line_1..6, sender_country_code}` → 201 sending `{id, status: DRAFT, ...}`.
- `GET /sendings/{id}/documents` and `POST /sendings/{id}/documents` (multipart: `document`, the PDF, and
  `metadata` `{priority, name}`) → 201.
- `GET /sendings/{id}/recipients` and `POST /sendings/{id}/recipients` `{address_line_1..6 (≤ 38 each,
  line 6 "CODE VILLE"), country_code}` → 201 recipient.
- `POST /sendings/{id}/submit` → 200: the sending leaves DRAFT and cannot be cancelled.
- A recipient's `status` (DRAFT, PENDING, BLOCKED, ACCEPTED, PREPARING, PROCESSED; REJECTED,
  SENDING_REJECTED, CANCELED), `registered_number`, `deposit_proof_date`, `acknowledgement_of_receipt_date`,
  `undelivered_mail_date` and `last_main_delivery_status.category` (DELIVERING, FIRST_PRESENTATION,
  DELIVERED, UNDELIVERED).
- Errors: `{errors: [{code, message}]}` (400) or `{code, message}` (401, 404).

The provider's id of a letter is Maileva's sending id (one sending, one recipient per letter).
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from chalicelib.domain.legal import MAX_LINE_CHARS, PostalAddress
from chalicelib.services.ports import (
    LetterToSend,
    LetterTracking,
    LetterTrackingStatus,
    RegisteredMailUnavailable,
)

PARIS = ZoneInfo("Europe/Paris")
DEFAULT_TIMEOUT = 10.0
PAGE_SIZE = 500
"""The largest page `GET /sendings` serves."""
MAX_CUSTOM_ID = 38
TOKEN_MARGIN = 30.0
"""Seconds before its expiry a token is renewed, so that no call starts with a token about to lapse."""
COUNTRY_CODES = frozenset({"FR", "MC", "RE", "YT", "MQ", "GP", "MF", "BL", "GF"})
_ERROR_CODE = re.compile(r"^[A-Z0-9_]{1,64}$")
_NOT_POSTED = frozenset({"REJECTED", "SENDING_REJECTED", "CANCELED"})


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


class HttpTransport(Protocol):
    """One HTTP exchange. Raises `OSError` (a timeout, a refused connection) or `http.client.HTTPException`
    when no answer came; any status, 4xx and 5xx included, is an answer."""

    def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpAnswer: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect from Maileva's API is unexpected: answering it as a 3xx keeps a POST from being replayed
    # elsewhere as a GET, and the Authorization header from following it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def urllib_transport(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
) -> HttpAnswer:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
    try:
        with opener.open(request, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpAnswer(error.code, error.read())


def _unavailable(step: str, why: str) -> RegisteredMailUnavailable:
    return RegisteredMailUnavailable(
        f"Maileva is unavailable at step '{step}' ({why}); the letter stays to send."
    )


def _refused(step: str, why: str) -> RegisteredMailUnavailable:
    return RegisteredMailUnavailable(
        f"Maileva refused our request at step '{step}' ({why}): it needs fixing on our side, "
        "a retry alone will not help; the letter stays to send."
    )


def _error_codes(body: bytes) -> str:
    """Maileva's error codes, and nothing else of the answer: its messages may quote the address sent."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    items = errors if isinstance(errors, list) else [answer]
    codes = [item.get("code") for item in items if isinstance(item, dict)]
    return ", ".join(code for code in codes if isinstance(code, str) and _ERROR_CODE.match(code))


def _items(step: str, answer: Any, key: str) -> list[dict[str, Any]]:
    items = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _unavailable(step, f"unexpected answer: no list of {key}")
    return items


def _text(step: str, answer: Any, key: str) -> str:
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise _unavailable(step, f"unexpected answer: no {key}")
    return value


def _paris_date(step: str, value: Any) -> date:
    if not isinstance(value, str):
        raise _unavailable(step, "unexpected answer: a date that is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _unavailable(step, "unexpected answer: a date that cannot be read") from None
    # Maileva writes UTC ("…Z"); a moment without zone is read as UTC too.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(PARIS).date()


def _address_lines(block: tuple[str, ...], prefix: str = "") -> dict[str, str]:
    """An envelope block (name, street lines, "CODE VILLE") as Maileva's six address lines.

    Line 6 is always "CODE VILLE". The name takes line 2, Maileva's person line, and the street lines
    follow it; with four street lines the block needs line 1 too, and starts there.
    """
    *top, last = block
    first = 1 if len(top) == 5 else 2
    lines = {f"{prefix}address_line_{first + index}": line for index, line in enumerate(top)}
    lines[f"{prefix}address_line_6"] = last
    return lines


def _block_issue(who: str, name: str, address: PostalAddress) -> str | None:
    block = address.envelope_lines(name)
    if not 3 <= len(block) <= 6:
        return f"the {who}'s address needs 1 to 4 street lines"
    if any(len(line) > MAX_LINE_CHARS for line in block):
        return f"a line of the {who}'s address block is longer than {MAX_LINE_CHARS} characters"
    if address.country not in COUNTRY_CODES:
        return f"Maileva posts no registered letter to the {who}'s country"
    return None


class MailevaRegisteredMail:
    """`deposit` and `track` for Maileva. The token is kept until shortly before it expires (measured on
    `clock`, real time: the local stage's ticks move no token clock) and renewed once when Maileva
    answers 401 to a call."""

    def __init__(
        self,
        base_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        http: HttpTransport = urllib_transport,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token_url = f"{auth_url.rstrip('/')}/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._http = http
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0

    def deposit(self, letter: LetterToSend, now: datetime) -> LetterTracking:
        self._check(letter)
        sending = self._find_sending(letter.letter_id)
        if sending is None:
            sending_id = _text("create sending", self._create_sending(letter), "id")
            self._upload_document(sending_id, letter)
            self._add_recipient(sending_id, letter)
        elif sending.get("status") == "DRAFT":
            # An earlier attempt stopped before submitting: complete that sending rather than start another.
            sending_id = _text("find sending", sending, "id")
            documents = self._call("list documents", "GET", _path(sending_id, "documents"))
            if not _items("list documents", documents, "documents"):
                self._upload_document(sending_id, letter)
            recipients = self._call("list recipients", "GET", _path(sending_id, "recipients"))
            if not _items("list recipients", recipients, "recipients"):
                self._add_recipient(sending_id, letter)
        else:
            return self.track(_text("find sending", sending, "id"), now)
        self._call("submit", "POST", _path(sending_id, "submit"))
        return LetterTracking(provider_id=sending_id, status=LetterTrackingStatus.ACCEPTED)

    def track(self, provider_id: str, now: datetime) -> LetterTracking:
        recipients = _items(
            "track", self._call("track", "GET", _path(provider_id, "recipients")), "recipients"
        )
        if len(recipients) != 1:
            raise _unavailable("track", f"unexpected answer: {len(recipients)} recipients on the sending")
        return _tracking(provider_id, recipients[0])

    # The steps of a deposit

    def _check(self, letter: LetterToSend) -> None:
        """What Maileva would refuse, refused before anything is created on its side."""
        if not 0 < len(letter.letter_id) <= MAX_CUSTOM_ID:
            raise _refused("check", f"a letter id must hold 1 to {MAX_CUSTOM_ID} characters")
        if not letter.pdf.startswith(b"%PDF"):
            raise _refused("check", "the letter is not a PDF")
        issue = _block_issue("recipient", letter.recipient_name, letter.recipient_address) or _block_issue(
            "sender", letter.sender.legal_name, letter.sender.address
        )
        if issue:
            raise _refused("check", issue)

    def _find_sending(self, letter_id: str) -> dict[str, Any] | None:
        start = 1
        while True:
            query = urllib.parse.urlencode({"start_index": start, "count": PAGE_SIZE})
            page = _items("find sending", self._call("find sending", "GET", f"/sendings?{query}"), "sendings")
            for sending in page:
                if sending.get("custom_id") == letter_id:
                    return sending
            if len(page) < PAGE_SIZE:
                return None
            start += PAGE_SIZE

    def _create_sending(self, letter: LetterToSend) -> Any:
        sender = letter.sender
        body = {
            "name": f"Mise en demeure {letter.letter_id}",
            "custom_id": letter.letter_id,
            "acknowledgement_of_receipt": True,
            # Maileva prints the address, and the registered number, on a sheet of its own: the letter's
            # PDF then needs no blank window zone laid out to Maileva's measures.
            "optional_address_sheet": True,
            **_address_lines(sender.address.envelope_lines(sender.legal_name), prefix="sender_"),
            "sender_country_code": sender.address.country,
        }
        return self._call("create sending", "POST", "/sendings", json_body=body)

    def _upload_document(self, sending_id: str, letter: LetterToSend) -> None:
        boundary = uuid.uuid4().hex
        filename = f"{letter.letter_id}.pdf"
        metadata = json.dumps({"priority": 1, "name": filename}).encode()
        body = b"".join(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="document"; filename="{filename}"\r\n'
                "Content-Type: application/pdf\r\n\r\n".encode(),
                letter.pdf,
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
                "Content-Type: application/json\r\n\r\n".encode(),
                metadata,
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        self._call(
            "add document",
            "POST",
            _path(sending_id, "documents"),
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    def _add_recipient(self, sending_id: str, letter: LetterToSend) -> None:
        address = letter.recipient_address
        body = {
            **_address_lines(address.envelope_lines(letter.recipient_name)),
            "country_code": address.country,
        }
        self._call("add recipient", "POST", _path(sending_id, "recipients"), json_body=body)

    # HTTP, the token and the answers

    def _call(
        self,
        step: str,
        method: str,
        path: str,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Maileva's JSON answer to one call (None when it has no body); 401 renews the token once."""
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        headers = {"Accept": "application/json", **({"Content-Type": content_type} if content_type else {})}
        url = f"{self._base_url}{path}"
        answer = self._send(
            step, method, url, {**headers, "Authorization": f"Bearer {self._access_token()}"}, body
        )
        if answer.status == 401:
            # A token Maileva no longer honours (expired early, revoked): a 401 was not acted upon, so the
            # same call can be made again with a new token.
            self._token = None
            answer = self._send(
                step, method, url, {**headers, "Authorization": f"Bearer {self._access_token()}"}, body
            )
        return _json(step, answer)

    def _access_token(self) -> str:
        if self._token is not None and self._clock() < self._token_expires_at:
            return self._token
        asked_at = self._clock()
        form = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "username": self._username,
                "password": self._password,
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            }
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        answer = _json("token", self._send("token", "POST", self._token_url, headers, form))
        token = _text("token", answer, "access_token")
        try:
            # Maileva's own example gives `expires_in` as a string.
            lifetime = float(answer["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise _unavailable("token", "unexpected answer: no expires_in") from None
        self._token, self._token_expires_at = token, asked_at + lifetime - TOKEN_MARGIN
        return token

    def _send(
        self, step: str, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpAnswer:
        try:
            return self._http(method, url, headers, body, self._timeout)
        except (OSError, http.client.HTTPException) as exc:
            timed_out = isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            )
            why = (
                f"no answer within {self._timeout:g} s"
                if timed_out
                else f"connection failed: {type(exc).__name__}"
            )
            raise _unavailable(step, why) from exc


def _path(sending_id: str, *rest: str) -> str:
    return "/".join(("/sendings", urllib.parse.quote(sending_id, safe=""), *rest))


def _json(step: str, answer: HttpAnswer) -> Any:
    status = answer.status
    if status == 429 or status >= 500:
        raise _unavailable(step, f"HTTP {status}")
    if status in (401, 403):
        raise _refused(step, f"HTTP {status}: our credentials or rights were refused")
    if 400 <= status < 500:
        codes = _error_codes(answer.body)
        raise _refused(step, f"HTTP {status}{': ' + codes if codes else ''}")
    if not 200 <= status < 300:
        raise _unavailable(step, f"unexpected HTTP {status}")
    if not answer.body.strip():
        return None
    try:
        return json.loads(answer.body)
    except ValueError:
        raise _unavailable(step, "unexpected answer: not JSON") from None


def _tracking(provider_id: str, recipient: dict[str, Any]) -> LetterTracking:
    status = recipient.get("status")
    if status in _NOT_POSTED:
        detail = recipient.get("status_detail")
        code = f", {detail}" if isinstance(detail, str) and _ERROR_CODE.match(detail) else ""
        raise RegisteredMailUnavailable(
            f"Maileva did not post the letter of sending {provider_id} ({status}{code}): a retry finds "
            "the same sending, so a person must look at it; the letter stays to send."
        )
    proof_date = recipient.get("deposit_proof_date")
    number = recipient.get("registered_number")
    sent_on = _paris_date("track", proof_date) if proof_date else None
    tracking_number = number if isinstance(number, str) and number else None
    main_status = recipient.get("last_main_delivery_status")
    category = main_status.get("category") if isinstance(main_status, dict) else None
    if category == "DELIVERED" or recipient.get("acknowledgement_of_receipt_date"):
        outcome = LetterTrackingStatus.DELIVERED
    elif category == "UNDELIVERED" or recipient.get("undelivered_mail_date"):
        outcome = LetterTrackingStatus.RETURNED
    elif sent_on and tracking_number:
        outcome = LetterTrackingStatus.SENT
    else:
        # Taken, maybe printed and numbered, but no proof yet that the post has it.
        return LetterTracking(provider_id=provider_id, status=LetterTrackingStatus.ACCEPTED)
    return LetterTracking(provider_id, outcome, sent_on=sent_on, tracking_number=tracking_number)
