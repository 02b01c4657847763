"""How the broker's legal identity, insurers and postal addresses are stored: plain JSON maps on the
items that own them (the account, a product, a client)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.legal import BrokerIdentity, Insurer, Mediator, PostalAddress


def address_json(address: PostalAddress | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "lines": list(address.lines),
        "postal_code": address.postal_code,
        "city": address.city,
        "country": address.country,
    }


def address_from(stored: dict[str, Any] | None) -> PostalAddress | None:
    if not stored:
        return None
    return PostalAddress(
        tuple(stored["lines"]), stored["postal_code"], stored["city"], stored.get("country", "FR")
    )


def insurer_json(insurer: Insurer | None) -> dict[str, Any] | None:
    if insurer is None:
        return None
    return {"name": insurer.name, "address": address_json(insurer.address)}


def insurer_from(stored: dict[str, Any] | None) -> Insurer | None:
    if not stored:
        return None
    return Insurer(stored["name"], address_from(stored.get("address")))


def identity_json(identity: BrokerIdentity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    mediator = identity.mediator
    return {
        "legal_name": identity.legal_name,
        "orias_number": identity.orias_number,
        "address": address_json(identity.address),
        "rcs": identity.rcs,
        "phone": identity.phone,
        "mediator": {"name": mediator.name, "url": mediator.url} if mediator else None,
        "payment_instructions": identity.payment_instructions,
    }


def identity_from(stored: dict[str, Any] | None) -> BrokerIdentity | None:
    if not stored:
        return None
    address = address_from(stored["address"])
    if address is None:
        raise ValueError("a legal identity is always stored with its address")
    mediator = stored.get("mediator")
    return BrokerIdentity(
        legal_name=stored["legal_name"],
        orias_number=stored["orias_number"],
        address=address,
        rcs=stored.get("rcs"),
        phone=stored.get("phone"),
        mediator=Mediator(mediator["name"], mediator["url"]) if mediator else None,
        payment_instructions=stored.get("payment_instructions"),
    )
