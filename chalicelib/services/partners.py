"""Partner use cases: the records (apporteurs, clients, products, contracts, projects) with their
commissioning blocks, who receives a client's emails, and the manual email from the client record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.accounts import Account
from chalicelib.domain.communications import (
    Communication,
    CommunicationKind,
    TemplateSource,
)
from chalicelib.domain.contract_events import dunning_events
from chalicelib.domain.errors import AccountNotFound, FieldIssue, InvalidInput, NotFound, StaleVersion
from chalicelib.domain.events import SYSTEM, Actor
from chalicelib.domain.footers import footer, legal_mentions, sender_name
from chalicelib.domain.ids import new_ulid
from chalicelib.domain.legal import Insurer, PostalAddress, check_postal_address
from chalicelib.domain.partners import (
    DEFAULT_STATUS,
    Apporteur,
    Client,
    Commissioning,
    Deal,
    Product,
    RecordKind,
    deal_commissioning,
)
from chalicelib.domain.plans import Feature
from chalicelib.domain.recipients import Resolution, resolve_recipients
from chalicelib.domain.templates import render_kind, validate_template
from chalicelib.services.communications import queue_communication
from chalicelib.services.events import announce
from chalicelib.services.ports import CommunicationRepository, MessageQueue, PartnerRecord, PartnerRepository


def _not_found(kind: RecordKind) -> NotFound:
    return NotFound(f"No such {kind.value}.")


def _unknown(field: str, kind: RecordKind) -> InvalidInput:
    return InvalidInput(
        f"The {kind.value} named in {field} does not exist.", [FieldIssue(field, f"no such {kind.value}")]
    )


def get_record(
    account_id: str, kind: RecordKind, record_id: str, partners: PartnerRepository
) -> PartnerRecord:
    record = partners.get(account_id, kind, record_id)
    if record is None:
        raise _not_found(kind)
    return record


def _check_version(sent: int | None, stored: int) -> None:
    if sent is not None and sent != stored:
        raise StaleVersion()


def create_apporteur(
    account_id: str,
    name: str,
    email: str | None,
    block: Commissioning | None,
    partners: PartnerRepository,
    now: datetime,
) -> Apporteur:
    apporteur = Apporteur(new_ulid(), account_id, name, email, block or Commissioning(), now)
    return partners.add(apporteur)


def create_product(
    account_id: str,
    name: str,
    block: Commissioning | None,
    insurer: Insurer | None,
    partners: PartnerRepository,
    now: datetime,
) -> Product:
    _check_insurer(insurer)
    return partners.add(Product(new_ulid(), account_id, name, block or Commissioning(), now, insurer=insurer))


READ_BATCH = 100
"""Items one DynamoDB transactional read takes."""


def _check_insurer(insurer: Insurer | None) -> None:
    if insurer is not None and insurer.address is not None:
        check_postal_address(insurer.address, "insurer.address")


def insurers_of(account_id: str, deals: list[Deal], partners: PartnerRepository) -> dict[str, Insurer]:
    """The insurer of each deal's product, by product id: one read per 100 products of a page of deals
    (a page names few products; none is read when no deal has one)."""
    product_ids = sorted({d.product_id for d in deals if d.product_id})
    insurers: dict[str, Insurer] = {}
    for start in range(0, len(product_ids), READ_BATCH):
        keys = [(RecordKind.PRODUCT, pid) for pid in product_ids[start : start + READ_BATCH]]
        _, records = partners.get_many(account_id, keys)
        insurers |= {
            record.id: record.insurer
            for record in records.values()
            if isinstance(record, Product) and record.insurer is not None
        }
    return insurers


def create_client(
    account_id: str,
    name: str,
    email: str | None,
    preferred_apporteur_id: str | None,
    block: Commissioning | None,
    postal_address: PostalAddress | None,
    partners: PartnerRepository,
    now: datetime,
    marketing_consent: bool = False,
) -> Client:
    if (
        preferred_apporteur_id
        and partners.get(account_id, RecordKind.APPORTEUR, preferred_apporteur_id) is None
    ):
        raise _unknown("preferred_apporteur_id", RecordKind.APPORTEUR)
    if postal_address is not None:
        check_postal_address(postal_address, "postal_address")
    client = Client(
        new_ulid(),
        account_id,
        name,
        email,
        preferred_apporteur_id,
        block or Commissioning(),
        now,
        postal_address=postal_address,
        marketing_consent=marketing_consent,
    )
    return partners.add(client)


def update_party(
    account_id: str,
    kind: RecordKind,
    record_id: str,
    changes: dict[str, Any],
    version: int | None,
    partners: PartnerRepository,
    now: datetime,
) -> PartnerRecord:
    """Change an apporteur, client or product with the fields sent (None removes an optional one); a
    no-op PATCH changes nothing, not even the version."""
    record = get_record(account_id, kind, record_id, partners)
    _check_version(version, record.version)
    preferred = changes.get("preferred_apporteur_id")
    if preferred and partners.get(account_id, RecordKind.APPORTEUR, preferred) is None:
        raise _unknown("preferred_apporteur_id", RecordKind.APPORTEUR)
    if changes.get("postal_address") is not None:
        check_postal_address(changes["postal_address"], "postal_address")
    _check_insurer(changes.get("insurer"))
    changed = replace(record, **changes)
    return record if changed == record else partners.save(changed, now)


@dataclass(frozen=True)
class NewDeal:
    client_id: str
    reference: str
    product_id: str | None = None
    apporteur_id: str | None = None
    commissioning: Commissioning | None = None
    status: str | None = None


def _related(
    account_id: str,
    client_id: str,
    apporteur_id: str | None,
    product_id: str | None,
    partners: PartnerRepository,
) -> tuple[Client, Apporteur | None]:
    """The deal's client and apporteur (and a check that its product exists), in one read."""
    keys = [(RecordKind.CLIENT, client_id)]
    keys += [(RecordKind.APPORTEUR, apporteur_id)] if apporteur_id else []
    keys += [(RecordKind.PRODUCT, product_id)] if product_id else []
    _, found = partners.get_many(account_id, keys)
    client = found.get((RecordKind.CLIENT, client_id))
    if not isinstance(client, Client):
        raise _unknown("client_id", RecordKind.CLIENT)
    apporteur = found.get((RecordKind.APPORTEUR, apporteur_id)) if apporteur_id else None
    if apporteur_id and not isinstance(apporteur, Apporteur):
        raise _unknown("apporteur_id", RecordKind.APPORTEUR)
    if product_id and (RecordKind.PRODUCT, product_id) not in found:
        raise _unknown("product_id", RecordKind.PRODUCT)
    return client, apporteur if isinstance(apporteur, Apporteur) else None


