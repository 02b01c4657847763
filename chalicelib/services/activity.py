"""Activity logs: what happened to a dossier or a contract, oldest first, with who did it — the trail a
broker shows when a client disputes a notice. The events are the ones the webhooks deliver, read from the
partition of what they are about; the dossier or contract must exist in the caller's account (404
otherwise, so an erased dossier's activity is gone with it and another tenant's is never seen)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.domain.events import Event, Subject, SubjectKind
from chalicelib.domain.partners import RecordKind
from chalicelib.services.dossiers import DossierRepository
from chalicelib.services.events import ActivityLog
from chalicelib.services.ports import PartnerRepository

Page = tuple[list[Event], dict[str, Any] | None]


def dossier_activity(
    account_id: str,
    dossier_id: str,
    limit: int,
    cursor: dict[str, Any] | None,
    dossiers: DossierRepository,
    log: ActivityLog,
) -> Page:
    if dossiers.get(account_id, dossier_id) is None:
        raise NotFound("No such dossier.")
    return log.page(account_id, Subject(SubjectKind.DOSSIER, dossier_id), limit, cursor)


def contract_activity(
    account_id: str,
    contract_id: str,
    limit: int,
    cursor: dict[str, Any] | None,
    partners: PartnerRepository,
    log: ActivityLog,
) -> Page:
    if partners.get(account_id, RecordKind.CONTRACT, contract_id) is None:
        raise NotFound("No such contract.")
    return log.page(account_id, Subject(SubjectKind.CONTRACT, contract_id), limit, cursor)
