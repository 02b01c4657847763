"""French typography in everything people read (issue 15, item 5): a no-break space (U+00A0) before `:`
and inside `« »`, a narrow no-break space (U+202F) before `; ! ?`, and the typographic apostrophe in
visible text. Read here: every default template (source and rendered in each golden variant), the footers
Relais adds, and the portal page's texts; the unsubscribe pages, as served, in
`tests/integration/test_unsubscribe_api.py`. The local outbox page
(`chalicelib/local/outbox.py`) is a developer tool of `make run`, in English, and is left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.footers import privacy_notice
from chalicelib.domain.templates import DEFAULT_TEMPLATES, UNSUBSCRIBE_SENTENCE
from tests.golden.emails import ACCOUNT, golden_text, variants

ROOT = Path(__file__).resolve().parents[2]
ORDINARY_SPACE_BEFORE = re.compile(r" [:;!?»]")
ORDINARY_SPACE_AFTER = re.compile(r"« ")
_CODE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|<[^>]*>", re.DOTALL)
_URL = re.compile(r"https?://\S+")


def faults(text: str) -> list[str]:
    """Each ordinary space before `: ; ! ? »` or after `«`, with its surroundings."""
    found = []
    for pattern in (ORDINARY_SPACE_BEFORE, ORDINARY_SPACE_AFTER):
        found += [text[max(0, m.start() - 20) : m.end() + 5] for m in pattern.finditer(text)]
    return found


def visible(source: str) -> str:
    """A template's text a person reads: without Jinja tags, HTML tags and addresses."""
    return _URL.sub("", _CODE.sub(" ", source))


@pytest.mark.parametrize("kind", list(CommunicationKind))
def test_every_default_template_follows_french_typography(kind: CommunicationKind) -> None:
    template = DEFAULT_TEMPLATES[kind]
    for source in (template.subject, template.body):
        shown = visible(source)
        assert faults(source) == []
        assert "'" not in shown, "a straight apostrophe in visible text"


def test_every_rendered_golden_email_follows_french_typography() -> None:
    for name, kind, variables in variants():
        assert faults(golden_text(kind, variables)) == [], name


def test_the_footers_and_the_unsubscribe_sentence_follow_french_typography() -> None:
    for text in (
        privacy_notice(ACCOUNT, "Location"),
        privacy_notice(ACCOUNT, "Location", "Jean Dupont"),
        UNSUBSCRIBE_SENTENCE,
    ):
        assert faults(text) == []
        assert "'" not in text


def _portal_texts() -> list[str]:
    """The French strings of the portal page: its HTML's text and its script's string literals."""
    folder = ROOT / "chalicelib/portal_page"
    html = (folder / "index.html").read_text(encoding="utf-8")
    texts = [t for t in re.split(r"<[^>]*>", html) if t.strip()]
    script = (folder / "portal.js").read_text(encoding="utf-8")
    texts += [s for s in re.findall(r'"([^"\n]*)"', script) if re.search(r"[a-zé] ", s)]
    return texts


def test_the_portal_pages_texts_follow_french_typography() -> None:
    assert [fault for text in _portal_texts() for fault in faults(text)] == []


def test_the_portal_pages_statuses_agree_with_piece() -> None:
    script = (ROOT / "chalicelib/portal_page/portal.js").read_text(encoding="utf-8")
    assert '"Validée"' in script
    assert '"Refusée"' in script
