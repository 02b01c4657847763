"""Mailings on the domain alone: which filters an audience takes, who is left once the unsubscribed and
the suppressed are out, and the status the counts make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.communications import Recipient, TemplateSource
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.mailings import (
    Audience,
    AudienceEntity,
    Mailing,
    MailingStatus,
    without_opted_out,
)
from chalicelib.domain.recipients import CommunicationRule, DecidedBy, Resolution

CLIENT = Recipient("Jean Dupont", "jean@dupont.fr", "client")
APPORTEUR = Recipient("Cabinet Bernard", "B@Bernard.fr", "apporteur")
BOTH = Resolution(
    to=(CLIENT,), cc=(APPORTEUR,), rule=CommunicationRule.CLIENT_AND_APPORTEUR, decided_by=DecidedBy.CONTRACT
)


def _fields(audience: Audience) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        audience.check()
    return [issue.field for issue in refused.value.details]


def test_clients_have_no_status_nor_product_filter_and_statuses_follow_the_entity() -> None:
    assert _fields(Audience(AudienceEntity.CLIENTS, status="active", product_id="P")) == [
        "audience.filters.product_id",
        "audience.filters.status",
    ]
    assert _fields(Audience(AudienceEntity.PROJECTS, status="active")) == ["audience.filters.status"]
    assert _fields(Audience(AudienceEntity.CONTRACTS, communication_rule="all")) == [
        "audience.filters.communication_rule"
    ]
    Audience(AudienceEntity.PROJECTS, status="won", communication_rule="none").check()


def test_each_entity_offers_only_its_own_reference() -> None:
    assert "contract.reference" not in Audience(AudienceEntity.CLIENTS).template_variables
    assert "project.reference" not in Audience(AudienceEntity.CONTRACTS).template_variables
    assert "project.reference" in Audience(AudienceEntity.PROJECTS).template_variables
    assert "recipient.name" in Audience(AudienceEntity.CLIENTS).template_variables


def test_an_unsubscribed_apporteur_leaves_the_cc_and_the_client_still_receives_it() -> None:
    kept, reason = without_opted_out(BOTH, {"apporteur"}, set())
    assert (kept.to, kept.cc, kept.skipped_parties, reason) == ((CLIENT,), (), ("apporteur",), None)


def test_a_suppressed_client_gives_the_to_to_the_apporteur_whatever_the_case_of_the_address() -> None:
    kept, reason = without_opted_out(BOTH, set(), {"jean@dupont.fr"})
    assert (kept.to, kept.cc, reason) == ((APPORTEUR,), (), None)
    nobody, why = without_opted_out(BOTH, set(), {"jean@dupont.fr", "b@bernard.fr"})
    assert (nobody.to, why) == ((), "every recipient is on the suppression list (bounced or complained)")


def test_nobody_left_says_why() -> None:
    _, unsubscribed = without_opted_out(BOTH, {"client", "apporteur"}, set())
    assert unsubscribed is not None
    assert "unsubscribed" in unsubscribed
    empty = Resolution(to=(), cc=(), rule=None, decided_by=None, skipped_parties=("client",))
    assert without_opted_out(empty, set(), set())[1] == "no recipient has an email address"


@pytest.mark.parametrize(
    ("sending", "fanned_out", "counts", "status"),
    [
        (False, False, (0, 0, 0, 0), MailingStatus.DRAFT),
        (True, False, (3, 3, 0, 0), MailingStatus.SENDING),
        (True, True, (3, 2, 0, 0), MailingStatus.SENDING),
        (True, True, (3, 2, 0, 1), MailingStatus.SENT),
        (True, True, (3, 1, 1, 1), MailingStatus.PARTIALLY_FAILED),
        (True, True, (0, 0, 0, 0), MailingStatus.SENT),
    ],
)
def test_the_status_follows_the_fan_out_and_the_counts(
    sending: bool, fanned_out: bool, counts: tuple[int, int, int, int], status: MailingStatus
) -> None:
    total, sent, failed, skipped = counts
    mailing = Mailing(
        id="ml_1",
        account_id="A",
        name="Offre",
        template=TemplateSource("Objet", "Corps"),
        audience=Audience(AudienceEntity.CLIENTS),
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
        sending=sending,
        fanned_out=fanned_out,
        total=total,
        sent=sent,
        failed=failed,
        skipped=skipped,
    )
    assert mailing.status is status
