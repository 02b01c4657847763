"""Rendering in the sandbox: French defaults, escaping, text derived from HTML, strict variables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.formatting import french_amount, french_date
from chalicelib.domain.templates import (
    DEFAULT_TEMPLATES,
    KIND_VARIABLES,
    TemplateError,
    TemplateSource,
    render,
    render_kind,
    validate_template,
)
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


@pytest.mark.parametrize("kind", list(CommunicationKind))
def test_every_kind_has_a_french_default_that_its_own_whitelist_accepts(kind: CommunicationKind) -> None:
    template = DEFAULT_TEMPLATES[kind]
    validate_template(kind, template)
    email = render_kind(kind, {name: f"<{name}>" for name in KIND_VARIABLES[kind]})
    assert email.subject
    assert email.text.startswith(("Bonjour", "Madame, Monsieur,"))


def test_a_variable_the_kind_offers_but_this_email_lacks_renders_empty() -> None:
    email = render_kind(CommunicationKind.DOCUMENT_REJECTED, {"document.label": "Avis d'imposition"})
    assert "«\u00a0Avis d'imposition\u00a0»" in email.text
    assert "Motif" not in email.text
    assert "espace sécurisé" not in email.text


def test_the_portal_link_of_a_dossier_email_is_clickable_in_html_and_readable_in_text() -> None:
    link = "https://relais.example/p#token=abc"
    email = render_kind(CommunicationKind.CONTRIBUTOR_INVITED, {"dossier.portal_link": link})
    assert f'<a href="{link}">' in email.html
    assert link in email.text


def test_the_formal_notice_cites_l113_3_the_amount_the_due_date_and_what_follows() -> None:
    email = render_kind(
        CommunicationKind.FORMAL_NOTICE,
        {
            "installment.amount": "84,20\u00a0€",
            "installment.due_date": "01/03/2027",
            "contract.reference": "HAB-2027-001",
            "recipient.name": "Jean Dupont",
            "recipient.party": "client",
            "letter.sent_on": "12/03/2027",
            "letter.tracking_number": "1A12345678901",
            "policy.suspension_days": "30",
            "policy.termination_days": "10",
            "payment_deadline": "11/04/2027",
            "insurer.name": "Mutuelle Exemple",
        },
    )
    assert "Mise en demeure" in email.subject
    for words in (
        "L113-3",
        "84,20\u00a0€",
        "01/03/2027",
        "12/03/2027",
        "1A12345678901",
        "30\u00a0jours",
        "11/04/2027",
        "Mutuelle Exemple",
        "suspendues",
        "résilier",
    ):
        assert words in email.text
    assert email.text.startswith("Madame, Monsieur,")


@pytest.mark.parametrize("kind", list(CommunicationKind))
def test_no_default_template_hard_codes_the_legal_periods(kind: CommunicationKind) -> None:
    template = DEFAULT_TEMPLATES[kind]
    for words in ("trente", "dix jours", "30 jours", "10 jours"):
        assert words not in template.subject + template.body


def test_the_reinstatement_notice_says_when_cover_resumes_or_that_it_never_stopped() -> None:
    resumed = render_kind(
        CommunicationKind.REINSTATEMENT_NOTICE,
        {"cover.resumes_at": "16/04/2027 à 12 h", "suspension.voided": ""},
    )
    assert "reprennent effet pour l’avenir le 16/04/2027 à 12 h" in resumed.text
    voided = render_kind(CommunicationKind.REINSTATEMENT_NOTICE, {"suspension.voided": "oui"})
    assert "n’ont jamais été suspendues" in voided.text
    assert voided.subject.startswith("Rectificatif")


def test_a_notice_to_an_apporteur_greets_him_and_names_his_client() -> None:
    email = render_kind(
        CommunicationKind.UNPAID_REMINDER,
        {"recipient.name": "Courtage Ouest", "recipient.party": "apporteur", "client.name": "Jean Dupont"},
    )
    assert email.text.startswith("Bonjour Courtage Ouest,")
    assert "de votre client Jean Dupont" in email.text


@pytest.mark.parametrize(
    ("kind", "offered", "refused"),
    [
        (CommunicationKind.MANUAL, "client.name", "installment.amount"),
        (CommunicationKind.DOSSIER_CREATED, "dossier.portal_link", "document.comment"),
        (CommunicationKind.ACCOUNT_WELCOME, "account.name", "recipient.name"),
        (CommunicationKind.CONTRIBUTOR_INVITED, "role.name", "recipient.party"),
        (CommunicationKind.MAILING, "project.reference", "expected_document.label"),
    ],
)
def test_each_kind_offers_its_own_variables_only(kind: CommunicationKind, offered: str, refused: str) -> None:
    validate_template(kind, TemplateSource(subject="{{ account.name }}", body="{{ " + offered + " }}"))
    with pytest.raises(InvalidInput) as refusal:
        validate_template(kind, TemplateSource(subject="Objet", body="{{ " + refused + " }}"))
    assert [(d.field, d.issue) for d in refusal.value.details] == [
        ("body", f"uses `{refused}`, which this kind does not offer")
    ]


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("{{ account.name.__class__.__mro__ }}", "`account.name.__class__.__mro__`"),
        ("{{ account.__class__ }}", "account.__class__"),
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ lipsum }}", "lipsum"),
        ("{{ cycler.__init__.__globals__ }}", "__globals__"),
        ("{{ account.name.upper() }}", "Call"),
        ("{{ account['name'] }}", "Getitem"),
        ("{{ account|attr('__class__') }}", "attr"),
        ("{% for x in account %}{{ x }}{% endfor %}", "For"),
        ("{% set x = 1 %}", "Assign"),
        ("{% include 'etc/passwd' %}", "Include"),
        ("{% macro m() %}{% endmacro %}", "Macro"),
        ("{{ 7 * 7 }}", "Mul"),
    ],
)
def test_sandbox_escapes_are_refused_when_the_template_is_saved(source: str, named: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_template(CommunicationKind.MANUAL, TemplateSource(subject="Objet", body=source))
    assert refusal.value.details[0].field == "body"
    assert named in refusal.value.details[0].issue


def test_a_template_that_does_not_compile_is_refused_naming_the_field_and_line() -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_template(
            CommunicationKind.MANUAL, TemplateSource(subject="Bonjour {{ client.name", body="ok")
        )
    [issue] = refusal.value.details
    assert issue.field == "subject"
    assert issue.issue.startswith("is not a valid template (line 1)")


def test_blank_and_oversized_templates_are_refused_with_a_prefix_naming_where_they_sit() -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_template(
            CommunicationKind.FORMAL_NOTICE,
            TemplateSource(subject=" ", body="x" * 20_001),
            field_prefix="templates.formal_notice.",
        )
    assert [(d.field, d.issue) for d in refusal.value.details] == [
        ("templates.formal_notice.subject", "must not be blank"),
        ("templates.formal_notice.body", "must be at most 20000 characters"),
    ]


def test_conditions_comparisons_and_plain_filters_are_allowed() -> None:
    template = TemplateSource(
        subject="{{ client.name|upper }}",
        body="{% if recipient.party == 'apporteur' %}Pour {{ client.name|default('vous') }}{% endif %}",
    )
    validate_template(CommunicationKind.MANUAL, template)
    email = render_kind(
        CommunicationKind.MANUAL, {"client.name": "Durand", "recipient.party": "apporteur"}, template
    )
    assert (email.subject, email.text) == ("DURAND", "Pour Durand\n")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("84.2", "EUR", "84,20\u00a0€"),
        ("1234.5", "EUR", "1\u202f234,50\u00a0€"),
        ("1234567.891", "EUR", "1\u202f234\u202f567,89\u00a0€"),
        ("0", "EUR", "0,00\u00a0€"),
        ("999.995", "EUR", "1\u202f000,00\u00a0€"),
        ("12", "USD", "12,00\u00a0$"),
    ],
)
def test_amounts_read_the_french_way(amount: str, currency: str, text: str) -> None:
    assert french_amount(Decimal(amount), currency) == text


def test_dates_read_day_month_year() -> None:
    assert french_date(date(2027, 3, 1)) == "01/03/2027"


def _multiplied(times: int) -> str:
    """`account.name` with every gap filled by ten X's, `times` over: each filter multiplies by 11."""
    return "{{ account.name" + '|replace("", "XXXXXXXXXX")' * times + " }}"


