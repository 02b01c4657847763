"""The words of the formal notice (art. L113-3 and R113-1 Code des assurances), as the client reads them."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal

from chalicelib.domain.legal import Insurer
from chalicelib.domain.letters import LetterText, formal_notice_text
from tests.letter_examples import BROKER, example_letter

NBSP = "\u00a0"
NNBSP = "\u202f"


def _everything(text: LetterText) -> str:
    return "\n".join(
        (
            *text.sender_lines,
            *text.recipient_lines,
            text.registered_mail_mention,
            text.place_and_date,
            *text.reference_lines,
            text.subject,
            *text.paragraphs,
            text.closing,
            *text.signature_lines,
            *text.footer_lines,
        )
    )


def _body(text: LetterText) -> str:
    return " ".join(text.paragraphs).replace(NBSP, " ").replace(NNBSP, " ")


def test_the_letter_says_it_is_registered_with_acknowledgement_of_receipt() -> None:
    text = formal_notice_text(example_letter())
    assert text.registered_mail_mention == "Lettre recommandée avec demande d’avis de réception"


def test_the_subject_is_a_formal_notice_to_pay_naming_the_contract() -> None:
    text = formal_notice_text(example_letter())
    assert text.subject == f"Objet{NBSP}: Mise en demeure de payer – contrat n°{NBSP}HAB-2027-0042"


def test_the_letter_opens_with_madame_monsieur_and_closes_with_the_formal_salutation() -> None:
    text = formal_notice_text(example_letter())
    assert text.paragraphs[0] == "Madame, Monsieur,"
    assert text.closing == (
        "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations distinguées."
    )


def test_the_letter_names_the_unpaid_premium_its_due_date_and_the_amount_still_owed() -> None:
    body = _body(formal_notice_text(example_letter()))
    assert (
        "la prime « 1er trimestre 2027 » de votre contrat Multirisque habitation n° HAB-2027-0042, "
        "venue à échéance le 01/03/2027, demeure impayée à ce jour : la somme de 1 234,50 € reste due."
    ) in body


def test_after_a_partial_payment_the_letter_asks_only_for_what_remains() -> None:
    text = formal_notice_text(example_letter(amount_due=Decimal("234.50")))
    assert "la somme de 234,50 € reste due" in _body(text)
    assert "1 234,50" not in _body(text)
    assert f"Somme restant due{NBSP}: 234,50{NBSP}€" in text.reference_lines


def test_a_premium_without_label_or_product_still_reads_as_a_sentence() -> None:
    text = formal_notice_text(example_letter(installment_label=None, product_name=None))
    assert "Sauf erreur de notre part, la prime de votre contrat n° HAB-2027-0042, venue à échéance" in (
        _body(text)
    )
    assert f"Échéance{NBSP}: 01/03/2027" in text.reference_lines
    assert f"Contrat n°{NBSP}HAB-2027-0042" in text.reference_lines


def test_the_notice_is_given_for_the_account_of_the_insurer_under_l113_3_and_r113_1() -> None:
    text = formal_notice_text(example_letter())
    body = _body(text)
    assert "Agissant pour le compte de l’assureur Mutuelle Exemple, nous vous mettons en demeure" in body
    assert "en application des articles L113-3 et R113-1 du Code des assurances" in body
    assert f"Assureur{NBSP}: Mutuelle Exemple" in text.reference_lines
    assert text.signature_lines == ("Cabinet Martin Courtage SARL", "pour le compte de Mutuelle Exemple")


def test_the_client_is_told_how_to_pay_in_the_broker_s_own_words() -> None:
    body = _body(formal_notice_text(example_letter()))
    assert "Modalités de paiement : virement sur l’IBAN FR76 3000 4000 0500 0012 3456 789" in body


def test_without_payment_instructions_the_client_is_asked_to_contact_the_broker() -> None:
    broker = dataclasses.replace(BROKER, payment_instructions=None)
    body = _body(formal_notice_text(example_letter(broker=broker)))
    assert "nous vous invitons à prendre contact avec notre cabinet au 04 78 00 00 00" in body
    assert "Modalités de paiement" not in body


def test_suspension_and_termination_follow_the_default_policy() -> None:
    body = _body(formal_notice_text(example_letter()))
    assert (
        "À défaut de paiement dans un délai de 30 jours à compter de l’envoi de la présente lettre, "
        "la garantie sera suspendue, et l’assureur aura le droit de résilier le contrat 10 jours après "
        "l’expiration de ce délai de 30 jours."
    ) in body


def test_the_policy_s_own_days_are_written_never_thirty_and_ten() -> None:
    body = _body(formal_notice_text(example_letter(suspension_days=45, termination_days=15)))
    assert "dans un délai de 45 jours à compter de l’envoi" in body
    assert "résilier le contrat 15 jours après l’expiration de ce délai de 45 jours" in body
    assert "30 jours" not in body
    assert "10 jours" not in body


def test_the_letter_says_when_cover_resumes_in_the_words_of_l113_3() -> None:
    body = _body(formal_notice_text(example_letter()))
    assert (
        "le contrat non résilié reprend pour l’avenir ses effets à midi le lendemain du jour où ont été "
        "payées à l’assureur ou au mandataire désigné par lui à cet effet la prime arriérée ou, en cas de "
        "fractionnement de la prime annuelle, les fractions de prime ayant fait l’objet de la mise en "
        "demeure et celles venues à échéance pendant la période de suspension ainsi que, éventuellement, "
        "les frais de poursuites et de recouvrement."
    ) in body


def test_the_address_block_is_the_client_s_envelope_lines() -> None:
    text = formal_notice_text(example_letter())
    assert text.recipient_lines == (
        "Mme Claire Dupont",
        "Appartement 12",
        "8 avenue des Tilleuls",
        "75011 PARIS",
    )


def test_the_sender_is_the_broker_with_its_address_and_phone() -> None:
    text = formal_notice_text(example_letter())
    assert text.sender_lines == (
        "Cabinet Martin Courtage SARL",
        "12 rue de la République",
        "69002 Lyon",
        f"Tél.{NBSP}04 78 00 00 00",
    )


def test_the_letter_is_dated_in_words_from_the_broker_s_city() -> None:
    assert formal_notice_text(example_letter()).place_and_date == f"Lyon, le 12{NBSP}mars 2027"
    first = formal_notice_text(example_letter(letter_date=date(2027, 4, 1)))
    assert first.place_and_date == f"Lyon, le 1er{NBSP}avril 2027"


def test_the_references_name_the_contract_insurer_installment_and_letter() -> None:
    text = formal_notice_text(example_letter())
    assert text.reference_lines == (
        f"Contrat n°{NBSP}HAB-2027-0042 – Multirisque habitation",
        f"Assureur{NBSP}: Mutuelle Exemple",
        f"Échéance{NBSP}: 01/03/2027 (1er trimestre 2027)",
        f"Somme restant due{NBSP}: 1{NNBSP}234,50{NBSP}€",
        f"Notre référence{NBSP}: LTR-01J8Z3K4M5N6P7Q8R9S0T1V2W3",
    )


def test_the_footer_carries_the_legal_mentions_and_the_mediator() -> None:
    text = formal_notice_text(example_letter())
    assert text.footer_lines == BROKER.mentions(with_mediator=True)
    assert any("ORIAS" in line and "12345678" in line for line in text.footer_lines)
    assert any(line.startswith(f"Médiateur{NBSP}:") for line in text.footer_lines)


def test_the_text_follows_french_typography() -> None:
    text = _everything(formal_notice_text(example_letter(insurer=Insurer(name="Assurances du Rhône"))))
    assert "'" not in text, "the apostrophe is typographic: ’"
    assert not re.search(r"[^\u00a0]:", text.replace("https:", "")), "a no-break space comes before ':'"
    assert not re.search(r"[^\u202f][;!?]", text), "a narrow no-break space comes before ';', '!' and '?'"
    assert "«\u00a01er trimestre 2027\u00a0»" in text
    assert not re.search(r"« |«\S| »|\S»", text), "no-break spaces inside « »"
