"""Email templates: the variables each kind offers, checking a template when it is saved, French defaults
per kind, and rendering in Jinja2's sandbox.

A template only ever sees the whitelisted variables of its kind (dotted names such as `account.name`).
`validate_template` reads a template's syntax tree when staff save it and refuses, naming it, any variable
the kind does not offer, any other attribute or item access, any call, and any statement beyond `if`, so
nothing reaches Python objects even before the sandbox would stop it. At render time a variable the kind
offers but that has no value in this email renders empty; anything else still fails (StrictUndefined).
The body is written once, as HTML or as plain paragraphs: it is rendered with autoescape (a client's name
can never inject markup) and the text part is derived from that HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from chalicelib.domain.communications import GOVERNED_KINDS, CommunicationKind, TemplateSource
from chalicelib.domain.errors import FieldIssue, InvalidInput

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "DEFAULT_TEMPLATES",
    "KIND_VARIABLES",
    "TemplateSource",
    "render",
    "render_kind",
    "validate_template",
]

K = CommunicationKind


class TemplateError(Exception):
    """A template that cannot be rendered with the variables it was given."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


_DOSSIER = frozenset(
    {"dossier.reference", "dossier.due_date", "dossier.portal_link", "contributor.name", "role.name"}
)
_PARTY = frozenset({"client.name", "client.email", "apporteur.name"})
_UNPAID = _PARTY | {"contract.reference", "installment.amount", "installment.due_date"}
_DOCUMENTS = _PARTY | {"contract.reference", "expected_document.label"}
_ADDRESSEE = frozenset({"recipient.name", "recipient.party"})

_OFFERED: dict[CommunicationKind, frozenset[str]] = {
    K.DOSSIER_CREATED: _DOSSIER,
    K.CONTRIBUTOR_INVITED: _DOSSIER,
    K.ROLE_FINISHED: _DOSSIER,
    K.DEADLINE_APPROACHING: _DOSSIER,
    K.DOCUMENT_REJECTED: _DOSSIER | {"document.label", "document.comment"},
    K.MANUAL: _PARTY | {"contract.reference"},
    K.MAILING: _PARTY | {"contract.reference", "project.reference"},
    K.UNPAID_CALL: _UNPAID,
    K.UNPAID_REMINDER: _UNPAID,
    K.FORMAL_NOTICE: _UNPAID,
    K.SUSPENSION_NOTICE: _UNPAID,
    K.TERMINATION_NOTICE: _UNPAID,
    K.DOCUMENTS_CALL: _DOCUMENTS,
    K.DOCUMENTS_REMINDER: _DOCUMENTS,
    K.ACCOUNT_WELCOME: frozenset(),
}

KIND_VARIABLES: dict[CommunicationKind, frozenset[str]] = {
    kind: offered | {"account.name"} | (_ADDRESSEE if kind in GOVERNED_KINDS else frozenset())
    for kind, offered in _OFFERED.items()
}
"""API.md "Templates": every variable a template of each kind may use (`account.name` everywhere; the
addressee's `recipient.*` in the kinds the partner rules govern, "Rules made precise")."""

ALLOWED_FILTERS = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "d", "replace", "truncate", "striptags"}
)
"""String filters that cannot reach an attribute (unlike `attr`, `map` or `format`)."""

MAX_TEMPLATE_LENGTH = 20_000
MAX_SUBJECT_LENGTH = 500

