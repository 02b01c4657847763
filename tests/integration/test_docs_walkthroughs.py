"""The shell walkthroughs of README.md and docs/*.md, run as written against the local stack.

The convention (README's "Quick start" points here):

- a fenced block with info string `sh` right after `<!-- walkthrough: NAME -->` is runnable; blocks of one
  file sharing a NAME form one script, run in their order (prose may sit between the steps);
- the block right after `<!-- walkthrough-prelude -->` (README.md) is run before every walkthrough: it defines
  what a reader types once per terminal (`J`, the `field` helper);
- a block right after `<!-- not-runnable: WHY -->` is shown, never run (it needs an AWS account, or starts the
  stack itself); `NOT_RUNNABLE` below lists them, so adding one is a visible decision;
- any other `sh`/`bash`/`shell` block fails the test.

Each walkthrough runs in bash (`set -euo pipefail`) against the local stack, started once in this process (as
`make run` starts it, on free ports: `localhost:8000` in the text is replaced by the bound address), with the
variables the README tells the reader to export from `make run`'s output: `ADMIN_TOKEN`, `MANAGER_TOKEN`,
`PLATFORM_TOKEN`. Each gets an account of its own, as the demo account of a fresh `make run` is (plan premium,
nothing in it), so that walkthroughs neither see nor disturb one another (a trial starts once per account).
`curl` is wrapped with `--fail-with-body`, so an HTTP error stops the walkthrough (unless the line prints the
status itself with `-w`). After the script, the queues are drained and what the text says the reader will see
is checked (`EXPECTED`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.local.stack import LocalStack
from tests.support import http_call, local_stack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(walkthrough-prelude|walkthrough|not-runnable)\s*:?\s*(.*?)\s*-->\s*$")
SHELLS = {"sh", "bash", "shell", "console", "zsh"}

NOT_RUNNABLE = {
    ("README.md", "make run and make test build the venv and start or test the whole project"),
    ("README.md", "the tokens make run printed"),
    ("README.md", "needs an AWS account"),
    ("docs/operations.md", "needs an AWS account"),
}
"""(file, reason) of every block shown but never run; a new one must be added here on purpose."""

CITED_TEST = re.compile(
    r"`(?:tests/)?(?:((?:unit|integration|contract|browser)/test_\w+\.py)::)?(test_[a-z0-9_]+)`"
)
CITED_FILE = re.compile(r"`tests/((?:unit|integration|contract|browser)/test_\w+\.py)[`:]")


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    marker: str
    argument: str
    language: str
    text: str


def shell_blocks() -> list[Block]:
    """Every fenced block of the documents with the marker comment right above it (or none)."""
    blocks: list[Block] = []
    for path in DOCUMENTS:
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            opening = FENCE.match(lines[index])
            if not opening or not opening.group(1):
                index += 1
                continue
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marker = MARKER.match(previous.strip())
            blocks.append(
                Block(
                    document=str(path.relative_to(ROOT)),
                    line=index + 1,
                    marker=marker.group(1) if marker else "",
                    argument=marker.group(2) if marker else "",
                    language=opening.group(1),
                    text="\n".join(lines[index + 1 : end]),
                )
            )
            index = end + 1
    return blocks


def walkthroughs() -> dict[str, str]:
    """`file:name` → the script of that walkthrough (its blocks joined in order)."""
    scripts: dict[str, str] = {}
    for block in shell_blocks():
        if block.marker == "walkthrough":
            key = f"{block.document}:{block.argument}"
            scripts[key] = scripts.get(key, "") + f"\n# {block.document}, line {block.line}\n{block.text}\n"
    return scripts


def prelude() -> str:
    found = [block.text for block in shell_blocks() if block.marker == "walkthrough-prelude"]
    assert len(found) == 1, "README.md has exactly one walkthrough-prelude block"
    return found[0]


def _outbox(stack: LocalStack) -> list[dict[str, Any]]:
    http_call(f"{stack.api_url}/_local/drain", "POST")
    return list(http_call(f"{stack.api_url}/_local/outbox")[1]["messages"])


def _kinds_to(stack: LocalStack, address: str) -> list[str]:
    return [message["kind"] for message in _outbox(stack) if address in message["to"]]


def _shows(output: str, text: str) -> bool:
    """Whether the answers printed hold `text`, written as JSON is in the docs (`"key": value`)."""
    return text.replace('": ', '":') in output.replace('": ', '":')


def _quick_start(stack: LocalStack, output: str) -> None:
    assert _shows(output, '"plan": "premium"')
    assert _kinds_to(stack, "contact@martin.fr") == ["account_welcome"]


def _document_collection(stack: LocalStack, output: str) -> None:
    assert "contributor_invited" in _kinds_to(stack, "paul.garant@exemple.fr")
    assert "dossier_created" in _kinds_to(stack, "lea.locataire@exemple.fr")
    assert _shows(output, '"status": "pending_review"')
    assert _shows(output, '"status": "approved"')


def _branding(stack: LocalStack, output: str) -> None:
    assert "#1F4E79" in output
    assert "/logos/" in output


def _partners(stack: LocalStack, output: str) -> None:
    assert _shows(output, '"prefilled_from": "apporteur"')
    assert _shows(output, '"decided_by": "contract"')
    assert _shows(output, '"succeeded": 1')
    addressed = [address for message in _outbox(stack) for address in message["to"] + message["cc"]]
    assert "a@ouest.fr" in addressed


def _formal_notice(stack: LocalStack, output: str) -> None:
    assert _shows(output, '"status": "to_send"')
    assert _shows(output, '"dunning_stage": "termination_due"')
    assert _shows(output, '"status": "terminated"')
    legal = ["formal_notice", "suspension_notice", "termination_notice"]
    assert [kind for kind in _kinds_to(stack, "jean@dupont.fr") if kind in legal] == legal


def _who_sees_what(stack: LocalStack, output: str) -> None:
    lines = output.splitlines()
    assert lines[-5:] == [
        "[('Pièce d’identité', 'his own'), ('Bulletins de salaire', 'another role’s'), "
        "('Avis d’imposition', 'another role’s'), ('Bail signé', 'another role’s')]",
        "[('Bulletins de salaire', 'his own'), ('Avis d’imposition', 'his own')]",
        "[('Bail signé', 'his own')]",
        "404",
        "403",
    ]


def _mailing(stack: LocalStack, output: str) -> None:
    assert _shows(output, '"status": "sent"')
    assert "mailing" in _kinds_to(stack, "claire@exemple.fr")


def _webhooks(stack: LocalStack, output: str) -> None:
    assert _shows(output, '"status": "succeeded"')
    assert "True {" in output
    assert _shows(output, '"type": "webhook.test"')


EXPECTED: dict[str, Callable[[LocalStack, str], None]] = {
    "README.md:quick-start": _quick_start,
    "README.md:document-collection": _document_collection,
    "README.md:branding": _branding,
    "README.md:partners": _partners,
    "README.md:formal-notice": _formal_notice,
    "README.md:mailing": _mailing,
    "README.md:webhooks": _webhooks,
    "docs/examples.md:who-sees-what": _who_sees_what,
}
"""What each walkthrough's text says the reader will see, checked after it ran."""


