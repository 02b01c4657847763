"""The registered letter as printed: what its text says once extracted from the PDF, where the address falls
for the envelope window, that its fonts travel with it, and that a retry gives the same bytes."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

import pytest
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from chalicelib.adapters.letter_pdf import render_formal_notice
from chalicelib.domain.legal import PostalAddress
from chalicelib.local.stack import ROOT
from tests.letter_examples import BROKER, example_letter

MM = 72 / 25.4
"""PDF points per millimetre."""
LONG_INSTRUCTIONS = (
    "virement sur l’IBAN FR76 3000 4000 0500 0012 3456 789 (BIC BNPAFRPPXXX), en rappelant le numéro du "
    "contrat et la référence de la présente lettre. "
) * 8


@pytest.fixture(scope="module")
def letter_pdf() -> bytes:
    return render_formal_notice(example_letter())


def _pages_text(pdf: bytes) -> list[str]:
    """Each page's text with every run of spaces, no-break spaces and line ends read as one space."""
    reader = PdfReader(io.BytesIO(pdf))
    return [re.sub(r"[\s\u00a0\u202f]+", " ", page.extract_text()) for page in reader.pages]


def _text(pdf: bytes) -> str:
    return " ".join(_pages_text(pdf))


def _placed_lines(pdf: bytes) -> Iterator[tuple[str, float, float]]:
    """(text, mm from the left edge, mm from the top edge of its baseline) of every text run of page 1."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    height = float(page.mediabox.height)
    runs: list[tuple[str, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
        if text.strip():
            x = cm[0] * tm[4] + cm[2] * tm[5] + cm[4]
            y = cm[1] * tm[4] + cm[3] * tm[5] + cm[5]
            runs.append((text.strip(), x / MM, (height - y) / MM))

    page.extract_text(visitor_text=visit)
    return iter(runs)


def test_the_letter_names_everything_the_api_asks_for(letter_pdf: bytes) -> None:
    text = _text(letter_pdf)
    for expected in (
        "Lettre recommandée avec demande d’avis de réception",
        "Objet : Mise en demeure de payer – contrat n° HAB-2027-0042",
        "Cabinet Martin Courtage SARL",
        "immatriculé à l’ORIAS sous le n° 12345678 (www.orias.fr)",
        "RCS Lyon 812 345 678",
        "Médiateur : La Médiation de l’Assurance (https://www.mediation-assurance.org)",
        "Agissant pour le compte de l’assureur Mutuelle Exemple",
        "Mme Claire Dupont Appartement 12 8 avenue des Tilleuls 75011 PARIS",
        "Lyon, le 12 mars 2027",
        "votre contrat Multirisque habitation n° HAB-2027-0042, venue à échéance le 01/03/2027",
        "la somme de 1 234,50 € reste due",
        "Modalités de paiement : virement sur l’IBAN FR76 3000 4000 0500 0012 3456 789",
        "À défaut de paiement dans un délai de 30 jours à compter de l’envoi de la présente lettre, "
        "la garantie sera suspendue",
        "l’assureur aura le droit de résilier le contrat 10 jours après l’expiration de ce délai de 30 jours",
        "le contrat non résilié reprend pour l’avenir ses effets à midi le lendemain du jour où ont été",
        "les frais de poursuites et de recouvrement",
        "en application des articles L113-3 et R113-1 du Code des assurances",
        "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations distinguées.",
    ):
        assert expected in text


def test_the_printed_letter_carries_the_policy_s_days_and_what_remains_owed() -> None:
    letter = example_letter(suspension_days=45, termination_days=15, amount_due=Decimal("234.50"))
    text = _text(render_formal_notice(letter))
    assert "dans un délai de 45 jours à compter de l’envoi" in text
    assert "résilier le contrat 15 jours après l’expiration de ce délai de 45 jours" in text
    assert "la somme de 234,50 € reste due" in text
    assert "30 jours" not in text


def test_the_page_is_a4_portrait(letter_pdf: bytes) -> None:
    for page in PdfReader(io.BytesIO(letter_pdf)).pages:
        assert float(page.mediabox.width) == pytest.approx(595, abs=1)
        assert float(page.mediabox.height) == pytest.approx(842, abs=1)


def test_every_font_is_embedded(letter_pdf: bytes) -> None:
    fonts = []
    for page in PdfReader(io.BytesIO(letter_pdf)).pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        for reference in cast(DictionaryObject, resources["/Font"].get_object()).values():
            font = cast(DictionaryObject, reference.get_object())
            descendant = font
            if "/DescendantFonts" in font:
                descendants = cast(ArrayObject, font["/DescendantFonts"].get_object())
                descendant = cast(DictionaryObject, descendants[0].get_object())
            descriptor = cast(DictionaryObject, descendant["/FontDescriptor"].get_object())
            fonts.append(font["/BaseFont"])
            assert "/FontFile2" in descriptor, font["/BaseFont"]
            assert "/ToUnicode" in font, "text must be extractable"
    assert len(fonts) == 2, fonts


def test_the_address_block_lies_in_the_window_of_a_dl_envelope(letter_pdf: bytes) -> None:
    placed: dict[str, tuple[float, float]] = {}
    for text, left, top in _placed_lines(letter_pdf):
        placed.setdefault(text, (left, top))
    for line in ("Mme Claire Dupont", "Appartement 12", "8 avenue des Tilleuls", "75011 PARIS"):
        left, baseline = placed[line]
        assert 100 <= left <= 112, f"{line!r} starts {left:.1f} mm from the left edge"
        assert 45 <= baseline <= 90, f"{line!r} sits {baseline:.1f} mm from the top edge"
    sender_left, sender_top = placed["Cabinet Martin Courtage SARL"]
    assert sender_left < 30
    assert sender_top < 30


def test_a_long_address_is_condensed_to_stay_in_the_window() -> None:
    address = PostalAddress(
        lines=(
            "RESIDENCE LES JARDINS DE MONTMORENCY BA",
            "BATIMENT C ESCALIER 4 APPARTEMENT 1204",
            "123 BOULEVARD DU MARECHAL DE LATTRE DE",
            "LIEU-DIT LES GRANDS CHAMPS DU MOULIN BL",
        ),
        postal_code="95160",
        city="MONTMORENCY-SUR-LE-GRAND-CANAL-DU",
    )
    pdf = render_formal_notice(example_letter(client_address=address))
    placed = {text: (left, top) for text, left, top in _placed_lines(pdf)}
    tops = [placed[line][1] for line in (*address.lines, "95160 MONTMORENCY-SUR-LE-GRAND-CANAL-DU")]
    assert all(100 <= placed[line][0] <= 112 for line in address.lines)
    assert min(tops) >= 45
    assert max(tops) <= 90
    condensed = [float(scale) for scale in re.findall(rb"BT ([\d.]+) Tz ET", _content(pdf))]
    assert min(condensed) < 100, "the widest lines are condensed, never cut"


def test_rendering_the_same_letter_again_gives_the_same_bytes(letter_pdf: bytes) -> None:
    render_formal_notice(example_letter(client_name="M. Łukasz Wąsowski-Ğüneş"))
    assert render_formal_notice(example_letter()) == letter_pdf


def test_a_name_with_letters_the_previous_letter_did_not_use_prints_them() -> None:
    render_formal_notice(example_letter())
    text = _text(render_formal_notice(example_letter(client_name="M. Łukasz Wąsowski-Ğüneş")))
    assert "M. Łukasz Wąsowski-Ğüneş" in text


def test_an_accent_typed_as_a_combining_character_prints_on_its_letter() -> None:
    decomposed = unicodedata.normalize("NFD", "Mme Hélène Nguyễn")
    text = _text(render_formal_notice(example_letter(client_name=decomposed)))
    assert "Mme Hélène Nguyễn" in text


def test_a_letter_weighs_at_most_60_kb(letter_pdf: bytes) -> None:
    assert len(letter_pdf) <= 60_000


def test_a_one_page_letter_carries_no_page_number(letter_pdf: bytes) -> None:
    assert len(PdfReader(io.BytesIO(letter_pdf)).pages) == 1
    assert "Page 1" not in _text(letter_pdf)


def test_a_letter_running_over_one_page_numbers_its_pages_and_repeats_the_legal_mentions() -> None:
    broker = dataclasses.replace(BROKER, payment_instructions=LONG_INSTRUCTIONS)
    pages = _pages_text(render_formal_notice(example_letter(broker=broker)))
    assert len(pages) == 2
    for number, page in enumerate(pages, start=1):
        assert f"Page {number}/2" in page
        assert "ORIAS sous le n° 12345678" in page
    assert "Cabinet Martin Courtage SARL pour le compte de Mutuelle Exemple" in pages[1]


def test_a_word_wider_than_the_page_is_cut_to_stay_within_the_margins() -> None:
    address = "https://paiement.cabinet-martin.example/" + "x" * 160
    broker = dataclasses.replace(BROKER, payment_instructions=f"paiement en ligne sur {address}")
    pdf = render_formal_notice(example_letter(broker=broker))
    lines = PdfReader(io.BytesIO(pdf)).pages[0].extract_text().splitlines()
    assert len([line for line in lines if "xxxxx" in line]) >= 2
    assert address in "".join(lines)


def test_importing_the_app_does_not_load_the_pdf_library() -> None:
    """Only the worker that prepares letters pays for fpdf2 and fontTools; every API call would otherwise
    load them at cold start."""
    ran = subprocess.run(
        [sys.executable, "-c", "import sys, app; print(sorted({'fpdf', 'fontTools'} & set(sys.modules)))"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "[]"


def _content(pdf: bytes) -> bytes:
    contents = PdfReader(io.BytesIO(pdf)).pages[0].get_contents()
    assert contents is not None
    return contents.get_data()
