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
  volumes (``kms:CreateGrant``, which must be limited to grants for AWS resources), and the run's
  preprocessor model loading its generation's artifact;
* the training Lambdas' generation bookkeeping, as their docstrings list it (each S3 call the
  handler makes, decided with the bucket policy): the plan reads which generation is served and
  newest, the promotion writes a generation's immutable preprocessor, the summary completes a
  generation; none of them may write what the endpoint stack owns (``preprocessor/serving.json``).

Policies come from the session's synthesized default app, rendered to literals. The training jobs
are named with the step of that app's algorithm; each algorithm's app is also checked to create its
own algorithm's jobs and no other's (:func:`test_each_algorithm_creates_only_its_own_training_jobs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mme_constructs.algorithms import ALGORITHMS
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
    warm_pool_keep_alive_seconds: int
    training_step: str
    """The job-name step of the app's algorithm: its locations' jobs are ``<step>-<location>-<run>``."""
    handlers: dict[str, list[dict[str, Any]]]
    """The identity policies of the plan_run, promote_artifact and summarize_run roles."""


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
        warm_pool_keep_alive_seconds=synthesized.config.training.warm_pool_keep_alive_seconds,
        training_step=synthesized.config.training.algorithm_spec.job_step,
        handlers={
            name: role_identity_policies(
                training_renderer, _role_by_description(training, f"Runs the {name} Lambda handler")
            )
            for name in ("plan_run", "check_transform", "promote_artifact", "summarize_run")
        },
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
    machine = _session("TrainingPipelineStateMachineRole")
    job = _session("TrainingPipelineJobRole")
    identity = {CLOUDWATCH: [], machine: p.state_machine_role, job: p.job_role}
    handler = {name: _session(f"TrainingPipeline-{name}") for name in p.handlers}
    identity.update({handler[name]: policies for name, policies in p.handlers.items()})

    def add(
        case_id: str,
        expected: Decision,
        principal: str,
        action: str,
        resource: str,
        context: dict[str, str] | None = None,
    ) -> None:
        """One request; the resource policy that applies follows from the resource: the key policy
        for the key, the bucket policy for the bucket's objects, the topic policy for the topic."""
        resource_policy, resource_account = None, None
        if resource == KEY_ARN:
            resource_policy = p.key_policy
        elif resource == p.topic_arn:
            resource_policy = p.topic_policy
        elif resource.startswith("arn:aws:s3:::"):
            resource_policy, resource_account = p.bucket_policy, ACCOUNT  # S3 ARNs name no account
        case = Case(
            id=case_id,
            identity_policies=identity[principal],
            action=action,
            resource=resource,
            principal=principal,
            context=context or {},
            resource_policy=resource_policy,
            resource_account=resource_account,
        )
        cases.append((case, expected))

    # -- CloudWatch alarms -> the alarm topic (topic policy) and its key (key policy) -----------------
    def alarm(account: str, arn: str) -> dict[str, str]:
        return {"aws:SourceAccount": account, "aws:SourceArn": arn}

    publish = "sns:Publish"
    for alarm_arn in p.alarm_arns:
        name = alarm_arn.rsplit(":", 1)[1]
        add(
            f"sns: {name} publishes",
            ALLOWED,
            CLOUDWATCH,
            publish,
            p.topic_arn,
            {**alarm(ACCOUNT, alarm_arn), **TLS},
        )
    theirs = alarm(OTHER_ACCOUNT, f"arn:aws:cloudwatch:{REGION}:{OTHER_ACCOUNT}:alarm:theirs")
    add("sns: another account's alarm", IMPLICIT, CLOUDWATCH, publish, p.topic_arn, {**theirs, **TLS})
    elsewhere = alarm(ACCOUNT, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:someone-elses-alarm")
    add("sns: an alarm of this account outside the deployment", IMPLICIT, CLOUDWATCH, publish, p.topic_arn,
        {**elsewhere, **TLS})  # fmt: skip
    add("sns: an alarm of this deployment without TLS", EXPLICIT, CLOUDWATCH, publish, p.topic_arn,
        {**alarm(ACCOUNT, p.alarm_arns[0]), "aws:SecureTransport": "false"})  # fmt: skip
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        add(f"sns key: {action} for an alarm of this account", ALLOWED, CLOUDWATCH, action, KEY_ARN,
            alarm(ACCOUNT, p.alarm_arns[0]))  # fmt: skip
    add("sns key: GenerateDataKey for another account's alarm", IMPLICIT, CLOUDWATCH, "kms:GenerateDataKey",
        KEY_ARN, {"aws:SourceAccount": OTHER_ACCOUNT})  # fmt: skip

    # -- The state machine running its Distributed Maps ------------------------------------------
    executions = f"arn:aws:states:{REGION}:{ACCOUNT}:execution"
    add("map: StartExecution of its child workflows", ALLOWED, machine, "states:StartExecution",
        p.state_machine_arn)  # fmt: skip
    for action in ("states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"):
        add(f"map: {action} of a child execution", ALLOWED, machine, action,
            f"{executions}:{p.state_machine_name}/{MAP_RUN}:{MAP_RUN}")  # fmt: skip
    for action in ("states:DescribeExecution", "states:StopExecution"):
        # the page lists DescribeExecution on execution:<name>:*, the executions themselves
        add(f"map: {action} of an execution of the state machine", ALLOWED, machine, action,
            f"{executions}:{p.state_machine_name}:{RUN}")  # fmt: skip
    add("map: DescribeExecution of another state machine's execution", IMPLICIT, machine,
        "states:DescribeExecution", f"{executions}:SomeoneElsesMachine:{MAP_RUN}")  # fmt: skip
    add("map: ItemReader GetObject of the run's plan", ALLOWED, machine, "s3:GetObject",
        _object(f"pipeline-runs/{RUN}/plan.json"), TLS)  # fmt: skip
    manifest = _object(f"pipeline-runs/{RUN}/results/{MAP_RUN}/manifest.json")
    for results in ("results", "generation"):
        for action in (
            "s3:PutObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        ):
            add(f"map: ResultWriter {action} under {results}/", ALLOWED, machine, action,
                _object(f"pipeline-runs/{RUN}/{results}/{MAP_RUN}/manifest.json"), TLS)  # fmt: skip
    add("map: ResultWriter GetObject outside the run's result prefixes", IMPLICIT, machine, "s3:GetObject",
        _object("models/NewYork_NY/v1.tar.gz"), TLS)  # fmt: skip
    add("map: ResultWriter PutObject without TLS", EXPLICIT, machine, "s3:PutObject", manifest,
        {"aws:SecureTransport": "false"})  # fmt: skip
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        add(f"map: {action} on the bucket's key", ALLOWED, machine, action, KEY_ARN)

    # -- The state machine's SageMaker .sync tasks ("IAM policies for Amazon SageMaker AI", the
    # policies Step Functions generates for CreateTrainingJob/CreateTransformJob/CreateModel).
    # SageMaker writes resource names into ARNs in lower case.
    sagemaker = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    location_job = f"{p.training_step}-newyork-ny-{RUN}"
    jobs = {
        "training-job": [f"pp-{RUN}", location_job],
        "transform-job": [f"tt-{RUN}", f"tv-{RUN}"],
    }
    verbs = {"training-job": "TrainingJob", "transform-job": "TransformJob"}
    for kind, names in jobs.items():
        for name in names:
            for verb in ("Create", "Describe", "Stop"):
                add(f"sfn: {verb}{verbs[kind]} {name}", ALLOWED, machine, f"sagemaker:{verb}{verbs[kind]}",
                    f"{sagemaker}:{kind}/{name}")  # fmt: skip
            add(f"sfn: sagemaker:AddTags on {name}", ALLOWED, machine, "sagemaker:AddTags",
                f"{sagemaker}:{kind}/{name}")  # fmt: skip
    # The warm pool's keep-alive, bounded with AWS's condition key sagemaker:KeepAlivePeriod.
    keep_alive = p.warm_pool_keep_alive_seconds
    for seconds, decision in ((keep_alive, ALLOWED), (keep_alive + 1, IMPLICIT), (3600, IMPLICIT)):
        add(f"sfn: CreateTrainingJob keeping its instance {seconds} s", decision, machine,
            "sagemaker:CreateTrainingJob", f"{sagemaker}:training-job/{location_job}",
            {"sagemaker:KeepAlivePeriod": str(seconds)})  # fmt: skip
    add("sfn: CreateTrainingJob outside the job-name prefixes", IMPLICIT, machine,
        "sagemaker:CreateTrainingJob", f"{sagemaker}:training-job/someone-elses-job")  # fmt: skip
    for resource in (f"{sagemaker}:model/pp-{RUN}", f"{sagemaker}:training-job/{location_job}"):
        # the page grants ListTags on "*": AWS does not say on which resources it is called
        add(
            f"sfn: ListTags on {resource.rsplit(':', 1)[1]}", ALLOWED, machine, "sagemaker:ListTags", resource
        )
    add(
        f"sfn: CreateModel pp-{RUN}", ALLOWED, machine, "sagemaker:CreateModel", f"{sagemaker}:model/pp-{RUN}"
    )
    job_role = f"arn:aws:iam::{ACCOUNT}:role/{p.job_role_name}"
    add("sfn: PassRole of the job role to SageMaker", ALLOWED, machine, "iam:PassRole", job_role,
        {"iam:PassedToService": "sagemaker.amazonaws.com"})  # fmt: skip
    add("sfn: PassRole of the job role to another service", IMPLICIT, machine, "iam:PassRole", job_role,
        {"iam:PassedToService": "ec2.amazonaws.com"})  # fmt: skip
    for kind in ("Training", "Transform"):
        rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMaker{kind}JobsRule"
        for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
            add(f"sfn: {action} for the .sync {kind} job events", ALLOWED, machine, action, rule)

    # -- SageMaker jobs: KMS-encrypted output and volumes ----------------------------------------
    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"):
        add(f"job: {action} on the project key", ALLOWED, job, action, KEY_ARN)
    add("job: CreateGrant for an AWS resource (the job's volume)", ALLOWED, job, "kms:CreateGrant", KEY_ARN,
        {"kms:GrantIsForAWSResource": "true"})  # fmt: skip
    add("job: CreateGrant from code running in the job", IMPLICIT, job, "kms:CreateGrant", KEY_ARN,
        {"kms:GrantIsForAWSResource": "false"})  # fmt: skip
    add("job: CreateGrant without the AWS-resource flag", IMPLICIT, job, "kms:CreateGrant", KEY_ARN)
    add("job: the run's preprocessor model loads its generation's artifact", ALLOWED, job, "s3:GetObject",
        _object(f"preprocessor/pp-{RUN}/model.tar.gz"), TLS)  # fmt: skip
    add("job: reads which generation is served", IMPLICIT, job, "s3:GetObject",
        _object("preprocessor/serving.json"), TLS)  # fmt: skip

    # -- The training Lambdas' generation bookkeeping ---------------------------------------------
    plan, promote, summarize = handler["plan_run"], handler["promote_artifact"], handler["summarize_run"]
    check = handler["check_transform"]
    output = f"preprocessed-data/{RUN}/train/NewYork_NY.csv.out"
    add("check: reads a location's transform output", ALLOWED, check, "s3:GetObject", _object(output), TLS)
    add(
        "check: reads the raw data",
        IMPLICIT,
        check,
        "s3:GetObject",
        _object(f"raw-data/{RUN}/train/A.csv"),
        TLS,
    )
    add("check: writes the transform output", IMPLICIT, check, "s3:PutObject", _object(output), TLS)
    add("check: decrypts through S3", ALLOWED, check, "kms:Decrypt", KEY_ARN)
    for key in (
        "preprocessor/serving.json",
        "preprocessor/newest.json",
        f"preprocessor/pp-{RUN}/complete.json",
    ):
        # complete.json: which algorithm trained the generation a run would reuse
        add(f"plan: reads {key}", ALLOWED, plan, "s3:GetObject", _object(key), TLS)
        add(f"plan: writes {key}", IMPLICIT, plan, "s3:PutObject", _object(key), TLS)
    add("plan: reads a generation's preprocessor", IMPLICIT, plan, "s3:GetObject",
        _object(f"preprocessor/pp-{RUN}/model.tar.gz"), TLS)  # fmt: skip
    add("plan: lists a generation's pointers (a refit)", ALLOWED, plan, "s3:ListBucket",
        f"arn:aws:s3:::{BUCKET}", {**TLS, "s3:prefix": f"model-pointers/pp-{RUN}/"})  # fmt: skip
    add(
        "plan: reads a pointer",
        IMPLICIT,
        plan,
        "s3:GetObject",
        _object(f"model-pointers/pp-{RUN}/A.json"),
        TLS,
    )
    artifact = f"preprocessor/pp-{RUN}/model.tar.gz"
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        add(
            f"promote: {action} on a generation's preprocessor",
            ALLOWED,
            promote,
            action,
            _object(artifact),
            TLS,
        )
    add("promote: a generation's complete.json", IMPLICIT, promote, "s3:PutObject",
        _object(f"preprocessor/pp-{RUN}/complete.json"), TLS)  # fmt: skip
    add("promote: delete a generation's preprocessor", IMPLICIT, promote, "s3:DeleteObject",
        _object(artifact), TLS)  # fmt: skip
    add("promote: a model version in a generation", ALLOWED, promote, "s3:PutObject",
        _object(f"models/pp-{RUN}/A/A-{p.training_step}-A-{RUN}.tar.gz"), TLS)  # fmt: skip
    add("promote: a pointer in a generation", ALLOWED, promote, "s3:PutObject",
        _object(f"model-pointers/pp-{RUN}/A.json"), TLS)  # fmt: skip
    for action in ("s3:GetObject", "s3:PutObject"):
        add(f"summary: {action} of complete.json", ALLOWED, summarize, action,
            _object(f"preprocessor/pp-{RUN}/complete.json"), TLS)  # fmt: skip
    add("summary: writes newest.json", ALLOWED, summarize, "s3:PutObject",
        _object("preprocessor/newest.json"), TLS)  # fmt: skip
    add("summary: a 404 for a missing complete.json (ListBucket)", ALLOWED, summarize, "s3:ListBucket",
        f"arn:aws:s3:::{BUCKET}", TLS)  # fmt: skip
    add("summary: writes a generation's preprocessor", IMPLICIT, summarize, "s3:PutObject", _object(artifact),
        TLS)  # fmt: skip
    add("summary: writes newest.json without TLS", EXPLICIT, summarize, "s3:PutObject",
        _object("preprocessor/newest.json"), {"aws:SecureTransport": "false"})  # fmt: skip
    for who, principal in (("plan", plan), ("promote", promote), ("summary", summarize)):
        add(f"{who}: writes serving.json (the endpoint stack's)", IMPLICIT, principal, "s3:PutObject",
            _object("preprocessor/serving.json"), TLS)  # fmt: skip
    return cases


@pytest.fixture(scope="module")
def decisions(policies: Policies) -> tuple[CaseBatch, dict[str, Decision]]:
    cases = _cases(policies)
    return CaseBatch(case for case, _ in cases), {case.id: expected for case, expected in cases}


def test_every_alarm_of_the_deployment_is_checked(policies: Policies) -> None:
    assert len(policies.alarm_arns) == 9


def test_decisions(decisions: tuple[CaseBatch, dict[str, Decision]]) -> None:
    batch, expected = decisions
    mismatches = batch.mismatches(expected)
    assert not mismatches, mismatches


def test_the_tls_deny_decides_plain_text_publishes(decisions: tuple[CaseBatch, dict[str, Decision]]) -> None:
    batch, _ = decisions
    (decided_by,) = batch["sns: an alarm of this deployment without TLS"].decided_by
    assert decided_by.endswith("#AllowPublishThroughSSLOnly")  # the resource policy's TLS deny


# --------------------------------------------------------------------------------------------------
# Each algorithm's jobs: a deployment creates (and promotes) its own algorithm's training jobs only


def _algorithm_cases(app: SynthesizedApp) -> list[tuple[Case, Decision]]:
    training = app.template("training")
    renderer = TemplateRenderer(training, STORAGE_EXPORTS)
    machine = role_identity_policies(
        renderer, _role_by_description(training, "Runs the training state machine")
    )
    promote = role_identity_policies(
        renderer, _role_by_description(training, "Runs the promote_artifact Lambda handler")
    )
    name, own = app.config.training.algorithm, app.config.training.algorithm_spec.job_step
    cases = []
    for algorithm in ALGORITHMS.values():
        step = algorithm.job_step
        expected = ALLOWED if step == own else IMPLICIT
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{step}-x-{RUN}"
        for who, role, action, policies in (
            ("sfn", "TrainingPipelineStateMachineRole", "sagemaker:CreateTrainingJob", machine),
            ("promote", "TrainingPipeline-promote_artifact", "sagemaker:DescribeTrainingJob", promote),
        ):
            case = Case(
                id=f"{name}: {who} {action} {step}-x-{RUN}",
                identity_policies=policies,
                action=action,
                resource=job,
                principal=_session(role),
            )
            cases.append((case, expected))
    return cases


@pytest.fixture(scope="module")
def algorithm_decisions(
    synthesized_for_algorithm: Callable[[str], SynthesizedApp],
) -> tuple[CaseBatch, dict[str, dict[str, Decision]]]:
    """Every algorithm's cases in one batch (one evaluator process), and the expectations by algorithm."""
    by_algorithm = {name: _algorithm_cases(synthesized_for_algorithm(name)) for name in ALGORITHMS}
    batch = CaseBatch(case for cases in by_algorithm.values() for case, _ in cases)
    expected = {name: {case.id: want for case, want in cases} for name, cases in by_algorithm.items()}
    return batch, expected


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_each_algorithm_creates_only_its_own_training_jobs(
    name: str, algorithm_decisions: tuple[CaseBatch, dict[str, dict[str, Decision]]]
) -> None:
    batch, expected = algorithm_decisions
    own = ALGORITHMS[name].job_step
    assert list(expected[name].values()).count(ALLOWED) == 2  # its own step, for both roles
    assert expected[name][f"{name}: sfn sagemaker:CreateTrainingJob {own}-x-{RUN}"] == ALLOWED
    mismatches = batch.mismatches(expected[name])
    assert not mismatches, mismatches
