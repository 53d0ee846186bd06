"""What AWS documents each integration needs, decided by the IAM evaluator with the real resource policies.

Each group of cases follows one AWS page that lists what an integration needs; the request is the one
the service makes, and the resource policy is the one that really applies (the topic policy for
``sns:Publish``, the key policy for every KMS call, the bucket policy for every S3 call):

* CloudWatch alarms publishing to the encrypted alarm topic (Amazon SNS developer guide, "Amazon SNS
  access control case examples" and "Encryption at rest": compatibility with AWS services);
* the training state machine's SageMaker ``.sync`` tasks (Step Functions developer guide, "IAM policies
  for Amazon SageMaker AI": create/describe/stop on the job, PassRole to SageMaker only, the
  EventBridge rules of the ``.sync`` pattern);
* the training state machine running its Distributed Maps (Step Functions developer guide, "IAM
  policies for using Distributed Map states": StartExecution, Describe/StopExecution, RedriveExecution,
  the ItemReader's GetObject and the ResultWriter's PutObject, GetObject, ListMultipartUploadParts and
  AbortMultipartUpload, and the key of an SSE-KMS bucket);
* SageMaker jobs writing KMS-encrypted output (SageMaker API reference, ``OutputDataConfig.KmsKeyId``,
  and "How to use SageMaker AI execution roles": the role needs ``kms:Encrypt``) and encrypting their
  volumes (``kms:CreateGrant``, which must be limited to grants for AWS resources).

Policies come from the session's synthesized default app, rendered to literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp, resources_of_type
from tests.iam.evaluator import Case, CaseBatch, Decision, render_policy, role_identity_policies

ALLOWED, IMPLICIT, EXPLICIT = Decision.ALLOWED, Decision.IMPLICITLY_DENIED, Decision.EXPLICITLY_DENIED
OTHER_ACCOUNT = "444455556666"
CLOUDWATCH = "cloudwatch.amazonaws.com"
KEY_ARN = STORAGE_EXPORTS["MmeStorage-KeyArn"]
BUCKET = STORAGE_EXPORTS["MmeStorage-ArtifactBucketName"]
RUN = "run-7"
MAP_RUN = "0f6e3a1c-8b1d-4a6e-9a38-5d1b2c3d4e5f"
TLS = {"aws:SecureTransport": "true"}


@dataclass(frozen=True)
class Policies:
    topic_arn: str
    topic_policy: dict[str, Any]
    alarm_arns: list[str]
    key_policy: dict[str, Any]
    bucket_policy: dict[str, Any]
    state_machine_arn: str
    state_machine_name: str
    state_machine_role: list[dict[str, Any]]
    job_role: list[dict[str, Any]]
    job_role_name: str


def _role_by_description(template: dict[str, Any], description: str) -> str:
    (logical_id,) = [
        k
        for k, r in resources_of_type(template, "AWS::IAM::Role").items()
        if r["Properties"].get("Description") == description
    ]
    return logical_id


def _one(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = resources_of_type(template, resource_type).items()
    return logical_id, resource


@pytest.fixture(scope="module")
def policies(synthesized: SynthesizedApp) -> Policies:
    storage = synthesized.template("storage")
    storage_renderer = TemplateRenderer(storage, {})
    _, key = _one(storage, "AWS::KMS::Key")
    (bucket_policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in resources_of_type(storage, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": _artifact_bucket_id(storage)}
    ]

    monitoring = synthesized.template("monitoring")
    monitoring_renderer = TemplateRenderer(monitoring, STORAGE_EXPORTS)
    topic_id, _ = _one(monitoring, "AWS::SNS::Topic")
    _, topic_policy = _one(monitoring, "AWS::SNS::TopicPolicy")

    training = synthesized.template("training")
    training_renderer = TemplateRenderer(training, STORAGE_EXPORTS)
    machine_id, _ = _one(training, "AWS::StepFunctions::StateMachine")
    job_role = _role_by_description(
        training, "SageMaker execution role of the training pipeline's jobs and models"
    )
    return Policies(
        topic_arn=monitoring_renderer.render({"Ref": topic_id}),
        topic_policy=render_policy(topic_policy["Properties"]["PolicyDocument"], monitoring_renderer),
        alarm_arns=[
            monitoring_renderer.render({"Fn::GetAtt": [alarm_id, "Arn"]})
            for alarm_id in resources_of_type(monitoring, "AWS::CloudWatch::Alarm")
        ],
        key_policy=render_policy(key["Properties"]["KeyPolicy"], storage_renderer),
        bucket_policy=render_policy(bucket_policy, _BucketRenderer(storage)),
        state_machine_arn=training_renderer.render({"Ref": machine_id}),
        state_machine_name=training_renderer.render({"Fn::GetAtt": [machine_id, "Name"]}),
        state_machine_role=role_identity_policies(
            training_renderer, _role_by_description(training, "Runs the training state machine")
        ),
        job_role=role_identity_policies(training_renderer, job_role),
        job_role_name=training_renderer.render({"Fn::GetAtt": [job_role, "Arn"]}).rsplit("/", 1)[1],
    )


def _artifact_bucket_id(storage: dict[str, Any]) -> str:
    (bucket_id,) = [
        k
        for k, r in resources_of_type(storage, "AWS::S3::Bucket").items()
        if "ServerSideEncryptionConfiguration" in r["Properties"].get("BucketEncryption", {})
        and r["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "aws:kms"
    ]
    return bucket_id


class _BucketRenderer(TemplateRenderer):
    """Renders the storage stack's bucket references as the artifact bucket of STORAGE_EXPORTS."""

    def __init__(self, template: dict[str, Any]) -> None:
        super().__init__(template, {})
        self._bucket_id = _artifact_bucket_id(template)

    def render(self, node: Any) -> Any:
        if node == {"Fn::GetAtt": [self._bucket_id, "Arn"]}:
            return f"arn:aws:s3:::{BUCKET}"
        return super().render(node)


