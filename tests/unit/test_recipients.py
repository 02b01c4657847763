"""Recipient resolution: the worked cases of EXAMPLES.md, then every combination of the rule table,
checked by properties (hypothesis) and against a decision table written independently of the code."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.communications import (
    GOVERNED_KINDS,
    Communication,
    CommunicationKind,
    CommunicationStatus,
    Recipient,
)
from chalicelib.domain.recipients import (
    LEGAL_NOTICES,
    CommunicationRule,
    DecidedBy,
    Party,
    RuleHolder,
    reachable,
    readdressed,
    resolve_recipients,
)

K, R, D = CommunicationKind, CommunicationRule, DecidedBy
CLIENT = Party("C1", "Jean Dupont", "jean@dupont.fr")
MUTE_CLIENT = Party("C1", "Jean Dupont", None)
A = Party("A", "Courtage Ouest", "a@ouest.fr")
B = Party("B", "Cabinet Bernard", "b@bernard.fr")
MUTE_B = Party("B", "Cabinet Bernard", None)


def _to(*parties: tuple[Party, str]) -> tuple[Recipient, ...]:
    return tuple(Recipient(p.name, p.email, role) for p, role in parties)


def test_example_1_switch_off_the_client_receives_it() -> None:
    r = resolve_recipients(
        rules_in_force=False,
        kind=K.MANUAL,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=None,
        apporteur=A,
    )
    assert (r.to, r.cc, r.rule, r.decided_by) == (_to((CLIENT, "client")), (), None, D.OPTION_DISABLED)


def test_example_2_no_apporteur_the_client_receives_it() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.MANUAL,
        client=CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=None,
        apporteur=None,
    )
    assert (r.to, r.cc, r.rule, r.decided_by) == (_to((CLIENT, "client")), (), None, D.NO_APPORTEUR)


def test_example_3_the_clients_rule_sends_a_manual_email_to_the_apporteur() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.MANUAL,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=None,
        apporteur=A,
    )
    assert (r.to, r.cc, r.rule, r.decided_by) == (_to((A, "apporteur")), (), R.APPORTEUR, D.CLIENT)


def test_example_4_the_contracts_rule_puts_its_apporteur_in_cc() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.UNPAID_CALL,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=RuleHolder("B", R.CLIENT_AND_APPORTEUR),
        apporteur=B,
    )
    assert (r.to, r.cc, r.decided_by) == (_to((CLIENT, "client")), _to((B, "apporteur")), D.CONTRACT)
    assert r.rule is R.CLIENT_AND_APPORTEUR


def test_example_5_a_contract_without_apporteur_decides_for_the_client_even_if_the_client_has_one() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.FORMAL_NOTICE,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=RuleHolder(None, R.CLIENT),
        apporteur=None,
    )
    assert (r.to, r.cc, r.rule, r.decided_by) == (_to((CLIENT, "client")), (), None, D.NO_APPORTEUR)


def test_example_6_an_apporteur_without_email_leaves_the_client_and_says_why() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.MAILING,
        client=CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=RuleHolder("B", R.APPORTEUR),
        apporteur=MUTE_B,
    )
    assert (r.to, r.cc, r.decided_by) == (_to((CLIENT, "client")), (), D.CONTRACT)
    assert r.notes == ("the apporteur has no email address: the client receives it instead",)


def test_example_7_a_client_without_email_leaves_the_to_to_the_apporteur() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.UNPAID_REMINDER,
        client=MUTE_CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=RuleHolder("B", R.CLIENT_AND_APPORTEUR),
        apporteur=B,
    )
    assert (r.to, r.cc, r.decided_by, r.skipped_parties) == (
        _to((B, "apporteur")),
        (),
        D.CONTRACT,
        ("client",),
    )


def test_example_8_nobody_with_an_email_means_skipped() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.MANUAL,
        client=MUTE_CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=None,
        apporteur=None,
    )
    assert (r.nobody, r.skipped_parties, r.decided_by) == (True, ("client",), D.NO_APPORTEUR)


def test_example_9_an_invitation_is_never_governed() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.CONTRIBUTOR_INVITED,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=None,
        apporteur=A,
    )
    assert (r.to, r.cc, r.rule, r.decided_by) == (_to((CLIENT, "client")), (), None, None)


def test_a_legal_notice_under_the_apporteur_rule_keeps_the_client_in_to_and_the_apporteur_in_cc() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.SUSPENSION_NOTICE,
        client=CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=RuleHolder("B", R.APPORTEUR),
        apporteur=B,
    )
    assert (r.to, r.cc, r.rule) == (_to((CLIENT, "client")), _to((B, "apporteur")), R.APPORTEUR)


def test_a_legal_notice_for_a_client_without_email_is_skipped_not_sent_to_the_apporteur() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.TERMINATION_NOTICE,
        client=MUTE_CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=RuleHolder("B", R.CLIENT_AND_APPORTEUR),
        apporteur=B,
    )
    assert (r.nobody, r.skipped_parties) == (True, ("client",))


def test_the_client_rule_never_writes_to_the_apporteur_even_when_the_client_has_no_email() -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=K.DOCUMENTS_CALL,
        client=MUTE_CLIENT,
        client_rules=RuleHolder(None, R.CLIENT),
        contract=RuleHolder("B", R.CLIENT),
        apporteur=B,
    )
    assert (r.nobody, r.rule, r.decided_by) == (True, R.CLIENT, D.CONTRACT)


# ---- every combination: switch × kind × contract or not × rules × apporteur present × emails present ----

RULES = list(R)
KINDS = list(K)


def _expected(
    switch: bool,
    kind: K,
    on_contract: bool,
    contract_rule: R,
    contract_has_apporteur: bool,
    client_rule: R,
    client_has_apporteur: bool,
    client_email: bool,
    apporteur_email: bool,
) -> tuple[set[str], set[str]]:
    """The decision table of API.md, written as a table: (parties in To, parties in Cc)."""
    client = {"client"} if client_email else set()
    if kind not in GOVERNED_KINDS or not switch:
        return client, set()
    rule = contract_rule if on_contract else client_rule
    has_apporteur = contract_has_apporteur if on_contract else client_has_apporteur
    if not has_apporteur:
        return client, set()
    apporteur = {"apporteur"} if apporteur_email else set()
    if kind in LEGAL_NOTICES:
        if not client_email:
            return set(), set()
        return ({"client"}, apporteur) if rule is not R.CLIENT else ({"client"}, set())
    table = {
        R.CLIENT: (client, set()),
        R.APPORTEUR: (apporteur or client, set()),
        R.CLIENT_AND_APPORTEUR: (client, apporteur) if client else (apporteur, set()),
    }
    return table[rule]


COMBINATIONS = list(
    itertools.product(
        [False, True],
        KINDS,
        [False, True],
        RULES,
        [False, True],
        RULES,
        [False, True],
        [False, True],
        [False, True],
    )
)


def _resolve(
    switch: bool,
    kind: K,
    on_contract: bool,
    contract_rule: R,
    contract_has_apporteur: bool,
    client_rule: R,
    client_has_apporteur: bool,
    client_email: bool,
    apporteur_email: bool,
) -> tuple[set[str], set[str], DecidedBy | None, R | None]:
    client = CLIENT if client_email else MUTE_CLIENT
    apporteur_party = A if apporteur_email else Party("A", "Courtage Ouest", None)
    contract = RuleHolder("A" if contract_has_apporteur else None, contract_rule) if on_contract else None
    client_rules = RuleHolder("A" if client_has_apporteur else None, client_rule)
    in_force = contract if contract is not None else client_rules
    r = resolve_recipients(
        rules_in_force=switch,
        kind=kind,
        client=client,
        client_rules=client_rules,
        contract=contract,
        apporteur=apporteur_party if in_force.apporteur_id else None,
    )
    assert all(x.email for x in (*r.to, *r.cc)), "nobody without an email is addressed"
    return {x.party for x in r.to}, {x.party for x in r.cc}, r.decided_by, r.rule


def test_the_whole_rule_table_matches_the_decision_table() -> None:
    mismatches = []
    for combination in COMBINATIONS:
        to, cc, _, _ = _resolve(*combination)
        if (to, cc) != _expected(*combination):
            mismatches.append(combination)
    assert len(COMBINATIONS) == 2 * len(KINDS) * 2 * 3 * 2 * 3 * 2 * 2 * 2
    assert not mismatches, mismatches[:5]


combination = st.tuples(
    st.booleans(),
    st.sampled_from(KINDS),
    st.booleans(),
    st.sampled_from(RULES),
    st.booleans(),
    st.sampled_from(RULES),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@given(combination)
def test_a_cc_never_stands_without_a_to_and_nobody_is_addressed_twice(case: tuple[Any, ...]) -> None:
    to, cc, _, _ = _resolve(*case)
    assert not cc or to
    assert not (to & cc)


@given(combination)
def test_the_apporteur_is_written_to_only_when_the_rules_govern_and_name_him(case: tuple[Any, ...]) -> None:
    switch, kind, on_contract, contract_rule, contract_app, client_rule, client_app, _, _ = case
    to, cc, decided_by, rule = _resolve(*case)
    holder_rule, holder_app = (contract_rule, contract_app) if on_contract else (client_rule, client_app)
    if "apporteur" in to | cc:
        assert switch
        assert kind in GOVERNED_KINDS
        assert holder_app
        assert holder_rule is not R.CLIENT
    assert (rule is None) == (decided_by not in (D.CONTRACT, D.CLIENT))


@given(combination)
def test_a_legal_notice_that_goes_anywhere_goes_to_the_client(case: tuple[Any, ...]) -> None:
    to, cc, _, _ = _resolve(*case)
    if case[1] in LEGAL_NOTICES and (to or cc):
        assert "client" in to


@pytest.mark.parametrize("kind", sorted(set(KINDS) - GOVERNED_KINDS))
def test_kinds_outside_the_nine_governed_ones_always_go_to_the_client(kind: K) -> None:
    r = resolve_recipients(
        rules_in_force=True,
        kind=kind,
        client=CLIENT,
        client_rules=RuleHolder("A", R.APPORTEUR),
        contract=RuleHolder("A", R.APPORTEUR),
        apporteur=A,
    )
    assert r.to == _to((CLIENT, "client"))


def _notice_recipients() -> tuple[tuple[Recipient, ...], tuple[Recipient, ...]]:
    return _to((CLIENT, "client")), _to((B, "apporteur"))


@pytest.mark.parametrize("kind", sorted(LEGAL_NOTICES))
def test_a_legal_notice_to_a_suppressed_client_reaches_nobody_not_the_apporteur_alone(
    kind: CommunicationKind,
) -> None:
    to, cc = _notice_recipients()
    reach = reachable(kind, to, cc, {"jean@dupont.fr"})
    assert (reach.to, reach.cc, reach.suppressed_parties) == ((), (), ("client",))


def test_a_legal_notice_whose_apporteur_is_suppressed_still_reaches_the_client() -> None:
    to, cc = _notice_recipients()
    reach = reachable(K.FORMAL_NOTICE, to, cc, {"b@bernard.fr"})
    assert (reach.to, reach.cc, reach.suppressed_parties) == (to, (), ("apporteur",))


def test_an_ordinary_email_to_a_suppressed_client_goes_to_the_apporteur_in_cc() -> None:
    to, cc = _notice_recipients()
    reach = reachable(K.UNPAID_REMINDER, to, cc, {"JEAN@dupont.fr".lower()})
    assert (reach.to, reach.cc, reach.suppressed_parties) == (cc, (), ("client",))


def test_suppression_matches_the_mailbox_whatever_its_case() -> None:
    to = (Recipient("Jean Dupont", "Jean@Dupont.FR", "client"),)
    reach = reachable(K.MANUAL, to, (), {"jean@dupont.fr"})
    assert (reach.to, reach.suppressed_parties) == ((), ("client",))


def _written(kind: CommunicationKind) -> Communication:
    to, cc = _notice_recipients()
    return Communication(
        id="cm_1",
        account_id="A1",
        kind=kind,
        sender_name="Cabinet Martin",
        reply_to=None,
        to=to,
        cc=cc,
        created_at=datetime(2027, 3, 11, 8, 0, tzinfo=UTC),
    )


def test_an_email_written_to_a_suppressed_client_is_readdressed_to_the_apporteur_naming_the_client() -> None:
    readdressed_email = readdressed(_written(K.UNPAID_REMINDER), {"jean@dupont.fr"})
    _, cc = _notice_recipients()
    assert (readdressed_email.to, readdressed_email.cc) == (cc, ())
    assert (readdressed_email.status, readdressed_email.skipped_parties) == (
        CommunicationStatus.QUEUED,
        ("client",),
    )


@pytest.mark.parametrize("kind", sorted(LEGAL_NOTICES))
def test_a_legal_notice_written_to_a_suppressed_client_is_skipped_saying_why(kind: CommunicationKind) -> None:
    skipped = readdressed(_written(kind), {"jean@dupont.fr"})
    assert (skipped.status, skipped.skipped_parties) == (CommunicationStatus.SKIPPED, ("client",))
    assert skipped.status_reason == (
        "the client's address is on the suppression list (bounced or complained); "
        "a legal notice is never sent to the apporteur alone"
    )
    # Its To and Cc still say whom it was for.
    assert (skipped.to, skipped.cc) == _notice_recipients()


def test_an_email_none_of_whose_addresses_is_suppressed_is_written_as_decided() -> None:
    email = _written(K.FORMAL_NOTICE)
    assert readdressed(email, {"paul@exemple.fr"}) is email
    assert readdressed(email, set()) is email
