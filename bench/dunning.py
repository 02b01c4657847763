"""Automations: how fast an email is addressed and rendered (recipient resolution plus rendering of an
unpaid reminder, on one core, in this process, no AWS). The tick's read-calls ratio at 20,000 against
1,000 contracts is still to be measured: seeding 20,000 contracts into moto in-process took over 15 minutes.
"""

from __future__ import annotations

import time

from bench.figures import Figure


def run() -> list[Figure]:
    return [
        Figure(
            name="render_resolve_per_second",
            value=_render_resolve_rate(),
            target=2000,
            better="higher",
            unit="emails/s",
        )
    ]


def _render_resolve_rate() -> float:
    from chalicelib.domain.communications import CommunicationKind
    from chalicelib.domain.recipients import CommunicationRule, Party, RuleHolder, resolve_recipients
    from chalicelib.domain.templates import render_kind

    client, apporteur = (
        Party("C", "Jean Dupont", "jean@dupont.fr"),
        Party("A", "Courtage Ouest", "a@ouest.fr"),
    )
    kind = CommunicationKind.UNPAID_REMINDER
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        resolution = resolve_recipients(
            rules_in_force=True,
            kind=kind,
            client=client,
            client_rules=RuleHolder("A", CommunicationRule.APPORTEUR),
            contract=RuleHolder("A", CommunicationRule.CLIENT_AND_APPORTEUR),
            apporteur=apporteur,
        )
        render_kind(
            kind,
            {
                "account.name": "Cabinet Martin",
                "client.name": client.name,
                "recipient.name": resolution.to[0].name,
                "recipient.party": resolution.to[0].party,
                "contract.reference": f"HAB-{rounds}",
                "installment.amount": "84,20\u00a0€",
                "installment.due_date": "01/03/2027",
            },
        )
        rounds += 1
    return round(rounds / (time.perf_counter() - started))
