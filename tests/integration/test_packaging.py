"""The deployed shape: `chalice package --merge-template infra/resources.yaml`, checked with cfn-lint."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from chalicelib.config import Queue, queue_name
from chalicelib.local.provision import DEPLOYED_ONLY, load_template
from chalicelib.local.stack import REGION, ROOT


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
    assert source["Properties"]["Queue"]["Fn::Sub"].endswith(":relais-prod-communications")
    assert template["Resources"]["CommunicationsWorker"]["DependsOn"] == ["CommunicationsQueue"]
    assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "EmailWorkerConcurrency"}}


def test_the_webhook_worker_reports_partial_batch_failures_from_its_own_queue(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    source = resources["WebhookWorker"]["Properties"]["Events"]["WebhookWorkerSqsEventSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Queue"]["Fn::Sub"].endswith(":relais-prod-webhooks")
    assert resources["WebhookWorker"]["DependsOn"] == ["WebhooksQueue"]


def test_webhook_retries_are_queued_every_minute_and_the_dunning_steps_every_hour(
    template: dict[str, Any],
) -> None:
    def schedules(function: str) -> list[str]:
        events = template["Resources"][function]["Properties"]["Events"].values()
        return [e["Properties"]["Schedule"] for e in events if e["Type"] == "Schedule"]

    assert schedules("WebhookTick") == ["rate(1 minute)"]
    assert schedules("DunningTick") == ["rate(1 hour)"]


def test_every_queue_has_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue"}
    for name, queue in queues.items():
        if name.endswith("DeadLetterQueue"):
            continue
        target = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        name = queue["Properties"]["QueueName"]["Fn::Sub"]
        assert name.startswith("relais-${Stage}-")
        assert queues[target]["Properties"]["QueueName"] == {"Fn::Sub": name + "-dlq"}


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
    assert source["Queue"]["Fn::Sub"].endswith(":relais-prod-ses-events")
    destination = resources["EmailFeedbackDestination"]["Properties"]["EventDestination"]
    # send: settles an email whose worker died after SES accepted it (no duplicate on the retry).
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint", "send"]
    rule = resources["EmailFeedbackRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.ses"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SesEventsQueue", "Arn"]}


PARAMETERS = {
    "Stage": "prod",
    "LinkSecretParameter": "/relais/prod/link-secret",
    "StaffTokenSecretParameter": "/relais/prod/jwt-secret",
    "MailevaParameter": "",
    "StaffJwksUrl": "",
    "StaffJwtIssuer": "",
    "StaffJwtAudience": "",
}
"""What an operator gives `aws cloudformation deploy --parameter-overrides`: the SSM names of the secrets."""
SECRETS = {
    "/relais/prod/link-secret": "a-deployed-link-secret-of-at-least-32-bytes",
    "/relais/prod/jwt-secret": "a-deployed-staff-token-secret-of-32-bytes-or-more",
}
"""The SecureStrings the operator put in SSM Parameter Store before the deployment."""
PHYSICAL = {
    "DocumentsBucket": "relais-prod-documents-123456789012",
    "EmailConfigurationSet": "relais-prod",
    "RestAPI": "abc123",
}
PSEUDO = {"AWS::Region": "eu-west-3", "AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": "123456789012"}
LAMBDA_RUNTIME = {
    "AWS_REGION": "eu-west-3",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
"""What Lambda itself puts into every function's environment."""


PUBLIC_BASE_URL = "https://relais.cabinet-martin.fr"
"""The API's custom domain, as an operator gives it with `make deploy PUBLIC_BASE_URL=…`."""
WITH_PUBLIC_BASE_URL = {**PARAMETERS, "PublicBaseUrl": PUBLIC_BASE_URL}
EXECUTE_API_URL = "https://abc123.execute-api.eu-west-3.amazonaws.com/api"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)