_CURL_FAILS_ON_HTTP_ERRORS = """curl() {
  case " $* " in
    *" -w "*) command curl --show-error "$@" ;;
    *) command curl --fail-with-body --show-error "$@" ;;
  esac
}"""
"""An HTTP error stops the walkthrough, except on a line that prints the status itself (`-w`): those show a
refusal on purpose, and the walkthrough's expectations check the status they print."""


@dataclass(frozen=True)
class Terminal:
    """What the reader's terminal holds after the quick start: the tokens `make run` printed."""

    admin_token: str
    manager_token: str
    platform_token: str


def _fresh_demo_account(stack: LocalStack, name: str) -> Terminal:
    """An account like the one `make run` seeds, and its staff tokens signed as `make run` signs them."""
    from chalicelib import wiring
    from chalicelib.local.stack import TOKEN_LIFETIME, mint_token

    sender = f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}@demo.relais.example"
    body = {"name": "Cabinet Démo Courtage", "plan": "premium", "sender_email": sender}
    status, account = http_call(f"{stack.api_url}/admin/accounts", "POST", stack.platform_admin_token, body)
    assert status == 201, account
    secret = wiring.container().settings.jwt_secret or ""
    return Terminal(
        admin_token=mint_token(secret, "demo-admin", "admin", account["id"], TOKEN_LIFETIME),
        manager_token=mint_token(secret, "demo-manager", "manager", account["id"], TOKEN_LIFETIME),
        platform_token=stack.platform_admin_token,
    )


