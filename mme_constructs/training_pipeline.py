"""The training side as one Step Functions state machine: the construct that puts it together.

Where each part lives:

* :mod:`mme_constructs.training_functions`: the five Lambdas, one class each, with the
  environment, the grants and the metrics of that handler;
* :mod:`mme_constructs.training_definition`: the flow of a run (execution input, states, catches);
* :mod:`mme_constructs.training_jobs`: the SageMaker job states (requests, retries, warm pool) and
  the images they run;
* :mod:`mme_constructs.training_roles`: the policies of the job role and the state machine role.

This module creates them in a fixed order, the order in which their resources, policy statements
and states appear in the template.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mme_constructs.access import service_principal
from mme_constructs.handler_function import encrypted_log_group
from mme_constructs.preprocessor_source import PreprocessorSource
from mme_constructs.training_definition import InvokedFunctions, TrainingDefinition
from mme_constructs.training_functions import (
    CheckTransformFunction,
    GenerateDataFunction,
    PlanRunFunction,
    PromoteArtifactFunction,
    SummarizeRunFunction,
)
from mme_constructs.training_jobs import TrainingImages
from mme_constructs.training_roles import (
    DistributedMapPermissions,
    JobPermissions,
    StateMachinePermissions,
)
from project_config.model import DataConfig, TrainingConfig


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
        self.algorithm = training.algorithm_spec
        self.preprocessor_source = PreprocessorSource(self, "PreprocessorSource")
        images = TrainingImages.of(Stack.of(self), training)
        job_role = self._job_role(bucket=bucket, key=key, images=images)
        functions = self._create_functions(bucket=bucket, key=key, training=training, data=data)
        self.log_group = encrypted_log_group(
            self, "StateMachineLogs", key=key, retention_days=training.log_retention_days
        )
        self.state_machine_role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=service_principal("states.amazonaws.com"),
            description="Runs the training state machine",
        )
        state_machine_permissions = StateMachinePermissions(
            self,
            "StateMachinePermissions",
            role=self.state_machine_role,
            functions=functions.all(),
            job_role=self.job_role,
            bucket=bucket,
            key=key,
            training=training,
        )
        definition = TrainingDefinition(
            self,
            functions=functions,
            job_role=job_role,
            bucket=bucket,
            key=key,
            images=images,
            preprocessor_source=self.preprocessor_source,
            training=training,
        )
        self.state_machine = self._state_machine(definition.chain(), training)
        # Step Functions checks the role's log-delivery permissions when the state machine is created.
        self.state_machine.node.add_dependency(state_machine_permissions)
        # CDK attaches an inline policy for the Distributed Maps' child executions even to a role
        # passed with without_policy_updates(); the same grants live in a managed policy instead.
        self.state_machine.node.try_remove_child("DistributedMapPolicy")
        DistributedMapPermissions(
            self, "DistributedMapPermissions", role=self.state_machine_role, state_machine=self.state_machine
        )

    def _job_role(self, *, bucket: s3.IBucket, key: kms.IKey, images: TrainingImages) -> iam.IRole:
        """The jobs' execution role with its one policy; returns the role the SageMaker tasks get."""
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=service_principal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the training pipeline's jobs and models",
        )
        job_role = self.job_role.without_policy_updates()
        JobPermissions(
            self,
            "JobPermissions",
            role=job_role,
            bucket=bucket,
            key=key,
            preprocessor_source=self.preprocessor_source,
            images=images.pulled,
        )
        return job_role

    def _create_functions(
        self, *, bucket: s3.IBucket, key: kms.IKey, training: TrainingConfig, data: DataConfig
    ) -> InvokedFunctions:
        """The five Lambdas (each class holds its environment and grants); returns what the
        definition invokes."""
        self.plan_run = PlanRunFunction(self, "PlanRunFunction", bucket=bucket, key=key, training=training)
        self.generate_data = GenerateDataFunction(
            self, "GenerateDataFunction", bucket=bucket, key=key, training=training, data=data
        )
        self.promote_artifact = PromoteArtifactFunction(
            self, "PromoteArtifactFunction", bucket=bucket, key=key, training=training
        )
        self.check_transform = CheckTransformFunction(
            self, "CheckTransformFunction", bucket=bucket, key=key, training=training
        )
        self.summarize_run = SummarizeRunFunction(
            self, "SummarizeRunFunction", bucket=bucket, key=key, training=training
        )
        return InvokedFunctions(
            plan_run=self.plan_run.function,
            generate_data=self.generate_data.function,
            check_transform=self.check_transform.function,
            promote_artifact=self.promote_artifact.function,
            summarize_run=self.summarize_run.function,
        )

    def _state_machine(self, definition: sfn.IChainable, training: TrainingConfig) -> sfn.StateMachine:
        return sfn.StateMachine(
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
