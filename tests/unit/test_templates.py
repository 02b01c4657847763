"""Rendering in the sandbox: French defaults, escaping, text derived from HTML, strict variables."""

from __future__ import annotations

import pytest

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.templates import DEFAULT_TEMPLATES, TemplateError, TemplateSource, render
from chalicelib.domain.validation import email_issue, name_issue


def test_the_welcome_email_is_french_and_names_the_account() -> None:
    email = render(DEFAULT_TEMPLATES[CommunicationKind.ACCOUNT_WELCOME], {"account.name": "Cabinet Martin"})
    assert email.subject == "Bienvenue sur Relais, Cabinet Martin"
    assert "Le compte Cabinet Martin est ouvert sur Relais." in email.text
    assert "<p>Bonjour,</p>" in email.html


def test_a_name_cannot_inject_markup_into_the_html_part_and_reads_plainly_in_the_text_part() -> None:
    template = TemplateSource(subject="Dossier de {{ client.name }}", body="Bonjour {{ client.name }},")
    email = render(template, {"client.name": "<b>Dupont & Fils</b>"})
    assert "&lt;b&gt;Dupont &amp; Fils&lt;/b&gt;" in email.html
    assert "<b>" not in email.html
    assert email.text == "Bonjour <b>Dupont & Fils</b>,\n"


def test_a_subject_is_always_one_line() -> None:
    template = TemplateSource(subject="Relance\n{{ client.name }}\r\nBcc: x@y.z", body="Bonjour")
    assert render(template, {"client.name": "Durand"}).subject == "Relance Durand Bcc: x@y.z"


def test_an_html_body_keeps_its_layout_and_its_text_part_keeps_the_paragraphs() -> None:
    template = TemplateSource(subject="s", body="<p>Bonjour,</p><p>Votre échéance de <b>84,20 €</b>.</p>")
    email = render(template, {})
    assert "<p>Votre échéance de <b>84,20 €</b>.</p>" in email.html
    assert email.text == "Bonjour,\n\nVotre échéance de 84,20 €.\n"


def test_a_variable_the_email_was_not_given_fails_instead_of_leaving_a_hole() -> None:
    with pytest.raises(TemplateError):
        render(TemplateSource(subject="{{ contract.reference }}", body="x"), {})


def test_the_sandbox_refuses_reaching_into_python_internals() -> None:
    with pytest.raises(TemplateError):
        render(
            TemplateSource(subject="s", body="{{ account.name.__class__.__mro__ }}"), {"account.name": "x"}
        )


@pytest.mark.parametrize(
    "address", ["a@b.fr", "jean.dupont+relais@cabinet-martin.example", "o'brien@exemple.co.uk"]
)
def test_ordinary_email_addresses_are_accepted(address: str) -> None:
    assert email_issue(address) is None


@pytest.mark.parametrize(
    "address",
    ["", "plain", "a@b", "a@@b.fr", "a b@c.fr", "a@b.fr\nBcc: x@y.fr", "a..b@c.fr", "x" * 250 + "@b.fr"],
)
def test_malformed_or_injected_email_addresses_are_refused(address: str) -> None:
    assert email_issue(address) == "not an email address"


@pytest.mark.parametrize(
    ("name", "issue"),
    [
        ("   ", "must not be blank"),
        ("Martin\r\nBcc: x@y.fr", "must not contain line breaks or control characters"),
        ("x" * 201, "must be at most 200 characters"),
    ],
)
def test_names_that_could_break_a_header_are_refused(name: str, issue: str) -> None:
    assert name_issue(name) == issue