def _value(template: dict[str, Any], node: Any, parameters: Mapping[str, str]) -> str | None:
    """A variable's value once CloudFormation has resolved it (parameters, conditions, resources,
    pseudo-parameters); None for `AWS::NoValue` (the variable is left out)."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        name = node["Ref"]
        if name == "AWS::NoValue":
            return None
        if name in template.get("Parameters", {}):
            return parameters.get(name, str(template["Parameters"][name].get("Default", "")))
        return PHYSICAL[name]
    if "Fn::If" in node:
        condition, if_true, if_false = node["Fn::If"]
        holds = _holds(template, template["Conditions"][condition], parameters)
        return _value(template, if_true if holds else if_false, parameters)
    text = str(node["Fn::Sub"])
    for name, value in {**PSEUDO, **PHYSICAL, **parameters}.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, text
    return text


def _holds(template: dict[str, Any], condition: dict[str, Any], parameters: Mapping[str, str]) -> bool:
    """A condition of the template (`Fn::Not`, `Fn::Equals`) for these parameters."""
    if "Fn::Not" in condition:
        return not _holds(template, condition["Fn::Not"][0], parameters)
    left, right = (_value(template, side, parameters) for side in condition["Fn::Equals"])
    return left == right


def packaged_environment(
    template: dict[str, Any], function: str, parameters: Mapping[str, str] = PARAMETERS
) -> dict[str, str]:
    properties = template["Resources"][function]["Properties"]
    variables = properties.get("Environment", {}).get("Variables", {})
    # Lambda names the function in its environment too: the settings check it is the stage packaged.
    name = _value(template, properties["FunctionName"], parameters)
    assert name is not None
    values = {variable: _value(template, node, parameters) for variable, node in variables.items()}
    given = {variable: value for variable, value in values.items() if value is not None}
    return {**LAMBDA_RUNTIME, "AWS_LAMBDA_FUNCTION_NAME": name, **given}


class AsPackaged(Protocol):
    def __call__(self, function: str, parameters: Mapping[str, str] = PARAMETERS) -> None: ...


@pytest.fixture
def as_packaged(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch, aws: Any) -> Iterator[AsPackaged]:
    """Switch the process to exactly one packaged function's environment (the adapters are rebuilt), on
    the resources of the `prod` stage beside the local ones."""
    from aws_lambda_powertools.utilities import parameters
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from chalicelib import wiring
    from chalicelib.local.provision import provision

    provision(aws.client, account_id=DEFAULT_ACCOUNT_ID, region=REGION, stage="prod")
    for name, secret in SECRETS.items():
        aws.client("ssm").put_parameter(Name=name, Value=secret, Type="SecureString")
    parameters.clear_caches()

    original = dict(os.environ)

    def switch(function: str, parameters: Mapping[str, str] = PARAMETERS) -> None:
        for name in list(os.environ):
            if name.startswith(("RELAIS_", "POWERTOOLS_", "AWS_")):
                monkeypatch.delenv(name)
        for name, value in packaged_environment(template, function, parameters).items():
            monkeypatch.setenv(name, value)
        wiring.reset()

    yield switch
    os.environ.clear()
    os.environ.update(original)
    wiring.reset()
    parameters.clear_caches()


def _context(function: str) -> Any:
    from chalice.local import LambdaContext

    return LambdaContext(function, 512, max_runtime_ms=60_000)


def _api_event(
    method: str,
    path: str,
    authorizer: dict[str, str],
    body: Any = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """API Gateway's event; `path_parameters` name the path's ids (`{"dossier_id": "d-1"}`)."""
    resource = path.split("?")[0]
    for name, value in (path_parameters or {}).items():
        resource = resource.replace(f"/{value}", f"/{{{name}}}")
    return {
        "resource": resource,
        "path": path.split("?")[0],
        "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.eu-west-3.amazonaws.com", "Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": dict([path.split("?")[1].split("=")]) if "?" in path else None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
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
    as_packaged: AsPackaged, aws: Any
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
    staff_token = mint_token(
        SECRETS["/relais/prod/jwt-secret"], "admin", "admin", account_id, timedelta(hours=1)
    )
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
        _sqs_event(queue_name(Queue.COMMUNICATIONS, "prod"), aws), _context("communications_worker")
    )
    assert sent == {"batchItemFailures": []}

    as_packaged("BulkWorker")
    applied = app.bulk_worker(_sqs_event(queue_name(Queue.BULK, "prod"), aws), _context("bulk_worker"))
    assert applied == {"batchItemFailures": []}

    as_packaged("DunningTick")
    ticked = app.dunning_tick(_scheduled_event("Scheduled Event", "aws.events", {}), _context("dunning_tick"))
    # The bulk job above ended; its last stall check is due by 2027 and leaves the index once made.
    assert ticked == {"queued": 1}

    as_packaged("WebhookTick")
    ticked = app.webhook_tick(_scheduled_event("Scheduled Event", "aws.events", {}), _context("webhook_tick"))
    # The two events written above (no webhook_worker fanned them out yet) are queued again, as lost ones
    # would be.
    assert ticked == {"queued": 2}

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
        "eventSourceARN": f"arn:aws:sqs:eu-west-3:123456789012:{queue_name(Queue.SES_EVENTS, 'prod')}",
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
    webhooks_event = _sqs_event(queue_name(Queue.WEBHOOKS, "prod"), aws)
    fanned_out = app.webhook_worker(webhooks_event, _context("webhook_worker"))
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
    "APIHandler": {"RELAIS_PORTAL_TOKEN_DAYS", "RELAIS_DOCUMENTS_BUCKET", "RELAIS_LINK_SECRET_PARAMETER"},
    "StaffAuthorizer": {
        "RELAIS_JWT_SECRET_PARAMETER",
        "RELAIS_JWKS_URL",
        "RELAIS_JWT_ISSUER",
        "RELAIS_JWT_AUDIENCE",
    },
    "PortalAuthorizer": set(),
    "CommunicationsWorker": {
        "RELAIS_FROM_ADDRESS",
        "RELAIS_SES_CONFIGURATION_SET",
        "RELAIS_PORTAL_TOKEN_DAYS",
        "RELAIS_API_URL",
        "RELAIS_LINK_SECRET_PARAMETER",
        "RELAIS_MAILEVA_PARAMETER",
        "RELAIS_DOCUMENTS_BUCKET",
    },
    "BulkWorker": set(),
    "DunningTick": set(),
    "WebhookTick": set(),
    "SesEvents": set(),
    "WebhookWorker": set(),
    "UploadEvents": {"RELAIS_DOCUMENTS_BUCKET", "RELAIS_API_URL", "RELAIS_PORTAL_TOKEN_DAYS"},
}
"""What each function's code reads beyond what all of them read (wiring.py and the handler it runs)."""


