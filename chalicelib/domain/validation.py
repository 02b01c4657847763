"""Field rules shared by every entry point: what an email address or a display name may hold.

Names and addresses end up in email headers, so a newline or another control character is refused here,
at validation, rather than escaped later (header injection).
"""

from __future__ import annotations

import re

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200


def email_issue(value: str) -> str | None:
    """Why `value` is not an email address we can send to, or None when it is one."""
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value) or ".." in value:
        return "not an email address"
    return None


def name_issue(value: str) -> str | None:
    """Why `value` cannot be a display name (it may go into a From or To header), or None."""
    if not value.strip():
        return "must not be blank"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if _CONTROL.search(value):
        return "must not contain line breaks or control characters"
    return None
