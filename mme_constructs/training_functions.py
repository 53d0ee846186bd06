"""The five Lambdas of the training state machine, one class each.

Each class is the one place for its handler (``lambda/<handler>/<handler>.py``): what it is told
through its environment and what its role may do (monitoring reads its ``function``'s own
``metric_*()``). Every grant is a statement of the function's own customer-managed policy
(``HandlerFunction.permissions``, an ``access.ScopedPolicy``), added in the order it appears in the
template. The state machine invokes them; it gets their ``function`` (``lambda_.IFunction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mme_constructs.access import KMS_READ, S3_READ, S3_WRITE
from mme_constructs.artifact_store import generation_key
from mme_constructs.handler_function import HandlerFunction
from mme_constructs.training_roles import training_job_arns
from mme_shared import s3_layout
from mme_shared.generation import ALGORITHM_ENV
from mme_shared.naming import TRAINING_STEP_ENV
from project_config.model import DataConfig, TrainingConfig

MAX_LOCATIONS: Final = 10_000
"""The most locations one run may name (PlanRun's ``MAX_LOCATIONS``)."""


class TrainingFunction(HandlerFunction):
    """A Lambda the training state machine invokes: the bucket's name in its environment, its logs kept
    for ``training.log_retention_days``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_name: str,
        description: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_size: int = 256,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_name=handler_name,
            description=description,
            environment={"BUCKET_NAME": bucket.bucket_name, **environment},
            key=key,
            log_retention_days=training.log_retention_days,
            timeout=timeout,
            memory_size=memory_size,
        )


class PlanRunFunction(TrainingFunction):
    """``plan_run``: validates the execution input, chooses the generation and writes the run's plan."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_name="plan_run",
            description="Validates a training run's locations and writes its per-location plan",
            bucket=bucket,
            key=key,
            training=training,
            environment={
                "MAX_LOCATIONS": str(MAX_LOCATIONS),
                TRAINING_STEP_ENV: training.algorithm_spec.job_step,
                ALGORITHM_ENV: training.algorithm,
            },
            timeout=Duration.minutes(2),
            memory_size=512,
        )
        self.permissions.allow_objects(
            bucket,
            S3_READ,
            [f"{s3_layout.LOCATION_MANIFESTS_PREFIX}*"],
            why_wildcard="Users upload location lists of any name under location-manifests/.",
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject", "s3:PutObject"],
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/plan.json"],
            why_wildcard="Each run writes (and on retry re-reads) its plan at "
            "pipeline-runs/<run id>/plan.json.",
        )
        self.permissions.allow(
            ["s3:GetObject"],
            [
                bucket.arn_for_objects(k)
                for k in (s3_layout.SERVING_GENERATION_KEY, s3_layout.NEWEST_GENERATION_KEY)
            ],
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject"],
            [generation_key(s3_layout.generation_record_key, "*")],
            why_wildcard="A run reads the complete.json of the generation it would reuse "
            "(preprocessor/<generation>/complete.json) to check which algorithm trained it.",
        )
        # A refit lists the generation it replaces (model-pointers/<generation>/), and only with
        # ListBucket does S3 answer a missing newest.json (a first run) with 404 rather than 403.
        self.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.permissions.allow_key(key)


class GenerateDataFunction(TrainingFunction):
    """``generate_data``: one location's synthetic housing data, as the ``data`` settings describe."""

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
        super().__init__(
            scope,
            construct_id,
            handler_name="generate_data",
            description="Generates one location's synthetic housing data (train/validation/test CSV)",
            bucket=bucket,
            key=key,
            training=training,
            environment={
                "KMS_KEY_ARN": key.key_arn,
                "HOUSES_PER_LOCATION": str(data.houses_per_location),
                "SEED": str(data.seed),
                "VALIDATION_FRACTION": repr(data.validation_fraction),
                "TEST_FRACTION": repr(data.test_fraction),
            },
            timeout=Duration.minutes(5),
            memory_size=1024,
        )
        self.permissions.allow_objects(
            bucket,
            S3_WRITE,
            [f"{s3_layout.RAW_DATA_PREFIX}*"],
            why_wildcard="Writes raw-data/<run id>/<split>/<location>.csv for the locations of each run.",
        )
        self.permissions.allow_key(key, ["kms:GenerateDataKey"])