_GREETING = "Bonjour{% if recipient.name %} {{ recipient.name }}{% endif %},"
_ABOUT_CLIENT = "{% if recipient.party == 'apporteur' %} de votre client {{ client.name }}{% endif %}"
_PORTAL = (
    "{% if dossier.portal_link %}"
    '<p><a href="{{ dossier.portal_link }}">Accéder à mon espace sécurisé</a></p>'
    "<p>Si le bouton ne s'ouvre pas, copiez ce lien dans votre navigateur : {{ dossier.portal_link }}</p>"
    "{% endif %}"
)
_DUE = "{% if dossier.due_date %} avant le {{ dossier.due_date }}{% endif %}"
_PREMIUM = "La prime de {{ installment.amount }} du contrat {{ contract.reference }}" + _ABOUT_CLIENT
_SIGN_OFF = "Bien cordialement,<br>{{ account.name }}"
_LEGAL_FOOTER = (
    "<p><em>Ce courriel accompagne la lettre recommandée prévue par l'article L113-3 du Code des "
    "assurances ; il ne la remplace pas.</em></p>"
)


def _html(*paragraphs: str) -> str:
    """Default bodies are laid out in HTML so that links are clickable; the text part is derived."""
    return "\n".join(p if p.startswith("<p") or p.startswith("{%") else f"<p>{p}</p>" for p in paragraphs)


DEFAULT_TEMPLATES: dict[CommunicationKind, TemplateSource] = {
    K.ACCOUNT_WELCOME: TemplateSource(
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
    K.DOSSIER_CREATED: TemplateSource(
        subject="{{ account.name }} : votre dossier {{ dossier.reference }}",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "{{ account.name }} a ouvert le dossier {{ dossier.reference }} à votre nom. Merci de déposer "
            "les pièces justificatives demandées" + _DUE + " sur votre espace sécurisé.",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.CONTRIBUTOR_INVITED: TemplateSource(
        subject="{{ account.name }} vous invite à compléter le dossier {{ dossier.reference }}",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "{{ account.name }} vous invite à contribuer au dossier {{ dossier.reference }} en tant que "
            "{{ role.name }}. Vous n'y verrez que les pièces qui vous concernent ; merci de les déposer"
            + _DUE
            + ".",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.DOCUMENT_REJECTED: TemplateSource(
        subject="Dossier {{ dossier.reference }} : une pièce est à renvoyer",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "La pièce « {{ document.label }} » du dossier {{ dossier.reference }} n'a pas pu être validée."
            "{% if document.comment %} Motif : {{ document.comment }}{% endif %}",
            "Merci d'en déposer une nouvelle version" + _DUE + ".",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.ROLE_FINISHED: TemplateSource(
        subject="Dossier {{ dossier.reference }} : {{ contributor.name }} a terminé",
        body=_html(
            "Bonjour,",
            "{{ contributor.name }} ({{ role.name }}) indique avoir déposé toutes ses pièces pour le dossier "
            "{{ dossier.reference }}.",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.DEADLINE_APPROACHING: TemplateSource(
        subject="Dossier {{ dossier.reference }} : l'échéance approche",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "Des pièces du dossier {{ dossier.reference }} sont encore attendues"
            + _DUE
            + ". Merci de les déposer dès que possible.",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.MANUAL: TemplateSource(
        subject="Message de {{ account.name }}",
        body=_html(_GREETING, _SIGN_OFF),
    ),
    K.MAILING: TemplateSource(
        subject="Information de {{ account.name }}",
        body=_html(_GREETING, _SIGN_OFF),
    ),
    K.UNPAID_CALL: TemplateSource(
        subject="Avis d'échéance – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            _PREMIUM + " arrive à échéance le {{ installment.due_date }}. "
            "Merci de veiller à son règlement à cette date.",
            _SIGN_OFF,
        ),
    ),
    K.UNPAID_REMINDER: TemplateSource(
        subject="Relance – prime impayée du contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Sauf erreur de notre part, l" + _PREMIUM[1:] + ", échue le {{ installment.due_date }}, reste "
            "impayée. Merci de procéder à son règlement sans délai ; si vous l'avez déjà réglée, ne tenez "
            "pas compte de ce message.",
            _SIGN_OFF,
        ),
    ),
    K.FORMAL_NOTICE: TemplateSource(
        subject="Mise en demeure – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            _PREMIUM + ", échue le {{ installment.due_date }}, n'a pas été réglée malgré nos relances.",
            "Conformément à l'article L113-3 du Code des assurances, nous vous mettons en demeure de régler "
            "cette somme. À défaut de paiement dans un délai de trente jours à compter de l'envoi de la "
            "présente mise en demeure, les garanties du contrat seront suspendues. L'assureur aura ensuite "
            "le droit de résilier le contrat dix jours après l'expiration de ce délai de trente jours.",
            "Le paiement de la prime avant ces échéances met fin à la procédure.",
            _LEGAL_FOOTER,
            _SIGN_OFF,
        ),
    ),
    K.SUSPENSION_NOTICE: TemplateSource(
        subject="Suspension des garanties – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            _PREMIUM
            + ", échue le {{ installment.due_date }}, reste impayée trente jours après la mise en demeure.",
            "Conformément à l'article L113-3 du Code des assurances, les garanties du contrat sont "
            "suspendues. Elles reprendront effet à midi le lendemain du jour où la prime aura été payée. "
            "À défaut de paiement, le contrat pourra être résilié dix jours après la présente suspension.",
            _LEGAL_FOOTER,
            _SIGN_OFF,
        ),
    ),
    K.TERMINATION_NOTICE: TemplateSource(
        subject="Résiliation – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            _PREMIUM
            + ", échue le {{ installment.due_date }}, n'ayant pas été réglée malgré la mise en demeure et la "
            "suspension des garanties, le contrat est résilié conformément à l'article L113-3 du Code des "
            "assurances.",
            "La prime échue reste due.",
            _LEGAL_FOOTER,
            _SIGN_OFF,
        ),
    ),
    K.DOCUMENTS_CALL: TemplateSource(
        subject="Document attendu – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Pour le contrat {{ contract.reference }}"
            + _ABOUT_CLIENT
            + ", nous avons besoin du document suivant : {{ expected_document.label }}. "
            "Merci de nous le faire parvenir en réponse à ce message.",
            _SIGN_OFF,
        ),
    ),
    K.DOCUMENTS_REMINDER: TemplateSource(
        subject="Relance – document attendu pour le contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Sauf erreur de notre part, nous n'avons pas encore reçu le document "
            "« {{ expected_document.label }} » pour le contrat {{ contract.reference }}"
            + _ABOUT_CLIENT
            + ". Merci de nous le faire parvenir en réponse à ce message.",
            _SIGN_OFF,
        ),
    ),
}

