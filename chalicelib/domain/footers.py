"""What ends every email to a client, an apporteur or a dossier's participant, whatever its template says.

The law asks a broker's emails to name him (legal name, ORIAS registration, RCS, address; art. R521-2 and
L521-2 Code des assurances), dunning notices to name the mediator, and the GDPR asks a dossier email to say
who collects the documents, why, for how long and with which rights. Staff write the bodies; these lines are
added by Relais after the body, so no template can forget them. They travel in the communication's
variables under `FOOTER_VARIABLE`, a name no template is offered, and are rendered at send time.
"""

from __future__ import annotations

from chalicelib.domain.accounts import Account

FOOTER_VARIABLE = "footer"
"""The reserved variable holding the footer: paragraphs separated by a blank line, lines by a newline."""
DEFAULT_RETENTION_DAYS = 365
"""API.md "Privacy": completed or archived dossiers are erased this long after, unless the account says."""


def sender_name(account: Account) -> str:
    """The display name emails come from: the broker's legal name once he gave it, else the account's."""
    return account.legal.legal_name if account.legal else account.name


def legal_mentions(account: Account, with_mediator: bool = False) -> str:
    """The broker's legal mentions, one per line (empty until the account gave its legal identity)."""
    return "\n".join(account.legal.mentions(with_mediator=with_mediator)) if account.legal else ""


def privacy_notice(account: Account, dossier_of: str | None = None) -> str:
    """The privacy notice of a dossier email: controller and contact, purpose, retention, rights; for a
    contributor (`dossier_of` names the main recipient), whose dossier it is."""
    controller = sender_name(account)
    contact = account.sender_email
    if account.legal and account.legal.phone:
        contact = f"{contact}, tél. {account.legal.phone}"
    # The account setting of API.md "Privacy" is being added in parallel (issue 15, item 9): read it when
    # the account has it, so the notice follows it without another change here.
    retention = getattr(account, "dossier_retention_days", None) or DEFAULT_RETENTION_DAYS
    whose = f" du dossier de {dossier_of}" if dossier_of else " de votre dossier"
    return (
        f"Protection de vos données\u00a0: {controller} ({contact}) est responsable du traitement des "
        f"pièces{whose}, collectées pour l’instruire. Elles sont conservées {retention}\u00a0jours après "
        "la clôture du dossier, puis effacées. Vous pouvez demander l’accès à vos données, leur "
        f"rectification ou leur effacement en écrivant à {account.sender_email}, et saisir la CNIL "
        "(www.cnil.fr)."
    )


def footer(*paragraphs: str) -> dict[str, str]:
    """The variables that carry a footer made of `paragraphs` (the empty ones left out)."""
    text = "\n\n".join(p for p in paragraphs if p)
    return {FOOTER_VARIABLE: text} if text else {}
