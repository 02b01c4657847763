"""The formal notice laid out as an A4 PDF, ready to print, fold in three and post in a window envelope,
or to hand to an online registered-letter service.

`chalicelib.domain.letters` decides the words; this module only places them. fpdf2 is imported here and
nowhere else: only the worker that prepares letters imports this module, so `app` and the other functions
never pay for loading it (tests/unit/test_letter_pdf.py checks it).

The PDF is deterministic: the same letter gives the same bytes, so a retry stores the same SHA-256. Nothing
variable goes in: the creation date is the letter's date, fpdf2 derives the file identifier from the content,
and the fonts are the vendored DejaVu files (fonts/README.md), which fpdf2 subsets to the glyphs used.
"""

from __future__ import annotations

import copy
import functools
import io
import unicodedata
from datetime import datetime, time
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos
from fpdf.fonts import TTFFont

from chalicelib.domain.letters import FormalNoticeLetter, LetterText, formal_notice_text

FONTS = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_FILES = {"": FONTS / "DejaVuSans.ttf", "B": FONTS / "DejaVuSans-Bold.ttf"}
"""The vendored files by fpdf2 style: regular and bold."""
PARIS = ZoneInfo("Europe/Paris")

# Millimetres on an A4 portrait page (210 × 297).
PAGE_WIDTH = 210.0
PAGE_HEIGHT = 297.0
LEFT = 20.0
RIGHT = 20.0
TOP = 15.0
TEXT_WIDTH = PAGE_WIDTH - LEFT - RIGHT

# The recipient's address, where the right-hand window of a DL (110 × 220 mm) or C5/6 envelope shows it once
# the letter is folded in three: a frame 85 mm wide and 33 mm high whose top left corner lies 110 mm from the
# left edge and 55 mm from the top. That is where La Poste's guidance for window envelopes puts it, as relayed
# by mailing houses (e.g. edics.fr, "Rédiger vos adresses : les bonnes pratiques"); it leaves room above the
# address for the barcode of a registered letter. NF Z10-011 caps the block at 6 lines of 38 characters:
# 6 lines of 5 mm fill the 33 mm frame, and a line too wide for 85 mm is condensed, never cut or wrapped.
ADDRESS_LEFT = 110.0
ADDRESS_TOP = 55.0
ADDRESS_WIDTH = 85.0
ADDRESS_LINE_HEIGHT = 5.0
ADDRESS_FONT_SIZE = 10.0
ADDRESS_MAX_LINES = 6

BODY_FONT_SIZE = 9.0
BODY_LINE_HEIGHT = 4.3
PARAGRAPH_GAP = 2.2
SIGNATURE_GAP = 5.0
FOOTER_FONT_SIZE = 6.5
FOOTER_LINE_HEIGHT = 2.9
FOOTER_BOTTOM = 10.0
"""From the page's bottom edge to the bottom of the footer's last line."""
FOOTER_RESERVED = 27.0
"""Kept free at the bottom of every page for the legal mentions (up to 4 lines) and the page number."""
MENTION_SEPARATOR = " – "


def render_formal_notice(letter: FormalNoticeLetter) -> bytes:
    """The letter as PDF bytes; the same letter always gives the same bytes.

    A letter longer than one page is laid out a second time with "Page n/N" in its footers: the count is
    known only once the body has been laid out, and a one-page letter carries no page number."""
    text = formal_notice_text(letter)
    pdf = _laid_out(letter, text, numbered=False)
    if pdf.pages_count > 1:
        pdf = _laid_out(letter, text, numbered=True)
    return bytes(pdf.output())


class _LetterPdf(FPDF):
    """A4 pages whose footer carries the broker's legal mentions and, when `numbered`, "Page n/N"."""

    def __init__(self, mentions: tuple[str, ...], numbered: bool) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.mentions = MENTION_SEPARATOR.join(mentions)
        self.numbered = numbered

    def normalize_text(self, text: str) -> str:
        """Composed (NFC) before fpdf2 measures or draws it: an accent typed as a combining character
        prints on its letter, with the precomposed glyph that the fonts carry (fpdf2 does not shape text)."""
        return super().normalize_text(unicodedata.normalize("NFC", text))

    def footer(self) -> None:
        self.set_font(FONT, "", FOOTER_FONT_SIZE)
        lines = _wrapped(self, self.mentions, TEXT_WIDTH) or [self.mentions]
        top = PAGE_HEIGHT - FOOTER_BOTTOM - len(lines) * FOOTER_LINE_HEIGHT
        self.set_draw_color(150)
        self.set_line_width(0.2)
        self.line(LEFT, top - 1.5, PAGE_WIDTH - RIGHT, top - 1.5)
        self.set_xy(LEFT, top)
        for line in lines:
            self.cell(w=TEXT_WIDTH, h=FOOTER_LINE_HEIGHT, text=line, align=Align.C)
            self.ln(FOOTER_LINE_HEIGHT)
        if self.numbered:
            self.set_xy(LEFT, PAGE_HEIGHT - FOOTER_BOTTOM)
            page = f"Page {self.page_no()}/{{nb}}"
            self.cell(w=TEXT_WIDTH, h=FOOTER_LINE_HEIGHT, text=page, align=Align.R)


