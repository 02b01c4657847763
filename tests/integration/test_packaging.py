"""The deployed shape: `chalice package --merge-template infra/resources.yaml`, checked with cfn-lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
