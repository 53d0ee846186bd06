"""Stateless stack: the training pipeline (state machine, job role, Lambdas)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from mme_constructs.training_pipeline import TrainingPipeline
from mme_shared.stack_names import PROMOTE_FUNCTION_NAME, STATE_MACHINE_ARN
from project_config.model import DataConfig, TrainingConfig
from stacks.storage_stack import StorageExports


class TrainingStack(Stack):
    """Everything that trains per-location models and promotes them into the multi-model prefix."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageExports,
        training: TrainingConfig,
        data: DataConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="SageMaker multi-model endpoint project: training state machine and promotion",
        )
        self.pipeline = TrainingPipeline(
            self,
            "TrainingPipeline",
            bucket=storage.import_bucket(self),
            key=storage.import_key(self),
            training=training,
            data=data,
        )
        CfnOutput(
            self,
            STATE_MACHINE_ARN.key,
            value=self.pipeline.state_machine.state_machine_arn,
            description='Start an execution named <run id> with {"locations": [...]} to train',
        )
        CfnOutput(
            self,
            PROMOTE_FUNCTION_NAME.key,
            value=self.pipeline.promote_artifact.function.function_name,
            description="Lambda that promotes a finished training job into the multi-model prefix",
        )
