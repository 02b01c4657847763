"""The deployed shape: `chalice package --merge-template infra/resources.yaml`, checked with cfn-lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.local.provision import DEPLOYED_ONLY, load_template
from chalicelib.local.stack import ROOT


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    environment = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-3", "RELAIS_STAGE": "prod"}
    chalice = Path(sys.executable).with_name("chalice")
    ran = subprocess.run(
        [str(chalice), "package", "--stage", "prod", "--merge-template", "infra/resources.yaml", str(out)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return out / "sam.yaml"


@pytest.fixture(scope="module")
def template(packaged: Path) -> dict[str, Any]:
    return load_template(packaged)


def test_the_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    ran = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(packaged)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_communications_worker_reports_partial_batch_failures_from_its_own_queue(
    template: dict[str, Any],
) -> None:
    source = template["Resources"]["CommunicationsWorker"]["Properties"]["Events"][
        "CommunicationsWorkerSqsEventSource"
    ]
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["Queue"]["Fn::Sub"].endswith(":relais-communications")
    assert template["Resources"]["CommunicationsWorker"]["DependsOn"] == ["CommunicationsQueue"]
    assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "EmailWorkerConcurrency"}}


def test_the_webhook_worker_reports_partial_batch_failures_from_its_own_queue(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    source = resources["WebhookWorker"]["Properties"]["Events"]["WebhookWorkerSqsEventSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Queue"]["Fn::Sub"].endswith(":relais-webhooks")
    assert resources["WebhookWorker"]["DependsOn"] == ["WebhooksQueue"]


def test_every_queue_has_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue"}
    for name, queue in queues.items():
        if name.endswith("DeadLetterQueue"):
            continue
        target = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert queues[target]["Properties"]["QueueName"] == queue["Properties"]["QueueName"] + "-dlq"


def test_each_function_runs_with_its_own_hand_written_policy(template: dict[str, Any]) -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    roles = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    documents = [role["Properties"]["Policies"][0]["PolicyDocument"] for role in roles.values()]
    for function, settings in config["lambda_functions"].items():
        policy = json.loads((ROOT / ".chalice" / settings["iam_policy_file"]).read_text())
        assert policy in documents, f"{function}'s policy is not in the package"


def test_gateway_refusals_answer_in_the_api_error_shape(template: dict[str, Any]) -> None:
    responses = {
        v["Properties"]["ResponseType"]: v["Properties"]
        for v in template["Resources"].values()
        if v["Type"] == "AWS::ApiGateway::GatewayResponse"
    }
    expected = {
        "UNAUTHORIZED": "unauthorized",
        "ACCESS_DENIED": "forbidden",
        "MISSING_AUTHENTICATION_TOKEN": "not_found",
    }
    for response_type, code in expected.items():
        body = responses[response_type]["ResponseTemplates"]["application/json"]
        assert json.loads(body)["error"]["code"] == code
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"


def test_what_the_local_stack_creates_is_exactly_what_is_deployed(template: dict[str, Any]) -> None:
    local = load_template()
    created_locally = {
        name: resource
        for name, resource in local["Resources"].items()
        if resource["Type"] not in DEPLOYED_ONLY
    }
    assert {"RelaisTable", "CommunicationsQueue", "CommunicationsDeadLetterQueue", "SenderIdentity"} <= set(
        created_locally
    )
    for name, resource in created_locally.items():
        assert template["Resources"][name] == resource, name


def test_ses_sends_bounces_and_complaints_reach_the_ses_events_worker_which_reports_partial_failures(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    source = resources["SesEvents"]["Properties"]["Events"]["SesEventsSqsEventSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Queue"]["Fn::Sub"].endswith(":relais-ses-events")
    destination = resources["EmailFeedbackDestination"]["Properties"]["EventDestination"]
    # send: settles an email whose worker died after SES accepted it (no duplicate on the retry).
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint", "send"]
    rule = resources["EmailFeedbackRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.ses"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SesEventsQueue", "Arn"]}


PARAMETERS = {
    "LinkSecret": "a-deployed-link-secret-of-at-least-32-bytes",
    "StaffTokenSecret": "a-deployed-staff-token-secret-of-32-bytes-or-more",
    "StaffJwksUrl": "",
    "StaffJwtIssuer": "",
    "StaffJwtAudience": "",
}
"""What an operator gives `aws cloudformation deploy --parameter-overrides` (the secrets have no default)."""
PHYSICAL = {"DocumentsBucket": "relais-documents-123456789012", "RestAPI": "abc123"}
PSEUDO = {"AWS::Region": "eu-west-3", "AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": "123456789012"}
LAMBDA_RUNTIME = {
    "AWS_REGION": "eu-west-3",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
"""What Lambda itself puts into every function's environment."""


