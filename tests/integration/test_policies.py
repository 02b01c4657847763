"""The hand-written IAM policies of policies/*.json grant exact actions on Relais's own resources.

Region and account may stay `*` in these static files (one stage per account); a bare `*` only where AWS
has no resource to name. Each function may call on the table only what its code calls: no DeleteItem
where nothing deletes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "policies").glob("*.json"))
OWN_RESOURCE = re.compile(
    r"^arn:aws:("
    r"dynamodb:\*:\*:table/relais(/index/(GSI[1-4]|due))?"
    r"|sqs:\*:\*:relais-[a-z-]+"
    r"|s3:::relais-documents-\*(/accounts/\*(/letters/\*)?)?"
    r"|ses:\*:\*:(configuration-set/relais|identity/\*)"
    r"|logs:\*:\*:log-group:/aws/lambda/relais-\*(:log-stream:\*)?"
    r")$"
)
"""`relais-documents-*`: the bucket's name ends with the AWS account id, which may stay `*` here; the bucket
itself is named for listing the versions of a dossier's files to erase them (under `accounts/` only).
`identity/*`: SES authorizes SendEmail on the sending identity too, the deployment's own domain, which a
static file cannot name (test_least_privilege.py)."""
BARE_STAR_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}
"""The only actions AWS authorizes on no resource but `*`."""
DELETES = {"api_handler", "ses_events"}
"""Deleting a mailing draft, and Powertools' idempotency forgetting a refused request (api_handler); a
bounce or complaint replacing an address's plain-text suppression item by its hashed one (ses_events)."""


def statements(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_a_policy_names_exact_actions_on_relais_own_resources(path: Path) -> None:
    for statement in statements(path):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        actions = as_list(statement["Action"])
        for action in actions:
            assert "*" not in action, f"{path.stem}: {action}"
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action), f"{path.stem}: {action}"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= BARE_STAR_ACTIONS, f"{path.stem}: * for {actions}"
                continue
            assert OWN_RESOURCE.match(resource), f"{path.stem}: {resource} does not name a Relais resource"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_only_a_function_that_deletes_items_may_delete_them(path: Path) -> None:
    actions = {action for statement in statements(path) for action in as_list(statement["Action"])}
    assert ("dynamodb:DeleteItem" in actions) == (path.stem in DELETES), path.stem
    assert "dynamodb:Scan" not in actions, "no Scan anywhere (DESIGN.md)"


def test_every_function_of_the_app_has_one_policy() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert {Path(f["iam_policy_file"]).stem for f in config["lambda_functions"].values()} == {
        p.stem for p in POLICIES
    }


def test_the_portal_page_may_connect_only_to_itself_and_the_documents_bucket(
    anonymous: Any, aws: Any
) -> None:
    answer = anonymous.get("/p")
    policy = dict(
        part.strip().split(" ", 1)
        for part in answer.headers["Content-Security-Policy"].split(";")
        if part.strip()
    )
    self_, bucket_origin = policy["connect-src"].split(" ")
    assert self_ == "'self'"
    assert "*" not in bucket_origin
    assert bucket_origin.startswith(f"https://{aws.settings.documents_bucket}.s3.")
    assert bucket_origin.endswith(".amazonaws.com")
