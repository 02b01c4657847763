"""Email templates: the variables each kind offers, checking a template when it is saved, French defaults
per kind, and rendering in Jinja2's sandbox.

A template only ever sees the whitelisted variables of its kind (dotted names such as `account.name`).
`validate_template` reads a template's syntax tree when staff save it and refuses, naming it, any variable
the kind does not offer, any other attribute or item access, any call, and any statement beyond `if`, so
nothing reaches Python objects even before the sandbox would stop it. At render time a variable the kind
offers but that has no value in this email renders empty; anything else still fails (StrictUndefined).
The body is written once, as HTML or as plain paragraphs: it is rendered with autoescape (a client's name
can never inject markup) and the text part is derived from that HTML.

Size: `replace` is the one construct that can make the output larger than the template and its values
(`replace("", "XXXXXXXXXX")` multiplies by 11 each time). A template that could render more than
MAX_RENDERED_LENGTH characters is refused when saved; at render time `replace` and the output itself are
held to the same cap, so a template saved before the cap fails its own email instead of filling memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from chalicelib.domain.communications import GOVERNED_KINDS, CommunicationKind, TemplateSource
from chalicelib.domain.errors import FieldIssue, InvalidInput
from chalicelib.domain.footers import FOOTER_VARIABLE

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.nodes import EvalContext, Node
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
    {
        "dossier.reference",
        "dossier.due_date",
        "dossier.portal_link",
        "dossier.recipient_name",
        "procedure.name",
        "contributor.name",
        "role.name",
    }
)
"""`dossier.recipient_name` and `procedure.name` say whose dossier it is and what for."""
_PARTY = frozenset({"client.name", "client.email", "apporteur.name"})
_UNPAID = _PARTY | {
    "contract.reference",
    "installment.amount",
    "installment.due_date",
    "installment.amount_due",
    "insurer.name",
    "account.payment_instructions",
    "letter.sent_on",
    "letter.tracking_number",
    "step.effective_on",
    "payment_deadline",
    "policy.suspension_days",
    "policy.termination_days",
}
"""API.md: the dunning kinds offer the installment, what remains due after partial payments, the insurer,
how to pay, the registered letter (its date and tracking number), the dates of their step, and the
policy's periods (texts never hard-code "trente jours")."""
_REINSTATEMENT = _UNPAID | {"cover.resumes_at", "suspension.voided"}
_DOCUMENTS = _PARTY | {"contract.reference", "expected_document.label", "expected_document.due_date"}
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
    K.REINSTATEMENT_NOTICE: _REINSTATEMENT,
    K.DOCUMENTS_CALL: _DOCUMENTS,
    K.DOCUMENTS_REMINDER: _DOCUMENTS,
    K.ACCOUNT_WELCOME: frozenset(),
    K.WEBHOOK_DISABLED: frozenset({"webhook.id", "webhook.url", "webhook.description", "webhook.reason"}),
}

KIND_VARIABLES: dict[CommunicationKind, frozenset[str]] = {
    kind: offered | {"account.name"} | (_ADDRESSEE if kind in GOVERNED_KINDS else frozenset())
    for kind, offered in _OFFERED.items()
}
"""API.md "Templates": every variable a template of each kind may use (`account.name` everywhere; the
addressee's `recipient.*` in the kinds the partner rules govern, "Rules made precise"). `account.name` is
the broker's public name (`Account.public_name`: its legal name once given), the name the email comes
from, so a sign-off never names another; the welcome email alone, to the broker, says the account's name."""

ALLOWED_FILTERS = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "d", "replace", "truncate", "striptags"}
)
"""String filters that cannot reach an attribute (unlike `attr`, `map` or `format`)."""

MAX_TEMPLATE_LENGTH = 20_000
MAX_SUBJECT_LENGTH = 500
MAX_RENDERED_LENGTH = 256 * 1024
"""The most characters a rendered subject or body may hold."""
LONGEST_VALUE = 2_000
"""The longest value a variable can hold (a document's review comment): what a template's size is checked
against when it is saved."""
_CASE_GROWTH = 3
"""Changing case can lengthen a character up to three times (`"ﬃ".upper()` is `"FFI"`)."""

