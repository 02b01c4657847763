"""Partner records: apporteurs (introducers), clients, products, and deals (contracts and projects), each
with its commissioning block, and the prefill of that block when a deal gets an apporteur.

The block (`commission_rate`, a percentage 0–100 or not agreed yet; `communication_rule`) lives on the
apporteur, the product, the client and the deal. When a deal gets an apporteur and the request brings no
block, it is copied from the client's block if the client prefers that apporteur, otherwise from the
apporteur's own block (`prefilled_from` says which); a block sent explicitly is kept as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.legal import Insurer, PostalAddress
from chalicelib.domain.recipients import CommunicationRule, Party, RuleHolder

RULE_NONE = "none"
"""The filter value of deals without an apporteur (their rule then decides nothing)."""


class RecordKind(StrEnum):
    APPORTEUR = "apporteur"
    CLIENT = "client"
    PRODUCT = "product"
    CONTRACT = "contract"
    PROJECT = "project"


class PrefilledFrom(StrEnum):
    CLIENT = "client"
    APPORTEUR = "apporteur"


CONTRACT_STATUSES = ("active", "suspended", "terminated", "cancelled")
PROJECT_STATUSES = ("open", "won", "lost")
DEFAULT_STATUS = {RecordKind.CONTRACT: "active", RecordKind.PROJECT: "open"}
STATUSES = {RecordKind.CONTRACT: CONTRACT_STATUSES, RecordKind.PROJECT: PROJECT_STATUSES}


def parse_rate(value: object, field_name: str) -> Decimal | None:
    """A commission rate: a decimal string from 0 to 100 (at most 4 decimals), or None (not agreed)."""
    if value is None:
        return None
    problem = 'must be a decimal string from 0 to 100, such as "12.5"'
    if not isinstance(value, str):
        raise InvalidInput("The commission rate is invalid.", [FieldIssue(field_name, problem)])
    try:
        rate = Decimal(value.strip())
    except InvalidOperation as exc:
        raise InvalidInput("The commission rate is invalid.", [FieldIssue(field_name, problem)]) from exc
    exponent = rate.as_tuple().exponent
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100):
        raise InvalidInput("The commission rate is invalid.", [FieldIssue(field_name, problem)])
    if isinstance(exponent, int) and exponent < -4:
        raise InvalidInput(
            "The commission rate is invalid.", [FieldIssue(field_name, "must have at most 4 decimals")]
        )
    return rate.normalize() if rate != 0 else Decimal(0)


def format_rate(rate: Decimal | None) -> str | None:
    return None if rate is None else format(rate, "f")


@dataclass(frozen=True)
class Commissioning:
    commission_rate: Decimal | None = None
    communication_rule: CommunicationRule = CommunicationRule.CLIENT
    prefilled_from: PrefilledFrom | None = None


@dataclass(frozen=True)
class Apporteur:
    id: str
    account_id: str
    name: str
    email: str | None
    commissioning: Commissioning
    created_at: datetime
    version: int = 0

    @property
    def party(self) -> Party:
        return Party(self.id, self.name, self.email)


@dataclass(frozen=True)
class Client:
    id: str
    account_id: str
    name: str
    email: str | None
    preferred_apporteur_id: str | None
    commissioning: Commissioning
    created_at: datetime
    version: int = 0
    postal_address: PostalAddress | None = None
    """Where the formal notice's registered letter goes; without it the letter is blocked."""
    marketing_consent: bool = False
    """Agreed to hear about new business: mailings to the `projects` audience reach only such clients."""

    @property
    def party(self) -> Party:
        return Party(self.id, self.name, self.email)

    @property
    def rules(self) -> RuleHolder:
        return RuleHolder(self.preferred_apporteur_id, self.commissioning.communication_rule)


@dataclass(frozen=True)
class Product:
    id: str
    account_id: str
    name: str
    commissioning: Commissioning
    created_at: datetime
    version: int = 0
    insurer: Insurer | None = None
    """For whose account the broker sells it: named by the formal notice and the termination."""


@dataclass(frozen=True)
class ContractParties:
    """The records a deal names besides itself: its client, its product (whose insurer a formal notice
    names) and its apporteur. Copied onto the deal's installments and expected documents, so that a
    dunning step reads them with the deal in one batch instead of after it."""

    client_id: str
    product_id: str | None
    apporteur_id: str | None

    def record_keys(self) -> list[tuple[RecordKind, str]]:
        keys = [(RecordKind.CLIENT, self.client_id)]
        if self.product_id:
            keys.append((RecordKind.PRODUCT, self.product_id))
        if self.apporteur_id:
            keys.append((RecordKind.APPORTEUR, self.apporteur_id))
        return keys


@dataclass(frozen=True)
class Deal:
    """A contract, or a project (business not yet signed): the same shape, other statuses."""

    id: str
    account_id: str
    kind: RecordKind
    client_id: str
    reference: str
    product_id: str | None
    apporteur_id: str | None
    commissioning: Commissioning
    status: str
    created_at: datetime
    version: int = 0
    dunning_stage: str = "none"
    """Contracts: the furthest dunning stage of their unpaid installments."""
    cover_resumes_at: datetime | None = None
    """Contracts reinstated after a suspension: when the cover resumes (L113-3)."""
    suspension_voided: bool = False
    """Contracts whose suspension was void: every unpaid installment was paid before it took effect."""

    @property
    def rules(self) -> RuleHolder:
        return RuleHolder(self.apporteur_id, self.commissioning.communication_rule)

    @property
    def parties(self) -> ContractParties:
        return ContractParties(self.client_id, self.product_id, self.apporteur_id)

    @property
    def rule_filter(self) -> str:
        """What `?communication_rule=` matches: the rule when an apporteur is set, else `none`."""
        return self.commissioning.communication_rule.value if self.apporteur_id else RULE_NONE


def dunning_underway(deal: Deal) -> bool:
    """A contract whose unpaid installments have a step sent (a call, a reminder, the formal notice and its
    letter) and that is not terminated: its client cannot be erased, the dunning needs him."""
    return deal.kind is RecordKind.CONTRACT and deal.status != "terminated" and deal.dunning_stage != "none"


@dataclass(frozen=True)
class DealFilters:
    """What a list of clients or deals (and a mailing's audience) is filtered by; None: any."""

    communication_rule: str | None = None
    apporteur_id: str | None = None
    client_id: str | None = None
    status: str | None = None
    product_id: str | None = None
    """No index: a filter on the query of another filter, or of the entity's records."""


def prefilled(client: Client, apporteur: Apporteur) -> Commissioning:
    """The block a deal of `client` gets with `apporteur`, as the seed says: the client's when it prefers
    this apporteur, else the apporteur's own."""
    if client.preferred_apporteur_id == apporteur.id:
        return replace(client.commissioning, prefilled_from=PrefilledFrom.CLIENT)
    return replace(apporteur.commissioning, prefilled_from=PrefilledFrom.APPORTEUR)


def deal_commissioning(
    sent: Commissioning | None,
    client: Client,
    apporteur: Apporteur | None,
    current: Commissioning | None = None,
    apporteur_changed: bool = True,
) -> Commissioning:
    """The block of a deal being created or changed: as sent when sent; prefilled when it gets a (new)
    apporteur without one; otherwise unchanged (or the default block for a new deal)."""
    if sent is not None:
        return replace(sent, prefilled_from=None)
    if apporteur is not None and apporteur_changed:
        return prefilled(client, apporteur)
    return current if current is not None else Commissioning()