def _session(role: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session"


def _object(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


def _cases(p: Policies) -> list[tuple[Case, Decision]]:
    cases: list[tuple[Case, Decision]] = []

    def add(case_id: str, expected: Decision, **kwargs: Any) -> None:
        cases.append((Case(id=case_id, **kwargs), expected))

    # -- CloudWatch alarms -> the alarm topic (topic policy) and its key (key policy) -----------------
    for alarm_arn in p.alarm_arns:
        add(
            f"sns: {alarm_arn.rsplit(':', 1)[1]} publishes",
            ALLOWED,
            identity_policies=[],
            action="sns:Publish",
            resource=p.topic_arn,
            principal=CLOUDWATCH,
            context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm_arn, **TLS},
            resource_policy=p.topic_policy,
        )
    add(
        "sns: another account's alarm",
        IMPLICIT,
        identity_policies=[],
        action="sns:Publish",
        resource=p.topic_arn,
        principal=CLOUDWATCH,
        context={
            "aws:SourceAccount": OTHER_ACCOUNT,
            "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{OTHER_ACCOUNT}:alarm:theirs",
            **TLS,
        },
        resource_policy=p.topic_policy,
    )
    add(
        "sns: an alarm of this account outside the deployment",
        IMPLICIT,
        identity_policies=[],
        action="sns:Publish",
        resource=p.topic_arn,
        principal=CLOUDWATCH,
        context={
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:someone-elses-alarm",
            **TLS,
        },
        resource_policy=p.topic_policy,
    )
    add(
        "sns: an alarm of this deployment without TLS",
        EXPLICIT,
        identity_policies=[],
        action="sns:Publish",
        resource=p.topic_arn,
        principal=CLOUDWATCH,
        context={
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": p.alarm_arns[0],
            "aws:SecureTransport": "false",
        },
        resource_policy=p.topic_policy,
    )
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        add(
            f"sns key: {action} for an alarm of this account",
            ALLOWED,
            identity_policies=[],
            action=action,
            resource=KEY_ARN,
            principal=CLOUDWATCH,
            context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": p.alarm_arns[0]},
            resource_policy=p.key_policy,
        )
    add(
        "sns key: GenerateDataKey for another account's alarm",
        IMPLICIT,
        identity_policies=[],
        action="kms:GenerateDataKey",
        resource=KEY_ARN,
        principal=CLOUDWATCH,
        context={"aws:SourceAccount": OTHER_ACCOUNT},
        resource_policy=p.key_policy,
    )

    # -- The state machine running its Distributed Maps ------------------------------------------
    machine = _session("TrainingPipelineStateMachineRole")
    child_execution = (
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{p.state_machine_name}/{MAP_RUN}:{MAP_RUN}"
    )
    add(
        "map: StartExecution of its child workflows",
        ALLOWED,
        identity_policies=p.state_machine_role,
        action="states:StartExecution",
        resource=p.state_machine_arn,
        principal=machine,
    )
    for action in ("states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"):
        add(
            f"map: {action} of a child execution",
            ALLOWED,
            identity_policies=p.state_machine_role,
            action=action,
            resource=child_execution,
            principal=machine,
        )
    for action in ("states:DescribeExecution", "states:StopExecution"):
        add(  # the page lists DescribeExecution on execution:<name>:*, the executions themselves
            f"map: {action} of an execution of the state machine",
            ALLOWED,
            identity_policies=p.state_machine_role,
            action=action,
            resource=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{p.state_machine_name}:{RUN}",
            principal=machine,
        )
    add(
        "map: DescribeExecution of another state machine's execution",
        IMPLICIT,
        identity_policies=p.state_machine_role,
        action="states:DescribeExecution",
        resource=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:SomeoneElsesMachine:{MAP_RUN}",
        principal=machine,
    )
    add(
        "map: ItemReader GetObject of the run's plan",
        ALLOWED,
        identity_policies=p.state_machine_role,
        action="s3:GetObject",
        resource=_object(f"pipeline-runs/{RUN}/plan.json"),
        principal=machine,
        context=TLS,
        resource_policy=p.bucket_policy,
        resource_account=ACCOUNT,
    )
    for results in ("results", "generation"):
        for action in (
            "s3:PutObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        ):
            add(
                f"map: ResultWriter {action} under {results}/",
                ALLOWED,
                identity_policies=p.state_machine_role,
                action=action,
                resource=_object(f"pipeline-runs/{RUN}/{results}/{MAP_RUN}/manifest.json"),
                principal=machine,
                context=TLS,
                resource_policy=p.bucket_policy,
                resource_account=ACCOUNT,
            )
    add(
        "map: ResultWriter GetObject outside the run's result prefixes",
        IMPLICIT,
        identity_policies=p.state_machine_role,
        action="s3:GetObject",
        resource=_object("models/NewYork_NY/v1.tar.gz"),
        principal=machine,
        context=TLS,
        resource_policy=p.bucket_policy,
        resource_account=ACCOUNT,
    )
    add(
        "map: ResultWriter PutObject without TLS",
        EXPLICIT,
        identity_policies=p.state_machine_role,
        action="s3:PutObject",
        resource=_object(f"pipeline-runs/{RUN}/results/{MAP_RUN}/manifest.json"),
        principal=machine,
        context={"aws:SecureTransport": "false"},
        resource_policy=p.bucket_policy,
        resource_account=ACCOUNT,
    )
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        add(
            f"map: {action} on the bucket's key",
            ALLOWED,
            identity_policies=p.state_machine_role,
            action=action,
            resource=KEY_ARN,
            principal=machine,
            resource_policy=p.key_policy,
        )

    # -- The state machine's SageMaker .sync tasks ("IAM policies for Amazon SageMaker AI", the
    # policies Step Functions generates for CreateTrainingJob/CreateTransformJob/CreateModel).
    # SageMaker writes resource names into ARNs in lower case.
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    jobs = {
        "training-job": [f"pp-{RUN}", f"ll-newyork-ny-{RUN}"],
        "transform-job": [f"tt-newyork-ny-{RUN}", f"tv-newyork-ny-{RUN}"],
    }
    verbs = {"training-job": "TrainingJob", "transform-job": "TransformJob"}
    for kind, names in jobs.items():
        for name in names:
            for verb in ("Create", "Describe", "Stop"):
                add(
                    f"sfn: {verb}{verbs[kind]} {name}",
                    ALLOWED,
                    identity_policies=p.state_machine_role,
                    action=f"sagemaker:{verb}{verbs[kind]}",
                    resource=f"{sagemaker}:{kind}/{name}",
                    principal=machine,
                )
            for action in ("sagemaker:AddTags",):
                add(
                    f"sfn: {action} on {name}",
                    ALLOWED,
                    identity_policies=p.state_machine_role,
                    action=action,
                    resource=f"{sagemaker}:{kind}/{name}",
                    principal=machine,
                )
    add(
        "sfn: CreateTrainingJob outside the job-name prefixes",
        IMPLICIT,
        identity_policies=p.state_machine_role,
        action="sagemaker:CreateTrainingJob",
        resource=f"{sagemaker}:training-job/someone-elses-job",
        principal=machine,
    )
    for resource in (f"{sagemaker}:model/pp-{RUN}", f"{sagemaker}:training-job/ll-newyork-ny-{RUN}"):
        add(  # the page grants ListTags on "*": AWS does not say on which resources it is called
            f"sfn: ListTags on {resource.rsplit(':', 1)[1]}",
            ALLOWED,
            identity_policies=p.state_machine_role,
            action="sagemaker:ListTags",
            resource=resource,
            principal=machine,
        )
    add(
        f"sfn: CreateModel pp-{RUN}",
        ALLOWED,
        identity_policies=p.state_machine_role,
        action="sagemaker:CreateModel",
        resource=f"{sagemaker}:model/pp-{RUN}",
        principal=machine,
    )
    add(
        "sfn: PassRole of the job role to SageMaker",
        ALLOWED,
        identity_policies=p.state_machine_role,
        action="iam:PassRole",
        resource=f"arn:aws:iam::{ACCOUNT}:role/{p.job_role_name}",
        principal=machine,
        context={"iam:PassedToService": "sagemaker.amazonaws.com"},
    )
    add(
        "sfn: PassRole of the job role to another service",
        IMPLICIT,
        identity_policies=p.state_machine_role,
        action="iam:PassRole",
        resource=f"arn:aws:iam::{ACCOUNT}:role/{p.job_role_name}",
        principal=machine,
        context={"iam:PassedToService": "ec2.amazonaws.com"},
    )
    for kind in ("Training", "Transform"):
        for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
            add(
                f"sfn: {action} for the .sync {kind} job events",
                ALLOWED,
                identity_policies=p.state_machine_role,
                action=action,
                resource=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMaker{kind}JobsRule",
                principal=machine,
            )

    # -- SageMaker jobs: KMS-encrypted output and volumes ----------------------------------------
    job = _session("TrainingPipelineJobRole")
    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"):
        add(
            f"job: {action} on the project key",
            ALLOWED,
            identity_policies=p.job_role,
            action=action,
            resource=KEY_ARN,
            principal=job,
            resource_policy=p.key_policy,
        )
    add(
        "job: CreateGrant for an AWS resource (the job's volume)",
        ALLOWED,
        identity_policies=p.job_role,
        action="kms:CreateGrant",
        resource=KEY_ARN,
        principal=job,
        context={"kms:GrantIsForAWSResource": "true"},
        resource_policy=p.key_policy,
    )
    add(
        "job: CreateGrant from code running in the job",
        IMPLICIT,
        identity_policies=p.job_role,
        action="kms:CreateGrant",
        resource=KEY_ARN,
        principal=job,
        context={"kms:GrantIsForAWSResource": "false"},
        resource_policy=p.key_policy,
    )
    add(
        "job: CreateGrant without the AWS-resource flag",
        IMPLICIT,
        identity_policies=p.job_role,
        action="kms:CreateGrant",
        resource=KEY_ARN,
        principal=job,
        resource_policy=p.key_policy,
    )
    return cases


@pytest.fixture(scope="module")
def decisions(policies: Policies) -> tuple[CaseBatch, dict[str, Decision]]:
    cases = _cases(policies)
    return CaseBatch(case for case, _ in cases), {case.id: expected for case, expected in cases}


def test_every_alarm_of_the_deployment_is_checked(policies: Policies) -> None:
    assert len(policies.alarm_arns) == 9


def test_decisions(decisions: tuple[CaseBatch, dict[str, Decision]]) -> None:
    batch, expected = decisions
    wrong = {
        case_id: f"expected {want}, got {batch[case_id].decision}"
        for case_id, want in expected.items()
        if batch[case_id].decision != want
    }
    assert not wrong, (
        "\n".join(f"{k}: {v}" for k, v in wrong.items())
        + "\n\n"
        + "\n".join(batch[k].describe() for k in wrong)
    )


def test_the_tls_deny_decides_plain_text_publishes(decisions: tuple[CaseBatch, dict[str, Decision]]) -> None:
    batch, _ = decisions
    (decided_by,) = batch["sns: an alarm of this deployment without TLS"].decided_by
    assert decided_by.endswith("#AllowPublishThroughSSLOnly")  # the resource policy's TLS deny
