"""Who the broker is in law, and where letters go: the legal identity every client email and the
registered letter must carry (legal name, ORIAS registration, RCS, address, mediator), the insurer for
whose account a notice is sent, and French postal addresses laid out for a window envelope.

Validation returns every issue at once, each naming its field as the API spells it, so a 400 says all that
is wrong in one answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from chalicelib.domain.errors import FieldIssue, InvalidInput

MAX_ADDRESS_LINES = 4
MAX_LINE_CHARS = 38
"""La Poste's norm for an address line (NF Z10-011): 38 characters, so that it fits the envelope window."""
ORIAS_REGISTER_URL = "www.orias.fr"
_ORIAS = re.compile(r"^\d{8}$")
_FRENCH_POSTAL_CODE = re.compile(r"^\d{5}$")


class RegisteredMailChannel(StrEnum):
    """How the formal notice's registered letter leaves: staff post it (`manual`), or an online
    registered-letter service does (`provider`)."""

    MANUAL = "manual"
    PROVIDER = "provider"


@dataclass(frozen=True)
class PostalAddress:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country: str = "FR"

    def envelope_lines(self, name: str) -> tuple[str, ...]:
        """The block printed in the envelope window: name, street lines, then "CODE VILLE" in capitals."""
        return (name, *self.lines, f"{self.postal_code} {self.city.upper()}")

    def as_json(self) -> dict[str, Any]:
        """As the API answers it and the table stores it."""
        return {
            "lines": list(self.lines),
            "postal_code": self.postal_code,
            "city": self.city,
            "country": self.country,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> PostalAddress:
        return cls(tuple(stored["lines"]), stored["postal_code"], stored["city"], stored.get("country", "FR"))


@dataclass(frozen=True)
class Mediator:
    name: str
    url: str


@dataclass(frozen=True)
class BrokerIdentity:
    legal_name: str
    orias_number: str
    address: PostalAddress
    rcs: str | None = None
    phone: str | None = None
    mediator: Mediator | None = None
    payment_instructions: str | None = None

    def as_json(self) -> dict[str, Any]:
        """As the API answers it and the table stores it."""
        mediator = self.mediator
        return {
            "legal_name": self.legal_name,
            "orias_number": self.orias_number,
            "rcs": self.rcs,
            "address": self.address.as_json(),
            "phone": self.phone,
            "mediator": {"name": mediator.name, "url": mediator.url} if mediator else None,
            "payment_instructions": self.payment_instructions,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> BrokerIdentity:
        mediator = stored.get("mediator")
        return cls(
            legal_name=stored["legal_name"],
            orias_number=stored["orias_number"],
            address=PostalAddress.from_json(stored["address"]),
            rcs=stored.get("rcs"),
            phone=stored.get("phone"),
            mediator=Mediator(mediator["name"], mediator["url"]) if mediator else None,
            payment_instructions=stored.get("payment_instructions"),
        )

    def mentions(self, with_mediator: bool = False) -> tuple[str, ...]:
        """The legal mentions a client email or a letter ends with (art. R521-2 and L521-2 Code des
        assurances): legal name, ORIAS number with where to check it, RCS, address; the mediator on
        dunning notices."""
        address = ", ".join((*self.address.lines, f"{self.address.postal_code} {self.address.city}"))
        lines = [
            self.legal_name,
            f"Intermédiaire en assurance immatriculé à l’ORIAS sous le n°\u00a0{self.orias_number}"
            f" ({ORIAS_REGISTER_URL})",
        ]
        if self.rcs:
            lines.append(f"RCS {self.rcs}")
        lines.append(address)
        if self.phone:
            lines.append(f"Tél. {self.phone}")
        if with_mediator and self.mediator:
            lines.append(f"Médiateur\u00a0: {self.mediator.name} ({self.mediator.url})")
        return tuple(lines)


@dataclass(frozen=True)
class Insurer:
    name: str
    address: PostalAddress | None = None

    def as_json(self) -> dict[str, Any]:
        """As the API answers it and the table stores it."""
        return {"name": self.name, "address": self.address.as_json() if self.address else None}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Insurer:
        address = stored.get("address")
        return cls(stored["name"], PostalAddress.from_json(address) if address else None)


def postal_address_issues(address: PostalAddress, field: str) -> list[FieldIssue]:
    issues = []
    if not 1 <= len(address.lines) <= MAX_ADDRESS_LINES:
        issues.append(FieldIssue(f"{field}.lines", f"must hold 1 to {MAX_ADDRESS_LINES} lines"))
    for index, line in enumerate(address.lines):
        if not line.strip():
            issues.append(FieldIssue(f"{field}.lines[{index}]", "must not be blank"))
        elif len(line) > MAX_LINE_CHARS:
            issues.append(
                FieldIssue(f"{field}.lines[{index}]", f"must be at most {MAX_LINE_CHARS} characters")
            )
    if address.country != "FR":
        issues.append(FieldIssue(f"{field}.country", "must be FR: letters are sent to France only"))
    elif not _FRENCH_POSTAL_CODE.match(address.postal_code):
        issues.append(FieldIssue(f"{field}.postal_code", "must be a French postal code of 5 digits"))
    if not address.city.strip():
        issues.append(FieldIssue(f"{field}.city", "must not be blank"))
    elif len(address.city) > MAX_LINE_CHARS - 6:
        issues.append(FieldIssue(f"{field}.city", f"must be at most {MAX_LINE_CHARS - 6} characters"))
    return issues


def check_postal_address(address: PostalAddress, field: str) -> None:
    issues = postal_address_issues(address, field)
    if issues:
        raise InvalidInput("This postal address cannot be used for a letter.", issues)


def check_identity(identity: BrokerIdentity) -> None:
    issues = postal_address_issues(identity.address, "address")
    if not identity.legal_name.strip():
        issues.append(FieldIssue("legal_name", "must not be blank"))
    if not _ORIAS.match(identity.orias_number):
        issues.append(FieldIssue("orias_number", "must be the 8 digits of the ORIAS registration"))
    if identity.mediator is not None and not identity.mediator.url.startswith(("https://", "http://")):
        issues.append(FieldIssue("mediator.url", "must be an http(s) address"))
    if issues:
        raise InvalidInput("This legal identity is incomplete or wrong.", issues)


_REQUIRED = ("legal_name", "orias_number", "address")


def identity_with(current: BrokerIdentity | None, changes: dict[str, Any]) -> BrokerIdentity:
    """The identity once `changes` (field → value, None removing an optional field) apply to `current`;
    400 naming each required field still missing, and each field the law or La Poste would refuse."""
    known = {f.name for f in fields(BrokerIdentity)}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"not fields of an identity: {sorted(unknown)}")
    if current is not None:
        identity = replace(current, **changes)
    else:
        missing = [name for name in _REQUIRED if changes.get(name) is None]
        if missing:
            raise InvalidInput(
                "The legal identity needs a legal name, an ORIAS number and an address.",
                [FieldIssue(name, "is required") for name in missing],
            )
        identity = BrokerIdentity(**changes)
    check_identity(identity)
    return identity
