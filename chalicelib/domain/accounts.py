"""An account is one brokerage (one tenant): its plan, boosters, trials and account-wide settings, and
how its portal page looks to its clients (a brand colour white text stays readable on, a logo)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.domain.errors import FieldIssue, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from chalicelib.domain.legal import BrokerIdentity, RegisteredMailChannel
from chalicelib.domain.plans import Entitlements, Feature, FeatureAccess, Plan, Trial

DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
MIN_CONTRAST_WITH_WHITE = 4.5
"""WCAG 2.x level AA for normal text: the page writes white text on the brand colour."""
MAX_LOGO_BYTES = 200 * 1024
_HEX_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_LOGO_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(color: str) -> float:
    """The WCAG contrast ratio of white on `color` ("#RRGGBB")."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)
    return 1.05 / (luminance + 0.05)


def checked_brand_color(color: str) -> str:
    """A colour white text can be read on, upper-cased; else 400 naming `brand_color`."""
    if not _HEX_COLOR.match(color):
        raise InvalidInput(
            "brand_color is a colour written #RRGGBB.", [FieldIssue("brand_color", "not #RRGGBB")]
        )
    ratio = contrast_with_white(color)
    if ratio < MIN_CONTRAST_WITH_WHITE:
        raise InvalidInput(
            f"White text on {color} has a contrast of {ratio:.2f}:1, below the 4.5:1 of WCAG AA; "
            "choose a darker colour.",
            [FieldIssue("brand_color", "contrast with white below 4.5:1")],
        )
    return color.upper()


def checked_retention_days(days: int) -> int:
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise InvalidInput(
            f"dossier_retention_days is between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS}.",
            [FieldIssue("dossier_retention_days", "out of range")],
        )
    return days


@dataclass(frozen=True)
class Logo:
    content_type: str
    data: bytes


def sniffed_logo(data: bytes, declared_type: str) -> Logo:
    """A logo is what its first bytes say it is, PNG or JPEG: anything else is 415 whatever its header
    claims, a header that contradicts the bytes is 400, more than 200 KB is 413."""
    if len(data) > MAX_LOGO_BYTES:
        raise PayloadTooLarge(f"A logo takes at most {MAX_LOGO_BYTES // 1024} KB.")
    actual = next((kind for kind, magic in _LOGO_SIGNATURES.items() if data.startswith(magic)), None)
    if actual is None:
        raise UnsupportedMediaType("A logo is a PNG or JPEG image.")
    if declared_type.split(";")[0].strip().lower() not in (
        actual,
        "image/jpg" if actual == "image/jpeg" else actual,
    ):
        raise InvalidInput(
            f"The body is {actual}, not {declared_type}.",
            [FieldIssue("Content-Type", "does not match the bytes")],
        )
    return Logo(actual, data)


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
    brand_color: str | None = None
    dossier_retention_days: int = DEFAULT_RETENTION_DAYS
    logo_etag: str | None = None
    """Set when a logo is stored: the portal view names its URL without reading the logo's item."""

    @property
    def public_name(self) -> str:
        """The name clients know the broker by: its legal name once given, else the account's."""
        return self.legal.legal_name if self.legal else self.name

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

    def with_brand_color(self, color: str | None) -> Account:
        return replace(self, brand_color=None if color is None else checked_brand_color(color))

    def with_retention_days(self, days: int) -> Account:
        return replace(self, dossier_retention_days=checked_retention_days(days))

    def with_trial_started(self, feature: str, now: datetime) -> tuple[Account, Trial]:
        trial = self.entitlements.start_trial(feature, now)
        return replace(self, trials={**self.trials, feature: trial}), trial