def _value(template: dict[str, Any], node: Any) -> str:
    """A variable's value once CloudFormation has resolved it (parameters, resources, pseudo-parameters)."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        name = node["Ref"]
        if name in template.get("Parameters", {}):
            return PARAMETERS.get(name, str(template["Parameters"][name].get("Default", "")))
        return PHYSICAL[name]
    text = str(node["Fn::Sub"])
    for name, value in {**PSEUDO, **PHYSICAL}.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, text
    return text


def packaged_environment(template: dict[str, Any], function: str) -> dict[str, str]:
    properties = template["Resources"][function]["Properties"]
    variables = properties.get("Environment", {}).get("Variables", {})
    return {**LAMBDA_RUNTIME, **{name: _value(template, node) for name, node in variables.items()}}


@pytest.fixture
def as_packaged(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch, aws: Any
) -> Iterator[Callable[[str], None]]:
    """Switch the process to exactly one packaged function's environment (the adapters are rebuilt)."""
    from chalicelib import wiring

    original = dict(os.environ)

    def switch(function: str) -> None:
        for name in list(os.environ):
            if name.startswith(("RELAIS_", "POWERTOOLS_", "AWS_")):
                monkeypatch.delenv(name)
        for name, value in packaged_environment(template, function).items():
            monkeypatch.setenv(name, value)
        wiring.reset()

    yield switch
    os.environ.clear()
    os.environ.update(original)
    wiring.reset()


def _context(function: str) -> Any:
    from chalice.local import LambdaContext

    return LambdaContext(function, 512, max_runtime_ms=60_000)


def _api_event(method: str, path: str, authorizer: dict[str, str], body: Any = None) -> dict[str, Any]:
    return {
        "resource": path.split("?")[0],
        "path": path.split("?")[0],
        "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.eu-west-3.amazonaws.com", "Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": dict([path.split("?")[1].split("=")]) if "?" in path else None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path.split("?")[0],
            "httpMethod": method,
            "stage": "api",
            "requestId": f"request-{method}-{path}",
            "authorizer": authorizer,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def _sqs_event(queue: str, aws: Any) -> dict[str, Any]:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert received, f"nothing was queued on {queue}"
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:eu-west-3:123456789012:{queue}",
                "awsRegion": "eu-west-3",
            }
            for message in received
        ]
    }


def _scheduled_event(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "event-1",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2027-03-11T08:00:00Z",
        "region": "eu-west-3",
        "resources": [],
        "detail": detail,
    }


def test_every_handler_runs_with_exactly_the_environment_of_the_packaged_template(
    as_packaged: Callable[[str], None], aws: Any
) -> None:
    import app
    from chalicelib.api.authorizers import Unauthorized, portal_authorizer, staff_authorizer
    from chalicelib.local.stack import mint_token

    platform = {"principalId": "root", "role": "platform_admin", "account_id": ""}
    as_packaged("APIHandler")
    created = app.app(
        _api_event(
            "POST",
            "/admin/accounts",
            platform,
            {
                "name": "Cabinet Martin",
                "plan": "premium",
                "sender_email": "contact@martin.fr",
            },
        ),
        _context("api_handler"),
    )
    assert created["statusCode"] == 201, created["body"]
    account_id = json.loads(created["body"])["id"]
    admin = {"principalId": "admin", "role": "admin", "account_id": account_id}
    bulk = app.app(
        _api_event(
            "POST",
            "/contracts/bulk-updates",
            admin,
            {"ids": ["nope"], "set": {"communication_rule": "client"}},
        ),
        _context("api_handler"),
    )
    assert bulk["statusCode"] == 202, bulk["body"]
    unsubscribe = app.app(_api_event("GET", "/unsubscribe?token=forged", {}), _context("api_handler"))
    assert unsubscribe["statusCode"] == 400, unsubscribe["body"]

    as_packaged("StaffAuthorizer")
    staff_token = mint_token(PARAMETERS["StaffTokenSecret"], "admin", "admin", account_id, timedelta(hours=1))
    allowed = staff_authorizer(
        {"type": "TOKEN", "authorizationToken": f"Bearer {staff_token}", "methodArn": METHOD_ARN},
        _context("staff_authorizer"),
    )
    assert allowed["context"]["account_id"] == account_id

    as_packaged("PortalAuthorizer")
    with pytest.raises(Unauthorized):
        portal_authorizer(
            {"type": "TOKEN", "authorizationToken": "Bearer not-a-link", "methodArn": METHOD_ARN},
            _context("portal_authorizer"),
        )

    as_packaged("CommunicationsWorker")
    sent = app.communications_worker(
        _sqs_event("relais-communications", aws), _context("communications_worker")
    )
    assert sent == {"batchItemFailures": []}

    as_packaged("BulkWorker")
    applied = app.bulk_worker(_sqs_event("relais-bulk", aws), _context("bulk_worker"))
    assert applied == {"batchItemFailures": []}

    as_packaged("DunningTick")
    ticked = app.dunning_tick(_scheduled_event("Scheduled Event", "aws.events", {}), _context("dunning_tick"))
    # The bulk job above ended; its last stall check is due by 2027 and leaves the index once made.
    assert ticked == {"queued": 1}

    as_packaged("SesEvents")
    ses_record = {
        "messageId": "m-1",
        "receiptHandle": "r",
        "body": json.dumps(
            _scheduled_event("Email Bounced", "aws.ses", {"eventType": "Bounce", "mail": {"tags": {}}})
        ),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-3:123456789012:relais-ses-events",
        "awsRegion": "eu-west-3",
    }
    assert app.ses_events({"Records": [ses_record]}, _context("ses_events")) == {"batchItemFailures": []}

    hook = app.app(
        _api_event("POST", "/webhooks", admin, {"url": "https://crm.martin.fr/relais", "events": ["*"]}),
        _context("api_handler"),
    )
    assert hook["statusCode"] == 201, hook["body"]

    as_packaged("WebhookWorker")
    from chalicelib import wiring
    from chalicelib.domain.events import Event, EventType, Subject, SubjectKind
    from chalicelib.services.events import announce

    finished = Event(
        account_id, EventType.JOB_FINISHED, wiring.utc_now(), Subject(SubjectKind.ACCOUNT, account_id), {}
    )
    announce([finished], wiring.container().webhooks_queue)
    fanned_out = app.webhook_worker(_sqs_event("relais-webhooks", aws), _context("webhook_worker"))
    assert fanned_out == {"batchItemFailures": []}

    as_packaged("UploadEvents")
    key = f"accounts/{account_id}/dossiers/d-1/documents/doc-1/upload-1"
    upload = _scheduled_event(
        "Object Created", "aws.s3", {"bucket": {"name": PHYSICAL["DocumentsBucket"]}, "object": {"key": key}}
    )
    assert app.upload_events(upload, _context("upload_events")) == "refused"


