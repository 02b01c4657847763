"""The formal notice (mise en demeure) of art. L113-3 Code des assurances, which art. R113-1 makes a
registered letter: what it says, as plain values, before any PDF exists.

`formal_notice_text` decides every word; `chalicelib.adapters.letter_pdf` only lays the words out on A4.
Keeping the wording here makes it testable without a PDF library and lets the dunning timeline prepare a
letter from values it already holds (the policy's days, the amount still owed after partial payments).

French typography applies to the text written here: a no-break space before ":" and inside « »,
a narrow no-break space before ";", "!" and "?", the typographic apostrophe ’. Values the broker or the
client typed (names, labels, payment instructions) are printed as they were entered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from chalicelib.domain.formatting import (
    NO_BREAK_SPACE,
    french_amount,
    french_date,
    french_long_date,
)
from chalicelib.domain.legal import BrokerIdentity, Insurer, PostalAddress

DEFAULT_SUSPENSION_DAYS = 30
"""Art. L113-3 al. 2: the cover can be suspended no sooner than 30 days after the formal notice."""
DEFAULT_TERMINATION_DAYS = 10
"""Art. L113-3 al. 3: the insurer may terminate 10 days after the suspension period has run."""

REGISTERED_MAIL_MENTION = "Lettre recommandée avec demande d’avis de réception"
SALUTATION = "Madame, Monsieur,"
CLOSING = "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations distinguées."
REINSTATEMENT = (
    "Conformément à l’article L113-3, alinéa 4, du Code des assurances, le contrat non résilié reprend pour "
    "l’avenir ses effets à midi le lendemain du jour où ont été payées à l’assureur ou au mandataire désigné "
    "par lui à cet effet la prime arriérée ou, en cas de fractionnement de la prime annuelle, les fractions "
    "de prime ayant fait l’objet de la mise en demeure et celles venues à échéance pendant la période de "
    "suspension ainsi que, éventuellement, les frais de poursuites et de recouvrement."
)
_NBSP = NO_BREAK_SPACE


@dataclass(frozen=True, kw_only=True)
class FormalNoticeLetter:
    """Everything the letter names. `amount_due` is what the client still owes after partial payments;
    `letter_date` is the day the letter is prepared (the suspension runs from its sending, not from it)."""

    broker: BrokerIdentity
    insurer: Insurer
    client_name: str
    client_address: PostalAddress
    contract_reference: str
    product_name: str | None
    installment_label: str | None
    due_date: date
    amount_due: Decimal
    currency: str
    letter_date: date
    letter_id: str
    suspension_days: int = DEFAULT_SUSPENSION_DAYS
    termination_days: int = DEFAULT_TERMINATION_DAYS


@dataclass(frozen=True)
class LetterText:
    """The words of a letter, block by block, in reading order."""

    sender_lines: tuple[str, ...]
    recipient_lines: tuple[str, ...]
    """For the envelope window: name, street lines, "CODE VILLE"."""
    registered_mail_mention: str
    place_and_date: str
    reference_lines: tuple[str, ...]
    subject: str
    paragraphs: tuple[str, ...]
    """The salutation first, then the body, one string per paragraph."""
    closing: str
    signature_lines: tuple[str, ...]
    footer_lines: tuple[str, ...]
    """The broker's legal mentions, the mediator included (a dunning notice names it)."""


def formal_notice_text(letter: FormalNoticeLetter) -> LetterText:
    broker, address = letter.broker, letter.broker.address
    amount = french_amount(letter.amount_due, letter.currency)
    contract = _contract_words(letter)
    sender_lines = (broker.legal_name, *address.lines, f"{address.postal_code} {address.city}")
    if broker.phone:
        sender_lines = (*sender_lines, f"Tél.{_NBSP}{broker.phone}")
    paragraphs = (
        SALUTATION,
        f"Sauf erreur de notre part, {_premium_words(letter)} de {contract}, venue à échéance le "
        f"{french_date(letter.due_date)}, demeure impayée à ce jour{_NBSP}: la somme de {amount} "
        "reste due.",
        f"Agissant pour le compte de l’assureur {letter.insurer.name}, nous vous mettons en demeure de payer "
        f"cette somme de {amount}. La présente lettre vous est adressée en application des articles L113-3 "
        "et R113-1 du Code des assurances.",
        _how_to_pay(broker),
        f"À défaut de paiement dans un délai de {_days(letter.suspension_days)} à compter de l’envoi de la "
        "présente lettre, la garantie sera suspendue, et l’assureur aura le droit de résilier le contrat "
        f"{_days(letter.termination_days)} après l’expiration de ce délai de "
        f"{_days(letter.suspension_days)}.",
        REINSTATEMENT,
        "Si vous avez réglé cette somme entre-temps, nous vous prions de ne pas tenir compte de la présente "
        "lettre.",
    )
    return LetterText(
        sender_lines=sender_lines,
        recipient_lines=letter.client_address.envelope_lines(letter.client_name),
        registered_mail_mention=REGISTERED_MAIL_MENTION,
        place_and_date=f"{address.city}, le {french_long_date(letter.letter_date)}",
        reference_lines=_reference_lines(letter),
        subject=f"Objet{_NBSP}: Mise en demeure de payer – contrat n°{_NBSP}{letter.contract_reference}",
        paragraphs=paragraphs,
        closing=CLOSING,
        signature_lines=(broker.legal_name, f"pour le compte de {letter.insurer.name}"),
        footer_lines=broker.mentions(with_mediator=True),
    )


def _contract_words(letter: FormalNoticeLetter) -> str:
    """`votre contrat Multirisque habitation n° HAB-42`, or without the product when it has no name."""
    product = f" {letter.product_name}" if letter.product_name else ""
    return f"votre contrat{product} n°{_NBSP}{letter.contract_reference}"


def _premium_words(letter: FormalNoticeLetter) -> str:
    if letter.installment_label:
        return f"la prime «{_NBSP}{letter.installment_label}{_NBSP}»"
    return "la prime"


def _how_to_pay(broker: BrokerIdentity) -> str:
    if broker.payment_instructions:
        return f"Modalités de paiement{_NBSP}: {broker.payment_instructions}"
    contact = f" au {broker.phone}" if broker.phone else ""
    return (
        f"Pour régler cette somme, nous vous invitons à prendre contact avec notre cabinet{contact} ou à "
        "nous écrire à l’adresse figurant en tête de la présente lettre."
    )


def _reference_lines(letter: FormalNoticeLetter) -> tuple[str, ...]:
    contract = f"Contrat n°{_NBSP}{letter.contract_reference}"
    if letter.product_name:
        contract += f" – {letter.product_name}"
    due_on = french_date(letter.due_date)
    installment = f"{due_on} ({letter.installment_label})" if letter.installment_label else due_on
    return (
        contract,
        f"Assureur{_NBSP}: {letter.insurer.name}",
        f"Échéance{_NBSP}: {installment}",
        f"Somme restant due{_NBSP}: {french_amount(letter.amount_due, letter.currency)}",
        f"Notre référence{_NBSP}: {letter.letter_id}",
    )


def _days(count: int) -> str:
    """`30 jours`, never split across two lines."""
    return f"{count}{_NBSP}jour{'s' if count > 1 else ''}"
