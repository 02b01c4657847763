"""Who receives an email: the partner communication rules, as one pure function.

The rule in force is the contract's commissioning block for an email about a contract, the client's block
otherwise; "the apporteur" is then the contract's `apporteur_id` or the client's `preferred_apporteur_id`.
Rules: `client` writes to the client only (never to the apporteur, even when the client has no email);
`apporteur` writes to the apporteur; `client_and_apporteur` puts the client in To and the apporteur in Cc.
Only the nine governed kinds follow the rules, and only when the account switch is on and the plan still
includes the feature; legal notices always keep the client in To (the rules can only add the apporteur in
Cc). A party without an email is left out and named in `skipped_parties`; when the To is left empty, the
remaining party takes it; when nobody remains the email is skipped. Worked cases: EXAMPLES.md.
`reachable` applies the account's suppression list to that outcome, by the same rules: a suppressed client
of a legal notice leaves nobody, never the apporteur alone. `readdressed` is that outcome as the email is
written (when it is decided), and the worker applies it again when that screening is old.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import StrEnum

from chalicelib.domain.communications import (
    GOVERNED_KINDS,
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
)
from chalicelib.domain.deliverability import normalize_address


class CommunicationRule(StrEnum):
    CLIENT = "client"
    APPORTEUR = "apporteur"
    CLIENT_AND_APPORTEUR = "client_and_apporteur"


class DecidedBy(StrEnum):
    CONTRACT = "contract"
    CLIENT = "client"
    NO_APPORTEUR = "no_apporteur"
    OPTION_DISABLED = "option_disabled"


LEGAL_NOTICES: frozenset[CommunicationKind] = frozenset(
    {
        CommunicationKind.FORMAL_NOTICE,
        CommunicationKind.SUSPENSION_NOTICE,
        CommunicationKind.TERMINATION_NOTICE,
        CommunicationKind.REINSTATEMENT_NOTICE,
    }
)


@dataclass(frozen=True)
class Party:
    """A client or an apporteur as the rules see it: its name and email (None: none on file)."""

    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class RuleHolder:
    """The client or the contract whose commissioning block may decide: its apporteur and its rule."""

    apporteur_id: str | None
    rule: CommunicationRule


@dataclass(frozen=True)
class Resolution:
    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    rule: CommunicationRule | None
    decided_by: DecidedBy | None
    skipped_parties: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def nobody(self) -> bool:
        return not self.to


def _recipient(party: Party, role: str) -> Recipient:
    return Recipient(name=party.name, email=party.email, party=role)


def resolve_recipients(
    *,
    rules_in_force: bool,
    kind: CommunicationKind,
    client: Party,
    client_rules: RuleHolder,
    contract: RuleHolder | None,
    apporteur: Party | None,
) -> Resolution:
    """To and Cc of one email. `apporteur` is the apporteur of the holder in force (the contract's for a
    contract email, else the client's preferred one), or None when that holder names none or it is gone.
    `rules_in_force` is the account switch AND the plan including partner communications."""
    if kind not in GOVERNED_KINDS:
        return _finish((_recipient(client, "client"),), (), None, None)
    if not rules_in_force:
        return _finish((_recipient(client, "client"),), (), None, DecidedBy.OPTION_DISABLED)
    holder, decided_by = (
        (contract, DecidedBy.CONTRACT) if contract is not None else (client_rules, DecidedBy.CLIENT)
    )
    if holder.apporteur_id is None or apporteur is None:
        return _finish((_recipient(client, "client"),), (), None, DecidedBy.NO_APPORTEUR)
    rule = holder.rule
    if kind in LEGAL_NOTICES and rule is CommunicationRule.APPORTEUR:
        effective = CommunicationRule.CLIENT_AND_APPORTEUR
    else:
        effective = rule
    client_recipient, apporteur_recipient = _recipient(client, "client"), _recipient(apporteur, "apporteur")
    notes: tuple[str, ...] = ()
    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    if kind in LEGAL_NOTICES and not client.email:
        # The notice is the client's by law: without his address it is skipped, never sent to the apporteur.
        return Resolution(to=(), cc=(), rule=rule, decided_by=decided_by, skipped_parties=("client",))
    if effective is CommunicationRule.CLIENT:
        to, cc = (client_recipient,), ()
    elif effective is CommunicationRule.APPORTEUR:
        if apporteur.email:
            to, cc = (apporteur_recipient,), ()
        else:
            to, cc = (client_recipient,), ()
            notes = ("the apporteur has no email address: the client receives it instead",)
    else:
        to, cc = (client_recipient,), (apporteur_recipient,)
    return _finish(to, cc, rule, decided_by, notes)


def _finish(
    to: tuple[Recipient, ...],
    cc: tuple[Recipient, ...],
    rule: CommunicationRule | None,
    decided_by: DecidedBy | None,
    notes: tuple[str, ...] = (),
) -> Resolution:
    """Leave out the parties without an email; a remaining Cc takes an empty To."""
    skipped = tuple(r.party for r in (*to, *cc) if not r.email)
    to = tuple(r for r in to if r.email)
    cc = tuple(r for r in cc if r.email)
    if not to and cc:
        to, cc = cc, ()
    return Resolution(to=to, cc=cc, rule=rule, decided_by=decided_by, skipped_parties=skipped, notes=notes)


@dataclass(frozen=True)
class Reach:
    """Who an email can still be sent to once the suppressed addresses are left out, and the parties
    they belonged to."""

    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    suppressed_parties: tuple[str, ...]


def reachable(
    kind: CommunicationKind,
    to: tuple[Recipient, ...],
    cc: tuple[Recipient, ...],
    suppressed: Collection[str],
) -> Reach:
    """To and Cc without the addresses on the suppression list (normalized ones, as the list holds them).

    A remaining Cc takes an emptied To, except for a legal notice: it is the client's by law, so when the
    client cannot be written to it is sent to nobody, as when he has no email (`resolve_recipients`)."""

    def kept(recipient: Recipient) -> bool:
        return not recipient.email or normalize_address(recipient.email) not in suppressed

    left = tuple(r.party for r in (*to, *cc) if not kept(r))
    if kind in LEGAL_NOTICES and any(r.party == "client" and not kept(r) for r in to):
        return Reach((), (), left)
    kept_to, kept_cc = tuple(r for r in to if kept(r)), tuple(r for r in cc if kept(r))
    if not kept_to:
        kept_to, kept_cc = kept_cc, ()
    return Reach(kept_to, kept_cc, left)


def readdressed(communication: Communication, suppressed: Collection[str]) -> Communication:
    """A queued communication addressed only to whom it can still reach once the `suppressed` (normalized)
    addresses are left out (`reachable`), their parties named in `skipped_parties`; `skipped` when nobody
    remains (its To and Cc then say whom it was for). Unchanged when none of its addresses is suppressed."""
    if communication.status is not CommunicationStatus.QUEUED:
        return communication
    reach = reachable(
        communication.kind, communication.deliverable_to, communication.deliverable_cc, suppressed
    )
    if not reach.suppressed_parties:
        return communication
    left = communication.without_parties(reach.suppressed_parties)
    if not reach.to:
        return left.skipped(nobody_reason(left))
    return replace(left, to=reach.to, cc=reach.cc)


def nobody_reason(communication: Communication) -> str:
    """Why an email was sent to nobody (`skipped`), in the words its history shows."""
    if not (communication.deliverable_to or communication.deliverable_cc):
        return "no recipient has an email address"
    if communication.kind in LEGAL_NOTICES and "client" in communication.skipped_parties:
        return (
            "the client's address is on the suppression list (bounced or complained); "
            "a legal notice is never sent to the apporteur alone"
        )
    return "every recipient is on the suppression list (bounced or complained)"
