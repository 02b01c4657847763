"""Typed failures of the domain and the use cases.

Each class names *what* went wrong; `chalicelib/errors.py` alone decides which HTTP status and error code
it becomes, so no caller ever picks a status by reading an error's text.
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every failure a caller is expected to handle."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldIssue:
    field: str
    issue: str


class InvalidInput(DomainError):
    def __init__(self, message: str, details: list[FieldIssue] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class PayloadTooLarge(DomainError):
    pass


class UnsupportedMediaType(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class Forbidden(DomainError):
    pass


class NotFound(DomainError):
    pass


class AccountNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such account.")


class Conflict(DomainError):
    pass


class TrialAlreadyUsed(Conflict):
    def __init__(self, feature: str) -> None:
        super().__init__(f"The {feature} trial has already been used by this account.")
        self.feature = feature


class StaleVersion(Conflict):
    def __init__(self) -> None:
        super().__init__("This resource was changed by someone else; reload it and try again.")


class FeatureLocked(DomainError):
    def __init__(self, feature: str, unlock: list[str]) -> None:
        super().__init__(f"The {feature} feature is not included in this account's plan.")
        self.feature = feature
        self.unlock = unlock
