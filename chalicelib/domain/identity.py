"""Who is calling, and what their role lets them do. The tenant always comes from the token, never a body."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.domain.errors import Forbidden


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    ADMIN = "admin"
    MANAGER = "manager"


@dataclass(frozen=True)
class StaffPrincipal:
    subject: str
    role: Role
    account_id: str | None

    def require_platform_admin(self) -> None:
        if self.role is not Role.PLATFORM_ADMIN:
            raise Forbidden("Only platform administrators may use /admin routes.")

    def require_account(self, admin_only: bool = False) -> str:
        """The caller's own account id, for account routes; managers are kept out of admin-only ones."""
        if self.role is Role.PLATFORM_ADMIN or self.account_id is None:
            raise Forbidden("Platform administrator tokens only open /admin routes.")
        if admin_only and self.role is not Role.ADMIN:
            raise Forbidden("Only an account administrator may change this.")
        return self.account_id


@dataclass(frozen=True)
class PortalPrincipal:
    """A recipient or contributor holding a portal link: bound to one dossier, one role and one
    participant (`main` for the dossier's recipient, else the contributor's id)."""

    account_id: str
    dossier_id: str
    role_id: str
    token_hash: str
    participant_id: str = "main"
    generation: int = 0
    """Links of a participant die together: a re-sent invitation starts a new generation."""
