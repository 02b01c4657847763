"""Portal links: 256 random bits, only their SHA-256 stored, bound to one dossier, role and participant,
expiring after RELAIS_PORTAL_TOKEN_DAYS; the secret travels in the URL fragment (`#token=`), which browsers
never send to a server, so it reaches no log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain.identity import PortalPrincipal
from chalicelib.services.identity import hash_portal_secret
from chalicelib.services.ports import PortalTokenRepository


@dataclass(frozen=True)
class MintedLink:
    link: str
    token_hash: str
    principal: PortalPrincipal
    expires_at: datetime


def mint_link(
    portal_url: str,
    account_id: str,
    dossier_id: str,
    role_id: str,
    participant_id: str,
    days: int,
    now: datetime,
    generation: int = 0,
) -> MintedLink:
    secret = secrets.token_urlsafe(32)
    token_hash = hash_portal_secret(secret)
    principal = PortalPrincipal(account_id, dossier_id, role_id, token_hash, participant_id, generation)
    return MintedLink(f"{portal_url}#token={secret}", token_hash, principal, now + timedelta(days=days))


class PortalLinkMinter:
    """Used by the worker: a fresh link for each dossier email, stored (hashed) before it is sent."""

    def __init__(self, tokens: PortalTokenRepository, portal_url: str, days: int) -> None:
        self._tokens = tokens
        self._portal_url = portal_url
        self._days = days

    def link_for(self, account_id: str, participant: str, now: datetime) -> str | None:
        """None when the dossier was erased: no link (nor token) is minted for it any more."""
        dossier_id, role_id, participant_id, generation = participant.split("/")
        minted = mint_link(
            self._portal_url,
            account_id,
            dossier_id,
            role_id,
            participant_id,
            self._days,
            now,
            int(generation),
        )
        if not self._tokens.add(minted.token_hash, minted.principal, minted.expires_at):
            return None
        return minted.link
