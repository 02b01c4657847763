"""S3 "Object Created" events (through EventBridge): an upload that arrived completes on its own, even if
the browser never calls `complete` (closed tab, lost network). The same checks run as in `complete` (the
object's first bytes against its declared type), and completing twice changes nothing."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.domain.errors import DomainError
from chalicelib.observability import logger
from chalicelib.services.dossiers import complete_upload
from chalicelib.wiring import container

_KEY = re.compile(
    r"^accounts/(?P<account>[^/]+)/dossiers/(?P<dossier>[^/]+)/documents/(?P<document>[^/]+)/(?P<upload>[^/]+)$"
)


def handle(detail: dict[str, Any]) -> str:
    """Complete the upload the event names; returns what was done (for logs and tests)."""
    services = container()
    bucket = str((detail.get("bucket") or {}).get("name", ""))
    key = str((detail.get("object") or {}).get("key", ""))
    found = _KEY.match(key)
    if bucket != services.settings.documents_bucket or found is None:
        logger.info("object event outside Relais uploads ignored", extra={"bucket": bucket})
        return "ignored"
    try:
        _, _, upload = complete_upload(
            found["account"],
            found["dossier"],
            found["document"],
            found["upload"],
            services.documents,
            services.dossier_context(),
        )
    except DomainError as exc:
        logger.warning(
            "upload event could not complete", extra={"reason": exc.message, "upload_id": found["upload"]}
        )
        return "refused"
    return upload.status.value
