"""What ends every email to a client, an apporteur or a dossier's participant, whatever its template says.

The law asks a broker's emails to name him (legal name, ORIAS registration, RCS, address; art. R521-2 and
L521-2 Code des assurances), dunning notices to name the mediator, and the GDPR asks a dossier email to say
who collects the documents, why, for how long and with which rights. Staff write the bodies; these lines are
added by Relais after the body, so no template can forget them. They travel in the communication's
variables under `FOOTER_VARIABLE`, a name no template is offered, and are rendered at send time.
"""

from __future__ import annotations

from chalicelib.domain.accounts import Account
from chalicelib.domain.privacy import privacy_notice as dossier_privacy_notice

FOOTER_VARIABLE = "footer"
"""The reserved variable holding the footer: paragraphs separated by a blank line, lines by a newline."""


def sender_name(account: Account) -> str:
    """The display name emails come from: the broker's legal name once he gave it, else the account's."""
    return account.public_name


def legal_mentions(account: Account, with_mediator: bool = False) -> str:
    """The broker's legal mentions, one per line (empty until the account gave its legal identity)."""
    return "\n".join(account.legal.mentions(with_mediator=with_mediator)) if account.legal else ""


def privacy_notice(account: Account, procedure_name: str, dossier_of: str | None = None) -> str:
    """The privacy notice of a dossier email: the very notice the portal page shows, as one paragraph."""
    notice = dossier_privacy_notice(account, procedure_name, dossier_of)
    whose = f"Ce dossier est celui de {dossier_of}. " if dossier_of else ""
    return (
        f"Protection de vos données\u00a0: {notice.controller} ({notice.contact_email}) est responsable du "
        f"traitement. {whose}{notice.purpose} {notice.retention} {notice.rights}"
    )


def footer(*paragraphs: str) -> dict[str, str]:
    """The variables that carry a footer made of `paragraphs` (the empty ones left out)."""
    text = "\n\n".join(p for p in paragraphs if p)
    return {FOOTER_VARIABLE: text} if text else {}