LINK_MINTERS = {"APIHandler", "CommunicationsWorker", "UploadEvents"}
"""The functions that write absolute links (portal invitations, unsubscribe links, logo addresses)."""


@pytest.mark.parametrize(
    "parameters", [PARAMETERS, WITH_PUBLIC_BASE_URL], ids=["execute-api", "public-base-url"]
)
def test_each_packaged_function_gets_exactly_the_variables_its_code_reads(
    template: dict[str, Any], parameters: Mapping[str, str]
) -> None:
    functions = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(READS)
    for function, reads in READS.items():
        environment = packaged_environment(template, function, parameters)
        given = set(environment) - {*LAMBDA_RUNTIME, "AWS_LAMBDA_FUNCTION_NAME"}
        # With a public base URL the API handler no longer reads its host from each request.
        extra = {"RELAIS_API_URL"} if function == "APIHandler" and "PublicBaseUrl" in parameters else set()
        assert given == EVERYWHERE | reads | extra, function


def test_the_public_base_url_is_the_base_of_the_links_of_exactly_the_functions_that_write_links(
    template: dict[str, Any],
) -> None:
    def links_bases(parameters: Mapping[str, str]) -> dict[str, str]:
        environments = {f: packaged_environment(template, f, parameters) for f in READS}
        return {f: env["RELAIS_API_URL"] for f, env in environments.items() if "RELAIS_API_URL" in env}

    assert links_bases(WITH_PUBLIC_BASE_URL) == dict.fromkeys(LINK_MINTERS, PUBLIC_BASE_URL)
    # Without it, as before: the workers name execute-api, the API handler the host each request reached.
    assert links_bases(PARAMETERS) == dict.fromkeys(LINK_MINTERS - {"APIHandler"}, EXECUTE_API_URL)

    allowed = re.compile(template["Parameters"]["PublicBaseUrl"]["AllowedPattern"])
    assert template["Parameters"]["PublicBaseUrl"]["Default"] == ""
    for accepted in ("", PUBLIC_BASE_URL, "https://cabinet-martin.fr/relais"):
        assert allowed.fullmatch(accepted), accepted
    for refused in (
        "http://relais.cabinet-martin.fr",
        "relais.cabinet-martin.fr",
        f"{PUBLIC_BASE_URL}/",
        f"{PUBLIC_BASE_URL}/p#token=x",
        "https://localhost",
        "https://relais.fr?x=1",
    ):
        assert not allowed.fullmatch(refused), refused


