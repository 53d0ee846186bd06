"""The metrics the dashboard and the alarms read, as typed values instead of hand-built dimensions.

The training state machine and the promotion Lambda are L2 constructs: their metrics come from
their own ``metric_*()`` methods, which know the namespace and the dimension. The endpoint is an L1
``CfnEndpoint`` with no such methods, so :class:`EndpointMetrics` holds its two dimensions once.
Metric facts (namespaces, statistics, units) follow shared/REFERENCE.md: the MME cache and latency
metrics are in ``AWS/SageMaker``, the instance metrics (including LoadedModelCount) in
``/aws/sagemaker/Endpoints``, both keyed by EndpointName and VariantName; model-loading and latency
times are in **microseconds**.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn

SAGEMAKER: Final = "AWS/SageMaker"
ENDPOINT_INSTANCES: Final = "/aws/sagemaker/Endpoints"
FIVE_MINUTES: Final = Duration.minutes(5)
ONE_MINUTE: Final = Duration.minutes(1)
MICROSECONDS_TO_MS: Final = 1000


@dataclass(frozen=True)
class EndpointMetrics:
    """The metrics of one endpoint variant, in either of the two namespaces SageMaker publishes to."""

    endpoint_name: str
    variant_name: str

    def sagemaker(
        self, name: str, statistic: str, label: str, period: Duration = ONE_MINUTE
    ) -> cloudwatch.Metric:
        """An invocation, latency or model-cache metric (``AWS/SageMaker``)."""
        return self._metric(SAGEMAKER, name, statistic, label, period)

    def instances(
        self, name: str, statistic: str, label: str, period: Duration = ONE_MINUTE
    ) -> cloudwatch.Metric:
        """An instance metric (``/aws/sagemaker/Endpoints``): CPU, memory, disk, loaded models."""
        return self._metric(ENDPOINT_INSTANCES, name, statistic, label, period)

    def _metric(
        self, namespace: str, name: str, statistic: str, label: str, period: Duration
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": self.variant_name},
            statistic=statistic,
            label=label,
            period=period,
        )


def in_milliseconds(metric: cloudwatch.Metric, label: str) -> cloudwatch.MathExpression:
    """A microsecond metric converted to milliseconds with metric math."""
    # Metric-math ids must be unique within a widget; derive one from metric and statistic.
    metric_id = re.sub(r"[^a-z0-9]", "_", f"{metric.metric_name}_{metric.statistic}".lower())
    return cloudwatch.MathExpression(
        expression=f"{metric_id} / {MICROSECONDS_TO_MS}",
        using_metrics={metric_id: metric},
        label=label,
        period=metric.period,
    )


@dataclass(frozen=True)
class TrainingMetrics:
    """Training runs (executions of the state machine) and the promotion Lambda, per five minutes.

    The dashboard and the alarms read the same series, so each is defined here once.
    """

    state_machine: sfn.IStateMachine
    promotion_function: lambda_.IFunction

    def runs_started(self) -> cloudwatch.Metric:
        return self.state_machine.metric_started(statistic="Sum", label="started", period=FIVE_MINUTES)

    def runs_succeeded(self) -> cloudwatch.Metric:
        return self.state_machine.metric_succeeded(statistic="Sum", label="succeeded", period=FIVE_MINUTES)

    def runs_failed(self) -> cloudwatch.Metric:
        return self.state_machine.metric_failed(statistic="Sum", label="failed", period=FIVE_MINUTES)

    def runs_timed_out(self) -> cloudwatch.Metric:
        return self.state_machine.metric_timed_out(statistic="Sum", label="timed out", period=FIVE_MINUTES)

    def run_time(self) -> cloudwatch.Metric:
        return self.state_machine.metric_time(
            statistic="Average", label="execution time (ms)", period=FIVE_MINUTES
        )

    def promotion_errors(self) -> cloudwatch.Metric:
        return self.promotion_function.metric_errors(statistic="Sum", label="errors", period=FIVE_MINUTES)

    def promotion_throttles(self) -> cloudwatch.Metric:
        return self.promotion_function.metric_throttles(
            statistic="Sum", label="throttles", period=FIVE_MINUTES
        )

    def promotion_duration(self, statistic: str, label: str) -> cloudwatch.Metric:
        return self.promotion_function.metric_duration(statistic=statistic, label=label, period=FIVE_MINUTES)
