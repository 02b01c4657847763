"""`/_local/outbox.html`: the sent emails for a person, newest first, each in a sandboxed frame."""

from __future__ import annotations

from typing import Any

from chalicelib.local.outbox import outbox_page


def _message(subject: str, html: str, sent_at: str) -> dict[str, Any]:
    return {
        "from": "Cabinet Martin <notifications@relais.example>",
        "to": ["paul@exemple.fr"],
        "cc": ["b@bernard.fr"],
        "subject": subject,
        "text": "",
        "html": html,
        "kind": "contributor_invited",
        "sent_at": sent_at,
    }


def test_newest_first_with_kind_addressees_and_the_html_in_a_sandboxed_frame() -> None:
    page = outbox_page(
        [
            _message(
                "Premier <b>",
                '<a href="http://localhost:8000/p#token=abc">Ouvrir</a>',
                "2027-01-01T08:00:00Z",
            ),
            _message("Second", "<p>Bonjour</p>", "2027-01-02T08:00:00Z"),
        ]
    )
    assert page.index("Second") < page.index("Premier &lt;b&gt;")
    assert "contributor_invited" in page
    assert "À : paul@exemple.fr" in page
    assert "Cc : b@bernard.fr" in page
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "&lt;base target=&quot;_blank&quot;&gt;" in page
    assert "http://localhost:8000/p#token=abc" in page
    assert "<script" not in page


def test_an_empty_outbox_says_so() -> None:
    assert "Aucun email envoyé" in outbox_page([])
