"""The policies of the training pipeline's two service roles, one ``ScopedPolicy`` class each.

* :class:`JobPermissions`: the SageMaker execution role of the jobs and the preprocessor model;
* :class:`StateMachinePermissions`: the state machine's role (its tasks, Maps, logs and traces);
* :class:`DistributedMapPermissions`: the same role's rights over the Maps' child executions, a
  policy of its own because it names the state machine, which needs the first policy to exist.

CDK's tasks get ``without_policy_updates()`` roles, so these statements are all the roles have. The
Lambdas' own policies are in :mod:`mme_constructs.training_functions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from mme_constructs.access import KMS_WRITE, S3_READ, S3_WRITE, XRAY_ACTIONS, XRAY_REASON, ScopedPolicy
from mme_constructs.artifact_store import generation_key
from mme_constructs.preprocessor_source import PreprocessorSource
from mme_shared import s3_layout
from mme_shared.naming import PREPROCESSOR_STEP, TRANSFORM_STEPS
from project_config.model import TrainingConfig

LOG_DELIVERY_ACTIONS: Final = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
"""What Step Functions needs to deliver execution logs to CloudWatch Logs (no resource-level scope)."""


def sagemaker_arn(scope: IConstruct, resource: str, name_pattern: str) -> str:
    """The ARN of SageMaker resources named ``name_pattern`` in ``scope``'s stack."""
    return Stack.of(scope).format_arn(service="sagemaker", resource=resource, resource_name=name_pattern)


def training_job_arns(scope: IConstruct, job_step: str) -> list[str]:
    """A run's training jobs: the preprocessor fit (``pp-*``) and the algorithm's (``<job_step>-*``)."""
    return [sagemaker_arn(scope, "training-job", f"{step}-*") for step in (PREPROCESSOR_STEP, job_step)]