_WHITESPACE = re.compile(r"\s+")


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    """Jinja2 is imported here, not at module level: only the routes that save templates and the worker
    pay for it."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def _compiled(autoescape: bool, source: str) -> Template:
    """Compiling is most of a render's cost; a worker sends the same few templates again and again."""
    return _environment(autoescape).from_string(source)


def _template_issues(source: str, offered: frozenset[str]) -> Iterator[str]:
    """Every reason `source` may not be saved: syntax, unknown variables, and anything that is not
    printing an offered variable, a constant, a comparison, a whitelisted filter or an `if`."""
    from jinja2 import TemplateSyntaxError, nodes

    try:
        tree = _environment(True).parse(source)
    except TemplateSyntaxError as exc:
        yield f"is not a valid template (line {exc.lineno}): {exc.message}"
        return
    allowed_nodes = (
        nodes.Template,
        nodes.Output,
        nodes.TemplateData,
        nodes.If,
        nodes.Const,
        nodes.Compare,
        nodes.Operand,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Concat,
        nodes.CondExpr,
        nodes.Test,
        nodes.Filter,
        nodes.Getattr,
        nodes.Name,
    )

    def visit(node: Any) -> Iterator[str]:
        if isinstance(node, nodes.Getattr):
            dotted = _dotted(node)
            if dotted is None or dotted not in offered:
                yield f"uses `{dotted or node.attr}`, which this kind does not offer"
            return
        if isinstance(node, nodes.Name):
            yield f"uses `{node.name}`, which this kind does not offer"
            return
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            yield f"uses the filter `{node.name}`, which is not allowed"
            return
        if isinstance(node, nodes.Test) and node.name not in {"defined", "undefined", "none", "string"}:
            yield f"uses the test `{node.name}`, which is not allowed"
            return
        if not isinstance(node, allowed_nodes):
            yield f"uses `{type(node).__name__}`, which templates may not use (only variables and if)"
            return
        for child in node.iter_child_nodes():
            yield from visit(child)

    seen: set[str] = set()
    for issue in visit(tree):
        if issue not in seen:
            seen.add(issue)
            yield issue


