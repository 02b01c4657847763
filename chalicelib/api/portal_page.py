"""The portal page (`GET /p`): one static HTML file with its CSS and JS, served by the API itself so that
the link in an invitation email opens a working page on any stage. No login: the page reads the link's
secret from the URL fragment, which browsers never send, and calls `/portal` with it.

The Content-Security-Policy allows nothing but this page's own files and calls to this API and to the
documents bucket's own host (the presigned upload): an injected script or a rogue stylesheet has nowhere
to run or to report to, not even another bucket.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from chalice.app import Response

from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.errors import NotFound
from chalicelib.wiring import container

portal_page = ApiBlueprint(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "portal_page"
CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
    "portal.js": "text/javascript; charset=utf-8",
}


@cache
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _headers(name: str) -> dict[str, str | list[str]]:
    headers: dict[str, str | list[str]] = {
        "Content-Type": CONTENT_TYPES[name],
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if name == "index.html":
        headers["Cache-Control"] = "no-store"
        headers["X-Frame-Options"] = "DENY"
        headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {container().documents.upload_origin}; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
    else:
        headers["Cache-Control"] = "public, max-age=300"
    return headers


@portal_page.route("/p", methods=["GET"])
def page() -> Response:
    return Response(_asset("index.html"), status_code=200, headers=_headers("index.html"))


@portal_page.route("/p/{asset}", methods=["GET"])
def asset(asset: str) -> Response:
    if asset not in CONTENT_TYPES or asset == "index.html":
        raise NotFound("No such file.")
    return Response(_asset(asset), status_code=200, headers=_headers(asset))