_GREETING = "Bonjour{% if recipient.name %} {{ recipient.name }}{% endif %},"
_FORMAL_GREETING = "Madame, Monsieur,"
_TO_APPORTEUR = "recipient.party == 'apporteur'"
_ABOUT_CLIENT = "{% if " + _TO_APPORTEUR + " %} de votre client {{ client.name }}{% endif %}"
_PORTAL = (
    "{% if dossier.portal_link %}"
    '<p><a href="{{ dossier.portal_link }}">Accéder à votre espace sécurisé</a></p>'
    "<p>Si le lien ne fonctionne pas, copiez cette adresse dans votre navigateur\u00a0: "
    "{{ dossier.portal_link }}</p>"
    "{% endif %}"
)
_DUE = "{% if dossier.due_date %} au plus tard le {{ dossier.due_date }}{% endif %}"
_FOR_WHOM = (
    "{% if procedure.name %} ({{ procedure.name }}{% if dossier.recipient_name %} de "
    "{{ dossier.recipient_name }}{% endif %}){% endif %}"
)
"""Whose dossier and what for: a guarantor is not asked for payslips by a stranger."""
_PREMIUM = "La prime de {{ installment.amount }} du contrat {{ contract.reference }}" + _ABOUT_CLIENT
_SIGN_OFF = "Bien cordialement,<br>{{ account.name }}"
_FORMAL_SIGN_OFF = (
    "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations distinguées.<br>"
    "{{ account.name }}"
)
_LEGAL_FOOTER = (
    "<p><em>Ce courriel accompagne la lettre recommandée prévue par les articles L113-3 et R113-1 du Code "
    "des assurances\u202f; il ne la remplace pas.</em></p>"
)
"""Only the formal notice has a registered letter to accompany."""
_INFORMATION_FOOTER = (
    "<p><em>Ce courriel vous informe de la situation du contrat\u202f; seuls les courriers de "
    "l’assureur et la lettre recommandée de mise en demeure produisent des effets juridiques.</em></p>"
)
_PAYMENT = (
    "{% if account.payment_instructions %}<p>Modalités de paiement\u00a0: "
    "{{ account.payment_instructions }}</p>{% endif %}"
)
_REINSTATEMENT_RULE = (
    "Le contrat non résilié reprendra pour l’avenir ses effets à midi le lendemain du jour où auront été "
    "payées la prime arriérée ou, en cas de fractionnement, les fractions de prime ayant fait l’objet de "
    "la mise en demeure et celles venues à échéance pendant la suspension, ainsi que, le cas échéant, "
    "les frais de poursuites et de recouvrement (article L113-3 du Code des assurances)."
)


def _please_pay(to_client: str) -> str:
    """A client is asked to pay; an apporteur is asked to invite his client to pay, never to pay."""
    return (
        "{% if " + _TO_APPORTEUR + " %}Merci d’inviter votre client à procéder à son règlement"
        "{% else %}" + to_client + "{% endif %}"
    )


def _please_send(subject: str) -> str:
    return (
        "{% if " + _TO_APPORTEUR + " %}Merci d’inviter votre client à nous faire parvenir " + subject + "."
        "{% else %}Merci de nous faire parvenir " + subject + " en réponse à ce message.{% endif %}"
    )


