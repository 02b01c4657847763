"""Plans, boosters and trials: which premium features an account may use, and why.

Features are evaluated at the moment of the call (the clock is passed in). When a trial ends nothing is
deleted: what was built with the feature keeps working, only new uses of it are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain.errors import FeatureLocked, FieldIssue, InvalidInput, TrialAlreadyUsed


class Plan(StrEnum):
    ESSENTIAL = "essential"
    PREMIUM = "premium"
    PLATINUM = "platinum"


class Feature(StrEnum):
    CONTRIBUTORS = "contributors"
    PARTNER_COMMUNICATIONS = "partner_communications"


class Via(StrEnum):
    PLATINUM = "platinum"
    PREMIUM = "premium"
    BOOSTER = "booster"
    TRIAL = "trial"


BOOSTERS: frozenset[str] = frozenset({Feature.CONTRIBUTORS.value})
TRIAL_FEATURES: frozenset[str] = frozenset({Feature.CONTRIBUTORS.value})
TRIAL_LENGTH = timedelta(days=7)


@dataclass(frozen=True)
class Trial:
    feature: str
    started_at: datetime
    ends_at: datetime

    def is_running(self, now: datetime) -> bool:
        """Running from its first second up to, not including, `ends_at`."""
        return self.started_at <= now < self.ends_at


@dataclass(frozen=True)
class FeatureAccess:
    enabled: bool
    via: Via | None


@dataclass(frozen=True)
class Entitlements:
    """What an account bought: its plan, its boosters and the trials it ever started."""

    plan: Plan
    boosters: frozenset[str]
    trials: dict[str, Trial]

    def access(self, feature: Feature, now: datetime) -> FeatureAccess:
        if feature is Feature.CONTRIBUTORS:
            if self.plan is Plan.PLATINUM:
                return FeatureAccess(True, Via.PLATINUM)
            if Feature.CONTRIBUTORS.value in self.boosters:
                return FeatureAccess(True, Via.BOOSTER)
            trial = self.trials.get(feature.value)
            if trial is not None and trial.is_running(now):
                return FeatureAccess(True, Via.TRIAL)
            return FeatureAccess(False, None)
        if self.plan is Plan.PLATINUM:
            return FeatureAccess(True, Via.PLATINUM)
        if self.plan is Plan.PREMIUM:
            return FeatureAccess(True, Via.PREMIUM)
        return FeatureAccess(False, None)

    def unlock_options(self, feature: Feature) -> list[str]:
        """What would open a locked feature; a trial is offered only while it was never used."""
        if feature is Feature.PARTNER_COMMUNICATIONS:
            return [Plan.PREMIUM.value, Plan.PLATINUM.value]
        options = [Plan.PLATINUM.value, Via.BOOSTER.value]
        if feature.value in TRIAL_FEATURES and feature.value not in self.trials:
            options.append(Via.TRIAL.value)
        return options

    def require(self, feature: Feature, now: datetime) -> FeatureAccess:
        access = self.access(feature, now)
        if not access.enabled:
            raise FeatureLocked(feature.value, self.unlock_options(feature))
        return access

    def start_trial(self, feature_name: str, now: datetime) -> Trial:
        """A trial lasts exactly seven days and can be started once per feature, ever."""
        if feature_name not in TRIAL_FEATURES:
            allowed = ", ".join(sorted(TRIAL_FEATURES))
            raise InvalidInput(
                "This feature has no trial.",
                [FieldIssue("feature", f"must be one of: {allowed}")],
            )
        if feature_name in self.trials:
            raise TrialAlreadyUsed(feature_name)
        return Trial(feature=feature_name, started_at=now, ends_at=now + TRIAL_LENGTH)
