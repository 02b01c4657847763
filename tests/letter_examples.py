"""The formal notice of EXAMPLES.md ("Unpaid installment, default policy"): 1,234.50 EUR due 01/03/2027 on
a contract insured by Mutuelle Exemple, the letter prepared on 12/03/2027. Shared by the letter's tests and
its bench, so that both read the same letter."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

from chalicelib.domain.legal import BrokerIdentity, Insurer, Mediator, PostalAddress
from chalicelib.domain.letters import FormalNoticeLetter

BROKER = BrokerIdentity(
    legal_name="Cabinet Martin Courtage SARL",
    orias_number="12345678",
    address=PostalAddress(lines=("12 rue de la République",), postal_code="69002", city="Lyon"),
    rcs="Lyon 812 345 678",
    phone="04 78 00 00 00",
    mediator=Mediator(name="La Médiation de l’Assurance", url="https://www.mediation-assurance.org"),
    payment_instructions="virement sur l’IBAN FR76 3000 4000 0500 0012 3456 789, en rappelant le numéro "
    "du contrat.",
)
CLIENT_ADDRESS = PostalAddress(
    lines=("Appartement 12", "8 avenue des Tilleuls"), postal_code="75011", city="Paris"
)


def example_letter(**changes: Any) -> FormalNoticeLetter:
    letter = FormalNoticeLetter(
        broker=BROKER,
        insurer=Insurer(name="Mutuelle Exemple"),
        client_name="Mme Claire Dupont",
        client_address=CLIENT_ADDRESS,
        contract_reference="HAB-2027-0042",
        product_name="Multirisque habitation",
        installment_label="1er trimestre 2027",
        due_date=date(2027, 3, 1),
        amount_due=Decimal("1234.50"),
        currency="EUR",
        letter_date=date(2027, 3, 12),
        letter_id="LTR-01J8Z3K4M5N6P7Q8R9S0T1V2W3",
    )
    return dataclasses.replace(letter, **changes)