_DOCUMENT_DUE = (
    "{% if expected_document.due_date %} au plus tard le {{ expected_document.due_date }}{% endif %}"
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
            "Quand vos clients répondent aux emails que Relais leur envoie en votre nom, leur réponse "
            "arrive à l’adresse qui reçoit ce message. Si ce doit être une autre adresse, dites-le-nous en "
            "répondant à ce message.\n\n"
            "Bien cordialement,\n"
            "L’équipe Relais"
        ),
    ),
    K.WEBHOOK_DISABLED: TemplateSource(
        subject="Relais a désactivé un webhook de {{ account.name }}",
        body=(
            "Bonjour,\n\n"
            "Relais a désactivé le webhook {{ webhook.url }} du compte {{ account.name }}"
            "{% if webhook.description %} («\u00a0{{ webhook.description }}\u00a0»){% endif %}, "
            "car {{ webhook.reason }}.\n"
            "Il ne reçoit plus aucun événement. Une fois votre récepteur rétabli, réactivez-le par l’API "
            "(champ enabled de PATCH /webhooks/{{ webhook.id }})\u202f; vous pourrez alors relancer "
            "une à une les livraisons échouées.\n\n"
            "Bien cordialement,\n"
            "L’équipe Relais"
        ),
    ),
    K.DOSSIER_CREATED: TemplateSource(
        subject="{{ account.name }}\u00a0: votre dossier {{ dossier.reference }}",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "{{ account.name }} a ouvert le dossier {{ dossier.reference }}"
            "{% if procedure.name %} ({{ procedure.name }}){% endif %} à votre nom. Merci de déposer "
            "les pièces justificatives demandées" + _DUE + " sur votre espace sécurisé.",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.CONTRIBUTOR_INVITED: TemplateSource(
        subject="{{ account.name }} vous invite à compléter le dossier {{ dossier.reference }}",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "{{ account.name }} vous invite à contribuer au dossier {{ dossier.reference }}"
            + _FOR_WHOM
            + " en tant que {{ role.name }}. Vous n’y verrez que les pièces qui vous concernent\u202f; "
            "merci de les déposer" + _DUE + ".",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.DOCUMENT_REJECTED: TemplateSource(
        subject="Dossier {{ dossier.reference }}\u00a0: une pièce est à renvoyer",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "La pièce «\u00a0{{ document.label }}\u00a0» du dossier {{ dossier.reference }}"
            + _FOR_WHOM
            + " n’a pas pu être validée.{% if document.comment %} Motif\u00a0: {{ document.comment }}"
            "{% endif %}",
            "Merci d’en déposer une nouvelle version" + _DUE + ".",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.ROLE_FINISHED: TemplateSource(
        subject="Dossier {{ dossier.reference }}\u00a0: {{ contributor.name }} a terminé",
        body=_html(
            "Bonjour,",
            "{{ contributor.name }} ({{ role.name }}) indique avoir déposé toutes ses pièces pour le dossier "
            "{{ dossier.reference }}" + _FOR_WHOM + ".",
            _PORTAL,
            _SIGN_OFF,
        ),
    ),
    K.DEADLINE_APPROACHING: TemplateSource(
        subject="Dossier {{ dossier.reference }}\u00a0: l’échéance approche",
        body=_html(
            "Bonjour {{ contributor.name }},",
            "Des pièces du dossier {{ dossier.reference }}"
            + _FOR_WHOM
            + " sont encore attendues"
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
        subject="Rappel\u00a0: prochaine échéance du contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            _PREMIUM
            + " arrive à échéance le {{ installment.due_date }}. "
            + _please_pay("Merci de veiller à son règlement")
            + " au plus tard à cette date.",
            _PAYMENT,
            _SIGN_OFF,
        ),
    ),
    K.UNPAID_REMINDER: TemplateSource(
        subject="Relance\u00a0: prime impayée du contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Sauf erreur de notre part, l" + _PREMIUM[1:] + ", échue le {{ installment.due_date }}, reste "
            "impayée\u00a0: {{ installment.amount_due }} restent dus. "
            + _please_pay("Merci de procéder à son règlement")
            + " sans délai{% if "
            + _TO_APPORTEUR
            + " %}.{% else %}\u202f; si vous l’avez déjà réglée, "
            "ne tenez pas compte de ce message.{% endif %}",
            _PAYMENT,
            _SIGN_OFF,
        ),
    ),
    K.FORMAL_NOTICE: TemplateSource(
        subject="Mise en demeure par lettre recommandée – contrat {{ contract.reference }}",
        body=_html(
            _FORMAL_GREETING,
            _PREMIUM + ", échue le {{ installment.due_date }}, n’a pas été réglée\u00a0: "
            "{{ installment.amount_due }} restent dus.",
            "Nous vous avons adressé le {{ letter.sent_on }}, pour le compte de l’assureur "
            "{{ insurer.name }}, une mise en demeure par lettre recommandée avec demande d’avis de réception"
            "{% if letter.tracking_number %} (n°\u00a0{{ letter.tracking_number }}){% endif %}, "
            "conformément aux articles L113-3 et R113-1 du Code des assurances.",
            "À défaut de paiement dans un délai de {{ policy.suspension_days }}\u00a0jours à compter de "
            "l’envoi de cette lettre, soit au plus tard le {{ payment_deadline }}, les garanties du contrat "
            "seront suspendues. L’assureur aura ensuite le droit de résilier le contrat "
            "{{ policy.termination_days }}\u00a0jours après l’expiration de ce délai.",
            _PAYMENT,
            _LEGAL_FOOTER,
            _FORMAL_SIGN_OFF,
        ),
    ),
    K.SUSPENSION_NOTICE: TemplateSource(
        subject="Suspension des garanties – contrat {{ contract.reference }}",
        body=_html(
            _FORMAL_GREETING,
            _PREMIUM + ", échue le {{ installment.due_date }}, reste impayée "
            "{{ policy.suspension_days }}\u00a0jours après l’envoi de la mise en demeure du "
            "{{ letter.sent_on }}\u00a0: {{ installment.amount_due }} restent dus.",
            "Conformément à l’article L113-3 du Code des assurances, les garanties du contrat sont "
            "suspendues à compter du {{ step.effective_on }} à 0\u00a0h. "
            + _REINSTATEMENT_RULE
            + " À défaut de paiement, l’assureur {{ insurer.name }} pourra résilier le contrat "
            "{{ policy.termination_days }}\u00a0jours après le début de cette suspension.",
            _PAYMENT,
            _INFORMATION_FOOTER,
            _FORMAL_SIGN_OFF,
        ),
    ),
    K.TERMINATION_NOTICE: TemplateSource(
        subject="Résiliation – contrat {{ contract.reference }}",
        body=_html(
            _FORMAL_GREETING,
            _PREMIUM
            + ", échue le {{ installment.due_date }}, n’ayant pas été réglée malgré la mise en demeure du "
            "{{ letter.sent_on }} et la suspension des garanties, l’assureur {{ insurer.name }} résilie le "
            "contrat conformément à l’article L113-3 du Code des assurances, à compter du "
            "{{ step.effective_on }}.",
            "La somme de {{ installment.amount_due }} reste due.",
            _INFORMATION_FOOTER,
            _FORMAL_SIGN_OFF,
        ),
    ),
    K.REINSTATEMENT_NOTICE: TemplateSource(
        subject="{% if suspension.voided %}Rectificatif – garanties maintenues{% else %}Remise en vigueur"
        "{% endif %} – contrat {{ contract.reference }}",
        body=_html(
            _FORMAL_GREETING,
            "Nous avons bien reçu le règlement de la prime de {{ installment.amount }} du contrat "
            "{{ contract.reference }}" + _ABOUT_CLIENT + ", échue le {{ installment.due_date }}.",
            "{% if suspension.voided %}<p>Ce règlement est intervenu avant la date d’effet de la suspension "
            "qui vous avait été annoncée\u00a0: les garanties du contrat n’ont jamais été suspendues. "
            "Merci de ne pas tenir compte de notre précédent courriel.</p>{% else %}<p>Conformément à "
            "l’article L113-3 du Code des assurances, les garanties du contrat reprennent effet pour "
            "l’avenir le {{ cover.resumes_at }}.</p>{% endif %}",
            _INFORMATION_FOOTER,
            _FORMAL_SIGN_OFF,
        ),
    ),
    K.DOCUMENTS_CALL: TemplateSource(
        subject="Document attendu – contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Pour le contrat {{ contract.reference }}"
            + _ABOUT_CLIENT
            + ", nous avons besoin du document suivant\u00a0: {{ expected_document.label }}"
            + _DOCUMENT_DUE
            + ". "
            + _please_send("ce document"),
            _SIGN_OFF,
        ),
    ),
    K.DOCUMENTS_REMINDER: TemplateSource(
        subject="Relance\u00a0: document attendu pour le contrat {{ contract.reference }}",
        body=_html(
            _GREETING,
            "Sauf erreur de notre part, nous n’avons pas encore reçu le document "
            "«\u00a0{{ expected_document.label }}\u00a0» pour le contrat {{ contract.reference }}"
            + _ABOUT_CLIENT
            + "{% if expected_document.due_date %}, attendu au plus tard le {{ expected_document.due_date }}"
            "{% endif %}. " + _please_send("ce document"),
            _SIGN_OFF,
        ),
    ),
}

