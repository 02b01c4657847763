"""Privacy (RGPD) use cases an account administrator runs: erasing a client, seeing and undoing the
suppression list and the unsubscriptions. Each change writes an entry of the account's audit trail
(`GET /account/activity`) with the change itself. Erasing a client also erases his contracts' activity logs
(their events name him by id and tell his dunning)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from chalicelib.domain.audit import AuditEntry, AuditType
from chalicelib.domain.deliverability import Suppression
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.events import Actor
from chalicelib.domain.partners import Client, Deal, DealFilters, RecordKind, dunning_underway
from chalicelib.domain.unsubscribe import Unsubscription, parse_unsubscription_id
from chalicelib.services.ports import (
    AuditTrail,
    CommunicationRepository,
    Cursor,
    PartnerRepository,
    SuppressionList,
    UnsubscriptionRepository,
)


def list_suppressions(
    account_id: str, suppressions: SuppressionList, limit: int, cursor: Cursor | None
) -> tuple[list[Suppression], Cursor | None]:
    return suppressions.entries(account_id, limit, cursor)


def lift_suppression(
    account_id: str, digest: str, suppressions: SuppressionList, by: Actor, now: datetime
) -> None:
    """The address may be written to again (the admin vouches it works, or the complaint was a mistake)."""
    audit = AuditEntry(account_id, AuditType.SUPPRESSION_REMOVED, now, by, {"address_hash": digest})
    if not suppressions.remove(account_id, digest, audit):
        raise NotFound("No such address on the suppression list.")


def list_unsubscriptions(
    account_id: str, unsubscriptions: UnsubscriptionRepository, limit: int, cursor: Cursor | None
) -> tuple[list[Unsubscription], Cursor | None]:
    return unsubscriptions.entries(account_id, limit, cursor)


def undo_unsubscription(
    account_id: str,
    unsubscription_id: str,
    unsubscriptions: UnsubscriptionRepository,
    by: Actor,
    now: datetime,
) -> None:
    """The addressee receives the account's mailings again (he asked the broker to, for instance)."""
    named = parse_unsubscription_id(unsubscription_id)
    if named is None:
        raise NotFound("No such unsubscription.")
    party, party_id = named
    data = {"unsubscription_id": unsubscription_id, "party": party, "party_id": party_id}
    audit = AuditEntry(account_id, AuditType.UNSUBSCRIPTION_REMOVED, now, by, data)
    if not unsubscriptions.remove(account_id, party, party_id, audit):
        raise NotFound("No such unsubscription.")


class ContractEventEraser(Protocol):
    def erase_contract_events(self, account_id: str, contract_id: str) -> int:
        """Delete a contract's activity log (its events); how many were deleted."""
        ...


def _deals_of(account_id: str, client_id: str, kind: RecordKind, partners: PartnerRepository) -> list[Deal]:
    """Every contract or project of the client, a Query page of 100 at a time (the client index)."""
    deals: list[Deal] = []
    cursor: Cursor | None = None
    while True:
        records, cursor = partners.filter_records(
            account_id, kind, DealFilters(client_id=client_id), 100, cursor
        )
        deals += [r for r in records if isinstance(r, Deal)]
        if cursor is None:
            return deals


def erase_client(
    account_id: str,
    client_id: str,
    partners: PartnerRepository,
    communications: CommunicationRepository,
    by: Actor,
    now: datetime,
    contract_events: ContractEventEraser | None = None,
) -> None:
    """Erase a client (RGPD): his record (name, email, postal address, consent), his projects (prospect
    data about him alone), the recipients, variables and content of his emails (their history keeps
    kind, status and dates), and his contracts' activity logs (`contract_events`). Conflict while a
    contract of his has dunning underway.

    Kept, for the broker's legal obligations: his contracts (reference, product, commission, status,
    installments and payments, under his now unknown client id) and the registered letters of the
    formal notices (proof of the L113-3 procedure), and the hash of his address if it is suppressed."""
    client = partners.get(account_id, RecordKind.CLIENT, client_id)
    if not isinstance(client, Client):
        raise NotFound("No such client.")
    contracts = _deals_of(account_id, client_id, RecordKind.CONTRACT, partners)
    underway = [c.reference for c in contracts if dunning_underway(c)]
    if underway:
        raise Conflict(
            f"Dunning is underway on {', '.join(underway)}: the client can be erased once it is paid or "
            "the contract terminated."
        )
    projects = _deals_of(account_id, client_id, RecordKind.PROJECT, partners)
    emptied = 0
    cursor: Cursor | None = None
    while True:
        history, cursor = communications.client_history(account_id, client_id, 100, cursor)
        for communication in history:
            communications.forget(account_id, communication.id)
        emptied += len(history)
        if cursor is None:
            break
    events_erased = 0
    if contract_events is not None:
        for contract in contracts:
            events_erased += contract_events.erase_contract_events(account_id, contract.id)
    data = {
        "client_id": client_id,
        "projects_erased": len(projects),
        "communications_emptied": emptied,
        "contract_events_erased": events_erased,
    }
    partners.remove(
        account_id,
        (RecordKind.CLIENT, client_id),
        [(RecordKind.PROJECT, p.id) for p in projects],
        AuditEntry(account_id, AuditType.CLIENT_ERASED, now, by, data),
    )


def account_activity(
    account_id: str, trail: AuditTrail, limit: int, cursor: Cursor | None
) -> tuple[list[AuditEntry], Cursor | None]:
    return trail.page(account_id, limit, cursor)
