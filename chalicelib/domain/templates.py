"""Email templates: French defaults per kind, and rendering in Jinja2's sandbox.

Templates only ever see the whitelisted variables of their kind (dotted names such as `account.name`),
and an unknown variable fails loudly (StrictUndefined) rather than sending an email with a hole in it.
The body is written once, as HTML or as plain paragraphs: it is rendered with autoescape (a client's
name can never inject markup) and the text part is derived from that HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from chalicelib.domain.communications import CommunicationKind

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment


class TemplateError(Exception):
    """A template that cannot be rendered with the variables it was given."""


@dataclass(frozen=True)
class TemplateSource:
    subject: str
    body: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


DEFAULT_TEMPLATES: dict[CommunicationKind, TemplateSource] = {
    CommunicationKind.ACCOUNT_WELCOME: TemplateSource(
        subject="Bienvenue sur Relais, {{ account.name }}",
        body=(
            "Bonjour,\n\n"
            "Le compte {{ account.name }} est ouvert sur Relais.\n"
            "Vous pouvez dès maintenant créer vos procédures de collecte de pièces justificatives, "
            "inviter vos clients et leurs contributeurs, et confier à Relais vos relances.\n\n"
            "Les emails de vos clients partiront avec cette adresse en réponse ; "
            "répondez simplement à ce message si elle doit changer.\n\n"
            "Bien cordialement,\n"
            "L'équipe Relais"
        ),
    ),
}

_WHITESPACE = re.compile(r"\s+")


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    """Jinja2 is imported here, not at module level: only the worker renders, the API never pays for it."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=False)


def _nest(variables: dict[str, str]) -> dict[str, dict[str, str]]:
    nested: dict[str, dict[str, str]] = {}
    for dotted, value in variables.items():
        group, _, name = dotted.partition(".")
        nested.setdefault(group, {})[name] = value
    return nested


_BLOCK_TAG = re.compile(r"<\s*(p|div|br|ul|ol|li|table|h[1-6])\b", re.IGNORECASE)
_LINE_BREAKING = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"}


def _paragraphs_to_html(fragment: str) -> str:
    """Plain paragraphs (blank-line separated) become <p>; a body already laid out in HTML is kept."""
    if not _BLOCK_TAG.search(fragment):
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", fragment) if p.strip()]
        fragment = "\n".join("<p>" + p.replace("\n", "<br>\n") + "</p>" for p in paragraphs)
    return f'<!DOCTYPE html>\n<html lang="fr"><body>\n{fragment}\n</body></html>'


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINE_BREAKING:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table"}:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def _html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = [line.strip() for line in "".join(extractor.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render(template: TemplateSource, variables: dict[str, str]) -> RenderedEmail:
    """Render subject, text and HTML. Subjects are folded to one line: a header never holds a newline."""
    from jinja2 import TemplateError as JinjaTemplateError

    context = _nest(variables)
    try:
        subject = _environment(False).from_string(template.subject).render(context)
        html = _paragraphs_to_html(_environment(True).from_string(template.body).render(context))
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc)) from exc
    return RenderedEmail(subject=_WHITESPACE.sub(" ", subject).strip(), text=_html_to_text(html), html=html)