_WHITESPACE = re.compile(r"[^\S\u00a0\u202f]+")
"""Folds a subject to one line, keeping the no-break spaces French typography puts before `:` or `?`."""


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    """Jinja2 is imported here, not at module level: only the routes that save templates and the worker
    pay for it."""
    from jinja2 import StrictUndefined, pass_eval_context
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=False
    )
    environment.filters["replace"] = pass_eval_context(_bounded_replace)
    return environment


_growth_left: ContextVar[list[int]] = ContextVar("_growth_left")
"""What `replace` may still add to the text in the render under way (one budget per render)."""


def _bounded_replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    """Jinja2's `replace`, refused before it builds a string past the cap, or when the replacements of
    one render together add more than the cap (many capped pieces joined in one expression)."""
    from jinja2.filters import do_replace

    text, old_text, new_text = str(s), str(old), str(new)
    occurrences = len(text) + 1 if not old_text else text.count(old_text)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    growth = occurrences * (len(new_text) - len(old_text))
    left = _growth_left.get(None)
    if len(text) + growth > MAX_RENDERED_LENGTH or (left is not None and growth > left[0]):
        raise TemplateError(_too_large())
    if left is not None and growth > 0:
        left[0] -= growth
    return str(do_replace(eval_ctx, s, old, new, count))


