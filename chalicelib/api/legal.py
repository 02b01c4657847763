"""The broker's legal identity, insurers and postal addresses at the edge: the request bodies (answers use
the domain's `as_json`, the form the table stores too).

The domain (`domain/legal.py`) checks what the law and La Poste need (8-digit ORIAS number, 5-digit postal
code, 38-character lines); these models check shapes and lengths, and refuse line breaks in every text
that may reach an email header or a letter's address block.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictStr

from chalicelib.api.requests import DisplayName, PatchBody, StrictBody
from chalicelib.domain.legal import Insurer, Mediator, PostalAddress
from chalicelib.domain.validation import name_issue


def _one_line(value: str) -> str:
    issue = name_issue(value)
    if issue:
        raise ValueError(issue)
    return value


OneLine = Annotated[StrictStr, AfterValidator(_one_line)]


class PostalAddressBody(StrictBody):
    lines: list[Annotated[OneLine, Field(max_length=100)]] = Field(min_length=1, max_length=4)
    postal_code: Annotated[StrictStr, Field(min_length=1, max_length=10)]
    city: Annotated[OneLine, Field(max_length=100)]
    country: Literal["FR"] = "FR"

    def address(self) -> PostalAddress:
        return PostalAddress(tuple(self.lines), self.postal_code, self.city, self.country)


class MediatorBody(StrictBody):
    name: DisplayName
    url: Annotated[OneLine, Field(max_length=300)]


class InsurerBody(StrictBody):
    nullable = frozenset({"address"})
    name: DisplayName
    address: PostalAddressBody | None = None

    def insurer(self) -> Insurer:
        return Insurer(self.name, self.address.address() if self.address else None)


class LegalPatch(PatchBody):
    """`PATCH /account/legal`: the fields sent replace the stored ones (null removes an optional one);
    the identity that results must be complete (legal name, ORIAS number, address)."""

    nullable = frozenset({"rcs", "phone", "mediator", "payment_instructions"})
    legal_name: DisplayName | None = None
    orias_number: Annotated[StrictStr, Field(max_length=20)] | None = None
    rcs: Annotated[OneLine, Field(max_length=100)] | None = None
    address: PostalAddressBody | None = None
    phone: Annotated[OneLine, Field(max_length=30)] | None = None
    mediator: MediatorBody | None = None
    payment_instructions: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = None

    def changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if isinstance(value, PostalAddressBody):
                value = value.address()
            elif isinstance(value, MediatorBody):
                value = Mediator(value.name, value.url)
            changes[name] = value
        return changes
