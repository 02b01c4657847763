"""Privacy (RGPD) use cases an account administrator runs: seeing and undoing the suppression list and
the unsubscriptions. There is no activity log yet (issue 16): each change is recorded as a structured log
line naming who made it and when, which the activity log can later be built from."""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.deliverability import Suppression
from chalicelib.domain.errors import NotFound
from chalicelib.domain.unsubscribe import Unsubscription, parse_unsubscription_id
from chalicelib.observability import logger
from chalicelib.services.ports import Cursor, SuppressionList, UnsubscriptionRepository


def list_suppressions(
    account_id: str, suppressions: SuppressionList, limit: int, cursor: Cursor | None
) -> tuple[list[Suppression], Cursor | None]:
    return suppressions.entries(account_id, limit, cursor)


def lift_suppression(
    account_id: str, digest: str, suppressions: SuppressionList, by: str, now: datetime
) -> None:
    """The address may be written to again (the admin vouches it works, or the complaint was a mistake)."""
    if not suppressions.remove(account_id, digest):
        raise NotFound("No such address on the suppression list.")
    logger.info(
        "account activity: suppression lifted",
        extra={"account_id": account_id, "address_hash": digest, "by": by, "at": now.isoformat()},
    )


def list_unsubscriptions(
    account_id: str, unsubscriptions: UnsubscriptionRepository, limit: int, cursor: Cursor | None
) -> tuple[list[Unsubscription], Cursor | None]:
    return unsubscriptions.entries(account_id, limit, cursor)


def undo_unsubscription(
    account_id: str, unsubscription_id: str, unsubscriptions: UnsubscriptionRepository, by: str, now: datetime
) -> None:
    """The addressee receives the account's mailings again (he asked the broker to, for instance)."""
    named = parse_unsubscription_id(unsubscription_id)
    if named is None or not unsubscriptions.remove(account_id, *named):
        raise NotFound("No such unsubscription.")
    logger.info(
        "account activity: unsubscription undone",
        extra={
            "account_id": account_id,
            "unsubscription_id": unsubscription_id,
            "by": by,
            "at": now.isoformat(),
        },
    )
