"""The portal link of a dossier email, derived from the email: the change that writes the email stores
the hash of the very secret the worker computes again when it sends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from chalicelib.domain.communications import Communication, CommunicationKind, Recipient
from chalicelib.services.identity import hash_portal_secret
from chalicelib.services.portal_links import DossierEmailLinks, email_link, email_link_secret

KEY = "a-link-secret-of-at-least-thirty-two-bytes"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
PORTAL = "https://relais.test/p"


def _invitation(communication_id: str = "cm_1", participant: str | None = "D1/garant/C1/2") -> Communication:
    return Communication(
        id=communication_id,
        account_id="A1",
        kind=CommunicationKind.CONTRIBUTOR_INVITED,
        sender_name="Cabinet Martin",
        reply_to="contact@martin.fr",
        to=(Recipient("Paul Garant", "paul@exemple.fr", "contributor"),),
        created_at=NOW,
        portal_participant=participant,
        dossier_id="D1",
    )


def test_the_worker_sends_the_link_whose_hash_the_dossiers_change_stored() -> None:
    stored = email_link(PORTAL, KEY, _invitation(), days=30, now=NOW)
    assert stored is not None
    sent = DossierEmailLinks(PORTAL, KEY).link_for("A1", "cm_1")
    assert sent == stored.link
    assert hash_portal_secret(sent.split("#token=")[1]) == stored.token_hash
    assert stored.communication_id == "cm_1"
    assert stored.expires_at == NOW + timedelta(days=30)
    principal = stored.principal
    assert (principal.dossier_id, principal.role_id, principal.participant_id, principal.generation) == (
        "D1",
        "garant",
        "C1",
        2,
    )


def test_an_email_link_secret_has_256_bits_and_is_one_emails_alone() -> None:
    secret = email_link_secret(KEY, "A1", "cm_1")
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret == email_link_secret(KEY, "A1", "cm_1")
    others = {
        email_link_secret(KEY, "A1", "cm_2"),
        email_link_secret(KEY, "A2", "cm_1"),
        email_link_secret(KEY + "-rotated", "A1", "cm_1"),
    }
    assert secret not in others
    assert len(others) == 3


def test_an_email_to_the_account_carries_no_link() -> None:
    assert email_link(PORTAL, KEY, _invitation(participant=None), days=30, now=NOW) is None
