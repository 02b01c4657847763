"""Portal links: 256-bit secrets, only their SHA-256 stored, bound to one dossier, role and participant,
expiring after RELAIS_PORTAL_TOKEN_DAYS; the secret travels in the URL fragment (`#token=`), which browsers
never send to a server, so it reaches no log.

A link shown to staff (`mint_link`) is random. A link in a dossier email is derived from the email
(`email_link_secret`: an HMAC of the account and communication ids under RELAIS_LINK_SECRET): the
dossier's change that writes the email stores its hash with it, and the worker that sends the email
computes the same link again from the communication alone, without a write (issue 17)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain.communications import Communication
from chalicelib.domain.identity import PortalPrincipal
from chalicelib.services.identity import hash_portal_secret


@dataclass(frozen=True)
class MintedLink:
    link: str
    token_hash: str
    principal: PortalPrincipal
    expires_at: datetime
    communication_id: str | None = None
    """The dossier email that carries the link, if one does: erasing the dossier skips it if still queued."""


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


def email_link_secret(link_secret: str, account_id: str, communication_id: str) -> str:
    """The secret of the portal link a dossier email carries: 256 bits (base64url) that only the holder of
    RELAIS_LINK_SECRET can compute, the same each time for one email."""
    message = f"dossier-email:{account_id}:{communication_id}".encode()
    digest = hmac.new(link_secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def email_link(
    portal_url: str, link_secret: str, email: Communication, days: int, now: datetime
) -> MintedLink | None:
    """The link of a dossier email to a participant (None for an email without one), to store hashed with
    the email, expiring `days` after `now`."""
    if email.portal_participant is None:
        return None
    dossier_id, role_id, participant_id, generation = email.portal_participant.split("/")
    secret = email_link_secret(link_secret, email.account_id, email.id)
    token_hash = hash_portal_secret(secret)
    principal = PortalPrincipal(
        email.account_id, dossier_id, role_id, token_hash, participant_id, int(generation)
    )
    return MintedLink(
        f"{portal_url}#token={secret}", token_hash, principal, now + timedelta(days=days), email.id
    )


class DossierEmailLinks:
    """Used by the worker: the link a dossier email carries, computed again from the email alone (the
    change that wrote the email stored its hash)."""

    def __init__(self, portal_url: str, link_secret: str) -> None:
        self._portal_url = portal_url
        self._link_secret = link_secret

    def link_for(self, account_id: str, communication_id: str) -> str:
        return (
            f"{self._portal_url}#token={email_link_secret(self._link_secret, account_id, communication_id)}"
        )