def test_the_packaged_api_handler_erases_a_dossier_without_a_public_base_url(
    as_packaged: AsPackaged, aws: Any
) -> None:
    """Erasure builds the dossiers' context, portal address included: from the request's host here."""
    import app

    as_packaged("APIHandler")
    platform = {"principalId": "root", "role": "platform_admin", "account_id": ""}
    account = {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"}
    created = app.app(_api_event("POST", "/admin/accounts", platform, account), _context("api_handler"))
    admin = {"principalId": "admin", "role": "admin", "account_id": json.loads(created["body"])["id"]}
    procedure = app.app(
        _api_event("POST", "/procedures", admin, {"name": "Adhésion", "main_role_name": "Adhérent"}),
        _context("api_handler"),
    )
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    body = {"procedure_id": json.loads(procedure["body"])["id"], "recipient": recipient}
    dossier = app.app(_api_event("POST", "/dossiers", admin, body), _context("api_handler"))
    dossier_id = json.loads(dossier["body"])["id"]

    def erase() -> dict[str, Any]:
        event = _api_event(
            "DELETE", f"/dossiers/{dossier_id}", admin, path_parameters={"dossier_id": dossier_id}
        )
        answer: dict[str, Any] = app.app(event, _context("api_handler"))
        return answer

    erased = erase()
    assert erased["statusCode"] == 204, erased["body"]
    assert erase()["statusCode"] == 404


@pytest.mark.parametrize(
    ("parameters", "links_base"),
    [(PARAMETERS, EXECUTE_API_URL), (WITH_PUBLIC_BASE_URL, PUBLIC_BASE_URL)],
    ids=["execute-api", "public-base-url"],
)
def test_the_portal_links_the_packaged_api_and_worker_write_start_with_the_public_base_url(
    as_packaged: AsPackaged, aws: Any, parameters: Mapping[str, str], links_base: str
) -> None:
    """Staff call the execute-api host; the invitation they trigger, their logo's address and the unsubscribe
    link of their mailing still name the public domain."""
    import app
    from chalicelib.local.outbox import sent_messages

    def call(path: str, authorizer: dict[str, str], body: Any) -> Any:
        answer = app.app(_api_event("POST", path, authorizer, body), _context("api_handler"))
        assert answer["statusCode"] == 201, answer["body"]
        return json.loads(answer["body"])

    as_packaged("APIHandler", parameters)
    platform = {"principalId": "root", "role": "platform_admin", "account_id": ""}
    account = {"name": "Cabinet Martin", "plan": "premium", "sender_email": "contact@martin.fr"}
    admin = {
        "principalId": "admin",
        "role": "admin",
        "account_id": call("/admin/accounts", platform, account)["id"],
    }
    procedure = call("/procedures", admin, {"name": "Adhésion", "main_role_name": "Adhérent"})
    recipient = {"name": "Léa Martin", "email": "lea@exemple.fr"}
    dossier = call(
        "/dossiers", admin, {"procedure_id": procedure["id"], "recipient": recipient, "notify": True}
    )
    assert dossier["portal_link"].startswith(f"{links_base}/p#token=")
    logo = _api_event("PUT", "/account/logo", admin)
    logo["headers"]["Content-Type"] = "image/png"
    logo.update(body=base64.b64encode(PNG).decode(), isBase64Encoded=True)
    stored = app.app(logo, _context("api_handler"))
    assert stored["statusCode"] == 200, stored["body"]
    assert json.loads(stored["body"])["logo_url"].startswith(f"{links_base}/logos/{admin['account_id']}?v=")

    client = call("/clients", admin, {"name": "Jean Dupont", "email": "jean@dupont.fr"})
    mailing = {
        "name": "Offre habitation",
        "subject": "Du nouveau",
        "body": "Bonjour {{ recipient.name }},\n\nNotre nouvelle offre est là.",
        "audience": {"entity": "clients", "filters": {"ids": [client["id"]]}},
    }
    mailing_id = call("/mailings", admin, mailing)["id"]
    send = app.app(
        _api_event("POST", f"/mailings/{mailing_id}/send", admin, path_parameters={"mailing_id": mailing_id}),
        _context("api_handler"),
    )
    assert send["statusCode"] == 202, send["body"]

    as_packaged("BulkWorker", parameters)
    fanned_out = app.bulk_worker(_sqs_event(queue_name(Queue.BULK, "prod"), aws), _context("bulk_worker"))
    assert fanned_out == {"batchItemFailures": []}

    as_packaged("CommunicationsWorker", parameters)
    sent = app.communications_worker(
        _sqs_event(queue_name(Queue.COMMUNICATIONS, "prod"), aws), _context("communications_worker")
    )
    assert sent == {"batchItemFailures": []}
    [invitation] = [m for m in sent_messages(REGION) if m["to"] == ["lea@exemple.fr"]]
    assert f"{links_base}/p#token=" in invitation["text"]
    [offer] = [m for m in sent_messages(REGION) if m["kind"] == "mailing"]
    assert offer["headers"]["List-Unsubscribe"].startswith(f"<{links_base}/unsubscribe?token=")


def test_the_sender_address_of_the_worker_is_the_ses_identity_the_template_verifies(
    template: dict[str, Any],
) -> None:
    variables = template["Resources"]["CommunicationsWorker"]["Properties"]["Environment"]["Variables"]
    assert variables["RELAIS_FROM_ADDRESS"] == {"Ref": "SenderAddress"}
    assert template["Resources"]["SenderIdentity"]["Properties"]["EmailIdentity"] == {"Ref": "SenderAddress"}


def test_a_packaged_function_reads_its_secret_from_ssm_and_its_environment_only_names_it(
    as_packaged: AsPackaged, aws: Any
) -> None:
    from chalicelib import wiring
    from chalicelib.api.authorizers import Unauthorized, staff_authorizer
    from chalicelib.local.stack import mint_token

    as_packaged("StaffAuthorizer")
    assert "RELAIS_JWT_SECRET" not in os.environ
    assert os.environ["RELAIS_JWT_SECRET_PARAMETER"] == "/relais/prod/jwt-secret"
    signed = mint_token(SECRETS["/relais/prod/jwt-secret"], "admin", "admin", "a-1", timedelta(hours=1))
    allowed = staff_authorizer(
        {"type": "TOKEN", "authorizationToken": f"Bearer {signed}", "methodArn": METHOD_ARN},
        _context("staff_authorizer"),
    )
    assert allowed["context"]["account_id"] == "a-1"
    forged = mint_token(
        "another-secret-of-at-least-32-bytes-long", "admin", "admin", "a-1", timedelta(hours=1)
    )
    with pytest.raises(Unauthorized):
        staff_authorizer(
            {"type": "TOKEN", "authorizationToken": f"Bearer {forged}", "methodArn": METHOD_ARN},
            _context("staff_authorizer"),
        )

    as_packaged("APIHandler")
    assert "RELAIS_LINK_SECRET" not in os.environ
    assert wiring.container().settings.signing_secret() == SECRETS["/relais/prod/link-secret"]


SECRET_VARIABLES = {
    "RELAIS_JWT_SECRET",
    "RELAIS_LINK_SECRET",
    *(f"RELAIS_MAILEVA_{n}" for n in ("CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD")),
}


def test_no_secret_value_is_in_the_packaged_template_nor_in_the_deployed_stages_configuration(
    packaged: Path, template: dict[str, Any]
) -> None:
    for name in ("LinkSecretParameter", "StaffTokenSecretParameter", "MailevaParameter"):
        parameter = template["Parameters"][name]
        assert parameter["Type"] == "String"
        assert parameter["AllowedPattern"].startswith(("^/", "^(/")), "an SSM parameter's name"
    assert not [name for name, spec in template["Parameters"].items() if spec.get("NoEcho")]
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert not SECRET_VARIABLES & set(variables), logical_id
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    deployed = [config, *(stage for name, stage in config["stages"].items() if name != "local")]
    for scope in deployed:
        named = set(scope.get("environment_variables", {}))
        for function in scope.get("lambda_functions", {}).values():
            named |= set(function.get("environment_variables", {}))
        assert not SECRET_VARIABLES & named
    text = packaged.read_text()
    for secret in (*config["stages"]["local"]["environment_variables"].values(), *SECRETS.values()):
        if "secret" in secret:
            assert secret not in text


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


def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def _fires_above(alarm: dict[str, Any], threshold: float) -> bool:
    """Mails the operators as soon as the metric passes the threshold, and only then."""
    return (
        alarm["Threshold"] == threshold
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["EvaluationPeriods"] == 1
        and alarm["TreatMissingData"] == "notBreaching"
        and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    )


def test_a_message_on_any_dead_letter_queue_mails_the_operators(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    dead_letter_queues = {
        k for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue" and "DeadLetter" in k
    }
    assert len(dead_letter_queues) >= 4
    watched = {
        alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in _alarms(template)
        if alarm["Namespace"] == "AWS/SQS"
        and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and _fires_above(alarm, 0)
    }
    assert watched == dead_letter_queues
    subscription = next(v["Properties"] for v in resources.values() if v["Type"] == "AWS::SNS::Subscription")
    assert subscription == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_every_worker_that_fails_mails_the_operators(template: dict[str, Any]) -> None:
    """A worker is a function run by events (a queue, the schedule, S3's events), not by the API."""
    workers = {
        k
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::Serverless::Function" and v["Properties"].get("Events")
    }
    assert {
        "CommunicationsWorker",
        "BulkWorker",
        "SesEvents",
        "UploadEvents",
        "DunningTick",
        "WebhookTick",
        "WebhookWorker",
    } <= workers
    watched = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in _alarms(template)
        if alarm["Namespace"] == "AWS/Lambda" and alarm["MetricName"] == "Errors" and _fires_above(alarm, 0)
    }
    assert watched == workers


def test_an_ses_bounce_rate_above_5_percent_mails_the_operators(template: dict[str, Any]) -> None:
    (bounce,) = [a for a in _alarms(template) if a["Namespace"] == "AWS/SES"]
    assert bounce["MetricName"] == "Reputation.BounceRate"
    assert _fires_above(bounce, 0.05)


def test_the_table_can_be_restored_to_any_second_is_encrypted_and_forgets_expired_items(
    template: dict[str, Any],
) -> None:
    table = template["Resources"]["RelaisTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["TableName"] == {"Fn::Sub": "relais-${Stage}"}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_the_bucket_is_private_encrypted_tls_only_and_drops_abandoned_uploads(
    template: dict[str, Any],
) -> None:
    bucket = template["Resources"]["DocumentsBucket"]["Properties"]
    assert bucket["BucketName"] == {"Fn::Sub": "relais-${Stage}-documents-${AWS::AccountId}"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["abandoned-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["overwritten-uploads"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    (policy,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": "DocumentsBucket"}
    ]
    (tls_only,) = policy["PolicyDocument"]["Statement"]
    assert (tls_only["Effect"], tls_only["Action"]) == ("Deny", "s3:*")
    assert tls_only["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_stack_names_its_stage_and_region_and_each_function_carries_the_stage(
    template: dict[str, Any],
) -> None:
    assert template["Outputs"]["Region"]["Value"] == {"Ref": "AWS::Region"}
    assert template["Outputs"]["Stage"]["Value"] == {"Ref": "Stage"}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            handler = resource["Properties"]["Handler"].rsplit(".", 1)[1]
            function = "api_handler" if handler == "app" else handler
            assert resource["Properties"]["FunctionName"] == {"Fn::Sub": f"relais-${{Stage}}-{function}"}, (
                logical_id
            )


def _preflight(**variables: str) -> subprocess.CompletedProcess[str]:
    """`make deploy`'s first step, as a new user without AWS credentials runs it."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    environment.update(
        {
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return subprocess.run(
        ["make", "--no-print-directory", "deploy-preflight", *(f"{k}={v}" for k, v in variables.items())],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_deploy_stops_at_once_naming_what_is_missing() -> None:
    no_bucket = _preflight(SENDER_ADDRESS="notifications@example.fr", ALARM_EMAIL="ops@example.fr")
    assert no_bucket.returncode != 0
    assert "set DEPLOY_BUCKET" in no_bucket.stderr or "AWS CLI is not installed" in no_bucket.stderr

    no_credentials = _preflight(
        DEPLOY_BUCKET="artifacts", SENDER_ADDRESS="notifications@example.fr", ALARM_EMAIL="ops@example.fr"
    )
    assert no_credentials.returncode != 0
    assert (
        "no usable AWS credentials" in no_credentials.stderr
        or "AWS CLI is not installed" in no_credentials.stderr
    )