METHOD_ARN = "arn:aws:execute-api:eu-west-3:123456789012:abc123/api/GET/account"
EVERYWHERE = {"RELAIS_STAGE", "RELAIS_TABLE_NAME", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
READS = {
    "APIHandler": {"RELAIS_PORTAL_TOKEN_DAYS", "RELAIS_DOCUMENTS_BUCKET", "RELAIS_LINK_SECRET"},
    "StaffAuthorizer": {"RELAIS_JWT_SECRET", "RELAIS_JWKS_URL", "RELAIS_JWT_ISSUER", "RELAIS_JWT_AUDIENCE"},
    "PortalAuthorizer": set(),
    "CommunicationsWorker": {
        "RELAIS_FROM_ADDRESS",
        "RELAIS_SES_CONFIGURATION_SET",
        "RELAIS_PORTAL_TOKEN_DAYS",
        "RELAIS_API_URL",
        "RELAIS_LINK_SECRET",
        "RELAIS_DOCUMENTS_BUCKET",
    },
    "BulkWorker": set(),
    "DunningTick": set(),
    "SesEvents": set(),
    "WebhookWorker": set(),
    "UploadEvents": {"RELAIS_DOCUMENTS_BUCKET", "RELAIS_API_URL", "RELAIS_PORTAL_TOKEN_DAYS"},
}
"""What each function's code reads beyond what all of them read (wiring.py and the handler it runs)."""


def test_each_packaged_function_gets_exactly_the_variables_its_code_reads(template: dict[str, Any]) -> None:
    functions = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(READS)
    for function, reads in READS.items():
        given = set(packaged_environment(template, function)) - set(LAMBDA_RUNTIME)
        assert given == EVERYWHERE | reads, function


def test_the_sender_address_of_the_worker_is_the_ses_identity_the_template_verifies(
    template: dict[str, Any],
) -> None:
    variables = template["Resources"]["CommunicationsWorker"]["Properties"]["Environment"]["Variables"]
    assert variables["RELAIS_FROM_ADDRESS"] == {"Ref": "SenderAddress"}
    assert template["Resources"]["SenderIdentity"]["Properties"]["EmailIdentity"] == {"Ref": "SenderAddress"}


def test_the_link_secret_is_a_parameter_of_at_least_32_characters_never_echoed(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["LinkSecret"]
    assert parameter["NoEcho"] is True
    assert parameter["MinLength"] >= 32
    assert "Default" not in parameter


def test_api_gateway_caches_a_staff_authorization_for_at_most_a_minute_and_a_portal_one_never(
    template: dict[str, Any],
) -> None:
    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    authorizers = swagger["securityDefinitions"]
    ttl = {
        name: a["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]
        for name, a in authorizers.items()
    }
    assert 0 < ttl["staff_authorizer"] <= 60
    assert ttl["portal_authorizer"] == 0