def create_deal(
    account_id: str, kind: RecordKind, new: NewDeal, partners: PartnerRepository, now: datetime
) -> Deal:
    """A contract or a project; its block is prefilled when it gets an apporteur without one."""
    client, apporteur = _related(account_id, new.client_id, new.apporteur_id, new.product_id, partners)
    deal = Deal(
        id=new_ulid(),
        account_id=account_id,
        kind=kind,
        client_id=client.id,
        reference=new.reference,
        product_id=new.product_id,
        apporteur_id=new.apporteur_id,
        commissioning=deal_commissioning(new.commissioning, client, apporteur),
        status=new.status or DEFAULT_STATUS[kind],
        created_at=now,
    )
    return partners.add(deal)


def update_deal(
    account_id: str,
    kind: RecordKind,
    deal_id: str,
    changes: dict[str, Any],
    version: int,
    partners: PartnerRepository,
    now: datetime,
    steps: PendingSteps | None = None,
    actor: Actor = SYSTEM,
    webhooks: MessageQueue | None = None,
) -> Deal:
    """Change a deal at the version it was read (`commissioning` None: not sent); a new apporteur
    without a block prefills it again. A contract set `terminated` or `cancelled` loses its pending
    dunning and document steps (`steps`) at once; one set back from those takes them back; one given
    another client, product or apporteur has their ids copied on its pending steps. A contract
    whose status changes says so (`contract.suspended`, `.reinstated`, `.terminated`, by `actor`), in the
    same write, announced on `webhooks`."""
    deal = get_record(account_id, kind, deal_id, partners)
    assert isinstance(deal, Deal)
    _check_version(version, deal.version)
    sent_block: Commissioning | None = changes.pop("commissioning", None)
    changed = replace(deal, **changes)
    apporteur_changed = changed.apporteur_id != deal.apporteur_id
    related_changed = (
        apporteur_changed or changed.client_id != deal.client_id or changed.product_id != deal.product_id
    )
    if related_changed or sent_block is not None:
        product_id = changed.product_id if changed.product_id != deal.product_id else None
        client, apporteur = _related(
            account_id, changed.client_id, changed.apporteur_id, product_id, partners
        )
        block = deal_commissioning(sent_block, client, apporteur, deal.commissioning, apporteur_changed)
        changed = replace(changed, commissioning=block)
    if changed == deal:
        return deal
    events = dunning_events(deal, changed, None, None, now, actor) if deal.kind is RecordKind.CONTRACT else []
    saved = partners.save(changed, now, events)
    assert isinstance(saved, Deal)
    if events and webhooks is not None:
        announce(events, webhooks)
    if steps is not None and saved.kind is RecordKind.CONTRACT:
        if saved.status in ENDED_STATUSES:
            steps.cancel_pending(account_id, saved.id)
        elif deal.status in ENDED_STATUSES:
            steps.resume_pending(account_id, saved.id)
        elif saved.parties != deal.parties:
            steps.copy_parties(account_id, saved)
    return saved


ENDED_STATUSES = ("terminated", "cancelled")


class PendingSteps(Protocol):
    def cancel_pending(self, account_id: str, contract_id: str) -> int: ...

    def resume_pending(self, account_id: str, contract_id: str) -> int: ...

    def copy_parties(self, account_id: str, contract: Deal) -> int: ...


