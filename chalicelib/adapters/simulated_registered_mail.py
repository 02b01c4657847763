"""The registered-letter provider of the local stage (`make run`): it plays an online service that deposits
every letter with the post at once, as of the tick that hands it over.

It keeps each letter it took, PDF included, so that `GET /_local/letters` can show what would have been
posted; it can be told that the post delivered a letter or brought it back (`settle`), and to fail its next
deposits or tracking checks, so that the fault paths (the letter staying `to_send`, the tick handing it
over again, a tracking check that fails) can be tried by hand or in tests.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from chalicelib.services.ports import (
    LetterToSend,
    LetterTracking,
    LetterTrackingStatus,
    RegisteredMailUnavailable,
)

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class SimulatedLetter:
    letter: LetterToSend
    tracking: LetterTracking
    deposited_at: datetime


def simulated_tracking_number(letter_id: str) -> str:
    """`1A` and 11 digits, as La Poste prints on a registered letter, always the same for one letter."""
    digits = int.from_bytes(hashlib.sha256(letter_id.encode()).digest()[:8], "big") % 10**11
    return f"1A{digits:011d}"


class SimulatedRegisteredMail:
    def __init__(self) -> None:
        self._letters: dict[str, SimulatedLetter] = {}
        self._failures_left = 0
        self._tracking_failures_left = 0
        # The local stage's pump threads and its HTTP server may hand letters over at the same time.
        self._lock = threading.Lock()

    def fail_next_deposits(self, count: int) -> None:
        """The next `count` deposits raise `RegisteredMailUnavailable`, as a provider that is down would."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._failures_left = count

    def fail_next_checks(self, count: int) -> None:
        """The next `count` tracking checks raise `RegisteredMailUnavailable`."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._tracking_failures_left = count

    def deposit(self, letter: LetterToSend, now: datetime) -> LetterTracking:
        if now.tzinfo is None:
            raise ValueError("now must carry its time zone: the day of deposit is the Paris day")
        with self._lock:
            if self._failures_left:
                self._failures_left -= 1
                raise RegisteredMailUnavailable("The simulated provider was told to fail this deposit.")
            taken = self._letters.get(letter.letter_id)
            if taken is None:
                tracking = LetterTracking(
                    provider_id=f"sim_{letter.letter_id}",
                    status=LetterTrackingStatus.SENT,
                    sent_on=now.astimezone(PARIS).date(),
                    tracking_number=simulated_tracking_number(letter.letter_id),
                )
                taken = SimulatedLetter(letter=letter, tracking=tracking, deposited_at=now)
                self._letters[letter.letter_id] = taken
            return taken.tracking

    def track(self, provider_id: str, now: datetime) -> LetterTracking:
        with self._lock:
            if self._tracking_failures_left:
                self._tracking_failures_left -= 1
                raise RegisteredMailUnavailable("The simulated provider was told to fail this check.")
            for taken in self._letters.values():
                if taken.tracking.provider_id == provider_id:
                    return taken.tracking
        raise RegisteredMailUnavailable(f"The simulated provider holds no letter {provider_id}.")

    def settle(self, letter_id: str, status: LetterTrackingStatus) -> None:
        """The post delivered the letter, or it came back: what `track` answers from now on."""
        with self._lock:
            taken = self._letters[letter_id]
            self._letters[letter_id] = replace(taken, tracking=replace(taken.tracking, status=status))

    def letters(self) -> tuple[SimulatedLetter, ...]:
        """Every letter taken, in the order they were deposited."""
        with self._lock:
            return tuple(self._letters.values())
