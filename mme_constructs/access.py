"""Least-privilege IAM: explicit statements on bucket prefixes and the key, wildcards justified.

Every role of the project gets one customer-managed policy built with ``ScopedPolicy``. Its
``allow`` refuses a wildcard resource without a reason and records that reason as the cdk-nag
acknowledgment of exactly that resource (``AwsSolutions-IAM5[Resource::...]``), beside the policy.
Grants go to object-key prefixes (never ``bucket/*``) and to the key ARN; the key's policy trusts
the account (CDK's default), so identity policies suffice and no stack edits another's key policy.
CDK constructs that would add their own, broader grants receive ``role.without_policy_updates()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Acknowledgment, Aws, Fn, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

KMS_READ: tuple[str, ...] = ("kms:Decrypt",)
KMS_WRITE: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey")
S3_READ: tuple[str, ...] = ("s3:GetObject",)
S3_WRITE: tuple[str, ...] = ("s3:PutObject", "s3:AbortMultipartUpload")
ECR_PULL_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
)
XRAY_ACTIONS: tuple[str, ...] = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
XRAY_REASON = "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions."


def service_principal(service: str) -> iam.IPrincipal:
    """An AWS service principal that may act only for this account (no confused deputy)."""
    return iam.ServicePrincipal(service).with_conditions(
        {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
    )


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on the construct it concerns, with its reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_wildcard_resources(
    policy: IConstruct, resources: Sequence[str], why_wildcard: str | None
) -> None:
    """Acknowledge cdk-nag's IAM5 finding for each resource of ``policy`` that contains ``*``, with
    ``why_wildcard`` as the reason; a wildcard resource without a reason is refused."""
    stack = Stack.of(policy)
    for resource in resources:
        flat = flatten_reference(stack.resolve(resource))
        if "*" not in flat:
            continue
        if not why_wildcard:
            raise ValueError(f"wildcard resource {flat} needs a reason (why_wildcard)")
        acknowledge(policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{flat}]", why_wildcard)


def flatten_reference(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag spells it in a finding id.

    Mirrors cdk-nag 3's ``flattenCfnReference``: strings as is (``${X}`` becomes ``<X>``), Joins
    concatenated, ``Ref``/``GetAtt`` as ``<Name>``/``<Resource.Attribute>``, anything else as JSON.
    """
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, Mapping):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


class ScopedPolicy(Construct):
    """A customer-managed policy for one role whose every wildcard carries its reason."""

    def __init__(self, scope: Construct, construct_id: str, *, role: iam.IRole, description: str) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[role], description=description)

    def allow(
        self,
        actions: Sequence[str],
        resources: Sequence[str],
        *,
        why_wildcard: str | None = None,
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        """Allow ``actions`` on ``resources``; a resource containing ``*`` needs ``why_wildcard``."""
        if any("*" in action for action in actions):
            raise ValueError(f"list actions explicitly instead of {list(actions)}")
        self.policy.add_statements(
            iam.PolicyStatement(
                actions=list(actions), resources=list(resources), conditions=dict(conditions or {}) or None
            )
        )
        acknowledge_wildcard_resources(self.policy, resources, why_wildcard)

    def allow_objects(
        self, bucket: s3.IBucket, actions: Sequence[str], key_patterns: Sequence[str], *, why_wildcard: str
    ) -> None:
        """``actions`` on the bucket's objects under ``key_patterns`` (e.g. ``raw-data/*``)."""
        self.allow(
            actions,
            [bucket.arn_for_objects(pattern) for pattern in key_patterns],
            why_wildcard=why_wildcard,
        )

    def allow_key(self, key: kms.IKey, actions: Sequence[str] = KMS_WRITE) -> None:
        """Use of the project key for the objects, volumes and logs it encrypts."""
        self.allow(actions, [key.key_arn])

    def allow_key_grants_for_aws_resources(self, key: kms.IKey) -> None:
        """``kms:CreateGrant`` only for grants an AWS service makes for a resource it attaches (a job's
        encrypted volume), never for grants code running under the role could hand to anyone else
        (AWS KMS developer guide, condition key ``kms:GrantIsForAWSResource``)."""
        self.allow(
            ["kms:CreateGrant"], [key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}
        )

    def allow_image_pull(self, image_uris: Sequence[str]) -> None:
        """Pull the given container images (SageMaker developer guide, "How to use SageMaker AI
        execution roles": the CreateTrainingJob, CreateTransformJob and CreateModel roles list
        ``ecr:GetAuthorizationToken`` and the three pull actions on the image's repository)."""
        self.allow(ECR_PULL_ACTIONS, [repository_arn(uri) for uri in image_uris])
        self.allow(
            ["ecr:GetAuthorizationToken"],
            ["*"],
            why_wildcard="ecr:GetAuthorizationToken has no resource-level permissions.",
        )

    def allow_xray(self) -> None:
        self.allow(XRAY_ACTIONS, ["*"], why_wildcard=XRAY_REASON)

    def allow_sagemaker_metrics(self) -> None:
        """What SageMaker jobs and endpoints need to publish their metrics from the container."""
        self.allow(
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            why_wildcard="PutMetricData has no resource-level permissions; the namespace condition "
            "limits it to SageMaker's own metric namespaces.",
        )


def repository_arn(image_uri: str) -> str:
    """``<account>.dkr.ecr.<region>.<domain>/<repository>:<tag>`` -> the repository's ARN.

    Works on literal URIs and on ``Fn::FindInMap`` tokens alike (CloudFormation splits the latter).
    """
    account = Fn.select(0, Fn.split(".", image_uri))
    repository = Fn.select(0, Fn.split(":", Fn.select(1, Fn.split("/", image_uri))))
    return f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{account}:repository/{repository}"