def _too_large() -> str:
    return f"renders more than {MAX_RENDERED_LENGTH} characters"


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
        if isinstance(node, nodes.Getattr | nodes.Name):
            # A bare name is offered only when the kind lists it as such (`payment_deadline`).
            dotted = _dotted(node)
            if dotted is None or dotted not in offered:
                yield f"uses `{dotted or getattr(node, 'attr', '')}`, which this kind does not offer"
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
    if seen:
        return
    if _size_bound(tree) > MAX_RENDERED_LENGTH:
        yield (
            f"may render more than {MAX_RENDERED_LENGTH} characters: "
            "each `replace` that inserts text multiplies what it is given"
        )
        return
    try:
        _render_part(True, source, _nest(dict.fromkeys(offered, "Exemple")))
    except TemplateError as exc:
        yield f"cannot be rendered: {exc}"


def _size_bound(node: Node) -> int:
    """The most characters `node` can render, every variable holding LONGEST_VALUE characters (before
    HTML escaping). Capped just past MAX_RENDERED_LENGTH: beyond it, only "too large" matters."""
    from jinja2 import nodes

    def total(children: Sequence[Node]) -> int:
        return sum(_size_bound(child) for child in children)

    if isinstance(node, nodes.TemplateData):
        bound = len(node.data)
    elif isinstance(node, nodes.Const):
        bound = len(str(node.value))
    elif isinstance(node, nodes.Getattr | nodes.Name):
        bound = LONGEST_VALUE
    elif isinstance(node, nodes.Template):
        bound = total(node.body)
    elif isinstance(node, nodes.Output | nodes.Concat):
        bound = total(node.nodes)
    elif isinstance(node, nodes.If):
        branches = [node.body, *(branch.body for branch in node.elif_), node.else_]
        bound = max(total(branch) for branch in branches)
    elif isinstance(node, nodes.CondExpr):
        bound = max(_size_bound(node.expr1), _size_bound(node.expr2) if node.expr2 is not None else 0)
    elif isinstance(node, nodes.And | nodes.Or):
        bound = max(_size_bound(node.left), _size_bound(node.right))
    elif isinstance(node, nodes.Filter):
        bound = _filter_bound(node)
    else:
        bound = len("False")  # a comparison, a test or a negation prints True or False
    return min(bound, MAX_RENDERED_LENGTH + 1)


def _filter_bound(node: Any) -> int:
    """What one whitelisted filter can make of its input, given the bounds of its arguments."""
    from jinja2 import nodes

    given = _size_bound(node.node)
    arguments = {**dict(enumerate(node.args)), **{kw.key: kw.value for kw in node.kwargs}}
    if node.name == "replace":
        old, new = arguments.get(0, arguments.get("old")), arguments.get(1, arguments.get("new"))
        count = arguments.get(2, arguments.get("count"))
        old_length = len(str(old.value)) if isinstance(old, nodes.Const) else 0
        occurrences = given // old_length if old_length else given + 1
        if isinstance(count, nodes.Const) and isinstance(count.value, int) and count.value >= 0:
            occurrences = min(occurrences, count.value)
        return given + occurrences * (_size_bound(new) if new is not None else 0)
    if node.name in {"default", "d"}:
        fallback = arguments.get(0, arguments.get("default_value"))
        return max(given, _size_bound(fallback) if fallback is not None else 0)
    if node.name == "truncate":
        end = arguments.get(2, arguments.get("end"))
        return given + (_size_bound(end) if end is not None else len("..."))
    if node.name in {"upper", "lower", "title", "capitalize"}:
        return given * _CASE_GROWTH
    return given  # trim, striptags


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


