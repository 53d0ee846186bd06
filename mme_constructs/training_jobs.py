"""The SageMaker states of the training definition: what each job asks for, and how it is retried.

:class:`SageMakerJobs` makes the four kinds of job state the flow
(:mod:`mme_constructs.training_definition`) places: the preprocessor fit (FitPreprocessor), its model
(CreatePreprocessorModel), one batch transform per split (TransformTrain, TransformValidation) and a
location's training job (TrainModel). Every one runs as the job role, encrypts its output and volume
with the project key and backs off on the errors after which nothing was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import Aws, Duration, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mme_constructs.algorithms import PreprocessorOutput
from mme_constructs.images import image_uris
from mme_constructs.preprocessor_source import ENTRY_POINT, PreprocessorSource
from mme_shared.transform_output import (
    LABELLED_TRANSFORM_MODE,
    PREPROCESSOR_MODE_ENV,
    UNLABELLED_TRANSFORM_MODE,
)
from project_config.model import PREPROCESSED_FEATURE_COUNT, TrainingConfig

TRANSFORM_MODES: Final[dict[PreprocessorOutput, str]] = {
    "label-first": LABELLED_TRANSFORM_MODE,
    "features-only": UNLABELLED_TRANSFORM_MODE,
}
"""The preprocessor mode of the training transforms, by what the algorithm trains on."""
LOCATION_TAG: Final = "mme:location"
GENERATION_TAG: Final = "mme:preprocessor-generation"
"""Per-location training jobs carry their generation; the promotion Lambda files the model under it."""

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


@dataclass(frozen=True)
class TrainingImages:
    """The three images the training pipeline's jobs run, right for the stack's region."""

    sklearn_training: str
    """The preprocessor fit (scikit-learn, training scope)."""
    sklearn_serving: str
    """The preprocessor model of the batch transforms (scikit-learn, inference scope)."""
    algorithm: str
    """The per-location training jobs (the built-in algorithm, training scope)."""

    @classmethod
    def of(cls, stack: Stack, training: TrainingConfig) -> TrainingImages:
        training_uris, inference_uris = (
            image_uris(
                stack,
                sklearn_framework_version=training.sklearn_framework_version,
                algorithm=training.algorithm_image,
                sklearn_scope=scope_name,
            )
            for scope_name in ("training", "inference")
        )
        return cls(
            sklearn_training=training_uris.sklearn,
            sklearn_serving=inference_uris.sklearn,
            algorithm=training_uris.algorithm,
        )

    @property
    def pulled(self) -> list[str]:
        """Every image the job role pulls."""
        return [self.sklearn_training, self.sklearn_serving, self.algorithm]


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


class SageMakerJobs:
    """Makes the definition's SageMaker states in ``scope`` (their ids are their state names).

    The jobs read their names and S3 URIs from the run's plan (``$.plan``) or, in the training Map,
    from the plan item (``$.item``), both written by the PlanRun Lambda.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        job_role: iam.IRole,
        key: kms.IKey,
        images: TrainingImages,
        preprocessor_source: PreprocessorSource,
        training: TrainingConfig,
    ) -> None:
        self._scope = scope
        self._job_role = job_role
        self._key = key
        self._images = images
        self._source = preprocessor_source
        self._training = training

    def fit_preprocessor(self) -> tasks.SageMakerCreateTrainingJob:
        """The refit's scikit-learn training job over the run's raw training split."""
        fit = tasks.SageMakerCreateTrainingJob(
            self._scope,
            "FitPreprocessor",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at("$.plan.preprocessor_job_name"),
            role=self._job_role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(self._images.sklearn_training),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters={
                "sagemaker_program": ENTRY_POINT,
                "sagemaker_submit_directory": self._source.s3_object_url,
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
        _retry_sagemaker(fit)
        return fit

    def create_preprocessor_model(self) -> tasks.SageMakerCreateModel:
        """The transforms' model, from the generation's immutable preprocessor artifact."""
        create_model = tasks.SageMakerCreateModel(
            self._scope,
            "CreatePreprocessorModel",
            model_name=sfn.JsonPath.string_at("$.plan.preprocessor_model_name"),
            role=self._job_role,
            primary_container=tasks.ContainerDefinition(
                image=tasks.DockerImage.from_registry(self._images.sklearn_serving),
                model_s3_location=tasks.S3Location.from_json_expression("$.plan.preprocessor_artifact_uri"),
                environment_variables=sfn.TaskInput.from_object(
                    {
                        "SAGEMAKER_PROGRAM": ENTRY_POINT,
                        "SAGEMAKER_SUBMIT_DIRECTORY": self._source.s3_object_url,
                        "SAGEMAKER_REGION": Aws.REGION,
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    }
                ),
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        _retry_sagemaker(create_model)
        return create_model

    def transform(self, split: str) -> tasks.SageMakerCreateTransformJob:
        """One batch transform of a split over every location of the run."""
        transform = tasks.SageMakerCreateTransformJob(
            self._scope,
            f"Transform{split.capitalize()}",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            transform_job_name=sfn.JsonPath.string_at(f"$.plan.transform_{split}_job_name"),
            model_name=sfn.JsonPath.string_at("$.plan.preprocessor_model_name"),
            role=self._job_role,
            environment={
                PREPROCESSOR_MODE_ENV: TRANSFORM_MODES[self._training.algorithm_spec.preprocessor_output]
            },
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

    def train_model(self) -> tasks.SageMakerCreateTrainingJob:
        """One location's training job (the algorithm), tagged with its location and generation."""
        algorithm = self._training.algorithm_spec
        train_model = _WarmPoolTrainingJob(
            self._scope,
            "TrainModel",
            keep_alive_seconds=self._training.warm_pool_keep_alive_seconds,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at("$.item.training_job_name"),
            role=self._job_role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(self._images.algorithm),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters=self._training.training_hyperparameters,
            input_data_config=[
                self._channel(
                    channel.name,
                    f"$.item.preprocessed_{channel.split}_uri",
                    algorithm.content_type,
                    sharded=channel.sharded,
                )
                for channel in algorithm.channels
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
        return train_model

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
