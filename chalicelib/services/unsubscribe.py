"""Unsubscribe use cases: mint a link for an addressee (mailings), and honour one (no login)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from chalicelib.domain.footers import sender_name
from chalicelib.domain.unsubscribe import Addressee, read_unsubscribe_token, unsubscribe_token
from chalicelib.observability import logger
from chalicelib.services.ports import AccountRepository, UnsubscriptionRepository


def unsubscribe_link(api_base_url: str, secret: str, addressee: Addressee) -> str:
    """The URL of `List-Unsubscribe` and of the link in a mailing's footer."""
    return f"{api_base_url.rstrip('/')}/unsubscribe?token={quote(unsubscribe_token(secret, addressee))}"


class UnsubscribeLinkMaker:
    """Unsubscribe links of one deployment (its API address and link secret) for the worker."""

    def __init__(self, api_base_url: str, secret: str) -> None:
        self._api_base_url = api_base_url
        self._secret = secret

    def link_for(self, account_id: str, party: str, party_id: str) -> str:
        return unsubscribe_link(self._api_base_url, self._secret, Addressee(account_id, party, party_id))


def broker_name(account_id: str, accounts: AccountRepository) -> str:
    """The name the page gives the broker whose emails the addressee leaves: the one his emails came
    from (the legal name once given); empty for an account that no longer exists."""
    account = accounts.get(account_id)
    return sender_name(account) if account else ""


def unsubscribe(
    token: str, secret: str, unsubscriptions: UnsubscriptionRepository, now: datetime
) -> Addressee:
    """Stop the token's addressee receiving the account's mailings (dunning and legal notices still go).
    Idempotent: a second click changes nothing. InvalidInput for a forged or malformed token."""
    addressee = read_unsubscribe_token(secret, token)
    if unsubscriptions.add(addressee, now):
        logger.info(
            "addressee unsubscribed from mailings",
            extra={
                "account_id": addressee.account_id,
                "party": addressee.party,
                "party_id": addressee.party_id,
            },
        )
    return addressee
