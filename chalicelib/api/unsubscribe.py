"""`/unsubscribe?token=`: the link of every mailing (RFC 8058 one-click, and a page for people).

No authorizer: the signed token is the proof. `GET` shows a confirmation page whose button makes the
same `POST` that mail clients make on their own (`List-Unsubscribe=One-Click`, form-encoded, or an empty
body). A person gets HTML pages; a client that does not ask for HTML gets the API's JSON shapes.
"""

from __future__ import annotations

from html import escape

from chalice.app import Request, Response

from chalicelib.api.routing import ApiBlueprint
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.unsubscribe import Addressee, read_unsubscribe_token
from chalicelib.errors import error_body
from chalicelib.services import unsubscribe as service
from chalicelib.wiring import container

unsubscribe = ApiBlueprint(__name__)

_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "color:#1a1a1a;line-height:1.5}button{font:inherit;padding:.6rem 1.2rem;border:0;"
    "border-radius:.4rem;background:#1d4ed8;color:#fff;cursor:pointer}"
    "button:focus{outline:3px solid #f59e0b;outline-offset:2px}"
)


def _page(title: str, paragraphs: list[str], status: int = 200, form: bool = False) -> Response:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if form:
        body += (
            '<form method="post" action="">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Me désabonner</button></form>'
        )
    html = (
        f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return Response(body=html, status_code=status, headers=dict(_PAGE_HEADERS))


def _wants_html(request: Request) -> bool:
    return "text/html" in (request.headers.get("accept") or "")


def _token(request: Request) -> str:
    token = str(request.query_params.get("token") or "") if request.query_params else ""
    if not token:
        raise InvalidInput("The unsubscribe link has no token.", [FieldIssue("token", "is required")])
    return token


def _invalid_link(request: Request, refusal: InvalidInput) -> Response:
    if _wants_html(request):
        return _page(
            "Lien non valide",
            ["Ce lien de désabonnement n’est pas valide\u00a0: utilisez le lien complet reçu dans l’email."],
            status=400,
        )
    details = [{"field": d.field, "issue": d.issue} for d in refusal.details]
    return Response(
        body=error_body("validation_error", refusal.message, details),
        status_code=400,
        headers={"Content-Type": "application/json"},
    )


@unsubscribe.route("/unsubscribe", methods=["GET"])
def confirm_page() -> Response:
    request = unsubscribe.current_request
    services = container()
    try:
        addressee = read_unsubscribe_token(services.settings.signing_secret(), _token(request))
    except InvalidInput as refusal:
        return _invalid_link(request, refusal)
    broker = _broker(addressee)
    if addressee.party == "apporteur":
        paragraphs = [
            f"Vous ne recevrez plus les emails d’information que {broker} vous adresse en tant "
            "qu’apporteur. Vos clients, eux, continueront de recevoir les leurs.",
            "Les emails liés aux contrats de vos clients (échéances, relances) continueront de vous "
            "parvenir quand les règles de communication convenues avec vous le prévoient.",
        ]
    else:
        paragraphs = [
            f"Vous ne recevrez plus les emails d’information de {broker}.",
            "Les emails liés à vos contrats (échéances, relances, mises en demeure) continueront de vous "
            "parvenir\u00a0: ils sont nécessaires à la gestion de vos garanties.",
        ]
    return _page("Se désabonner", paragraphs, form=True)


def _broker(addressee: Addressee) -> str:
    """The broker named on the page, escaped: the page is HTML and the name is the broker's own text."""
    name = service.broker_name(addressee.account_id, container().accounts)
    return escape(name) if name else "ce cabinet"


@unsubscribe.route(
    "/unsubscribe",
    methods=["POST"],
    content_types=[
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data",
    ],
)
def one_click() -> Response:
    request = unsubscribe.current_request
    services = container()
    try:
        addressee = service.unsubscribe(
            _token(request), services.settings.signing_secret(), services.unsubscriptions, services.now()
        )
    except InvalidInput as refusal:
        return _invalid_link(request, refusal)
    if not _wants_html(request):
        return Response(body={"unsubscribed": True}, status_code=200)
    return _page(
        "Désabonnement enregistré",
        [
            f"Vous ne recevrez plus les emails d’information de {_broker(addressee)}. "
            "Vous pouvez fermer cette page."
        ],
    )