class PromoteArtifactFunction(TrainingFunction):
    """``promote_artifact``: copies a finished training job's artifact server-side into its place (a
    location's model under ``models/`` and its pointer, or a generation's preprocessor)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_name="promote_artifact",
            description="Copies a finished training artifact server-side into the multi-model prefix",
            bucket=bucket,
            key=key,
            training=training,
            environment={"KMS_KEY_ARN": key.key_arn},
            timeout=Duration.minutes(15),
        )
        job_step = training.algorithm_spec.job_step
        self.permissions.allow(
            ["sagemaker:DescribeTrainingJob", "sagemaker:ListTags"],
            training_job_arns(self, job_step),
            why_wildcard="Training job names are made per run and location "
            f"(pp-<run>, {job_step}-<location>-<run>).",
        )
        self.permissions.allow_objects(
            bucket,
            S3_READ,
            [f"{s3_layout.TRAINING_OUTPUT_PREFIX}*"],
            why_wildcard="Reads the finished artifacts of any run under training-output/.",
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject", *S3_WRITE],
            [f"{s3_layout.MULTI_MODEL_PREFIX}*", f"{s3_layout.MODEL_POINTERS_PREFIX}*"],
            why_wildcard="Writes a new versioned key per location under models/ and that location's "
            "pointer under model-pointers/.",
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject", *S3_WRITE],
            [generation_key(s3_layout.preprocessor_artifact_key, "*")],
            why_wildcard="Writes each new generation's preprocessor/<generation>/model.tar.gz (and reads "
            "it to check a model's generation exists); generations are named per run.",
        )
        # Without ListBucket, S3 answers HeadObject on a missing key with 403 instead of 404, and the
        # handler could not tell "not promoted yet" from "forbidden".
        self.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.permissions.allow_key(key)


class CheckTransformFunction(TrainingFunction):
    """``check_transform``: fails one location whose transform output is missing or holds rejected rows."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_name="check_transform",
            description="Fails one location whose rows the run's batch transform rejected, with the reason",
            bucket=bucket,
            key=key,
            training=training,
            environment={},
            timeout=Duration.minutes(2),
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject"],
            [f"{s3_layout.PREPROCESSED_DATA_PREFIX}*"],
            why_wildcard="Reads each location's transform output preprocessed-data/<run id>/<split>/"
            "<location>.csv.out.",
        )
        # Only with ListBucket does S3 answer a missing output (a location the transform skipped)
        # with 404 rather than 403.
        self.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.permissions.allow_key(key, KMS_READ)


class SummarizeRunFunction(TrainingFunction):
    """``summarize_run``: the run's summary, and a complete refit's generation record."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        training: TrainingConfig,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            handler_name="summarize_run",
            description="Summarises a training run and records a refit's generation once it is complete",
            bucket=bucket,
            key=key,
            training=training,
            environment={"KMS_KEY_ARN": key.key_arn, ALGORITHM_ENV: training.algorithm},
            timeout=Duration.minutes(5),
            memory_size=1024,
        )
        self.permissions.allow_objects(
            bucket,
            S3_READ,
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/results/*"],
            why_wildcard="Reads the training Map's result files under pipeline-runs/<run id>/results/.",
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:PutObject"],
            [f"{s3_layout.PIPELINE_RUNS_PREFIX}*/summary.json"],
            why_wildcard="Writes each run's summary at pipeline-runs/<run id>/summary.json.",
        )
        self.permissions.allow_objects(
            bucket,
            ["s3:GetObject", "s3:PutObject"],
            [generation_key(s3_layout.generation_record_key, "*")],
            why_wildcard="A complete refit writes (and on retry re-reads) preprocessor/<generation>/"
            "complete.json; generations are named per run.",
        )
        self.permissions.allow(["s3:PutObject"], [bucket.arn_for_objects(s3_layout.NEWEST_GENERATION_KEY)])
        # Only with ListBucket does S3 answer the first read of a missing complete.json with 404.
        self.permissions.allow(["s3:ListBucket"], [bucket.bucket_arn])
        self.permissions.allow_key(key)
