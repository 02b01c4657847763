"""Schemathesis against the real local stack: every check, with each kind of token, finds nothing but
refusals of ids that do not exist (and the few rules that a schema cannot state, listed below).

Examples are bounded (a few per operation, deterministic) so the run stays near a minute.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.local.stack import LocalStack
from tests.support import http_call, local_stack

ROOT = Path(__file__).resolve().parents[2]
NOT_EXISTING = re.compile(
    r"does not exist|no such|not one of the client's|not a cursor of this API|not a valid unsubscribe token"
)
"""A refusal of an id (or of a cursor or a signed token, ids of a page or a person) that names nothing."""
BEYOND_A_SCHEMA = re.compile(
    r"which this kind does not offer"  # a template's variables depend on its kind (API.md "Templates")
    r"|is required for deadline_approaching"  # days_before, for one trigger only
    r"|the installment's currency"  # a payment is in the currency of its installment
    r"|the audience has no entity to preview"  # depends on the records the account holds
    r"|must be above 0 and below"  # an amount's bounds, beyond its decimal pattern
    r"|The webhook URL cannot be used"  # where a URL may point: its address ranges, the stage's schemes
)
"""Rules that depend on state or on another field's value, which OpenAPI 3.0 cannot express."""
CASE = re.compile(r"^\d+\. Test Case ID", re.MULTILINE)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


def _portal_token(stack: LocalStack) -> str:
    _, procedure = http_call(f"{stack.api_url}/procedures", "POST", stack.admin_token, {"name": "Location"})
    _, dossier = http_call(
        f"{stack.api_url}/dossiers",
        "POST",
        stack.admin_token,
        {"procedure_id": procedure["id"], "recipient": {"name": "Léa Martin", "email": "lea@martin.fr"}},
    )
    return str(dossier["portal_link"].split("#token=")[1])


def _fuzz(stack: LocalStack, token: str | None, include: str, examples: int, report: Path) -> list[str]:
    """Every failing case of one schemathesis run, as schemathesis describes it."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(ROOT / "openapi.yaml"),
        "--url",
        stack.api_url,
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--phases",
        "coverage,fuzzing",
        "--generation-deterministic",
        "--include-path-regex",
        include,
        "--workers",
        "2",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    # From the test's own directory: schemathesis keeps a cache of its findings where it runs.
    ran = subprocess.run(command, cwd=report, capture_output=True, text=True, timeout=300, check=False)
    reports = list(report.glob("*.xml"))
    assert reports, ran.stdout + ran.stderr
    assert "API Operations:" in ran.stdout, ran.stdout
    assert "Tested: 0" not in ran.stdout, ran.stdout
    cases = []
    for failure in ElementTree.parse(reports[0]).getroot().iter("failure"):
        text = failure.text or ""
        starts = [m.start() for m in CASE.finditer(text)] or [0]
        cases += [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    return cases


def _unexpected(cases: list[str]) -> list[str]:
    return [
        case
        for case in cases
        if not (re.search(r"^\[(400|404)\]", case, re.MULTILINE) and NOT_EXISTING.search(case))
        and not BEYOND_A_SCHEMA.search(case)
    ]


@pytest.mark.parametrize(
    ("who", "include", "examples"),
    [
        ("admin", r"^/(?!admin|portal|p$|p/|_local)", 1),
        ("manager", r"^/account", 2),
        ("platform_admin", r"^/admin", 2),
        ("portal", r"^/portal", 2),
        ("nobody", r"^/(_local|unsubscribe|p$|p/)", 2),
    ],
)
def test_schemathesis_finds_nothing_but_refusals_of_ids_that_do_not_exist(
    stack: LocalStack, tmp_path: Path, who: str, include: str, examples: int
) -> None:
    token = (
        {
            "admin": stack.admin_token,
            "manager": stack.manager_token,
            "platform_admin": stack.platform_admin_token,
            "nobody": None,
        }.get(who)
        if who != "portal"
        else _portal_token(stack)
    )
    unexpected = _unexpected(_fuzz(stack, token, include, examples, tmp_path))
    assert not unexpected, "\n\n".join(unexpected[:10])