def _run(
    script: str, stack: LocalStack, terminal: Terminal, workdir: Path
) -> subprocess.CompletedProcess[str]:
    address = stack.api_url.removeprefix("http://")
    wrapped = "\n".join(
        [
            "set -euo pipefail",
            _CURL_FAILS_ON_HTTP_ERRORS,
            prelude(),
            script,
        ]
    ).replace("localhost:8000", address)
    environment = {
        **os.environ,
        # The `python3` of this test run, not a version manager's shim that takes a while to start.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ADMIN_TOKEN": terminal.admin_token,
        "MANAGER_TOKEN": terminal.manager_token,
        "PLATFORM_TOKEN": terminal.platform_token,
    }
    return subprocess.run(
        ["bash", "-c", wrapped],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_shell_block_of_the_docs_is_a_walkthrough_or_says_why_it_is_not_run() -> None:
    unmarked = [
        f"{block.document}:{block.line}"
        for block in shell_blocks()
        if block.language in SHELLS and not block.marker
    ]
    assert unmarked == []
    blocks = shell_blocks()
    assert {block.language for block in blocks if block.marker.startswith("walkthrough")} == {"sh"}
    shown_only = {(block.document, block.argument) for block in blocks if block.marker == "not-runnable"}
    assert shown_only == NOT_RUNNABLE


def test_no_block_shown_but_not_run_calls_the_local_api() -> None:
    calling_local = [
        f"{block.document}:{block.line}"
        for block in shell_blocks()
        if block.marker == "not-runnable" and "localhost:8000" in block.text
    ]
    assert calling_local == []


def test_every_walkthrough_says_what_it_shows() -> None:
    assert set(walkthroughs()) == set(EXPECTED)


def test_the_docs_never_point_outside_the_repository() -> None:
    for path in DOCUMENTS:
        if path.exists():
            assert "../shared" not in path.read_text(encoding="utf-8"), path


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_walkthrough_runs_as_written_and_shows_what_it_says(
    name: str, stack: LocalStack, tmp_path: Path
) -> None:
    began = time.monotonic()
    finished = _run(walkthroughs()[name], stack, _fresh_demo_account(stack, name), tmp_path)
    assert finished.returncode == 0, f"{name}:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    EXPECTED[name](stack, finished.stdout)
    assert time.monotonic() - began < 20


def _defined_tests() -> dict[str, set[str]]:
    """tests/-relative file → the test functions it defines."""
    tests = ROOT / "tests"
    return {
        str(path.relative_to(tests)): set(
            re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(), re.M)
        )
        for path in tests.rglob("test_*.py")
    }


def test_every_test_the_docs_cite_exists() -> None:
    defined = _defined_tests()
    everywhere = set().union(*defined.values())
    missing = []
    for path in DOCUMENTS:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for file, name in CITED_TEST.findall(text):
            if name not in (defined.get(file, set()) if file else everywhere):
                missing.append(f"{path.name}: {file}::{name}")
        missing += [f"{path.name}: {file}" for file in CITED_FILE.findall(text) if file not in defined]
    assert missing == []


LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_link_between_the_docs_leads_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for path in DOCUMENTS:
        if not path.exists():
            continue
        for target, anchor in LINK.findall(path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            linked = (path.parent / target).resolve() if target else path
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{path.name}: {target}#{anchor}")
    assert broken == []
