"""The local outbox: every email the embedded SES (moto) accepted, read back from its raw MIME."""

from __future__ import annotations

from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from chalicelib.domain.clock import iso


def _addresses(message: EmailMessage, header: str) -> list[str]:
    return [address for _, address in getaddresses(message.get_all(header, [])) if address]


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return str(body.get_content()) if body is not None else ""


def sent_messages(region: str) -> list[dict[str, Any]]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    outbox = []
    for raw in list(ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages):
        message = message_from_string(getattr(raw, "raw_data", ""), policy=policy.default)
        date = message.get("Date")
        outbox.append(
            {
                "from": str(message.get("From", "")),
                "to": _addresses(message, "To"),
                "cc": _addresses(message, "Cc"),
                "reply_to": str(message.get("Reply-To", "")) or None,
                "subject": str(message.get("Subject", "")),
                "text": _part(message, "plain"),
                "html": _part(message, "html"),
                "kind": str(message.get("X-Relais-Kind", "")),
                "communication_id": str(message.get("X-Relais-Communication", "")),
                "sent_at": iso(parsedate_to_datetime(str(date))) if date else None,
                "headers": {
                    name: str(value)
                    for name, value in message.items()
                    if name.lower().startswith(("list-", "x-relais-", "reply-to", "message-id"))
                },
                "delivered_to": list(getattr(raw, "destinations", []) or []),
            }
        )
    return outbox


def outbox_page(messages: list[dict[str, Any]]) -> str:
    """The outbox for a person: newest first, each email's kind, To/Cc and subject, and its HTML part in
    a sandboxed frame whose links open in a new tab (an invitation's portal link opens the portal)."""
    from html import escape

    cards = []
    for message in reversed(messages):
        body = message["html"] or f"<pre>{escape(message['text'])}</pre>"
        document = f'<base target="_blank">{body}'
        cards.append(
            f"""<article>
<h2>{escape(message["subject"])}</h2>
<p class="meta"><strong>{escape(message["kind"])}</strong> · {escape(message["sent_at"] or "")}</p>
<p class="meta">De : {escape(message["from"])}<br>À : {escape(", ".join(message["to"]))}"""
            + (f"<br>Cc : {escape(', '.join(message['cc']))}" if message["cc"] else "")
            + f"""</p>
<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" title="{escape(message["subject"])}"
 srcdoc="{escape(document, quote=True)}"></iframe>
</article>"""
        )
    empty = "<p>Aucun email envoyé pour le moment.</p>" if not cards else ""
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Boîte d'envoi locale – Relais</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem;
  background: #f3f5f7; }}
article {{ background: #fff; border: 1px solid #d3d8de; border-radius: .5rem; padding: 1rem;
  margin: 0 0 1rem; }}
h2 {{ font-size: 1.1rem; margin: 0 0 .25rem; }} .meta {{ color: #4a5360; margin: .25rem 0; }}
iframe {{ width: 100%; min-height: 16rem; border: 1px solid #d3d8de; border-radius: .25rem;
  background: #fff; }}
</style></head>
<body><h1>Boîte d'envoi locale ({len(cards)} emails, le plus récent en premier)</h1>
{empty}{"".join(cards)}
</body></html>"""
