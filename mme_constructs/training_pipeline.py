"""The training side as one Step Functions state machine.

Execution input (the execution's *name* is the run id, 1-24 characters, see ``mme_shared.naming``)::

    {"locations": ["NewYork_NY", "Chicago_IL"]}                 # inline: up to a few thousand names
    {"locations_manifest_key": "location-manifests/all.json"}   # a JSON array uploaded to the bucket
    ... , "refit": true                                          # optional: fit a new generation

Flow (generations: :mod:`mme_shared.generation`)::

    PlanRun (Lambda: validate the input, choose the generation, write pipeline-runs/<run>/plan.json)
      -> GenerateData (Distributed Map over the plan: one Lambda per location)
      -> FitOrReuse? refit (requested, or the first run):
           FitPreprocessor (scikit-learn training job over raw-data/<run>/train/, .sync)
           -> StorePreprocessor (Lambda: the new generation's preprocessor/pp-<run>/model.tar.gz)
         otherwise the served generation's preprocessor is reused as it is, never refitted
      -> CreatePreprocessorModel (from the generation's immutable preprocessor artifact)
      -> TransformSplits (one batch transform per split over all of the run's locations, .sync)
      -> TrainLocations (Distributed Map over the plan, MaxConcurrency = parallel_training_jobs):
           CheckTransform (Lambda: the location's transform output exists and holds no rejected rows)
           -> TrainModel (the algorithm, .sync, tagged with location and generation)
           -> PromoteModel (Lambda: models/<gen>/..., model-pointers/<gen>/<location>.json)
           any failure -> a FAILED record for that location only (per-item Catch)
         results -> pipeline-runs/<run>/results/ (ResultWriter)
      -> Summarize (Lambda: pipeline-runs/<run>/summary.json; a refit that promoted every location
         also writes preprocessor/<gen>/complete.json and preprocessor/newest.json)
      -> RunOutcome? nothing promoted -> NothingPromoted (fails; nothing served changed)
                     refit not complete -> IncompleteGeneration (fails; the served generation stays)
                     otherwise -> RunSucceeded (output: the summary)

A partial run's promoted models are live at once (their generation is the served one); a refit's
are not served until the endpoint stack is deployed with the new generation, which switches every
location at once.

Locations never appear in the template: both Maps read the plan from S3, so the template is the
same size for 4 or 10,000 locations.
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mme_constructs import access
from mme_constructs.access import ScopedPolicy
from mme_constructs.algorithms import PreprocessorOutput
from mme_constructs.artifact_store import generation_key
from mme_constructs.handler_function import HandlerFunction, log_retention
from mme_constructs.images import image_uris
from mme_constructs.preprocessor_source import ENTRY_POINT, PreprocessorSource
from mme_shared import s3_layout
from mme_shared.generation import ALGORITHM_ENV
from mme_shared.naming import PREPROCESSOR_STEP, TRAINING_STEP_ENV, TRANSFORM_STEPS
from mme_shared.transform_output import (
    LABELLED_TRANSFORM_MODE,
    PREPROCESSOR_MODE_ENV,
    UNLABELLED_TRANSFORM_MODE,
)
from project_config.model import PREPROCESSED_FEATURE_COUNT, DataConfig, TrainingConfig

TRANSFORM_MODES: Final[dict[PreprocessorOutput, str]] = {
    "label-first": LABELLED_TRANSFORM_MODE,
    "features-only": UNLABELLED_TRANSFORM_MODE,
}
"""The preprocessor mode of the training transforms, by what the algorithm trains on."""
LOCATION_TAG: Final = "mme:location"
GENERATION_TAG: Final = "mme:preprocessor-generation"
"""Per-location training jobs carry their generation; the promotion Lambda files the model under it."""
MAX_LOCATIONS: Final = 10_000
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
GENERATION_CONCURRENCY: Final = 40
"""Data-generation Lambdas in flight at once; each writes three small CSV files."""


# How the optimized SageMaker integration names errors ("Manage SageMaker with Step Functions",
# https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html, whose own example
# retries these two names): "SageMaker." + the SDK's exception class. Errors the API models get their
# own class (ResourceLimitExceeded -> SageMaker.ResourceLimitExceededException); throttling and
# service errors arrive as SageMaker.AmazonSageMakerException (so do validation and permission
# errors, which no finer name separates: they are retried too, and the tests validate every request
# instead). Only errors after which nothing was created are retried: a retry repeats the create with
# the same name, which after a call that went through can only fail as a duplicate
# (tests/test_sagemaker_retries.py checks the names against botocore's SageMaker model).
_SAGEMAKER_RETRYABLE: Final = ["SageMaker.AmazonSageMakerException"]
_SAGEMAKER_QUOTA: Final = ["SageMaker.ResourceLimitExceededException"]


class _WarmPoolTrainingJob(tasks.SageMakerCreateTrainingJob):
    """A ``.sync`` CreateTrainingJob whose instances stay in a SageMaker managed warm pool.

    CDK's ResourceConfig has no ``KeepAlivePeriodInSeconds``, so the rendered state gets it added
    ("Use SageMaker AI managed warm pools", low-level API: ``ResourceConfig.KeepAlivePeriodInSeconds``,
    https://docs.aws.amazon.com/sagemaker/latest/dg/train-warm-pools-how-to-use.html). A following job
    of the same shape (role, instance type and count, volume and its key, network isolation: the
    warm pool's matching criteria) reuses the instance instead of provisioning one.
    """

    def __init__(self, scope: Construct, construct_id: str, *, keep_alive_seconds: int, **props: Any) -> None:
        super().__init__(scope, construct_id, **props)
        self._keep_alive_seconds = keep_alive_seconds

    def to_state_json(self, state_machine_query_language: sfn.QueryLanguage | None = None) -> Any:
        state = dict(
            super().to_state_json()
            if state_machine_query_language is None
            else super().to_state_json(state_machine_query_language)
        )
        if self._keep_alive_seconds > 0:
            parameters = dict(state["Parameters"])
            parameters["ResourceConfig"] = {
                **parameters["ResourceConfig"],
                "KeepAlivePeriodInSeconds": self._keep_alive_seconds,
            }
            state["Parameters"] = parameters
        return state


def _ml_instance(instance_type: str) -> ec2.InstanceType:
    """CDK's SageMaker tasks add the ``ml.`` prefix themselves."""
    return ec2.InstanceType(instance_type.removeprefix("ml."))


def _retry_sagemaker(state: sfn.TaskStateBase) -> None:
    """Back off on throttling and transient service errors; wait longer for instance quotas."""
    state.add_retry(
        errors=_SAGEMAKER_RETRYABLE, interval=Duration.seconds(20), max_attempts=4, backoff_rate=2
    )
    state.add_retry(errors=_SAGEMAKER_QUOTA, interval=Duration.minutes(2), max_attempts=6, backoff_rate=2)


class TrainingPipeline(Construct):
    """State machine, job role and the five Lambdas of the training side.

    Every role here has exactly one customer-managed policy written out statement by statement
    (``access.ScopedPolicy``); CDK's tasks get ``without_policy_updates()`` roles so they cannot
    widen it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
        data: DataConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._bucket = bucket
        self._key = key
        self._training = training
        self.algorithm = training.algorithm_spec

        self.preprocessor_source = PreprocessorSource(self, "PreprocessorSource")
        images = {
            scope_name: image_uris(
                stack,
                sklearn_framework_version=training.sklearn_framework_version,
                algorithm=training.algorithm_image,
                sklearn_scope=scope_name,
            )
            for scope_name in ("training", "inference")
        }
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=access.service_principal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the training pipeline's jobs and models",
        )
        algorithm_image = images["training"].algorithm
        self._job_permissions(
            images=[images["training"].sklearn, images["inference"].sklearn, algorithm_image]
        )
        self._create_functions(data)

        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            encryption_key=key,
            retention=log_retention(training.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine_role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=access.service_principal("states.amazonaws.com"),
            description="Runs the training state machine",
        )
        state_machine_permissions = self._state_machine_permissions()
        definition = self._definition(
            sklearn_training_image=images["training"].sklearn,
            sklearn_serving_image=images["inference"].sklearn,
            algorithm_image=algorithm_image,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            role=self.state_machine_role.without_policy_updates(),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.minutes(training.execution_timeout_minutes),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment="Trains one model per location and promotes it into the multi-model prefix",
        )
        # Step Functions checks the role's log-delivery permissions when the state machine is created.
        self.state_machine.node.add_dependency(state_machine_permissions)
        # CDK attaches an inline policy for the Distributed Maps' child executions even to a role
        # passed with without_policy_updates(); the same grants live in a managed policy instead.
        self.state_machine.node.try_remove_child("DistributedMapPolicy")
        self._distributed_map_permissions()

    # ------------------------------------------------------------------------------------------
    # Roles and functions

    def _job_permissions(self, *, images: list[str]) -> None:
        """The jobs read raw/preprocessed data and their own outputs, and write transform/training output."""
        stack = Stack.of(self)
        bucket = self._bucket
        permissions = ScopedPolicy(
            self,
            "JobPermissions",
            role=self.job_role.without_policy_updates(),
            description="What the training pipeline's jobs may do",
        )
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [
                f"{s3_layout.RAW_DATA_PREFIX}*",
                f"{s3_layout.PREPROCESSED_DATA_PREFIX}*",
                f"{s3_layout.TRAINING_OUTPUT_PREFIX}*",
            ],
            why_wildcard="Jobs read per-run, per-location keys under raw-data/, preprocessed-data/ "
            "and training-output/; the prefix is the narrowest fixed scope.",
        )
        # The transform jobs' model (CreatePreprocessorModel) loads its generation's artifact.
        permissions.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.PREPROCESSOR_PREFIX}*/model.tar.gz"],
            why_wildcard="Each run's preprocessor model loads its generation's preprocessor/<generation>/"
            "model.tar.gz; generations are named per run.",
        )
        permissions.allow_objects(
            bucket,
            access.S3_WRITE,
            [f"{s3_layout.PREPROCESSED_DATA_PREFIX}*", f"{s3_layout.TRAINING_OUTPUT_PREFIX}*"],
            why_wildcard="Transform and training jobs write per-run, per-location outputs under "
            "preprocessed-data/ and training-output/ only.",
        )
        permissions.allow(
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
        source = self.preprocessor_source
        permissions.allow(["s3:GetObject"], [source.bucket.arn_for_objects(source.s3_object_key)])
        # SageMaker API reference, OutputDataConfig.KmsKeyId: "If you use a KMS key ID or an alias of
        # your KMS key, the SageMaker execution role must include permissions to call kms:Encrypt";
        # "How to use SageMaker AI execution roles" (CreateTrainingJob; the transform jobs write their
        # output with the same key): a KMS key in the output configuration needs kms:Encrypt, a volume
        # KMS key in the resource configuration kms:CreateGrant
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html). Decrypt and
        # GenerateDataKey read and write the SSE-KMS objects.
        permissions.allow_key(self._key, [*access.KMS_WRITE, "kms:Encrypt", "kms:DescribeKey"])
        # VolumeKmsKeyId: SageMaker attaches the encrypted ML volume through a grant.
        permissions.allow_key_grants_for_aws_resources(self._key)
        permissions.allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=f"/aws/sagemaker/{kind}Jobs:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for kind in ("Training", "Transform")
            ],
            why_wildcard="SageMaker names each job's log stream inside these two fixed log groups.",
        )
        permissions.allow_sagemaker_metrics()
        # The training jobs pull the scikit-learn training and the algorithm images; the transform
        # jobs run the preprocessor model, which pulls the scikit-learn serving image.
        permissions.allow_image_pull(images)

    def _create_functions(self, data: DataConfig) -> None:
        bucket, key, retention = self._bucket, self._key, self._training.log_retention_days
        common_env = {"BUCKET_NAME": bucket.bucket_name}
        self.plan_run = HandlerFunction(
            self,
            "PlanRunFunction",
            handler_name="plan_run",
            description="Validates a training run's locations and writes its per-location plan",
            environment={
                **common_env,
                "MAX_LOCATIONS": str(MAX_LOCATIONS),
                TRAINING_STEP_ENV: self.algorithm.job_step,
                ALGORITHM_ENV: self._training.algorithm,
            },
            key=key,
            log_retention_days=retention,
            timeout=Duration.minutes(2),
            memory_size=512,
        )
        self.plan_run.permissions.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.LOCATION_MANIFESTS_PREFIX}*"],
            why_wildcard="Users upload location lists of any name under location-manifests/.",
        )
        self.plan_run.permissions.allow_objects(
            bucket,
            ["s3:GetObject", "s3:PutObject"],
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/plan.json"],
            why_wildcard="Each run writes (and on retry re-reads) its plan at "
            "pipeline-runs/<run id>/plan.json.",
        )
        self.plan_run.permissions.allow(
            ["s3:GetObject"],
            [
                bucket.arn_for_objects(k)
                for k in (s3_layout.SERVING_GENERATION_KEY, s3_layout.NEWEST_GENERATION_KEY)
            ],
        )
        self.plan_run.permissions.allow_objects(
            bucket,
            ["s3:GetObject"],
            [generation_key(s3_layout.generation_record_key, "*")],
            why_wildcard="A run reads the complete.json of the generation it would reuse "
            "(preprocessor/<generation>/complete.json) to check which algorithm trained it.",
        )
        # A refit lists the generation it replaces (model-pointers/<generation>/), and only with
        # ListBucket does S3 answer a missing newest.json (a first run) with 404 rather than 403.
        self.plan_run.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.plan_run.permissions.allow_key(key)

        self.generate_data = HandlerFunction(
            self,
            "GenerateDataFunction",
            handler_name="generate_data",
            description="Generates one location's synthetic housing data (train/validation/test CSV)",
            environment={
                **common_env,
                "KMS_KEY_ARN": key.key_arn,
                "HOUSES_PER_LOCATION": str(data.houses_per_location),
                "SEED": str(data.seed),
                "VALIDATION_FRACTION": repr(data.validation_fraction),
                "TEST_FRACTION": repr(data.test_fraction),
            },
            key=key,
            log_retention_days=retention,
            timeout=Duration.minutes(5),
            memory_size=1024,
        )
        self.generate_data.permissions.allow_objects(
            bucket,
            access.S3_WRITE,
            [f"{s3_layout.RAW_DATA_PREFIX}*"],
            why_wildcard="Writes raw-data/<run id>/<split>/<location>.csv for the locations of each run.",
        )
        self.generate_data.permissions.allow_key(key, ["kms:GenerateDataKey"])

        self.promote_artifact = HandlerFunction(
            self,
            "PromoteArtifactFunction",
            handler_name="promote_artifact",
            description="Copies a finished training artifact server-side into the multi-model prefix",
            environment={**common_env, "KMS_KEY_ARN": key.key_arn},
            key=key,
            log_retention_days=retention,
            timeout=Duration.minutes(15),
        )
        promote = self.promote_artifact.permissions
        promote.allow(
            ["sagemaker:DescribeTrainingJob", "sagemaker:ListTags"],
            self._training_job_arns(),
            why_wildcard="Training job names are made per run and location "
            f"(pp-<run>, {self.algorithm.job_step}-<location>-<run>).",
        )
        promote.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.TRAINING_OUTPUT_PREFIX}*"],
            why_wildcard="Reads the finished artifacts of any run under training-output/.",
        )
        promote.allow_objects(
            bucket,
            ["s3:GetObject", *access.S3_WRITE],
            [f"{s3_layout.MULTI_MODEL_PREFIX}*", f"{s3_layout.MODEL_POINTERS_PREFIX}*"],
            why_wildcard="Writes a new versioned key per location under models/ and that location's "
            "pointer under model-pointers/.",
        )
        promote.allow_objects(
            bucket,
            ["s3:GetObject", *access.S3_WRITE],
            [f"{s3_layout.PREPROCESSOR_PREFIX}*/model.tar.gz"],
            why_wildcard="Writes each new generation's preprocessor/<generation>/model.tar.gz (and reads "
            "it to check a model's generation exists); generations are named per run.",
        )
        # Without ListBucket, S3 answers HeadObject on a missing key with 403 instead of 404, and the
        # handler could not tell "not promoted yet" from "forbidden".
        promote.allow(["s3:ListBucket"], [bucket.bucket_arn])
        promote.allow_key(key)

        self.check_transform = HandlerFunction(
            self,
            "CheckTransformFunction",
            handler_name="check_transform",
            description="Fails one location whose rows the run's batch transform rejected, with the reason",
            environment=common_env,
            key=key,
            log_retention_days=retention,
            timeout=Duration.minutes(2),
        )
        self.check_transform.permissions.allow_objects(
            bucket,
            ["s3:GetObject"],
            [f"{s3_layout.PREPROCESSED_DATA_PREFIX}*"],
            why_wildcard="Reads each location's transform output preprocessed-data/<run id>/<split>/"
            "<location>.csv.out.",
        )
        # Only with ListBucket does S3 answer a missing output (a location the transform skipped)
        # with 404 rather than 403.
        self.check_transform.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.check_transform.permissions.allow_key(key, access.KMS_READ)

        self.summarize_run = HandlerFunction(
            self,
            "SummarizeRunFunction",
            handler_name="summarize_run",
            description="Summarises a training run and records a refit's generation once it is complete",
            environment={**common_env, "KMS_KEY_ARN": key.key_arn, ALGORITHM_ENV: self._training.algorithm},
            key=key,
            log_retention_days=retention,
            timeout=Duration.minutes(5),
            memory_size=1024,
        )
        self.summarize_run.permissions.allow_objects(
            bucket,
            access.S3_READ,
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/results/*"],
            why_wildcard="Reads the training Map's result files under pipeline-runs/<run id>/results/.",
        )
        self.summarize_run.permissions.allow_objects(
            bucket,
            ["s3:PutObject"],
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/summary.json"],
            why_wildcard="Writes each run's summary at pipeline-runs/<run id>/summary.json.",
        )
        self.summarize_run.permissions.allow_objects(
            bucket,
            ["s3:GetObject", "s3:PutObject"],
            [f"{s3_layout.PREPROCESSOR_PREFIX}*/complete.json"],
            why_wildcard="A complete refit writes (and on retry re-reads) preprocessor/<generation>/"
            "complete.json; generations are named per run.",
        )
        self.summarize_run.permissions.allow(
            ["s3:PutObject"], [bucket.arn_for_objects(s3_layout.NEWEST_GENERATION_KEY)]
        )
        # Only with ListBucket does S3 answer the first read of a missing complete.json with 404.
        self.summarize_run.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.summarize_run.permissions.allow_key(key)

    def _training_job_arns(self) -> list[str]:
        """The run's training jobs: the preprocessor fit (``pp-*``) and the algorithm's (``<step>-*``)."""
        return [
            self._sagemaker_arn("training-job", f"{step}-*")
            for step in (PREPROCESSOR_STEP, self.algorithm.job_step)
        ]

    def _sagemaker_arn(self, resource: str, name_pattern: str) -> str:
        return Stack.of(self).format_arn(service="sagemaker", resource=resource, resource_name=name_pattern)

    def _state_machine_permissions(self) -> ScopedPolicy:
        stack = Stack.of(self)
        permissions = ScopedPolicy(
            self,
            "StateMachinePermissions",
            role=self.state_machine_role,
            description="What the training state machine may do",
        )
        permissions.allow(
            ["lambda:InvokeFunction"],
            [
                handler.function.function_arn
                for handler in (
                    self.plan_run,
                    self.generate_data,
                    self.check_transform,
                    self.promote_artifact,
                    self.summarize_run,
                )
            ],
        )
        # "IAM policies for Amazon SageMaker AI" (what Step Functions generates for these tasks,
        # https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html): create/describe/stop
        # on the job, sagemaker:ListTags on "*", PassRole to SageMaker, the .sync EventBridge rules.
        training_jobs = self._training_job_arns()
        permissions.allow(
            ["sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
            training_jobs,
            why_wildcard="Job names are made per run and location "
            f"(pp-<run>, {self.algorithm.job_step}-<location>-<run>).",
        )
        # The warm pool's keep-alive is bounded by the condition key AWS provides for it
        # ("Use SageMaker AI managed warm pools", IAM condition key sagemaker:KeepAlivePeriod): a job
        # asking to keep its instance longer than configured is refused (a job without a warm pool,
        # the preprocessor's, carries no such key).
        permissions.allow(
            ["sagemaker:CreateTrainingJob"],
            training_jobs,
            conditions={
                "NumericLessThanEqualsIfExists": {
                    "sagemaker:KeepAlivePeriod": self._training.warm_pool_keep_alive_seconds
                }
            },
            why_wildcard="Job names are made per run and location (pp-<run>, ll-<location>-<run>).",
        )
        permissions.allow(
            ["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
             "sagemaker:AddTags"],
            [self._sagemaker_arn("transform-job", f"{step}-*") for step in TRANSFORM_STEPS],
            why_wildcard="Transform job names are made per run and location (tt-/tv-<location>-<run>).",
        )  # fmt: skip
        permissions.allow(
            ["sagemaker:CreateModel", "sagemaker:AddTags"],
            [self._sagemaker_arn("model", f"{PREPROCESSOR_STEP}-*")],
            why_wildcard="Each run creates its preprocessor model pp-<run>.",
        )
        permissions.allow(
            ["sagemaker:ListTags"],
            ["*"],
            why_wildcard="Step Functions' SageMaker integration lists tags on resources AWS does not "
            "name; AWS's generated policy (and CDK's SageMakerCreateModel) grant this read-only "
            "action on *.",
        )
        permissions.allow(
            ["iam:PassRole"],
            [self.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
        permissions.allow(
            ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            [
                stack.format_arn(
                    service="events", resource="rule", resource_name=f"StepFunctionsGetEventsFor{kind}Rule"
                )
                for kind in ("SageMakerTrainingJobs", "SageMakerTransformJobs")
            ],
        )
        permissions.allow_objects(
            self._bucket,
            access.S3_READ,
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/plan.json"],
            why_wildcard="Both Maps read the run's items from pipeline-runs/<run id>/plan.json.",
        )
        # Step Functions developer guide, "IAM policies for using Distributed Map states"
        # (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html): a
        # ResultWriter needs PutObject, GetObject, ListMultipartUploadParts and AbortMultipartUpload
        # on its prefix (CDK's ResultWriterV2 grants the same four), and an SSE-KMS bucket's key.
        permissions.allow_objects(
            self._bucket,
            ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            [
                f"{s3_layout.PIPELINE_RUNS_PREFIX}*/results/*",
                f"{s3_layout.PIPELINE_RUNS_PREFIX}*/generation/*",
            ],
            why_wildcard="The Maps' ResultWriters export under pipeline-runs/<run id>/results/ and "
            "pipeline-runs/<run id>/generation/.",
        )
        permissions.allow_key(self._key)
        permissions.allow(
            LOG_DELIVERY_ACTIONS,
            ["*"],
            why_wildcard="CloudWatch Logs' log-delivery APIs used by Step Functions logging support no "
            "resource-level permissions.",
        )  # fmt: skip
        permissions.allow(
            [*access.XRAY_ACTIONS, "xray:GetSamplingRules", "xray:GetSamplingTargets"],
            ["*"],
            why_wildcard=access.XRAY_REASON,
        )
        return permissions

    def _distributed_map_permissions(self) -> None:
        """Distributed Maps run child executions of this same state machine.

        As "IAM policies for using Distributed Map states" lists: StartExecution on the state
        machine, DescribeExecution and StopExecution on its executions, and RedriveExecution to
        redrive a Map Run (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html).
        """
        stack = Stack.of(self)
        permissions = ScopedPolicy(
            self,
            "DistributedMapPermissions",
            role=self.state_machine_role,
            description="Lets the training state machine run its Distributed Map child executions",
        )
        permissions.allow(["states:StartExecution"], [self.state_machine.state_machine_arn])
        permissions.allow(
            ["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
            [
                stack.format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{self.state_machine.state_machine_name}{separator}*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                # <name>:* the executions themselves (as the page lists for DescribeExecution),
                # <name>/* the child executions of its Map Runs (<name>/<map run label>:<id>).
                for separator in (":", "/")
            ],
            why_wildcard="Executions and their Map Runs' child executions are named by Step Functions "
            "at run time.",
        )

    # ------------------------------------------------------------------------------------------
    # The definition

    def _definition(
        self, *, sklearn_training_image: str, sklearn_serving_image: str, algorithm_image: str
    ) -> sfn.IChainable:
        bucket = self._bucket
        plan = tasks.LambdaInvoke(
            self,
            "PlanRun",
            lambda_function=self.plan_run.function,
            # The whole execution input: the Lambda validates it and says what is wrong.
            payload=sfn.TaskInput.from_object(
                {"run_id": sfn.JsonPath.execution_name, "request": sfn.JsonPath.object_at("$")}
            ),
            result_selector={
                f"{name}.$": f"$.Payload.{name}"
                for name in (
                    "run_id",
                    "location_count",
                    "plan_key",
                    "generation",
                    "refit",
                    "preprocessor_job_name",
                    "preprocessor_model_name",
                    "preprocessor_artifact_uri",
                    "raw_train_prefix_uri",
                    "raw_validation_prefix_uri",
                    "preprocessed_train_prefix_uri",
                    "preprocessed_validation_prefix_uri",
                    "transform_train_job_name",
                    "transform_validation_job_name",
                    "training_output_uri",
                    "results_prefix",
                    "generation_results_prefix",
                )
            },
            result_path="$.plan",
        )
        run_failed = sfn.Fail(
            self,
            "RunFailed",
            error_path="$.failure.Error",
            cause_path="$.failure.Cause",
        )

        plan_items = sfn.S3JsonItemReader(bucket=bucket, key=sfn.JsonPath.string_at("$.plan.plan_key"))
        generate = sfn.DistributedMap(
            self,
            "GenerateData",
            item_reader=plan_items,
            item_selector={
                "run_id": sfn.JsonPath.string_at("$$.Map.Item.Value.run_id"),
                "location": sfn.JsonPath.string_at("$$.Map.Item.Value.location"),
            },
            max_concurrency=GENERATION_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
            result_writer_v2=sfn.ResultWriterV2(
                bucket=bucket,
                prefix=sfn.JsonPath.string_at("$.plan.generation_results_prefix"),
            ),
        )
        generate.item_processor(
            tasks.LambdaInvoke(
                self,
                "GenerateLocationData",
                lambda_function=self.generate_data.function,
                payload=sfn.TaskInput.from_json_path_at("$"),
                result_selector={"location.$": "$.Payload.location"},
            )
        )

        fit_preprocessor = tasks.SageMakerCreateTrainingJob(
            self,
            "FitPreprocessor",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at("$.plan.preprocessor_job_name"),
            role=self.job_role.without_policy_updates(),
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(sklearn_training_image),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters={
                "sagemaker_program": ENTRY_POINT,
                "sagemaker_submit_directory": self.preprocessor_source.s3_object_url,
                "sagemaker_region": Aws.REGION,
                "sagemaker_container_log_level": "20",
                "feature_dim": str(PREPROCESSED_FEATURE_COUNT),
            },
            input_data_config=[self._channel("train", "$.plan.raw_train_prefix_uri", "text/csv")],
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=tasks.S3Location.from_json_expression("$.plan.training_output_uri"),
                encryption_key=self._key,
            ),
            resource_config=self._resources(self._training.preprocessor_instance_type),
            stopping_condition=self._stopping(),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(fit_preprocessor)
        store_preprocessor = tasks.LambdaInvoke(
            self,
            "StorePreprocessor",
            lambda_function=self.promote_artifact.function,
            payload=sfn.TaskInput.from_object(
                {
                    "training_job_name": sfn.JsonPath.string_at("$.plan.preprocessor_job_name"),
                    "artifact": "preprocessor",
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        create_model = tasks.SageMakerCreateModel(
            self,
            "CreatePreprocessorModel",
            model_name=sfn.JsonPath.string_at("$.plan.preprocessor_model_name"),
            role=self.job_role.without_policy_updates(),
            primary_container=tasks.ContainerDefinition(
                image=tasks.DockerImage.from_registry(sklearn_serving_image),
                model_s3_location=tasks.S3Location.from_json_expression("$.plan.preprocessor_artifact_uri"),
                environment_variables=sfn.TaskInput.from_object(
                    {
                        "SAGEMAKER_PROGRAM": ENTRY_POINT,
                        "SAGEMAKER_SUBMIT_DIRECTORY": self.preprocessor_source.s3_object_url,
                        "SAGEMAKER_REGION": Aws.REGION,
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    }
                ),
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(create_model)

        # One batch transform per split over every location of the run (N + O(1) jobs per run):
        # the input prefix holds one file per location and batch transform writes one output file
        # per input file, which each location's training job reads. A location whose rows the
        # preprocessor rejects gets a marker line instead (the job goes on), and fails alone in
        # its CheckTransform step.
        transforms = sfn.Parallel(self, "TransformSplits", result_path=sfn.JsonPath.DISCARD)
        for split in ("train", "validation"):
            transforms.branch(self._transform(split))

        train_locations = sfn.DistributedMap(
            self,
            "TrainLocations",
            item_reader=sfn.S3JsonItemReader(bucket=bucket, key=sfn.JsonPath.string_at("$.plan.plan_key")),
            item_selector={"item": sfn.JsonPath.object_at("$$.Map.Item.Value")},
            max_concurrency=self._training.parallel_training_jobs,
            result_writer_v2=sfn.ResultWriterV2(
                bucket=bucket, prefix=sfn.JsonPath.string_at("$.plan.results_prefix")
            ),
            result_path="$.training_results",
        )
        train_locations.item_processor(self._per_location(algorithm_image))

        summarize = tasks.LambdaInvoke(
            self,
            "Summarize",
            lambda_function=self.summarize_run.function,
            payload=sfn.TaskInput.from_object(
                {
                    "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
                    "map_result": sfn.JsonPath.object_at("$.training_results"),
                    "generation": sfn.JsonPath.string_at("$.plan.generation"),
                    "refit": sfn.JsonPath.object_at("$.plan.refit"),
                    "location_count": sfn.JsonPath.number_at("$.plan.location_count"),
                }
            ),
            payload_response_only=True,
            result_path="$.summary",
        )
        nothing_promoted = sfn.Fail(
            self,
            "NothingPromoted",
            error="NothingPromoted",
            cause="No location of this run was promoted (every location failed), so nothing that is "
            "served changed and no generation was completed; the run's summary "
            "(pipeline-runs/<run id>/summary.json) says why each location failed.",
        )
        incomplete_generation = sfn.Fail(
            self,
            "IncompleteGeneration",
            error="IncompleteGeneration",
            cause="This refit fitted a new preprocessor generation, but not every location was promoted "
            "into it, so it was not completed and cannot be served; the generation that is served stays "
            "served with all its models. The run's summary (pipeline-runs/<run id>/summary.json) says "
            "why each location failed; fix that and run the refit again.",
        )
        run_succeeded = sfn.Pass(self, "RunSucceeded", input_path="$.summary")
        for state in (plan, generate, fit_preprocessor, store_preprocessor, create_model, transforms,
                      train_locations, summarize):  # fmt: skip
            state.add_catch(run_failed, result_path="$.failure")

        train_and_summarize = (
            create_model.next(transforms)
            .next(train_locations)
            .next(summarize)
            .next(
                sfn.Choice(self, "RunOutcome")
                .when(sfn.Condition.boolean_equals("$.summary.nothing_promoted", True), nothing_promoted)
                .when(
                    sfn.Condition.and_(
                        sfn.Condition.boolean_equals("$.summary.refit", True),
                        sfn.Condition.boolean_equals("$.summary.generation_complete", False),
                    ),
                    incomplete_generation,
                )
                .otherwise(run_succeeded)
            )
        )
        return plan.next(generate).next(
            sfn.Choice(self, "FitOrReuse")
            .when(
                sfn.Condition.boolean_equals("$.plan.refit", True),
                fit_preprocessor.next(store_preprocessor).next(train_and_summarize),
            )
            .otherwise(train_and_summarize)
        )

    def _per_location(self, algorithm_image: str) -> sfn.IChainable:
        """Check the transform output → train → promote for one plan item; every failure becomes a
        FAILED record for that location only."""
        check = tasks.LambdaInvoke(
            self,
            "CheckTransform",
            lambda_function=self.check_transform.function,
            payload=sfn.TaskInput.from_object(
                {
                    "run_id": sfn.JsonPath.string_at("$.item.run_id"),
                    "location": sfn.JsonPath.string_at("$.item.location"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        train_model = _WarmPoolTrainingJob(
            self,
            "TrainModel",
            keep_alive_seconds=self._training.warm_pool_keep_alive_seconds,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at("$.item.training_job_name"),
            role=self.job_role.without_policy_updates(),
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(algorithm_image),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters=self._training.training_hyperparameters,
            input_data_config=[
                self._channel(
                    channel.name,
                    f"$.item.preprocessed_{channel.split}_uri",
                    self.algorithm.content_type,
                    sharded=channel.sharded,
                )
                for channel in self.algorithm.channels
            ],
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=tasks.S3Location.from_json_expression("$.item.training_output_uri"),
                encryption_key=self._key,
            ),
            resource_config=self._resources(self._training.training_instance_type),
            stopping_condition=self._stopping(),
            enable_network_isolation=True,
            tags={
                LOCATION_TAG: sfn.JsonPath.string_at("$.item.location"),
                GENERATION_TAG: sfn.JsonPath.string_at("$.item.generation"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(train_model)
        promote = tasks.LambdaInvoke(
            self,
            "PromoteModel",
            lambda_function=self.promote_artifact.function,
            payload=sfn.TaskInput.from_object(
                {
                    "training_job_name": sfn.JsonPath.string_at("$.item.training_job_name"),
                    "location": sfn.JsonPath.string_at("$.item.location"),
                    "generation": sfn.JsonPath.string_at("$.item.generation"),
                }
            ),
            result_selector={
                "location.$": "$.Payload.location",
                "status": "SUCCEEDED",
                "training_job_name.$": "$.Payload.training_job_name",
                "target_model.$": "$.Payload.target_model",
                "model_version.$": "$.Payload.version",
                "validation_metrics.$": "$.Payload.validation_metrics",
            },
        )
        for step, state in (("transform", check), ("train", train_model), ("promote", promote)):
            record = sfn.Pass(
                self,
                f"Record{step.capitalize()}Failure",
                parameters={
                    "location": sfn.JsonPath.string_at("$.item.location"),
                    "status": "FAILED",
                    "failed_step": step,
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                    "cause": sfn.JsonPath.string_at("$.failure.Cause"),
                },
            )
            state.add_catch(record, result_path="$.failure")
        return check.next(train_model).next(promote)

    def _transform(self, split: str) -> tasks.SageMakerCreateTransformJob:
        transform = tasks.SageMakerCreateTransformJob(
            self,
            f"Transform{split.capitalize()}",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            transform_job_name=sfn.JsonPath.string_at(f"$.plan.transform_{split}_job_name"),
            model_name=sfn.JsonPath.string_at("$.plan.preprocessor_model_name"),
            role=self.job_role.without_policy_updates(),
            environment={PREPROCESSOR_MODE_ENV: TRANSFORM_MODES[self.algorithm.preprocessor_output]},
            transform_input=tasks.TransformInput(
                transform_data_source=tasks.TransformDataSource(
                    s3_data_source=tasks.TransformS3DataSource(
                        s3_uri=sfn.JsonPath.string_at(f"$.plan.raw_{split}_prefix_uri"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
                content_type="text/csv",
                split_type=tasks.SplitType.LINE,
            ),
            # Each mini-batch holds lines of one input file, up to the 6 MB default payload.
            batch_strategy=tasks.BatchStrategy.MULTI_RECORD,
            transform_output=tasks.TransformOutput(
                s3_output_path=sfn.JsonPath.string_at(f"$.plan.preprocessed_{split}_prefix_uri"),
                accept="text/csv",
                assemble_with=tasks.AssembleWith.LINE,
                encryption_key=self._key,
            ),
            transform_resources=tasks.TransformResources(
                instance_count=1,
                instance_type=_ml_instance(self._training.transform_instance_type),
                volume_encryption_key=self._key,
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(transform)
        return transform

    def _channel(
        self, name: str, uri_path: str, content_type: str, *, sharded: bool = False
    ) -> tasks.Channel:
        distribution = (
            tasks.S3DataDistributionType.SHARDED_BY_S3_KEY
            if sharded
            else tasks.S3DataDistributionType.FULLY_REPLICATED
        )
        return tasks.Channel(
            channel_name=name,
            content_type=content_type,
            data_source=tasks.DataSource(
                s3_data_source=tasks.S3DataSource(
                    s3_location=tasks.S3Location.from_json_expression(uri_path),
                    s3_data_type=tasks.S3DataType.S3_PREFIX,
                    s3_data_distribution_type=distribution,
                )
            ),
        )

    def _resources(self, instance_type: str) -> tasks.ResourceConfig:
        return tasks.ResourceConfig(
            instance_count=1,
            instance_type=_ml_instance(instance_type),
            volume_size=Size.gibibytes(30),
            volume_encryption_key=self._key,
        )

    def _stopping(self) -> tasks.StoppingCondition:
        return tasks.StoppingCondition(max_runtime=Duration.minutes(self._training.max_job_runtime_minutes))