def _laid_out(letter: FormalNoticeLetter, text: LetterText, numbered: bool) -> _LetterPdf:
    pdf = _LetterPdf(text.footer_lines, numbered)
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(auto=True, margin=FOOTER_RESERVED)
    _add_fonts(pdf)
    pdf.set_lang("fr-FR")
    pdf.set_title(f"Mise en demeure de payer – contrat n°\u00a0{letter.contract_reference}")
    pdf.set_subject("Mise en demeure (articles L113-3 et R113-1 du Code des assurances)")
    pdf.set_author(letter.broker.legal_name)
    pdf.set_creator("Relais")
    # Midnight in Paris on the letter's day, not the moment of rendering: a retry must give the same bytes.
    pdf.set_creation_date(datetime.combine(letter.letter_date, time(0), tzinfo=PARIS))
    pdf.add_page()
    _sender_and_mention(pdf, text)
    _recipient(pdf, text.recipient_lines)
    _place_date_references_and_subject(pdf, text)
    _body(pdf, text)
    return pdf


def _add_fonts(pdf: FPDF) -> None:
    """Give the document its own copy of the fonts, parsed once per process.

    Parsing the two files (widths, character map) took a third of each rendering, so it is done once and
    each document gets a copy made the way fpdf2 copies a document for its `FPDFRecorder`: widths and glyph
    subset of its own, the opened font file shared. The PDF output cuts that file down to the glyphs used,
    in place, so each copy gets the file opened afresh (lazily: opening reads nothing yet). Its glyph
    bounding boxes are kept as they are: the vendored files carry correct ones, and recomputing them decodes
    and re-encodes every embedded glyph, half of the output's time."""
    for style, parsed in _parsed_fonts().items():
        font = copy.deepcopy(parsed)
        font.ttfont = TTFont(
            io.BytesIO(_font_bytes(style)), lazy=True, recalcTimestamp=False, recalcBBoxes=False
        )
        pdf.fonts[font.fontkey] = font


@functools.cache
def _parsed_fonts() -> dict[str, TTFFont]:
    reader = FPDF()
    for style, path in FONT_FILES.items():
        reader.add_font(FONT, style, path)
    # A TrueType file always gives a TTFFont; the registry's type also admits the 14 built-in PDF fonts.
    return {style: cast(TTFFont, reader.fonts[f"{FONT.lower()}{style}"]) for style in FONT_FILES}


@functools.cache
def _font_bytes(style: str) -> bytes:
    return FONT_FILES[style].read_bytes()