def _nest(variables: dict[str, str]) -> dict[str, Any]:
    """`{"client.name": …}` → `{"client": {"name": …}}`; a name without a dot (`payment_deadline`) stays."""
    nested: dict[str, Any] = {}
    for dotted, value in variables.items():
        group, dot, name = dotted.partition(".")
        if dot:
            nested.setdefault(group, {})[name] = value
        else:
            nested[group] = value
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


def _render_part(autoescape: bool, source: str, context: dict[str, dict[str, str]]) -> str:
    """One subject or body, stopped as soon as it passes MAX_RENDERED_LENGTH characters.

    A whitelisted filter given arguments it cannot take (`truncate('court')`), or a comparison of text
    with a number, raises Python's own TypeError, ValueError or AssertionError: templates run no other
    code, so these become a TemplateError naming the cause, which fails that email alone."""
    from jinja2 import TemplateError as JinjaTemplateError

    budget = _growth_left.set([MAX_RENDERED_LENGTH])
    parts: list[str] = []
    size = 0
    try:
        for chunk in _compiled(autoescape, source).generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_LENGTH:
                raise TemplateError(_too_large())
            parts.append(chunk)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc)) from exc
    except (TypeError, ValueError, AssertionError) as exc:
        raise TemplateError(f"a filter or a comparison cannot take these values ({exc})") from exc
    finally:
        _growth_left.reset(budget)
    return "".join(parts)


def render(
    template: TemplateSource, variables: dict[str, str], offered: frozenset[str] = frozenset()
) -> RenderedEmail:
    """Render subject, text and HTML. A variable in `offered` without a value renders empty; any other
    missing one fails. Subjects are folded to one line: a header never holds a newline."""
    context = _nest({**dict.fromkeys(offered, ""), **variables})
    subject = _render_part(False, template.subject, context)
    html = _paragraphs_to_html(_render_part(True, template.body, context))
    return RenderedEmail(subject=_WHITESPACE.sub(" ", subject).strip(), text=_html_to_text(html), html=html)


def render_kind(
    kind: CommunicationKind, variables: dict[str, str], template: TemplateSource | None = None
) -> RenderedEmail:
    """Render an email of `kind` from its own template if it has one, else from the French default,
    then add the footer its variables carry (legal mentions, privacy notice: `domain/footers.py`)."""
    return render_with_footer(template or DEFAULT_TEMPLATES[kind], variables, KIND_VARIABLES[kind])


def render_with_footer(
    template: TemplateSource, variables: dict[str, str], offered: frozenset[str] = frozenset()
) -> RenderedEmail:
    """`render`, then the footer held by the reserved variable FOOTER_VARIABLE, which no template sees."""
    footer = variables.get(FOOTER_VARIABLE, "")
    rendered = render(template, {k: v for k, v in variables.items() if k != FOOTER_VARIABLE}, offered)
    if not footer:
        return rendered
    from markupsafe import escape

    paragraphs = [p for p in footer.split("\n\n") if p]
    block = "".join(
        '<p style="font-size:12px;color:#555">'
        + "<br>".join(str(escape(line)) for line in paragraph.split("\n"))
        + "</p>"
        for paragraph in paragraphs
    )
    head, marker, tail = rendered.html.rpartition("</body>")
    html = f"{head}<hr>\n{block}\n{marker}{tail}"
    return RenderedEmail(rendered.subject, f"{rendered.text}\n--\n{footer}\n", html)


UNSUBSCRIBE_SENTENCE = "Vous ne souhaitez plus recevoir ces informations\u202f? Se désabonner\u00a0:"


def with_unsubscribe_footer(html: str, link: str) -> str:
    """A mailing's HTML with its addressee's unsubscribe link as the last paragraph of the body."""
    from markupsafe import escape

    footer = (
        '<p style="font-size:12px;color:#555">Vous ne souhaitez plus recevoir ces informations\u202f? '
        f'<a href="{escape(link)}">Se désabonner</a></p>'
    )
    head, marker, tail = html.rpartition("</body>")
    return f"{head}{footer}\n{marker}{tail}" if marker else f"{html}\n{footer}"
