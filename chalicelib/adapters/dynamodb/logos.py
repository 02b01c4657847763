"""Account logos, one item each beside the account (`ACCOUNT#<id>` / `LOGO`). A logo is at most 200 KB, so
an item holds it: one GetItem serves it, with no bucket permission for the API and no second store to
erase when the account goes."""

from __future__ import annotations

import hashlib

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.models import LogoItem
from chalicelib.domain.accounts import Logo
from chalicelib.services.ports import StoredLogo


class DynamoLogoStore:
    _SK = "LOGO"

    def put(self, account_id: str, logo: Logo) -> StoredLogo:
        etag = hashlib.sha256(logo.data).hexdigest()[:32]
        LogoItem(
            f"ACCOUNT#{account_id}", self._SK, content_type=logo.content_type, data=logo.data, etag=etag
        ).save()
        return StoredLogo(logo, etag)

    def get(self, account_id: str) -> StoredLogo | None:
        try:
            item = LogoItem.get(f"ACCOUNT#{account_id}", self._SK)
        except DoesNotExist:
            return None
        return StoredLogo(Logo(item.content_type, bytes(item.data)), item.etag)
