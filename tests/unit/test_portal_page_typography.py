"""Issue 15, item 5 for the portal page: what a person reads there follows French typography. A no-break
space (U+00A0) before `:` and inside « », a narrow no-break space (U+202F) before ; ! ?, and the
typographic apostrophe. The page's visible texts come from three places: the HTML, the strings of its
script, and the CSS `content`; the privacy notice comes from the API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chalicelib.domain.accounts import Account
from chalicelib.domain.plans import Plan
from chalicelib.domain.privacy import privacy_notice

PAGE = Path(__file__).resolve().parents[2] / "chalicelib" / "portal_page"
VISIBLE_ATTRIBUTES = {"alt", "title", "aria-label", "placeholder", "value"}
_MISTAKES = [
    (re.compile(r"[ \u202f]:"), "an ordinary or narrow space before ':' (U+00A0 is due)"),
    (re.compile(r"[ \u00a0][;!?]"), "an ordinary or no-break space before ; ! ? (U+202F is due)"),
    (re.compile(r"[ \u202f]»|«[ \u202f]"), "an ordinary space inside « » (U+00A0 is due)"),
    (re.compile(r"\w'\w"), "a straight apostrophe (’ is due)"),
]


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.texts += [value for name, value in attrs if name in VISIBLE_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            # Only ASCII white space folds: the no-break spaces are what is checked.
            self.texts.append(re.sub(r"[ \t\r\n]+", " ", data).strip())


def html_texts() -> list[str]:
    parser = _Texts()
    parser.feed((PAGE / "index.html").read_text(encoding="utf-8"))
    return parser.texts


def script_texts() -> list[str]:
    """The double-quoted string literals of the script outside its comments, decoded as JavaScript would."""
    source = re.sub(
        r"/\*.*?\*/|^\s*//.*$", "", (PAGE / "portal.js").read_text(encoding="utf-8"), flags=re.S | re.M
    )
    return [json.loads(f'"{literal}"') for literal in re.findall(r'"((?:[^"\\\n]|\\.)*)"', source)]


def css_texts() -> list[str]:
    found = re.findall(r'content:\s*"([^"]*)"', (PAGE / "portal.css").read_text(encoding="utf-8"))
    return [re.sub(r"\\([0-9a-fA-F]{1,6}) ?", lambda m: chr(int(m.group(1), 16)), text) for text in found]


def notice_texts() -> list[str]:
    account = Account(
        "a1", "Martin", Plan.PREMIUM, frozenset(), "contact@martin.fr", datetime(2027, 1, 1, tzinfo=UTC)
    )
    notice = privacy_notice(account, "Demande de location", "Léa Martin")
    return [notice.purpose, notice.retention, notice.rights]


def _mistakes(texts: list[str]) -> list[tuple[str, str]]:
    return [(text, why) for text in texts for pattern, why in _MISTAKES if pattern.search(text)]


@pytest.mark.parametrize("source", [html_texts, script_texts, css_texts, notice_texts])
def test_the_portal_page_texts_follow_french_typography(source: object) -> None:
    assert callable(source)
    texts = source()
    assert texts, "the extraction found nothing to check"
    assert _mistakes(texts) == []


def test_the_check_catches_each_mistake_it_names() -> None:
    wrong = ["Vous :", "Merci !", "Vous avez tout déposé ?", "« Bail »", "J'ai terminé", "a\u00a0; b"]
    assert [text for text, _ in _mistakes(wrong)] == wrong
    assert _mistakes(["Vous\u00a0:", "Merci\u202f!", "«\u00a0Bail\u00a0»", "J’ai terminé"]) == []
