"""Plans, boosters and trials, on plain values: no AWS, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.accounts import Account
from chalicelib.domain.errors import FeatureLocked, InvalidInput, TrialAlreadyUsed
from chalicelib.domain.plans import Entitlements, Feature, FeatureAccess, Plan, Trial, Via

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def entitlements(plan: Plan, boosters: frozenset[str] = frozenset(), **trials: Trial) -> Entitlements:
    return Entitlements(plan=plan, boosters=boosters, trials=dict(trials))


@pytest.mark.parametrize(
    ("plan", "boosters", "expected"),
    [
        (Plan.ESSENTIAL, frozenset(), FeatureAccess(False, None)),
        (Plan.PREMIUM, frozenset(), FeatureAccess(False, None)),
        (Plan.PLATINUM, frozenset(), FeatureAccess(True, Via.PLATINUM)),
        (Plan.ESSENTIAL, frozenset({"contributors"}), FeatureAccess(True, Via.BOOSTER)),
        (Plan.PLATINUM, frozenset({"contributors"}), FeatureAccess(True, Via.PLATINUM)),
    ],
)
def test_contributors_come_with_platinum_or_the_booster(
    plan: Plan, boosters: frozenset[str], expected: FeatureAccess
) -> None:
    assert entitlements(plan, boosters).access(Feature.CONTRIBUTORS, NOW) == expected


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (Plan.ESSENTIAL, FeatureAccess(False, None)),
        (Plan.PREMIUM, FeatureAccess(True, Via.PREMIUM)),
        (Plan.PLATINUM, FeatureAccess(True, Via.PLATINUM)),
    ],
)
def test_partner_communications_come_with_premium_and_platinum(plan: Plan, expected: FeatureAccess) -> None:
    assert (
        entitlements(plan, frozenset({"contributors"})).access(Feature.PARTNER_COMMUNICATIONS, NOW)
        == expected
    )


def test_a_trial_lasts_exactly_seven_days_from_its_start() -> None:
    trial = entitlements(Plan.ESSENTIAL).start_trial("contributors", NOW)
    assert trial.started_at == NOW
    assert trial.ends_at == NOW + timedelta(days=7)


def test_a_trial_opens_contributors_up_to_its_last_second_and_not_at_its_end() -> None:
    trial = entitlements(Plan.ESSENTIAL).start_trial("contributors", NOW)
    account = entitlements(Plan.ESSENTIAL, contributors=trial)
    assert account.access(Feature.CONTRIBUTORS, NOW) == FeatureAccess(True, Via.TRIAL)
    last_second = trial.ends_at - timedelta(seconds=1)
    assert account.access(Feature.CONTRIBUTORS, last_second) == FeatureAccess(True, Via.TRIAL)
    assert account.access(Feature.CONTRIBUTORS, trial.ends_at) == FeatureAccess(False, None)
    assert account.access(Feature.CONTRIBUTORS, NOW - timedelta(seconds=1)) == FeatureAccess(False, None)


def test_a_booster_outranks_a_running_trial() -> None:
    trial = Trial("contributors", NOW, NOW + timedelta(days=7))
    account = entitlements(Plan.PREMIUM, frozenset({"contributors"}), contributors=trial)
    assert account.access(Feature.CONTRIBUTORS, NOW).via is Via.BOOSTER


def test_a_trial_can_be_started_only_once_even_after_it_ended() -> None:
    ended = Trial("contributors", NOW - timedelta(days=30), NOW - timedelta(days=23))
    with pytest.raises(TrialAlreadyUsed):
        entitlements(Plan.ESSENTIAL, contributors=ended).start_trial("contributors", NOW)


def test_only_contributors_has_a_trial() -> None:
    with pytest.raises(InvalidInput) as refused:
        entitlements(Plan.ESSENTIAL).start_trial("partner_communications", NOW)
    assert refused.value.details[0].field == "feature"


def test_a_locked_feature_says_what_would_unlock_it_and_offers_the_trial_only_while_unused() -> None:
    with pytest.raises(FeatureLocked) as fresh:
        entitlements(Plan.PREMIUM).require(Feature.CONTRIBUTORS, NOW)
    assert (fresh.value.feature, fresh.value.unlock) == ("contributors", ["platinum", "booster", "trial"])

    ended = Trial("contributors", NOW - timedelta(days=8), NOW - timedelta(days=1))
    with pytest.raises(FeatureLocked) as used:
        entitlements(Plan.PREMIUM, contributors=ended).require(Feature.CONTRIBUTORS, NOW)
    assert used.value.unlock == ["platinum", "booster"]

    with pytest.raises(FeatureLocked) as partner:
        entitlements(Plan.ESSENTIAL).require(Feature.PARTNER_COMMUNICATIONS, NOW)
    assert partner.value.unlock == ["premium", "platinum"]


def _account(plan: Plan) -> Account:
    return Account(
        id="A1", name="Cabinet", plan=plan, boosters=frozenset(), sender_email="a@b.fr", created_at=NOW
    )


def test_a_downgrade_keeps_the_partner_setting_but_the_feature_turns_off() -> None:
    enabled = _account(Plan.PREMIUM).with_partner_communications(True, NOW)
    downgraded = enabled.with_plan(Plan.ESSENTIAL, None)
    assert downgraded.partner_communications_enabled is True
    assert downgraded.features(NOW)[Feature.PARTNER_COMMUNICATIONS] == FeatureAccess(False, None)


def test_an_upgrade_to_platinum_opens_contributors_and_changing_boosters_alone_keeps_the_plan() -> None:
    account = _account(Plan.ESSENTIAL)
    assert account.with_plan(Plan.PLATINUM, None).features(NOW)[Feature.CONTRIBUTORS].via is Via.PLATINUM
    boosted = account.with_plan(None, frozenset({"contributors"}))
    assert boosted.plan is Plan.ESSENTIAL
    assert boosted.features(NOW)[Feature.CONTRIBUTORS].via is Via.BOOSTER


def test_the_partner_switch_is_refused_on_the_essential_plan() -> None:
    with pytest.raises(FeatureLocked):
        _account(Plan.ESSENTIAL).with_partner_communications(True, NOW)


def test_starting_a_trial_records_it_on_the_account() -> None:
    account, trial = _account(Plan.ESSENTIAL).with_trial_started("contributors", NOW)
    assert account.trials == {"contributors": trial}
    assert account.features(NOW)[Feature.CONTRIBUTORS] == FeatureAccess(True, Via.TRIAL)
