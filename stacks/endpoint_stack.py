"""Stateless stack: the multi-model inference-pipeline endpoint and its autoscaling."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from mme_constructs.multi_model_endpoint import NEWEST_GENERATION, MultiModelEndpoint
from mme_shared.stack_names import ALGORITHM, ENDPOINT_ARN, ENDPOINT_NAME, VARIANT_NAME
from project_config.model import AlarmsConfig, EndpointConfig, TrainingConfig
from stacks.storage_stack import StorageExports


class EndpointStack(Stack):
    """Serves every promoted per-location model of one preprocessor generation from one endpoint.

    ``preprocessor_generation`` pins the generation (``pp-<run id>``, from the CDK context key
    ``preprocessor_generation``); ``newest`` serves the newest complete one at creation. ``alarms``
    sets the thresholds of the two rollback alarms an endpoint update watches (the monitoring stack
    alarms on the same conditions to notify).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageExports,
        endpoint: EndpointConfig,
        training: TrainingConfig,
        alarms: AlarmsConfig,
        preprocessor_generation: str = NEWEST_GENERATION,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="SageMaker multi-model endpoint project: the multi-model inference-pipeline endpoint",
        )
        # The bucket and multi-model prefix are outputs of the storage stack (re-exporting an import
        # here would only duplicate them).
        self.endpoint = MultiModelEndpoint(
            self,
            "MultiModelEndpoint",
            bucket=storage.import_bucket(self),
            key=storage.import_key(self),
            endpoint=endpoint,
            training=training,
            alarms=alarms,
            preprocessor_generation=preprocessor_generation,
        )
        for output, value, description in (
            (ENDPOINT_NAME, self.endpoint.endpoint_name, "InvokeEndpoint target"),
            (
                ENDPOINT_ARN,
                self.endpoint.endpoint_arn,
                "Resource of every tenant's InvokeEndpoint permission",
            ),
            (
                VARIANT_NAME,
                self.endpoint.variant_name,
                "Production variant (CloudWatch dimension VariantName)",
            ),
            (
                ALGORITHM,
                training.algorithm,
                "The built-in algorithm of the MultiModel container (how mme reads its answers)",
            ),
        ):
            CfnOutput(self, output.key, value=value, description=description)
