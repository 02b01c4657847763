"""What clients, apporteurs and a dossier's participants read (issue 15): the broker's identity, whose
dossier and what for, dunning texts that say what the law says and no more, the privacy notice."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.footers import footer, legal_mentions, privacy_notice, sender_name
from chalicelib.domain.templates import DEFAULT_TEMPLATES, KIND_VARIABLES, render_kind, validate_template
from tests.golden.emails import ACCOUNT, rendered, variants

K = CommunicationKind
VARIANTS = list(variants())
DUNNING = (K.UNPAID_CALL, K.UNPAID_REMINDER, K.FORMAL_NOTICE, K.SUSPENSION_NOTICE, K.TERMINATION_NOTICE)


def _email(name: str) -> str:
    [(kind, variables)] = [(kind, variables) for n, kind, variables in VARIANTS if n == name]
    return rendered(kind, variables).text


# ---- item 2: the broker's identity ----


def test_emails_come_from_the_brokers_legal_name_once_given_else_the_accounts_name() -> None:
    assert sender_name(ACCOUNT) == "Cabinet Martin SAS"
    assert sender_name(replace(ACCOUNT, legal=None)) == "Cabinet Martin"


TO_THE_ACCOUNT = (K.ACCOUNT_WELCOME, K.WEBHOOK_DISABLED)
"""Relais's own emails to the broker, which carry no broker's legal mentions."""


@pytest.mark.parametrize("name", [n for n, kind, _ in VARIANTS if kind not in TO_THE_ACCOUNT])
def test_every_email_to_a_client_an_apporteur_or_a_participant_ends_with_the_legal_mentions(
    name: str,
) -> None:
    text = _email(name)
    for words in ("Cabinet Martin SAS", "ORIAS sous le n°\u00a012345678", "RCS Paris B", "75002 Paris"):
        assert words in text.split("\n--\n", 1)[1]


def test_the_mediator_is_named_on_dunning_notices_only() -> None:
    assert "Médiateur" in _email("formal_notice--client--no_payment")
    assert "Médiateur" not in _email("documents_call--client")
    assert "Médiateur" not in _email("manual--client")


def test_an_account_without_legal_identity_adds_no_empty_footer() -> None:
    assert footer(legal_mentions(replace(ACCOUNT, legal=None))) == {}
    email = render_kind(K.MANUAL, {"account.name": "X"} | footer(""))
    assert "--" not in email.text


def test_no_template_can_print_or_forge_the_footer() -> None:
    from chalicelib.domain.errors import InvalidInput
    from chalicelib.domain.templates import TemplateSource

    with pytest.raises(InvalidInput):
        validate_template(K.MANUAL, TemplateSource("s", "{{ footer }}"))


# ---- item 3: whose dossier and what for ----


def test_dossier_kinds_offer_whose_dossier_it_is_and_the_procedures_name() -> None:
    for kind in (K.DOSSIER_CREATED, K.CONTRIBUTOR_INVITED, K.DOCUMENT_REJECTED, K.DEADLINE_APPROACHING):
        assert {"dossier.recipient_name", "procedure.name"} <= KIND_VARIABLES[kind]


def test_a_guarantor_is_told_whose_dossier_and_which_procedure_he_is_invited_to() -> None:
    text = _email("contributor_invited--contributor")
    assert "dossier LOC-2027-014 (Demande de location de Jean Dupont) en tant que Garant" in text


# ---- item 4: dunning texts ----


@pytest.mark.parametrize("kind", DUNNING)
def test_no_dunning_email_claims_reminders_or_calls_itself_the_formal_notice(kind: CommunicationKind) -> None:
    source = DEFAULT_TEMPLATES[kind].subject + DEFAULT_TEMPLATES[kind].body
    assert "malgré nos relances" not in source
    assert "présente mise en demeure" not in source
    assert "avant le" not in source


def test_the_r113_1_footer_is_on_the_formal_notice_only_and_the_others_inform() -> None:
    assert "R113-1 du Code des assurances\u202f; il ne la remplace pas" in _email(
        "formal_notice--client--no_payment"
    )
    for kind in ("suspension_notice", "termination_notice", "reinstatement_notice"):
        text = _email(f"{kind}--client--no_payment")
        assert "il ne la remplace pas" not in text
        assert "Ce courriel vous informe" in text


def test_dates_and_delays_come_from_the_policy_and_the_step() -> None:
    notice = DEFAULT_TEMPLATES[K.FORMAL_NOTICE].body
    assert "{{ policy.suspension_days }}" in notice
    assert "{{ payment_deadline }}" in notice
    assert "{{ step.effective_on }}" in DEFAULT_TEMPLATES[K.SUSPENSION_NOTICE].body


def test_the_suspension_notice_gives_the_whole_reinstatement_rule_of_l113_3() -> None:
    text = _email("suspension_notice--client--no_payment")
    for words in (
        "pour l’avenir",
        "à midi le lendemain",
        "celles venues à échéance pendant la suspension",
        "frais",
    ):
        assert words in text


def test_the_call_is_a_reminder_of_the_next_due_date_not_an_avis_d_echeance() -> None:
    subject = render_kind(K.UNPAID_CALL, {"contract.reference": "HAB-1"}).subject
    assert subject.startswith("Rappel\u00a0: prochaine échéance")
    assert "Avis d’échéance" not in subject
    assert "Avis d'échéance" not in subject


@pytest.mark.parametrize("kind", ["unpaid_call", "unpaid_reminder"])
def test_an_apporteur_is_asked_to_invite_his_client_to_pay_never_to_pay(kind: str) -> None:
    text = _email(f"{kind}--apporteur--no_payment")
    assert "Merci d’inviter votre client à procéder à son règlement" in text
    assert "Merci de procéder" not in text
    assert "Merci de veiller" not in text
    assert "Merci d’inviter" not in _email(f"{kind}--client--no_payment")


@pytest.mark.parametrize("kind", ["formal_notice", "suspension_notice", "termination_notice"])
def test_legal_notices_open_madame_monsieur_and_close_formally(kind: str) -> None:
    text = _email(f"{kind}--client--no_payment")
    assert text.startswith("Madame, Monsieur,")
    assert "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations distinguées." in text


def test_dossier_emails_say_au_plus_tard_votre_espace_and_si_le_lien_ne_fonctionne_pas() -> None:
    text = _email("dossier_created--main_recipient")
    assert "au plus tard le 15/03/2027" in text
    assert "Accéder à votre espace sécurisé" in text
    assert "Si le lien ne fonctionne pas" in text


def test_the_welcome_email_says_plainly_where_clients_replies_arrive() -> None:
    text = _email("account_welcome")
    assert "leur réponse arrive à l’adresse qui reçoit ce message" in text


# ---- item 8: an expected document's due date ----


@pytest.mark.parametrize("kind", ["documents_call", "documents_reminder"])
def test_an_expected_documents_due_date_is_offered_and_shown(kind: str) -> None:
    assert "expected_document.due_date" in KIND_VARIABLES[K(kind)]
    assert "au plus tard le 31/03/2027" in _email(f"{kind}--client")


# ---- item 9: the privacy notice of dossier emails ----


def test_a_dossier_email_names_the_controller_purpose_retention_and_rights() -> None:
    notice = privacy_notice(ACCOUNT, "Demande de location")
    for words in (
        "Cabinet Martin SAS",
        "contact@cabinet-martin.fr",
        "responsable du traitement",
        "pour constituer le dossier «\u00a0Demande de location\u00a0»",
        "365\u00a0jours",
        "accéder",
        "rectifier",
        "effacer",
        "CNIL",
    ):
        assert words in notice
    assert "celui de" not in notice


def test_a_contributor_is_told_whose_dossier_it_is() -> None:
    assert "Ce dossier est celui de Jean Dupont." in privacy_notice(
        ACCOUNT, "Demande de location", "Jean Dupont"
    )
    assert "Protection de vos données" in _email("contributor_invited--contributor")
