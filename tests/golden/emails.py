"""Every default template rendered in each of its variants, as a reviewer reads them: one text file per
kind and variant in `tests/golden/`, subject first, the footer Relais adds (legal mentions, privacy notice,
a mailing's unsubscribe link) included. `tests/unit/test_golden_emails.py` compares them with what the code
renders today; after a deliberate change of wording, regenerate them and read the diff:

    /work/main/.venv/bin/python -m tests.golden.emails
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import CommunicationKind
from chalicelib.domain.footers import footer, legal_mentions, privacy_notice
from chalicelib.domain.legal import BrokerIdentity, Mediator, PostalAddress
from chalicelib.domain.plans import Plan
from chalicelib.domain.templates import RenderedEmail, render_kind, with_unsubscribe_footer

K = CommunicationKind
GOLDEN = Path(__file__).parent
UNSUBSCRIBE_LINK = "https://api.exemple.fr/unsubscribe?token=…"

ACCOUNT = Account(
    id="01GOLDEN",
    name="Cabinet Martin",
    plan=Plan.PLATINUM,
    boosters=frozenset(),
    sender_email="contact@cabinet-martin.fr",
    created_at=datetime(2027, 1, 4, tzinfo=UTC),
    legal=BrokerIdentity(
        legal_name="Cabinet Martin SAS",
        orias_number="12345678",
        address=PostalAddress(("12 rue de la Paix",), "75002", "Paris"),
        rcs="Paris B 123 456 789",
        phone="01 23 45 67 89",
        mediator=Mediator("La Médiation de l’Assurance", "https://www.mediation-assurance.org"),
        payment_instructions="Par virement, en rappelant le numéro du contrat.",
    ),
)

_DOSSIER_KINDS = (
    K.DOSSIER_CREATED,
    K.CONTRIBUTOR_INVITED,
    K.DOCUMENT_REJECTED,
    K.ROLE_FINISHED,
    K.DEADLINE_APPROACHING,
)
_UNPAID_KINDS = (
    K.UNPAID_CALL,
    K.UNPAID_REMINDER,
    K.FORMAL_NOTICE,
    K.SUSPENSION_NOTICE,
    K.TERMINATION_NOTICE,
    K.REINSTATEMENT_NOTICE,
)


def _dossier(kind: CommunicationKind, contributor: bool) -> dict[str, str]:
    variables = {
        "account.name": ACCOUNT.public_name,
        "dossier.reference": "LOC-2027-014",
        "dossier.due_date": "15/03/2027",
        "dossier.portal_link": "https://api.exemple.fr/p#token=…",
        "dossier.recipient_name": "Jean Dupont",
        "procedure.name": "Demande de location",
        "contributor.name": "Marie Durand" if contributor else "Jean Dupont",
        "role.name": "Garant" if contributor else "Locataire",
    }
    if kind is K.DOCUMENT_REJECTED:
        variables |= {
            "document.label": "Bulletins de salaire",
            "document.comment": "Le mois de janvier manque.",
        }
    notice = privacy_notice(ACCOUNT, "Demande de location", "Jean Dupont" if contributor else None)
    return variables | footer(notice, legal_mentions(ACCOUNT))


def _party(apporteur: bool) -> dict[str, str]:
    return {
        "account.name": ACCOUNT.public_name,
        "client.name": "Jean Dupont",
        "client.email": "jean.dupont@exemple.fr",
        "apporteur.name": "Courtage Ouest",
        "contract.reference": "HAB-2027-001",
        "recipient.name": "Courtage Ouest" if apporteur else "Jean Dupont",
        "recipient.party": "apporteur" if apporteur else "client",
    }


def _unpaid(kind: CommunicationKind, apporteur: bool, partial: bool, voided: bool) -> dict[str, str]:
    variables = _party(apporteur) | {
        "installment.amount": "84,20\u00a0€",
        "installment.due_date": "01/03/2027",
        "installment.amount_due": "44,20\u00a0€" if partial else "84,20\u00a0€",
        "insurer.name": "Mutuelle Exemple",
        "account.payment_instructions": "Par virement, en rappelant le numéro du contrat.",
        "letter.sent_on": "12/03/2027",
        "letter.tracking_number": "1A12345678901",
        "step.effective_on": "12/04/2027" if kind is K.SUSPENSION_NOTICE else "22/04/2027",
        "payment_deadline": "11/04/2027",
        "policy.suspension_days": "30",
        "policy.termination_days": "10",
    }
    if kind is K.REINSTATEMENT_NOTICE:
        variables |= {
            "cover.resumes_at": "" if voided else "16/04/2027 à 12\u00a0h",
            "suspension.voided": "oui" if voided else "",
        }
    return variables | footer(legal_mentions(ACCOUNT, with_mediator=True))


def variants() -> Iterator[tuple[str, CommunicationKind, dict[str, str]]]:
    """(file name, kind, variables) of every variant of every default template."""
    yield "account_welcome", K.ACCOUNT_WELCOME, {"account.name": ACCOUNT.name}
    yield (
        "webhook_disabled",
        K.WEBHOOK_DISABLED,
        {
            "account.name": ACCOUNT.name,
            "webhook.id": "whk_01GOLDEN",
            "webhook.url": "https://crm.martin.fr/relais",
            "webhook.description": "Notre logiciel de gestion",
            "webhook.reason": "il a répondu 410 (Gone), ce qui demande à Relais de ne plus rien lui envoyer",
        },
    )
    for kind in _DOSSIER_KINDS:
        for contributor in (False, True):
            name = f"{kind.value}--{'contributor' if contributor else 'main_recipient'}"
            yield name, kind, _dossier(kind, contributor)
    for apporteur in (False, True):
        party = "apporteur" if apporteur else "client"
        for kind in (K.MANUAL, K.MAILING):
            yield f"{kind.value}--{party}", kind, _party(apporteur) | footer(legal_mentions(ACCOUNT))
        for kind in (K.DOCUMENTS_CALL, K.DOCUMENTS_REMINDER):
            documents = _party(apporteur) | {
                "expected_document.label": "Attestation de contrôle technique",
                "expected_document.due_date": "31/03/2027",
            }
            yield f"{kind.value}--{party}", kind, documents | footer(legal_mentions(ACCOUNT))
        for kind in _UNPAID_KINDS:
            for partial in (False, True):
                payment = "partial_payment" if partial else "no_payment"
                yield f"{kind.value}--{party}--{payment}", kind, _unpaid(kind, apporteur, partial, False)
        yield (
            f"reinstatement_notice--{party}--suspension_voided",
            K.REINSTATEMENT_NOTICE,
            _unpaid(K.REINSTATEMENT_NOTICE, apporteur, False, True),
        )


def rendered(kind: CommunicationKind, variables: dict[str, str]) -> RenderedEmail:
    """What the addressee gets: a mailing also ends with his own unsubscribe link."""
    email = render_kind(kind, variables)
    if kind is K.MAILING:
        email = RenderedEmail(
            email.subject, email.text, with_unsubscribe_footer(email.html, UNSUBSCRIBE_LINK)
        )
    return email


def golden_text(kind: CommunicationKind, variables: dict[str, str]) -> str:
    email = rendered(kind, variables)
    return f"Objet\u00a0: {email.subject}\n\n{email.text}"


def regenerate() -> None:
    for old in GOLDEN.glob("*.txt"):
        old.unlink()
    for name, kind, variables in variants():
        (GOLDEN / f"{name}.txt").write_text(golden_text(kind, variables), encoding="utf-8")


if __name__ == "__main__":
    regenerate()
