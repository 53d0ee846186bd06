"""Stateless stack: the CloudWatch dashboard and the alarms of one deployment."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mme_constructs.metrics import EndpointMetrics
from mme_constructs.observability import EndpointObservability
from mme_shared.stack_names import ALARM_TOPIC_ARN, DASHBOARD_NAME
from project_config.model import AlarmsConfig
from stacks.storage_stack import StorageExports


class MonitoringStack(Stack):
    """What an operator opens first: cache behaviour, health, training, promotion; one alarm topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageExports,
        endpoint: EndpointMetrics,
        state_machine: sfn.IStateMachine,
        promotion_function: lambda_.IFunction,
        alarms: AlarmsConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="SageMaker multi-model endpoint project: dashboard and alarms",
        )
        self.observability = EndpointObservability(
            self,
            "Observability",
            endpoint=endpoint,
            state_machine=state_machine,
            promotion_function=promotion_function,
            key=storage.import_key(self),
            alarms=alarms,
        )
        CfnOutput(self, DASHBOARD_NAME.key, value=self.observability.dashboard.dashboard_name)
        CfnOutput(self, ALARM_TOPIC_ARN.key, value=self.observability.topic.topic_arn)
