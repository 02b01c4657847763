"""Unsubscribe links: a signed, account-scoped name of the addressee (party and id), no login needed.

Mail clients open them with no session (RFC 8058 one-click), so the link itself must prove what it names:
the token carries `account / party / id` and an HMAC-SHA256 of them under the platform's link secret. It
does not expire, as an unsubscribe link must keep working in an old email. It unsubscribes its addressee
only: an apporteur who unsubscribes stops his own mailings, not his clients'.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.errors import FieldIssue, InvalidInput

PARTIES = ("client", "apporteur")
_VERSION = "u1"
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class Addressee:
    account_id: str
    party: str
    party_id: str


@dataclass(frozen=True)
class Unsubscription:
    """An addressee who left the account's mailings; `id` names it in the API (`<party>_<party id>`)."""

    party: str
    party_id: str
    unsubscribed_at: datetime

    @property
    def id(self) -> str:
        return f"{self.party}_{self.party_id}"


def parse_unsubscription_id(text: str) -> tuple[str, str] | None:
    """The (party, id) an unsubscription id names, or None when it names none."""
    party, sep, party_id = text.partition("_")
    return (party, party_id) if sep and party in PARTIES and party_id else None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def unsubscribe_token(secret: str, addressee: Addressee) -> str:
    if addressee.party not in PARTIES:
        raise ValueError(f"unknown party {addressee.party!r}")
    payload = "\x1f".join((_VERSION, addressee.account_id, addressee.party, addressee.party_id)).encode()
    return f"{_encode(payload)}.{_encode(_signature(secret, payload))}"


def read_unsubscribe_token(secret: str, token: str) -> Addressee:
    """The addressee a token names; InvalidInput for anything forged, truncated or malformed."""
    refused = InvalidInput(
        "This unsubscribe link is not valid.", [FieldIssue("token", "not a valid unsubscribe token")]
    )
    encoded_payload, _, encoded_signature = token.partition(".")
    try:
        payload, signature = _decode(encoded_payload), _decode(encoded_signature)
    except ValueError as exc:
        raise refused from exc
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        raise refused
    try:
        version, account_id, party, party_id = payload.decode().split("\x1f")
    except ValueError as exc:
        raise refused from exc
    if version != _VERSION or party not in PARTIES or not account_id or not party_id:
        raise refused
    return Addressee(account_id, party, party_id)
