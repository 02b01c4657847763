"""Create, on the embedded AWS, the resources that `infra/resources.yaml` declares for the deployed stack.

Only the data-plane resources exist locally (table, queues, bucket, SES identity and configuration set);
the API Gateway responses and function overrides of the template are for CloudFormation alone, and their
local counterparts live in `chalicelib/local/gateway.py` and `chalicelib/local/pumps.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "resources.yaml"
DEPLOYED_ONLY = {
    "AWS::ApiGateway::GatewayResponse",
    "AWS::Serverless::Function",
    # SES → EventBridge → SQS: the local stage plays SES's events itself (chalicelib/local/ses_simulator.py).
    "AWS::SES::ConfigurationSetEventDestination",
    "AWS::Events::Rule",
    "AWS::SQS::QueuePolicy",
    "AWS::IAM::Policy",
    # Its only statement refuses what is not TLS, and the local stack speaks plain HTTP to moto.
    "AWS::S3::BucketPolicy",
    # Alarms watch the deployed stage; the local stage has no CloudWatch metrics to watch.
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms (!Ref, !GetAtt, !Sub) as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        return dict(yaml.load(handle, Loader=_CfnLoader))


@dataclass
class _Context:
    account_id: str
    region: str
    parameters: dict[str, str]
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.parameters.get(arg) or self.attributes[arg]["Ref"]
            if key == "Fn::GetAtt":
                return self.attributes[arg[0]][arg[1]]
            if key == "Fn::Sub" and isinstance(arg, list):
                text, variables = arg
                local = {name: str(self.resolve(v)) for name, v in variables.items()}
                return re.sub(
                    r"\$\{([^}]+)\}", lambda m: local.get(m.group(1)) or self._substitute(m.group(1)), text
                )
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._substitute(m.group(1)), arg)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _substitute(self, name: str) -> str:
        pseudo = {"AWS::AccountId": self.account_id, "AWS::Region": self.region, "AWS::Partition": "aws"}
        if name in pseudo:
            return pseudo[name]
        return str(self.resolve({"Ref": name}))


def _table(clients: Callable[[str], Any], props: dict[str, Any], ctx: _Context) -> dict[str, str]:
    dynamodb = clients("dynamodb")
    name = props["TableName"]
    dynamodb.create_table(
        TableName=name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
    )
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return {"Ref": name, "Arn": f"arn:aws:dynamodb:{ctx.region}:{ctx.account_id}:table/{name}"}


def _queue(clients: Callable[[str], Any], props: dict[str, Any], ctx: _Context) -> dict[str, str]:
    sqs = clients("sqs")
    attributes = {
        key: json.dumps(value) if isinstance(value, dict) else str(value)
        for key, value in props.items()
        if key != "QueueName"
    }
    url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": props["QueueName"]}


def _bucket(clients: Callable[[str], Any], props: dict[str, Any], ctx: _Context) -> dict[str, str]:
    name = props["BucketName"]
    s3 = clients("s3")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": ctx.region})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}


def _email_identity(clients: Callable[[str], Any], props: dict[str, Any], ctx: _Context) -> dict[str, str]:
    """Locally the sender identity is verified at once (in AWS, by the link SES sends)."""
    identity = props["EmailIdentity"]
    clients("ses").verify_email_identity(EmailAddress=identity)
    return {"Ref": identity}


def _configuration_set(clients: Callable[[str], Any], props: dict[str, Any], ctx: _Context) -> dict[str, str]:
    clients("ses").create_configuration_set(ConfigurationSet={"Name": props["Name"]})
    return {"Ref": props["Name"]}


_CREATORS: dict[str, Callable[[Callable[[str], Any], dict[str, Any], _Context], dict[str, str]]] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::SQS::Queue": _queue,
    "AWS::S3::Bucket": _bucket,
    "AWS::SES::EmailIdentity": _email_identity,
    "AWS::SES::ConfigurationSet": _configuration_set,
}


def _creation_order(resources: dict[str, Any]) -> list[str]:
    """Resources referenced by others first (a DLQ before the queue that redrives to it)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in re.findall(r"'(?:Ref|Fn::GetAtt)': \[?'(\w+)'", str(resources[name])):
            if dependency in resources:
                visit(dependency)
        ordered.append(name)

    for name in resources:
        visit(name)
    return ordered


LOCAL_STAGE = "local"
"""The local stack's resources are the template's for this stage (`relais-local-…`)."""


def provision(
    clients: Callable[[str], Any],
    account_id: str,
    region: str,
    template: dict[str, Any] | None = None,
    stage: str = LOCAL_STAGE,
) -> dict[str, dict[str, str]]:
    """Create every local resource of the template for a stage (another one beside the local stage's, to
    run the packaged functions of a deployed stage); returns their Ref/Arn values by logical id."""
    template = template or load_template()
    parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    parameters["Stage"] = stage
    ctx = _Context(account_id=account_id, region=region, parameters=parameters)
    resources = template["Resources"]
    for logical_id in _creation_order(resources):
        resource = resources[logical_id]
        if resource["Type"] in DEPLOYED_ONLY:
            continue
        creator = _CREATORS.get(resource["Type"])
        if creator is None:
            raise ValueError(f"{logical_id}: {resource['Type']} has no local counterpart")
        ctx.attributes[logical_id] = creator(clients, ctx.resolve(resource.get("Properties", {})), ctx)
    return ctx.attributes


def render_policy(
    document: dict[str, Any],
    stage: str,
    account_id: str,
    region: str,
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A policy of policies/ as CloudFormation resolves it for one stack: its `Fn::Sub` resources name the
    stage's own table, queues, bucket, log group and SSM parameters, in that account and region. The SSM
    names are README's (`/relais/<stage>/link-secret`…) unless `parameters` gives others."""
    names = {
        "LinkSecretParameter": f"/relais/{stage}/link-secret",
        "StaffTokenSecretParameter": f"/relais/{stage}/jwt-secret",
        "MailevaParameter": f"/relais/{stage}/maileva",
    }
    ctx = _Context(
        account_id=account_id, region=region, parameters={**names, **(parameters or {}), "Stage": stage}
    )
    return dict(ctx.resolve(document))