class JobPermissions(ScopedPolicy):
    """The jobs read raw/preprocessed data and their own outputs, and write transform/training output."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role: iam.IRole,
        bucket: s3.IBucket,
        key: kms.IKey,
        preprocessor_source: PreprocessorSource,
        images: Sequence[str],
    ) -> None:
        super().__init__(
            scope, construct_id, role=role, description="What the training pipeline's jobs may do"
        )
        self._allow_data(bucket)
        source = preprocessor_source
        self.allow(["s3:GetObject"], [source.bucket.arn_for_objects(source.s3_object_key)])
        # SageMaker API reference, OutputDataConfig.KmsKeyId: "If you use a KMS key ID or an alias of
        # your KMS key, the SageMaker execution role must include permissions to call kms:Encrypt";
        # "How to use SageMaker AI execution roles" (CreateTrainingJob; the transform jobs write their
        # output with the same key): a KMS key in the output configuration needs kms:Encrypt, a volume
        # KMS key in the resource configuration kms:CreateGrant
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html). Decrypt and
        # GenerateDataKey read and write the SSE-KMS objects.
        self.allow_key(key, [*KMS_WRITE, "kms:Encrypt", "kms:DescribeKey"])
        # VolumeKmsKeyId: SageMaker attaches the encrypted ML volume through a grant.
        self.allow_key_grants_for_aws_resources(key)
        self.allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=f"/aws/sagemaker/{kind}Jobs:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for kind in ("Training", "Transform")
            ],
            why_wildcard="SageMaker names each job's log stream inside these two fixed log groups.",
        )
        self.allow_sagemaker_metrics()
        # The training jobs pull the scikit-learn training and the algorithm images; the transform
        # jobs run the preprocessor model, which pulls the scikit-learn serving image.
        self.allow_image_pull(images)

    def _allow_data(self, bucket: s3.IBucket) -> None:
        self.allow_objects(
            bucket,
            S3_READ,
            [
                f"{s3_layout.RAW_DATA_PREFIX}*",
                f"{s3_layout.PREPROCESSED_DATA_PREFIX}*",
                f"{s3_layout.TRAINING_OUTPUT_PREFIX}*",
            ],
            why_wildcard="Jobs read per-run, per-location keys under raw-data/, preprocessed-data/ "
            "and training-output/; the prefix is the narrowest fixed scope.",
        )
        # The transform jobs' model (CreatePreprocessorModel) loads its generation's artifact.
        self.allow_objects(
            bucket,
            S3_READ,
            [generation_key(s3_layout.preprocessor_artifact_key, "*")],
            why_wildcard="Each run's preprocessor model loads its generation's preprocessor/<generation>/"
            "model.tar.gz; generations are named per run.",
        )
        self.allow_objects(
            bucket,
            S3_WRITE,
            [f"{s3_layout.PREPROCESSED_DATA_PREFIX}*", f"{s3_layout.TRAINING_OUTPUT_PREFIX}*"],
            why_wildcard="Transform and training jobs write per-run, per-location outputs under "
            "preprocessed-data/ and training-output/ only.",
        )
        self.allow(
            ["s3:ListBucket"],
            [bucket.bucket_arn],
            conditions={
                "StringLike": {
                    "s3:prefix": [
                        f"{p}*" for p in (s3_layout.RAW_DATA_PREFIX, s3_layout.PREPROCESSED_DATA_PREFIX)
                    ]
                }
            },
        )


class StateMachinePermissions(ScopedPolicy):
    """What the training state machine may do: invoke its Lambdas, run its SageMaker jobs as the job
    role, read the plan and write the Maps' results, and deliver its logs and traces."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role: iam.IRole,
        functions: Sequence[lambda_.IFunction],
        job_role: iam.IRole,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
    ) -> None:
        super().__init__(scope, construct_id, role=role, description="What the training state machine may do")
        self.allow(["lambda:InvokeFunction"], [function.function_arn for function in functions])
        self._allow_sagemaker(training)
        self.allow(
            ["iam:PassRole"],
            [job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
        self.allow(
            ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            [
                Stack.of(self).format_arn(
                    service="events", resource="rule", resource_name=f"StepFunctionsGetEventsFor{kind}Rule"
                )
                for kind in ("SageMakerTrainingJobs", "SageMakerTransformJobs")
            ],
        )
        self._allow_maps(bucket, key)
        self.allow(
            LOG_DELIVERY_ACTIONS,
            ["*"],
            why_wildcard="CloudWatch Logs' log-delivery APIs used by Step Functions logging support no "
            "resource-level permissions.",
        )  # fmt: skip
        self.allow(
            [*XRAY_ACTIONS, "xray:GetSamplingRules", "xray:GetSamplingTargets"],
            ["*"],
            why_wildcard=XRAY_REASON,
        )

    def _allow_sagemaker(self, training: TrainingConfig) -> None:
        # "IAM policies for Amazon SageMaker AI" (what Step Functions generates for these tasks,
        # https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html): create/describe/stop
        # on the job, sagemaker:ListTags on "*", PassRole to SageMaker, the .sync EventBridge rules.
        job_step = training.algorithm_spec.job_step
        training_jobs = training_job_arns(self, job_step)
        self.allow(
            ["sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
            training_jobs,
            why_wildcard=f"Job names are made per run and location (pp-<run>, {job_step}-<location>-<run>).",
        )
        # The warm pool's keep-alive is bounded by the condition key AWS provides for it
        # ("Use SageMaker AI managed warm pools", IAM condition key sagemaker:KeepAlivePeriod): a job
        # asking to keep its instance longer than configured is refused (a job without a warm pool,
        # the preprocessor's, carries no such key).
        self.allow(
            ["sagemaker:CreateTrainingJob"],
            training_jobs,
            conditions={
                "NumericLessThanEqualsIfExists": {
                    "sagemaker:KeepAlivePeriod": training.warm_pool_keep_alive_seconds
                }
            },
            why_wildcard="Job names are made per run and location (pp-<run>, ll-<location>-<run>).",
        )
        self.allow(
            ["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
             "sagemaker:AddTags"],
            [sagemaker_arn(self, "transform-job", f"{step}-*") for step in TRANSFORM_STEPS],
            why_wildcard="Transform job names are made per run and location (tt-/tv-<location>-<run>).",
        )  # fmt: skip
        self.allow(
            ["sagemaker:CreateModel", "sagemaker:AddTags"],
            [sagemaker_arn(self, "model", f"{PREPROCESSOR_STEP}-*")],
            why_wildcard="Each run creates its preprocessor model pp-<run>.",
        )
        self.allow(
            ["sagemaker:ListTags"],
            ["*"],
            why_wildcard="Step Functions' SageMaker integration lists tags on resources AWS does not "
            "name; AWS's generated policy (and CDK's SageMakerCreateModel) grant this read-only "
            "action on *.",
        )

    def _allow_maps(self, bucket: s3.IBucket, key: kms.IKey) -> None:
        self.allow_objects(
            bucket,
            S3_READ,
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/plan.json"],
            why_wildcard="Both Maps read the run's items from pipeline-runs/<run id>/plan.json.",
        )
        # Step Functions developer guide, "IAM policies for using Distributed Map states"
        # (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html): a
        # ResultWriter needs PutObject, GetObject, ListMultipartUploadParts and AbortMultipartUpload
        # on its prefix (CDK's ResultWriterV2 grants the same four), and an SSE-KMS bucket's key.
        self.allow_objects(
            bucket,
            ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            [
                f"{s3_layout.PIPELINE_RUNS_PREFIX}*/results/*",
                f"{s3_layout.PIPELINE_RUNS_PREFIX}*/generation/*",
            ],
            why_wildcard="The Maps' ResultWriters export under pipeline-runs/<run id>/results/ and "
            "pipeline-runs/<run id>/generation/.",
        )
        self.allow_key(key)


class DistributedMapPermissions(ScopedPolicy):
    """Distributed Maps run child executions of this same state machine.

    As "IAM policies for using Distributed Map states" lists: StartExecution on the state
    machine, DescribeExecution and StopExecution on its executions, and RedriveExecution to
    redrive a Map Run (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, role: iam.IRole, state_machine: sfn.StateMachine
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            role=role,
            description="Lets the training state machine run its Distributed Map child executions",
        )
        self.allow(["states:StartExecution"], [state_machine.state_machine_arn])
        self.allow(
            ["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
            [
                Stack.of(self).format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{state_machine.state_machine_name}{separator}*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                # <name>:* the executions themselves (as the page lists for DescribeExecution),
                # <name>/* the child executions of its Map Runs (<name>/<map run label>:<id>).
                for separator in (":", "/")
            ],
            why_wildcard="Executions and their Map Runs' child executions are named by Step Functions "
            "at run time.",
        )