def _sender_and_mention(pdf: FPDF, text: LetterText) -> None:
    name, *rest = text.sender_lines
    pdf.set_xy(LEFT, TOP)
    pdf.set_font(FONT, "B", 10)
    pdf.cell(text=name, h=5, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    for line in rest:
        pdf.cell(text=line, h=4.2, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    # Left of the window, level with the address: read by whoever opens the letter, never shown in the
    # window, where it would confuse the machines that read addresses.
    pdf.set_xy(LEFT, ADDRESS_TOP)
    pdf.set_font(FONT, "B", 9.5)
    pdf.multi_cell(w=ADDRESS_LEFT - LEFT - 20, h=4.6, text=text.registered_mail_mention, align=Align.L)


def _recipient(pdf: FPDF, lines: tuple[str, ...]) -> None:
    pdf.set_font(FONT, "", ADDRESS_FONT_SIZE)
    widest = max(pdf.get_string_width(line) + 2 * pdf.c_margin for line in lines)
    if widest > ADDRESS_WIDTH:
        pdf.set_stretching(100 * ADDRESS_WIDTH / widest)
    pdf.set_y(ADDRESS_TOP)
    for line in lines:
        pdf.set_x(ADDRESS_LEFT)
        pdf.cell(w=ADDRESS_WIDTH, h=ADDRESS_LINE_HEIGHT, text=line, new_y=YPos.NEXT)
    pdf.set_stretching(100)


def _place_date_references_and_subject(pdf: FPDF, text: LetterText) -> None:
    pdf.set_font(FONT, "", BODY_FONT_SIZE)
    pdf.set_xy(ADDRESS_LEFT, ADDRESS_TOP + ADDRESS_MAX_LINES * ADDRESS_LINE_HEIGHT + 5)
    pdf.cell(w=ADDRESS_WIDTH, h=BODY_LINE_HEIGHT, text=text.place_and_date)
    pdf.set_xy(LEFT, pdf.get_y() + 8)
    pdf.set_font(FONT, "", 8)
    for line in text.reference_lines:
        pdf.cell(text=line, h=3.8, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)
    pdf.set_font(FONT, "B", 10)
    pdf.multi_cell(w=TEXT_WIDTH, h=5, text=text.subject, align=Align.L, new_x=XPos.LMARGIN)
    pdf.ln(4)


def _body(pdf: FPDF, text: LetterText) -> None:
    pdf.set_font(FONT, "", BODY_FONT_SIZE)
    for paragraph in (*text.paragraphs, text.closing):
        _paragraph(pdf, paragraph)
        pdf.ln(PARAGRAPH_GAP)
    # The signature stays in one piece, on the next page when this one has no room left for it.
    if pdf.will_page_break(SIGNATURE_GAP + len(text.signature_lines) * BODY_LINE_HEIGHT):
        pdf.add_page()
    pdf.ln(SIGNATURE_GAP)
    name, *rest = text.signature_lines
    pdf.set_font(FONT, "B", BODY_FONT_SIZE)
    pdf.set_x(ADDRESS_LEFT)
    pdf.cell(text=name, h=BODY_LINE_HEIGHT, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", BODY_FONT_SIZE)
    for line in rest:
        pdf.cell(text=line, h=BODY_LINE_HEIGHT, new_x=XPos.LEFT, new_y=YPos.NEXT)


def _paragraph(pdf: FPDF, paragraph: str) -> None:
    """Left-aligned lines broken at spaces (never at a no-break space).

    fpdf2's `multi_cell` measures a paragraph character by character and took a third of the whole
    rendering; it only serves text it must cut inside a word (a line break typed by the broker, a word
    wider than the page)."""
    lines = _wrapped(pdf, paragraph, TEXT_WIDTH) if "\n" not in paragraph else None
    if lines is None:
        pdf.multi_cell(w=TEXT_WIDTH, h=BODY_LINE_HEIGHT, text=paragraph, align=Align.L, new_x=XPos.LMARGIN)
        return
    for line in lines:
        pdf.cell(w=TEXT_WIDTH, h=BODY_LINE_HEIGHT, text=line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


_CHAR_WIDTHS: dict[tuple[object, ...], dict[str, float]] = {}
"""Each character's width by font (family, style, size, stretching, spacing): the same few fonts and the
same few hundred characters serve every letter a worker renders."""


def _wrapped(pdf: FPDF, text: str, width: float) -> list[str] | None:
    """Greedy line breaking at spaces, in the current font, for cells `width` wide; None when a word alone
    is wider than that.

    Each character is measured once per process and font: fpdf2's `get_string_width` costs as much for
    one character as for a word, and without text shaping a word is exactly as wide as its characters."""
    room = width - 2 * pdf.c_margin
    text = pdf.normalize_text(text)
    font = (pdf.font_family, pdf.font_style, pdf.font_size_pt, pdf.font_stretching, pdf.char_spacing)
    char_widths = _CHAR_WIDTHS.setdefault(font, {})

    def measured(word: str) -> float:
        for char in word:
            if char not in char_widths:
                char_widths[char] = pdf.get_string_width(char)
        return sum(char_widths[char] for char in word)

    space = measured(" ")
    lines: list[str] = []
    line: list[str] = []
    line_width = 0.0
    for word in text.split(" "):
        word_width = measured(word)
        if word_width > room:
            return None
        if line and line_width + space + word_width > room:
            lines.append(" ".join(line))
            line, line_width = [], 0.0
        line_width += (space if line else 0.0) + word_width
        line.append(word)
    lines.append(" ".join(line))
    return lines
