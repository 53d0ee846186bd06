"""Render CloudFormation intrinsics in a synthesized template to realistic literal values.

Used to turn a state machine's ``DefinitionString`` (a ``Fn::Join`` of strings and intrinsics)
into the plain JSON Step Functions would receive, so that real validators (npm ``asl-validator``)
and executors (moto) can run it. Deterministic: every logical ID maps to a fixed, well-formed ARN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ACCOUNT = "111122223333"
REGION = "us-east-1"
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "MmeTraining",
}


class TemplateRenderer:
    """Resolve intrinsics of one template; ``exports`` maps import names to literal values."""

    def __init__(self, template: Mapping[str, Any], exports: Mapping[str, str]) -> None:
        self.template = template
        self.exports = exports

    def _resource_arn(self, logical_id: str) -> str:
        resource_type = self.template["Resources"][logical_id]["Type"]
        name = logical_id[:40]
        return {
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            "AWS::StepFunctions::StateMachine": (
                f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            ),
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::CloudWatch::Alarm": f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
            # Ref of an endpoint is its ARN; SageMaker writes the name in lower case there.
            "AWS::SageMaker::Endpoint": (
                f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name.lower()}"
            ),
        }[resource_type]

    def render(self, node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return [self.render(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(str(self.render(item)) for item in items)
        if "Ref" in node:
            ref = node["Ref"]
            if ref in PSEUDO:
                return PSEUDO[ref]
            return self._resource_arn(ref) if ref in self.template["Resources"] else ref
        if "Fn::GetAtt" in node:
            logical_id, attribute = node["Fn::GetAtt"]
            if attribute == "Name" and self.template["Resources"][logical_id]["Type"] == (
                "AWS::StepFunctions::StateMachine"
            ):
                return logical_id[:40]  # the name inside _resource_arn's state machine ARN
            if attribute != "Arn":
                raise ValueError(f"cannot render GetAtt {logical_id}.{attribute}")
            return self._resource_arn(logical_id)
        if "Fn::ImportValue" in node:
            return self.exports[self.render(node["Fn::ImportValue"])]
        if "Fn::Sub" in node:
            return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO[m.group(1)], node["Fn::Sub"])
        if "Fn::GetStackOutput" in node:  # a CDK cross-stack reference: any stable literal will do
            reference = node["Fn::GetStackOutput"]
            return f"{reference['StackName']}.{reference['OutputName']}"
        if "Fn::Split" in node:
            delimiter, source = node["Fn::Split"]
            return str(self.render(source)).split(delimiter)
        if "Fn::Select" in node:
            index, items = node["Fn::Select"]
            return self.render(items)[int(index)]
        if "Fn::FindInMap" in node:
            mapping, first, second = (self.render(part) for part in node["Fn::FindInMap"])
            return self.template["Mappings"][mapping][first][second]
        return {key: self.render(value) for key, value in node.items()}