def _dotted(node: Any) -> str | None:
    """`account.name` for Getattr(Name('account'), 'name'), the whole chain for deeper ones (so a refusal
    names all of `account.name.__class__`); None when the chain does not start from a name."""
    from jinja2 import nodes

    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return None if base is None else f"{base}.{node.attr}"
    return None


def validate_template(
    kind: CommunicationKind,
    template: TemplateSource,
    field_prefix: str = "",
    offered: frozenset[str] | None = None,
) -> None:
    """Refuse, before it is saved, a template its kind could not render safely; each issue names the
    field (`subject`, `body`, with `field_prefix` before them) and the variable or construct. `offered`
    narrows the kind's variables (a mailing to clients has no `contract.reference`)."""
    offered = KIND_VARIABLES[kind] if offered is None else offered
    issues: list[FieldIssue] = []
    for name, source, limit in (
        ("subject", template.subject, MAX_SUBJECT_LENGTH),
        ("body", template.body, MAX_TEMPLATE_LENGTH),
    ):
        field = f"{field_prefix}{name}"
        if not source.strip():
            issues.append(FieldIssue(field, "must not be blank"))
        elif len(source) > limit:
            issues.append(FieldIssue(field, f"must be at most {limit} characters"))
        else:
            issues += [FieldIssue(field, issue) for issue in _template_issues(source, offered)]
    if issues:
        raise InvalidInput(
            f"The template cannot be used for {kind.value} emails.",
            issues,
        )


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


def render(
    template: TemplateSource, variables: dict[str, str], offered: frozenset[str] = frozenset()
) -> RenderedEmail:
    """Render subject, text and HTML. A variable in `offered` without a value renders empty; any other
    missing one fails. Subjects are folded to one line: a header never holds a newline."""
    from jinja2 import TemplateError as JinjaTemplateError

    context = _nest({**dict.fromkeys(offered, ""), **variables})
    try:
        subject = _compiled(False, template.subject).render(context)
        html = _paragraphs_to_html(_compiled(True, template.body).render(context))
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc)) from exc
    return RenderedEmail(subject=_WHITESPACE.sub(" ", subject).strip(), text=_html_to_text(html), html=html)


def render_kind(
    kind: CommunicationKind, variables: dict[str, str], template: TemplateSource | None = None
) -> RenderedEmail:
    """Render an email of `kind` from its own template if it has one, else from the French default."""
    return render(template or DEFAULT_TEMPLATES[kind], variables, KIND_VARIABLES[kind])


UNSUBSCRIBE_SENTENCE = "Vous ne souhaitez plus recevoir ces informations ? Se désabonner :"


def with_unsubscribe_footer(html: str, link: str) -> str:
    """A mailing's HTML with its addressee's unsubscribe link as the last paragraph of the body."""
    from markupsafe import escape

    footer = (
        '<p style="font-size:12px;color:#555">Vous ne souhaitez plus recevoir ces informations ? '
        f'<a href="{escape(link)}">Se désabonner</a></p>'
    )
    head, marker, tail = html.rpartition("</body>")
    return f"{head}{footer}\n{marker}{tail}" if marker else f"{html}\n{footer}"
