"""The hand-written IAM policies of policies/*.json grant exact actions on Relais's own resources.

Each resource is a CloudFormation `Fn::Sub` naming the stage's own resource (`relais-${Stage}-…`) in the
stack's account and region, so that a `dev` function can touch nothing of `prod` in the same account; a
bare `*` only where AWS has no resource to name. Each function may call on the table only what its code
calls: no DeleteItem where nothing deletes. A function that needs a secret may read exactly its SSM
parameters, named by the template's parameters; no `kms:Decrypt` is needed, since the SecureStrings use the
AWS managed key `aws/ssm`, whose key policy lets SSM decrypt for any principal of the account allowed to
read the parameter (a customer managed key would need `kms:Decrypt` with a `kms:ViaService` condition).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.local.provision import render_policy

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "policies").glob("*.json"))
_IN_STACK = r"\$\{AWS::Region\}:\$\{AWS::AccountId\}"
OWN_RESOURCE = (
    r"^arn:\$\{AWS::Partition\}:("
    rf"dynamodb:{_IN_STACK}:table/relais-\$\{{Stage\}}(/index/(GSI[1-4]|due))?"
    rf"|sqs:{_IN_STACK}:relais-\$\{{Stage\}}-[a-z-]+"
    r"|s3:::relais-\$\{Stage\}-documents-\$\{AWS::AccountId\}(/accounts/\*(/letters/\*)?)?"
    rf"|ses:{_IN_STACK}:configuration-set/relais-\$\{{Stage\}}"
    rf"|logs:{_IN_STACK}:log-group:/aws/lambda/relais-\$\{{Stage\}}-{{function}}(:\*)?"
    rf"|ssm:{_IN_STACK}:parameter\$\{{(LinkSecret|StaffTokenSecret|Maileva)Parameter\}}"
    r")$"
)
"""`{function}`: each function writes its own log group only (`:*`: IAM sees a log group's ARN with that
suffix, and its streams under it, as AWSLambdaBasicExecutionRole names them). The bucket is named for
listing the versions of a dossier's files to erase them (under `accounts/` only)."""
BARE_STAR_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}
"""The only actions AWS authorizes on no resource but `*`."""
DELETES = {"api_handler", "communications_worker", "ses_events"}
"""Deleting a mailing draft, and Powertools' idempotency forgetting a refused request; the retention's
erasure of a dossier, whose item goes in one transaction with its audit entry (a transaction's Delete
needs DeleteItem); a bounce or complaint replacing an address's plain-text suppression item by its hashed
one (ses_events)."""


def statements(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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
        own = re.compile(OWN_RESOURCE.replace("{function}", path.stem))
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= BARE_STAR_ACTIONS, f"{path.stem}: * for {actions}"
                continue
            assert set(resource) == {"Fn::Sub"}, f"{path.stem}: {resource} is not the stage's own resource"
            arn = resource["Fn::Sub"]
            assert own.match(arn), f"{path.stem}: {arn} does not name a Relais resource of the stage"


@functools.cache
def _iam_actions() -> dict[str, set[str]]:
    """Every IAM action of each service (lower case), as cfn-lint knows them from AWS's reference."""
    import cfnlint

    listed = json.loads((Path(cfnlint.__file__).parent / "data/AdditionalSpecs/Policies.json").read_text())
    return {service: set(entry["Actions"]) for service, entry in listed.items()}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_every_action_granted_is_one_aws_authorizes(path: Path) -> None:
    """A grant of a name IAM never checks (`dynamodb:TransactWriteItems`: a transaction is authorized item
    by item) allows nothing and hides what the function really needs."""
    known = _iam_actions()
    for statement in statements(path):
        for action in as_list(statement["Action"]):
            service, _, name = action.partition(":")
            assert name.lower() in known.get(service, set()), f"{path.stem}: {action} is no IAM action"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_only_a_function_that_deletes_items_may_delete_them(path: Path) -> None:
    actions = {action for statement in statements(path) for action in as_list(statement["Action"])}
    assert ("dynamodb:DeleteItem" in actions) == (path.stem in DELETES), path.stem
    assert "dynamodb:Scan" not in actions, "no Scan anywhere (DESIGN.md)"


def test_the_policies_name_the_resources_the_local_stack_creates_for_its_stage(aws: Any) -> None:
    """Rendered for the local stage, every table, queue, bucket and configuration set a policy names is
    one the template created under that very name (the code and the template agree on the names)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID

    settings = aws.settings
    sqs = aws.client("sqs")
    queues = {url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]}
    created = {
        "dynamodb": {
            f"table/{settings.table_name}",
            *(f"table/{settings.table_name}/index/{i}" for i in INDEXES),
        },
        "sqs": queues,
        "s3": {settings.documents_bucket},
        "ses": {f"configuration-set/{settings.ses_configuration_set}"},
    }
    for path in POLICIES:
        document = render_policy(
            json.loads(path.read_text()), "local", DEFAULT_ACCOUNT_ID, settings.region, SECRET_PARAMETERS
        )
        for statement in document["Statement"]:
            for arn in as_list(statement["Resource"]):
                service, resource = arn.split(":")[2], arn.split(":")[-1]
                if service == "logs":
                    assert resource in ("*", f"/aws/lambda/relais-local-{path.stem}"), arn
                elif service == "ssm":
                    assert resource.removeprefix("parameter") in SECRET_PARAMETERS.values(), arn
                elif service == "s3":
                    assert arn.split(":::")[1].split("/")[0] in created["s3"], arn
                else:
                    assert resource in created[service], f"{path.stem}: {arn}"


INDEXES = ("GSI1", "GSI2", "GSI3", "GSI4", "due")
SECRET_PARAMETERS = {
    "LinkSecretParameter": "/relais/local/link-secret",
    "StaffTokenSecretParameter": "/relais/local/jwt-secret",
    "MailevaParameter": "/relais/local/maileva",
}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_a_function_reads_only_the_secrets_its_code_reads(path: Path) -> None:
    named = {
        resource["Fn::Sub"].rsplit("${", 1)[1].rstrip("}")
        for statement in statements(path)
        for resource in as_list(statement["Resource"])
        if ":ssm:" in str(resource)
    }
    assert named == SECRETS.get(path.stem, set())


SECRETS = {
    "api_handler": {"LinkSecretParameter"},
    "communications_worker": {"LinkSecretParameter", "MailevaParameter"},
    "staff_authorizer": {"StaffTokenSecretParameter"},
}
"""The unsubscribe links (API and worker), the registered letters (worker), the staff tokens' HS256 key."""


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
