"""The broker's legal identity and French postal addresses, on the domain alone."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.legal import (
    BrokerIdentity,
    Mediator,
    PostalAddress,
    check_postal_address,
    identity_with,
)

PARIS = PostalAddress(("12 rue de la Paix",), "75002", "Paris")


def test_the_envelope_block_ends_with_the_postal_code_and_the_city_in_capitals() -> None:
    address = PostalAddress(("Appartement 12", "3 allée des Tilleuls"), "69003", "Lyon")
    assert address.envelope_lines("Léa Martin") == (
        "Léa Martin",
        "Appartement 12",
        "3 allée des Tilleuls",
        "69003 LYON",
    )


def test_the_legal_mentions_name_the_orias_register_and_the_mediator_only_when_asked() -> None:
    identity = BrokerIdentity(
        "Cabinet Martin SAS",
        "12345678",
        PARIS,
        rcs="Paris B 123 456 789",
        mediator=Mediator("MA", "https://m.fr"),
    )
    mentions = identity.mentions()
    assert mentions[0] == "Cabinet Martin SAS"
    assert "ORIAS sous le n°\u00a012345678 (www.orias.fr)" in mentions[1]
    assert "RCS Paris B 123 456 789" in mentions
    assert "12 rue de la Paix, 75002 Paris" in mentions
    assert not any("Médiateur" in line for line in mentions)
    assert identity.mentions(with_mediator=True)[-1] == "Médiateur\u00a0: MA (https://m.fr)"


def test_a_partial_change_keeps_the_rest_and_is_checked_whole() -> None:
    current = BrokerIdentity("Cabinet Martin", "12345678", PARIS, phone="01 02 03 04 05")
    changed = identity_with(current, {"phone": None, "rcs": "Paris B 1"})
    assert (changed.phone, changed.rcs, changed.legal_name) == (None, "Paris B 1", "Cabinet Martin")
    with pytest.raises(InvalidInput) as refused:
        identity_with(current, {"orias_number": "ORIAS123"})
    assert [d.field for d in refused.value.details] == ["orias_number"]


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (PostalAddress((), "75002", "Paris"), "postal_address.lines"),
        (PostalAddress(("  ",), "75002", "Paris"), "postal_address.lines[0]"),
        (PostalAddress(("x" * 39,), "75002", "Paris"), "postal_address.lines[0]"),
        (PostalAddress(("1 rue",), "2A004", "Ajaccio"), "postal_address.postal_code"),
        (PostalAddress(("1 rue",), "75002", "Bruxelles", "BE"), "postal_address.country"),
        (PostalAddress(("1 rue",), "75002", ""), "postal_address.city"),
    ],
)
def test_an_address_a_letter_cannot_use_is_refused_naming_the_field(
    address: PostalAddress, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_postal_address(address, "postal_address")
    assert field in [d.field for d in refused.value.details]