def test_a_template_whose_filters_multiply_its_size_is_refused_when_saved() -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_template(CommunicationKind.MAILING, TemplateSource(subject="Offre", body=_multiplied(6)))
    [issue] = refusal.value.details
    assert issue.field == "body"
    assert "262144 characters" in issue.issue


def test_a_subject_that_multiplies_its_size_is_refused_too() -> None:
    with pytest.raises(InvalidInput) as refusal:
        validate_template(
            CommunicationKind.MANUAL,
            TemplateSource(subject="{{ client.name" + '|replace("", client.name)' * 3 + " }}", body="ok"),
        )
    assert [d.field for d in refusal.value.details] == ["subject"]


def test_ordinary_replacements_are_still_allowed() -> None:
    template = TemplateSource(
        subject="{{ contract.reference|replace('-', ' ') }}",
        body="{{ client.name|replace('M.', 'Monsieur')|replace('Mme', 'Madame')|upper }}",
    )
    validate_template(CommunicationKind.MANUAL, template)
    email = render_kind(
        CommunicationKind.MANUAL, {"client.name": "Mme Durand", "contract.reference": "C-42"}, template
    )
    assert (email.subject, email.text) == ("C 42", "MADAME DURAND\n")


def test_rendering_a_template_that_grows_past_the_cap_fails_instead_of_filling_memory() -> None:
    """A template saved before the cap existed: the render stops, it does not build megabytes."""
    template = TemplateSource(subject="Offre", body=_multiplied(5))
    with pytest.raises(TemplateError, match="262144 characters"):
        render(template, {"account.name": "Cabinet Martin & Fils"})


def test_a_body_made_of_many_capped_pieces_is_stopped_at_the_cap_as_well() -> None:
    piece = "{{ account.name" + '|replace("", "XXXXXXXXXX")' * 3 + " }}"
    with pytest.raises(TemplateError, match="262144 characters"):
        render(TemplateSource(subject="Offre", body=piece * 20), {"account.name": "Cabinet Martin & Fils"})


def test_a_filter_given_arguments_it_cannot_take_fails_the_render_with_a_reason() -> None:
    template = TemplateSource(subject="Offre", body="{{ client.name|truncate('court') }}")
    with pytest.raises(TemplateError):
        render(template, {"client.name": "Durand"})
