"""An account is one brokerage (one tenant): its plan, boosters, trials and account-wide settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.domain.legal import BrokerIdentity, RegisteredMailChannel
from chalicelib.domain.plans import Entitlements, Feature, FeatureAccess, Plan, Trial


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    plan: Plan
    boosters: frozenset[str]
    sender_email: str
    created_at: datetime
    partner_communications_enabled: bool = False
    trials: dict[str, Trial] = field(default_factory=dict)
    version: int = 0
    legal: BrokerIdentity | None = None
    registered_mail_channel: RegisteredMailChannel = RegisteredMailChannel.MANUAL
    dossier_retention_days: int = 365
    """How long a completed or archived dossier is kept before the tick erases it (RGPD)."""

    @property
    def entitlements(self) -> Entitlements:
        return Entitlements(plan=self.plan, boosters=self.boosters, trials=self.trials)

    def features(self, now: datetime) -> dict[Feature, FeatureAccess]:
        return {feature: self.entitlements.access(feature, now) for feature in Feature}

    def with_plan(self, plan: Plan | None, boosters: frozenset[str] | None) -> Account:
        """Changing the plan keeps every setting: a downgrade only makes the gates answer differently."""
        return replace(
            self,
            plan=self.plan if plan is None else plan,
            boosters=self.boosters if boosters is None else boosters,
        )

    def with_partner_communications(self, enabled: bool, now: datetime) -> Account:
        self.entitlements.require(Feature.PARTNER_COMMUNICATIONS, now)
        return replace(self, partner_communications_enabled=enabled)

    def with_trial_started(self, feature: str, now: datetime) -> tuple[Account, Trial]:
        trial = self.entitlements.start_trial(feature, now)
        return replace(self, trials={**self.trials, feature: trial}), trial
