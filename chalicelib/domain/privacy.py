"""The privacy notice (RGPD art. 13) a person reads before sending documents: who collects them (the
broker, the controller), why, how long they are kept, the person's rights and, for a contributor, whose
dossier it is. Written in French with its typography (no-break spaces), so that every place that shows it
says the same thing."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.accounts import Account

NBSP = "\u00a0"
CNIL_URL = "www.cnil.fr"


@dataclass(frozen=True)
class PrivacyNotice:
    controller: str
    contact_email: str
    purpose: str
    retention: str
    retention_days: int
    rights: str
    dossier_of: str | None
    """The main recipient's name, told to a contributor (None for the main recipient himself)."""


def privacy_notice(account: Account, procedure_name: str, dossier_of: str | None) -> PrivacyNotice:
    controller = account.public_name
    return PrivacyNotice(
        controller=controller,
        contact_email=account.sender_email,
        purpose=(
            f"{controller} collecte ces pièces pour constituer le dossier «{NBSP}{procedure_name}{NBSP}» "
            "et les traiter avec vous."
        ),
        retention=(
            f"Les pièces sont conservées {account.dossier_retention_days}{NBSP}jours après la clôture "
            "du dossier, puis effacées."
        ),
        retention_days=account.dossier_retention_days,
        rights=(
            "Vous pouvez accéder à vos données, les faire rectifier ou effacer, en limiter le traitement "
            f"ou vous y opposer en écrivant à {account.sender_email}\u202f; vous pouvez aussi adresser "
            f"une réclamation à la CNIL ({CNIL_URL})."
        ),
        dossier_of=dossier_of,
    )