@dataclass(frozen=True)
class RecipientsView:
    account: Account
    client: Client
    contract: Deal | None
    apporteur: Apporteur | None
    resolution: Resolution


def recipients_of(
    account_id: str,
    client_id: str,
    contract_id: str | None,
    kind: CommunicationKind,
    partners: PartnerRepository,
    now: datetime,
) -> RecipientsView:
    """Who receives an email of `kind` about the client (and the contract): two reads, the account,
    client and contract together, then the apporteur in force."""
    keys = [(RecordKind.CLIENT, client_id)] + ([(RecordKind.CONTRACT, contract_id)] if contract_id else [])
    account, found = partners.get_many(account_id, keys, with_account=True)
    if account is None:
        raise AccountNotFound()
    client = found.get((RecordKind.CLIENT, client_id))
    if not isinstance(client, Client):
        raise _not_found(RecordKind.CLIENT)
    contract = found.get((RecordKind.CONTRACT, contract_id)) if contract_id else None
    if contract_id and not (isinstance(contract, Deal) and contract.client_id == client.id):
        raise InvalidInput(
            "This contract is not one of the client's.",
            [FieldIssue("contract_id", "no such contract for this client")],
        )
    deal = contract if isinstance(contract, Deal) else None
    return recipients_for(account, client, deal, kind, partners, now)


def recipients_for(
    account: Account,
    client: Client,
    contract: Deal | None,
    kind: CommunicationKind,
    partners: PartnerRepository,
    now: datetime,
) -> RecipientsView:
    """Who receives an email of `kind` about records the caller has just read (the client, the
    contract, one of the client's): one read more, the apporteur in force, when there is one."""
    holder = contract.rules if contract is not None else client.rules
    apporteur = (
        partners.get(account.id, RecordKind.APPORTEUR, holder.apporteur_id) if holder.apporteur_id else None
    )
    return recipients_given(account, client, contract, apporteur, kind, now)


def recipients_given(
    account: Account,
    client: Client,
    contract: Deal | None,
    apporteur: PartnerRecord | None,
    kind: CommunicationKind,
    now: datetime,
) -> RecipientsView:
    """Who receives an email of `kind` when the caller read the apporteur in force (the contract's, else
    the client's preferred one) with the rest: no read."""
    resolution = resolve_recipients(
        rules_in_force=account.partner_communications_enabled
        and account.entitlements.access(Feature.PARTNER_COMMUNICATIONS, now).enabled,
        kind=kind,
        client=client.party,
        client_rules=client.rules,
        contract=contract.rules if contract is not None else None,
        apporteur=apporteur.party if isinstance(apporteur, Apporteur) else None,
    )
    return RecipientsView(
        account=account,
        client=client,
        contract=contract,
        apporteur=apporteur if isinstance(apporteur, Apporteur) else None,
        resolution=resolution,
    )


def send_manual_email(
    account_id: str,
    client_id: str,
    contract_id: str | None,
    template: TemplateSource,
    partners: PartnerRepository,
    communications: CommunicationRepository,
    queue: MessageQueue,
    now: datetime,
    actor: Actor = SYSTEM,
    webhooks: MessageQueue | None = None,
) -> Communication:
    """Write from the client record: addressed by the rules, rendered by the worker from this template.
    When nobody can receive it (no address, or every address on the suppression list), it is recorded
    `skipped` at once with its `communication.skipped` event (by `actor`), and nothing is queued."""
    validate_template(CommunicationKind.MANUAL, template)
    view = recipients_of(account_id, client_id, contract_id, CommunicationKind.MANUAL, partners, now)
    resolution = view.resolution
    addressee = resolution.to[0] if resolution.to else None
    variables = {
        "account.name": view.account.public_name,
        "client.name": view.client.name,
        "client.email": view.client.email or "",
        "apporteur.name": view.apporteur.name if view.apporteur else "",
        "contract.reference": view.contract.reference if view.contract else "",
        "recipient.name": addressee.name if addressee else "",
        "recipient.party": addressee.party if addressee else "",
        **footer(legal_mentions(view.account)),
    }
    communication = Communication(
        id=f"cm_{new_ulid()}",
        account_id=account_id,
        kind=CommunicationKind.MANUAL,
        sender_name=sender_name(view.account),
        reply_to=view.account.sender_email,
        to=resolution.to,
        cc=resolution.cc,
        created_at=now,
        variables=variables,
        template=template,
        client_id=view.client.id,
        contract_id=view.contract.id if view.contract else None,
        rule=resolution.rule.value if resolution.rule else None,
        decided_by=resolution.decided_by.value if resolution.decided_by else None,
        skipped_parties=resolution.skipped_parties,
    )
    # The history shows the subject from the start, also of an email nobody could receive.
    communication = replace(
        communication, subject=render_kind(CommunicationKind.MANUAL, variables, template).subject
    )
    if resolution.nobody:
        communication = communication.skipped("no recipient has an email address")
    written = queue_communication(communication, communications, queue, now, actor, webhooks)
    return written or communication
