"""The `RegisteredMail` port: how a formal notice's registered letter leaves when the account's channel is
`provider` (an online registered-letter service prints, posts and tracks it).

Relais hands over the PDF it prepared and the addresses; the provider answers with its own id for the
letter and, once it has deposited the letter with the post, the proof of deposit (the day it was sent and
its tracking number). A deposit is idempotent by Relais's letter id: handing the same letter twice (a
retried tick, a crashed worker) never posts two letters. A provider that times out or refuses raises
`RegisteredMailUnavailable`; the letter then stays `to_send` and the tick hands it over again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from chalicelib.domain.legal import BrokerIdentity, PostalAddress


class LetterTrackingStatus(StrEnum):
    ACCEPTED = "accepted"
    """Taken by the provider, not yet deposited with the post."""
    SENT = "sent"
    """Deposited with the post: `sent_on` and `tracking_number` are known."""
    DELIVERED = "delivered"
    RETURNED = "returned"
    """Not delivered (refused, not claimed, address unknown): the proof comes back to the sender."""


@dataclass(frozen=True)
class LetterToSend:
    letter_id: str
    """Relais's id of the letter: the provider's idempotency key and its reference."""
    pdf: bytes
    recipient_name: str
    recipient_address: PostalAddress
    sender: BrokerIdentity


@dataclass(frozen=True)
class LetterTracking:
    provider_id: str
    status: LetterTrackingStatus
    sent_on: date | None = None
    tracking_number: str | None = None


class RegisteredMailUnavailable(Exception):
    """The provider timed out, failed or refused the request: nothing was counted as sent."""


class RegisteredMail(Protocol):
    def deposit(self, letter: LetterToSend, now: datetime) -> LetterTracking:
        """Hand the letter over (idempotent by `letter.letter_id`) and say where it stands."""
        ...

    def track(self, provider_id: str, now: datetime) -> LetterTracking:
        """Where a letter handed over earlier stands now."""
        ...
