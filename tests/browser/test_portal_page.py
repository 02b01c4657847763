"""The portal page in headless Chromium (Debian's `chromium`, driven by Playwright) against the local
stack, as a guarantor lives it: open the invitation from the local outbox, see only his role's documents,
try a wrong type, upload a PDF and watch its status change, finish, invite the next person, and find a
clear page once his link is revoked. Screenshots at 360 and 1280 px go to tests/artifacts/. axe-core
(vendored, tests/browser/vendor/) holds each state of the page to WCAG 2.1 AA, and the keyboard alone
works it in reading order."""

from __future__ import annotations

import html
import re
import shutil
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from chalicelib.local.stack import LocalStack
from tests.support import http_call, local_stack

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
BROKER = "Cabinet Martin SAS"
BRAND_COLOR = "#1F4E79"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-coloured PNG, written by hand: the broker's logo of the screenshots."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _put_logo(api: str, admin: str, png: bytes) -> int:
    request = urllib.request.Request(f"{api}/account/logo", data=png, method="PUT")
    request.add_header("Content-Type", "image/png")
    request.add_header("Authorization", f"Bearer {admin}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "Debian's chromium is required: `make test` installs it with apt-get when missing"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--lang=fr-FR"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def rental(stack: LocalStack) -> dict[str, Any]:
    """A rental dossier: Léa (Locataire, her ID card) and Paul (Garant, payslips required, tax notice
    optional; may invite a Co-garant), invited by email."""
    api, admin = stack.api_url, stack.admin_token
    assert http_call(f"{api}/account/trials", "POST", admin, {"feature": "contributors"})[0] in (201, 409)
    identity = {
        "legal_name": BROKER,
        "orias_number": "12345678",
        "address": {"lines": ["12 rue de la Paix"], "postal_code": "75002", "city": "Paris"},
        "phone": "01 23 45 67 89",
    }
    assert http_call(f"{api}/account/legal", "PATCH", admin, identity)[0] == 200
    assert http_call(f"{api}/account/settings", "PATCH", admin, {"brand_color": BRAND_COLOR})[0] == 200
    assert _put_logo(api, admin, _png(48, 48, (31, 78, 121))) == 200
    status, procedure = http_call(
        f"{api}/procedures", "POST", admin, {"name": "Demande de location", "main_role_name": "Locataire"}
    )
    assert status == 201, procedure
    pid = procedure["id"]
    _, garant = http_call(
        f"{api}/procedures/{pid}/roles",
        "POST",
        admin,
        {"name": "Garant", "permissions": {"access": "edit", "can_invite": True}},
    )
    _, cogarant = http_call(f"{api}/procedures/{pid}/roles", "POST", admin, {"name": "Co-garant"})
    _, notary = http_call(
        f"{api}/procedures/{pid}/roles",
        "POST",
        admin,
        {"name": "Notaire", "permissions": {"access": "view", "sees_shared_files": True}},
    )
    documents = [
        {"label": "Pièce d'identité", "role_id": "main"},
        {"label": "Bulletins de salaire", "role_id": garant["id"], "accepted_types": ["application/pdf"]},
        {"label": "Avis d'imposition", "role_id": garant["id"], "required": False},
    ]
    for document in documents:
        assert http_call(f"{api}/procedures/{pid}/documents", "POST", admin, document)[0] == 201
    status, dossier = http_call(
        f"{api}/dossiers",
        "POST",
        admin,
        {
            "procedure_id": pid,
            "reference": "LOC-2027-001",
            "due_date": "2027-03-01",
            "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
        },
    )
    assert status == 201, dossier
    status, paul = http_call(
        f"{api}/dossiers/{dossier['id']}/contributors",
        "POST",
        admin,
        {"role_id": garant["id"], "name": "Paul Garant", "email": "paul@exemple.fr", "notify": True},
    )
    assert status == 201, paul
    assert http_call(f"{api}/_local/drain", "POST")[0] == 200
    return {"dossier": dossier, "paul": paul, "garant": garant, "cogarant": cogarant, "notary": notary}


def _open_invitation_from_outbox(stack: LocalStack, page: Page) -> Page:
    page.goto(f"{stack.api_url}/_local/outbox.html")
    card = page.locator("article", has_text="paul@exemple.fr").first
    expect(card).to_contain_text("contributor_invited")
    link = card.frame_locator("iframe").locator("a[href*='#token=']").first
    with page.context.expect_page() as opened:
        link.click()
    portal = opened.value
    portal.wait_for_load_state()
    return portal


def test_a_guarantor_follows_his_invitation_uploads_finishes_and_his_old_link_then_dies(
    stack: LocalStack, browser: Browser, rental: dict[str, Any]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="fr-FR")
    page = context.new_page()
    portal = _open_invitation_from_outbox(stack, page)

    expect(portal.get_by_role("heading", name="Dossier LOC-2027-001")).to_be_visible()
    # The secret left the address bar as soon as the page read it.
    assert "#token=" not in portal.url
    assert portal.url.endswith("/p")
    expect(portal.locator("#procedure")).to_have_text("Demande de location")
    expect(portal.locator("#me")).to_have_text("Paul Garant")
    expect(portal.locator("#role")).to_have_text("Garant")
    expect(portal.locator("#due")).to_have_text("01/03/2027")
    documents = portal.locator("#documents > li")
    expect(documents).to_have_count(2)
    expect(portal.get_by_text("Pièce d'identité")).to_have_count(0)
    payslips = documents.filter(has_text="Bulletins de salaire")
    expect(payslips.locator(".badge")).to_have_text("À fournir")
    expect(portal.get_by_role("button", name="J’ai terminé")).to_be_disabled()
    # The broker, not Relais: its name and logo on a header of its colour, its legal mentions below.
    expect(portal.locator("#brand")).to_have_text(BROKER)
    expect(portal.get_by_role("img", name=f"Logo de {BROKER}")).to_be_visible()
    assert portal.locator("#logo").evaluate("img => img.naturalWidth") == 48
    assert portal.locator("#top").evaluate("h => getComputedStyle(h).backgroundColor") == "rgb(31, 78, 121)"
    expect(portal.locator("#footer")).to_contain_text("ORIAS")
    expect(portal.locator("#footer")).to_contain_text("12 rue de la Paix, 75002 Paris")
    expect(portal.locator("#footer")).to_contain_text("Contact : cabinet@demo.relais.example")
    assert "Relais" not in portal.locator("body").inner_text()
    assert BROKER in portal.title()
    # Whose documents, why, how long, which rights: and for a guarantor, whose dossier it is.
    privacy = portal.locator("#privacy")
    expect(privacy).to_contain_text(f"Responsable du traitement : {BROKER}")
    expect(privacy).to_contain_text("Vous intervenez dans le dossier de Léa Martin.")
    expect(privacy).to_contain_text("365 jours")
    expect(privacy).to_contain_text("CNIL")
    portal.screenshot(path=str(ARTIFACTS / "portal-360.png"), full_page=True)

    # A wrong type is refused before anything is sent, in one sentence that says what to do.
    chooser = portal.get_by_label("Choisir le fichier « Bulletins de salaire »")
    chooser.set_input_files({"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"})
    expect(payslips.locator(".upload-error")).to_have_text(
        "Ce type de fichier n’est pas accepté : choisissez un fichier PDF."
    )
    expect(payslips.locator(".badge")).to_have_text("À fournir")

    # A PDF goes straight to S3 with a progress bar, then the status changes.
    chooser.set_input_files({"name": "paie-janvier.pdf", "mimeType": "application/pdf", "buffer": PDF})
    expect(payslips.locator(".badge")).to_have_text("En cours de vérification")
    expect(payslips.locator(".files")).to_contain_text("paie-janvier.pdf")
    expect(portal.locator("#status")).to_contain_text("a bien été envoyé")

    # The broker refuses it with a comment: the page says so, and a new file replaces it.
    dossier_id, paul_id = rental["dossier"]["id"], rental["paul"]["id"]
    payslip_id = next(d["id"] for d in rental["dossier"]["documents"] if d["label"] == "Bulletins de salaire")
    status, _ = http_call(
        f"{stack.api_url}/dossiers/{dossier_id}/documents/{payslip_id}/review",
        "POST",
        stack.admin_token,
        {"decision": "reject", "comment": "Il manque le mois de février."},
    )
    assert status == 200
    portal.reload()
    expect(payslips.locator(".badge")).to_have_text("Refusée")
    expect(payslips.locator(".review")).to_have_text("Refusée : Il manque le mois de février.")
    replace_file = portal.get_by_label("Envoyer un autre fichier pour « Bulletins de salaire »")
    replace_file.set_input_files({"name": "paie-fevrier.pdf", "mimeType": "application/pdf", "buffer": PDF})
    expect(payslips.locator(".badge")).to_have_text("En cours de vérification")
    expect(payslips.locator(".files")).to_contain_text("paie-fevrier.pdf")

    # The optional tax notice is not needed to finish.
    finish = portal.get_by_role("button", name="J’ai terminé")
    expect(finish).to_be_enabled()
    finish.focus()
    portal.keyboard.press("Enter")
    expect(portal.locator("#finished")).to_be_visible()

    # Garant may invite the next person (only into the other contributor roles).
    expect(portal.locator("#invite-role option")).to_have_text(["Co-garant", "Notaire"])
    portal.get_by_label("Nom et prénom").fill("Anne Cogarant")
    portal.get_by_label("Adresse email").fill("anne@exemple.fr")
    portal.get_by_role("button", name="Envoyer l’invitation").click()
    expect(portal.locator("#invite-message")).to_have_text("Invitation envoyée à anne@exemple.fr.")

    portal.set_viewport_size({"width": 1280, "height": 900})
    expect(portal.locator("#brand")).to_have_text(BROKER)
    portal.screenshot(path=str(ARTIFACTS / "portal-1280.png"), full_page=True)
    assert (ARTIFACTS / "portal-360.png").stat().st_size > 0

    # The staff re-send the invitation: the link he had is dead at once.
    status, _ = http_call(
        f"{stack.api_url}/dossiers/{dossier_id}/contributors/{paul_id}/invitation", "POST", stack.admin_token
    )
    assert status == 202
    http_call(f"{stack.api_url}/_local/drain", "POST")
    portal.reload()
    expect(portal.get_by_role("heading", name="Ce lien n’est plus valide")).to_be_visible()
    expect(portal.get_by_text("Demandez un nouveau lien à votre gestionnaire.")).to_be_visible()
    # The dead link still names the broker to ask, and nothing of the dossier.
    expect(portal.locator("#invalid-contact")).to_contain_text(f"contactez {BROKER}")
    expect(portal.locator("#invalid-contact")).to_contain_text("01 23 45 67 89")
    expect(portal.get_by_text("LOC-2027-001")).to_have_count(0)
    context.close()


def test_a_link_without_a_token_or_with_a_forged_one_shows_the_invalid_link_page(
    stack: LocalStack, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    for url in (f"{stack.api_url}/p", f"{stack.api_url}/p#token=forged"):
        page.goto(url)
        expect(page.get_by_role("heading", name="Ce lien n’est plus valide")).to_be_visible()
        # A forged link names no broker.
        expect(page.locator("#invalid-contact")).to_be_hidden()
    context.close()


def test_a_dossier_without_a_due_date_shows_no_deadline(
    stack: LocalStack, browser: Browser, rental: dict[str, Any]
) -> None:
    status, dossier = http_call(
        f"{stack.api_url}/dossiers",
        "POST",
        stack.admin_token,
        {
            "procedure_id": rental["dossier"]["procedure_id"],
            "reference": "LOC-SANS-DATE",
            "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
        },
    )
    assert status == 201, dossier
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="fr-FR")
    page = context.new_page()
    page.goto(dossier["portal_link"])
    expect(page.get_by_role("heading", name="Dossier LOC-SANS-DATE")).to_be_visible()
    expect(page.get_by_text("À déposer au plus tard le")).to_be_hidden()
    expect(page.locator("#due-row")).to_be_hidden()
    expect(page.locator("#me")).to_have_text("Léa Martin")
    # The main recipient is not told whose dossier it is: it is hers.
    expect(page.locator("#privacy-dossier-of")).to_be_hidden()
    context.close()


def test_the_page_is_served_with_its_own_files_and_a_strict_content_security_policy(
    stack: LocalStack,
) -> None:
    with urllib.request.urlopen(f"{stack.api_url}/p", timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html")
        html = response.read().decode()
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert '<script src="p/portal.js"' in html
    assert "https://" not in html
    with urllib.request.urlopen(f"{stack.api_url}/p/portal.js", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    status, body = http_call(f"{stack.api_url}/p/secrets.txt")
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_a_view_only_role_sees_the_dossier_and_nothing_to_send(
    stack: LocalStack, browser: Browser, rental: dict[str, Any]
) -> None:
    status, _ = http_call(
        f"{stack.api_url}/dossiers/{rental['dossier']['id']}/contributors",
        "POST",
        stack.admin_token,
        {
            "role_id": rental["notary"]["id"],
            "name": "Maître Dubois",
            "email": "notaire@exemple.fr",
            "notify": True,
        },
    )
    assert status == 201
    http_call(f"{stack.api_url}/_local/drain", "POST")
    _, outbox = http_call(f"{stack.api_url}/_local/outbox")
    [invitation] = [m for m in outbox["messages"] if m["to"] == ["notaire@exemple.fr"]]
    found = re.search(r'href="([^"]*#token=[^"]*)"', invitation["html"])
    assert found is not None
    link = html.unescape(found.group(1))
    context = browser.new_context(viewport={"width": 360, "height": 780})
    page = context.new_page()
    page.goto(link)
    expect(page.locator("#role")).to_have_text("Notaire")
    expect(page.locator("#view-only")).to_be_visible()
    # The others' documents, without their files, and nothing to upload, finish or invite.
    expect(page.locator("#documents > li")).not_to_have_count(0)
    expect(page.locator("input[type=file]:visible")).to_have_count(0)
    expect(page.locator("#finish-card")).to_be_hidden()
    expect(page.locator("#invite-card")).to_be_hidden()
    context.close()


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _guarantor_link(stack: LocalStack, rental: dict[str, Any], reference: str) -> tuple[str, dict[str, Any]]:
    """A new dossier of the rental procedure with a guarantor of its own, and his portal link."""
    api, admin = stack.api_url, stack.admin_token
    status, dossier = http_call(
        f"{api}/dossiers",
        "POST",
        admin,
        {
            "procedure_id": rental["dossier"]["procedure_id"],
            "reference": reference,
            "due_date": "2027-03-01",
            "recipient": {"name": "Léa Martin", "email": "lea@exemple.fr"},
        },
    )
    assert status == 201, dossier
    status, guarantor = http_call(
        f"{api}/dossiers/{dossier['id']}/contributors",
        "POST",
        admin,
        {"role_id": rental["garant"]["id"], "name": "Hugo Garant", "email": "hugo@exemple.fr"},
    )
    assert status == 201, guarantor
    return str(guarantor["portal_link"]), dossier


def _axe_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it stands."""
    page.add_script_tag(path=str(AXE))
    found: dict[str, Any] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return {
                passed: result.passes.map(p => p.id),
                violations: result.violations.map(
                    v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(" "))})
                ),
            };
        }""",
        WCAG_AA,
    )
    # The rules that matter here were really checked, not skipped for want of anything to check.
    assert {"color-contrast", "document-title", "html-has-lang"} <= set(found["passed"]), found["passed"]
    violations: list[dict[str, Any]] = found["violations"]
    return violations


def test_the_portal_has_no_wcag_aa_violation_at_360_and_1280_px_in_any_state(
    stack: LocalStack, browser: Browser, rental: dict[str, Any]
) -> None:
    link, dossier = _guarantor_link(stack, rental, "LOC-2027-A11Y")
    # axe is injected as a script: only the test's own context lifts the page's Content-Security-Policy.
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.goto(link)
    expect(page.get_by_role("heading", name="Dossier LOC-2027-A11Y")).to_be_visible()
    assert _axe_violations(page) == []

    payslips = page.locator("#documents > li").filter(has_text="Bulletins de salaire")
    page.get_by_label("Choisir le fichier « Bulletins de salaire »").set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"}
    )
    expect(payslips.locator(".upload-error")).to_be_visible()
    assert _axe_violations(page) == []

    page.get_by_label("Choisir le fichier « Bulletins de salaire »").set_input_files(
        {"name": "paie.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    expect(payslips.locator(".badge")).to_have_text("En cours de vérification")
    payslip_id = next(d["id"] for d in dossier["documents"] if d["label"] == "Bulletins de salaire")
    status, _ = http_call(
        f"{stack.api_url}/dossiers/{dossier['id']}/documents/{payslip_id}/review",
        "POST",
        stack.admin_token,
        {"decision": "reject", "comment": "Illisible."},
    )
    assert status == 200
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    expect(payslips.locator(".badge")).to_have_text("Refusée")
    assert _axe_violations(page) == []

    # Another link opened in the same tab changes only the fragment: the page follows it.
    page.goto(f"{stack.api_url}/p#token=forged")
    expect(page.get_by_role("heading", name="Ce lien n’est plus valide")).to_be_visible()
    assert "#token=" not in page.url
    assert _axe_violations(page) == []
    context.close()


def _focused(page: Page) -> str:
    """The focused element as a person hears it: its label, its own name, or its text."""
    name: str = page.evaluate(
        r"""() => {
            const el = document.activeElement;
            const label = el.labels && el.labels.length ? el.labels[0] : null;
            const title = label && (label.querySelector(".upload-title") || label);
            const name = el.getAttribute("aria-label") || (title && title.textContent) || el.textContent;
            return (name || "").replace(/\s+/g, " ").trim();
        }"""
    )
    return name


def test_the_portal_is_worked_with_the_keyboard_alone_in_reading_order(
    stack: LocalStack, browser: Browser, rental: dict[str, Any]
) -> None:
    link, _ = _guarantor_link(stack, rental, "LOC-2027-CLAVIER")
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="fr-FR")
    page = context.new_page()
    # Playwright turns file-chooser interception on when a listener first exists, asynchronously: on
    # from the start, a chooser opened by a key press is always caught (otherwise Chromium may cancel it).
    page.on("filechooser", lambda _: None)
    page.goto(link)
    expect(page.get_by_role("heading", name="Dossier LOC-2027-CLAVIER")).to_be_visible()
    page.locator("body").focus()
    order = []
    for _ in range(7):
        page.keyboard.press("Tab")
        order.append(_focused(page))
    # "J'ai terminé" is disabled while the payslips are missing: the keyboard passes it by.
    assert order == [
        "Aller au contenu",
        "Choisir le fichier « Bulletins de salaire »",
        "Choisir le fichier « Avis d'imposition »",
        "Rôle",
        "Nom et prénom",
        "Adresse email",
        "Envoyer l’invitation",
    ]

    # The focused file input shows its focus on the visible French button, and opens with the keyboard.
    chooser_input = page.get_by_label("Choisir le fichier « Bulletins de salaire »")
    chooser_input.focus()
    button = page.locator("#documents > li").first.locator(".file-button")
    assert button.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"
    with page.expect_file_chooser() as chosen:
        page.keyboard.press("Space")
    chosen.value.set_files({"name": "paie.pdf", "mimeType": "application/pdf", "buffer": PDF})
    payslips = page.locator("#documents > li").filter(has_text="Bulletins de salaire")
    expect(payslips.locator(".badge")).to_have_text("En cours de vérification")

    # He downloads what he sent: a short-lived presigned GET on the bucket, the very bytes.
    with page.expect_request(lambda request: request.url.startswith(stack.moto_url)) as fetched:
        payslips.get_by_role("button", name="Télécharger paie.pdf").click()
    with urllib.request.urlopen(fetched.value.url, timeout=10) as response:
        assert response.read() == PDF
    page.goto(link.split("#")[0])

    finish = page.get_by_role("button", name="J’ai terminé")
    expect(finish).to_be_enabled()
    finish.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#finished")).to_be_visible()
    context.close()
