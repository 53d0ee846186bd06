"""One CloudWatch dashboard and one alarm topic per deployment, and the endpoint-health alarms.

The dashboard is :class:`mme_constructs.dashboard.OperatorDashboard`; the metrics both it and the
alarms read are typed values (:mod:`mme_constructs.metrics`). The endpoint-health conditions are
defined once here (:func:`endpoint_health_alarms`): the monitoring stack notifies on them and the
endpoint stack rolls an endpoint update back on them (:class:`RollbackAlarms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mme_constructs.access import acknowledge
from mme_constructs.dashboard import OperatorDashboard
from mme_constructs.metrics import FIVE_MINUTES, MICROSECONDS_TO_MS, EndpointMetrics, TrainingMetrics
from mme_shared.stack_names import rollback_alarm_name
from project_config.model import ROLLBACK_ALARM_WINDOW_SECONDS, AlarmsConfig

AT_LEAST: Final = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


@dataclass(frozen=True)
class AlarmCondition:
    """One condition the monitoring stack notifies the alarm topic about."""

    construct_id: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    comparison: cloudwatch.ComparisonOperator = AT_LEAST
    evaluation_periods: int = 1


@dataclass(frozen=True)
class EndpointHealthAlarm:
    """One endpoint-health condition: both the monitoring stack (to notify) and the endpoint stack
    (to roll back an endpoint update) alarm on it, built from this one definition."""

    construct_id: str
    name_suffix: str
    metric_name: str
    statistic: str
    label: str
    threshold: float
    evaluation_periods: int
    description: str

    @property
    def window_seconds(self) -> int:
        """How long the condition must hold before the alarm can fire."""
        return int(FIVE_MINUTES.to_seconds()) * self.evaluation_periods

    def metric(self, endpoint: EndpointMetrics) -> cloudwatch.Metric:
        return endpoint.sagemaker(self.metric_name, self.statistic, self.label, FIVE_MINUTES)

    def condition(self, endpoint: EndpointMetrics) -> AlarmCondition:
        """This condition as the monitoring stack notifies on it."""
        return AlarmCondition(
            self.construct_id,
            self.metric(endpoint),
            self.threshold,
            self.description,
            evaluation_periods=self.evaluation_periods,
        )


def endpoint_health_alarms(alarms: AlarmsConfig) -> tuple[EndpointHealthAlarm, ...]:
    """The conditions that mean a new preprocessor or model is bad: server errors and slow models.

    Not 4XX: during a generation switch, clients still holding the old generation's TargetModels
    get "model not found" (HTTP 400) by design, and a 4XX rollback alarm would undo every switch.
    """
    return (
        EndpointHealthAlarm(
            "Errors5xxAlarm",
            "Invocation5XXErrors",
            "Invocation5XXErrors",
            "Sum",
            "5XX errors",
            alarms.invocation_5xx_errors_per_5_minutes,
            1,
            "The endpoint returned server errors (5XX): a container failed to load or serve a model.",
        ),
        EndpointHealthAlarm(
            "LatencyP99HighAlarm",
            "ModelLatencyP99",
            "ModelLatency",
            "p99",
            "ModelLatency p99",
            alarms.model_latency_p99_max_ms * MICROSECONDS_TO_MS,  # the metric is in microseconds
            3,
            f"p99 model latency is above {alarms.model_latency_p99_max_ms} ms.",
        ),
    )


class RollbackAlarms(Construct):
    """The endpoint-health alarms an endpoint update watches (``AutoRollbackConfiguration``).

    They live in the endpoint stack because the Endpoint names them: the monitoring stack depends on
    the endpoint stack, so alarms there could not be named by the endpoint without a cycle. The
    names are explicit and derived from the stack name (``<stack>-Rollback-<condition>``): the
    Endpoint refers to them by name (SageMaker takes alarm names, not ARNs), and CloudFormation
    stack names are unique per account and region, as CloudWatch alarm names must be, so two
    deployments can never share one. They have no actions: the monitoring stack's alarms on the same
    conditions notify, and a rollback is visible as the failed stack update. Their metrics are keyed
    by the endpoint's name, which the endpoint stack sets (its own stack name), so CloudFormation
    creates them before the Endpoint that names them in its DeploymentConfig.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        alarms: AlarmsConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        endpoint = EndpointMetrics(endpoint_name, variant_name)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.alarm_names: list[str] = []
        self.alarm_arns: list[str] = []
        for spec in endpoint_health_alarms(alarms):
            name = rollback_alarm_name(stack.stack_name, spec.name_suffix)
            self.alarms[spec.construct_id] = cloudwatch.Alarm(
                self,
                spec.construct_id,
                alarm_name=name,
                metric=spec.metric(endpoint),
                threshold=spec.threshold,
                comparison_operator=AT_LEAST,
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Rolls back an endpoint update: {spec.description}",
            )
            acknowledge(
                self.alarms[spec.construct_id].node.default_child or self.alarms[spec.construct_id],
                "NIST.800.53.R5::NIST.800.53.R5-CloudWatchAlarmAction",
                "SageMaker's deployment guardrails act on this alarm (automatic rollback of an endpoint "
                "update); the monitoring stack's alarm on the same condition notifies the alarm topic, "
                "which this stack cannot reference (the monitoring stack depends on it).",
            )
            self.alarm_names.append(name)
            # Known before the alarm exists, so the execution role's policy needs no reference to it.
            self.alarm_arns.append(
                stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            )
        slowest = max(spec.window_seconds for spec in endpoint_health_alarms(alarms))
        if slowest > ROLLBACK_ALARM_WINDOW_SECONDS:
            raise ValueError(
                f"a rollback alarm needs {slowest} s of data, more than the "
                f"{ROLLBACK_ALARM_WINDOW_SECONDS} s the config's baking-period check assumes"
            )


def endpoint_alarm_conditions(endpoint: EndpointMetrics, alarms: AlarmsConfig) -> tuple[AlarmCondition, ...]:
    """Server and client errors, the model cache, instance memory and disk, model latency."""
    health = {spec.construct_id: spec.condition(endpoint) for spec in endpoint_health_alarms(alarms)}
    five = FIVE_MINUTES
    return (
        health["Errors5xxAlarm"],
        AlarmCondition(
            "Errors4xxSpikeAlarm",
            endpoint.sagemaker("Invocation4XXErrors", "Sum", "4XX errors", five),
            alarms.invocation_4xx_errors_per_5_minutes,
            "Many client errors (4XX): unknown TargetModel names, malformed rows or denied callers.",
        ),
        AlarmCondition(
            "CacheHitLowAlarm",
            cloudwatch.MathExpression(
                # Only judged while there is real traffic: an idle or barely used endpoint is fine.
                expression=f"IF(invocations >= {alarms.cache_alarm_min_invocations_per_5_minutes}, hit, 1)",
                using_metrics={
                    "invocations": endpoint.sagemaker("Invocations", "Sum", "Invocations", five),
                    "hit": endpoint.sagemaker("ModelCacheHit", "Average", "ModelCacheHit", five),
                },
                label="ModelCacheHit while busy",
                period=five,
            ),
            alarms.model_cache_hit_ratio_min,
            "Under real traffic, too few requests find their model loaded: the cache is thrashing.",
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
        ),
        AlarmCondition(
            "UnloadThrashingAlarm",
            endpoint.sagemaker("ModelUnloadingTime", "SampleCount", "unloads", five),
            alarms.model_unloads_per_5_minutes,
            "Models are unloaded faster than expected: memory is too small for the working set.",
            evaluation_periods=2,
        ),
        AlarmCondition(
            "MemoryHighAlarm",
            endpoint.instances("MemoryUtilization", "Average", "MemoryUtilization", five),
            alarms.memory_utilization_max_percent,
            "Instance memory is nearly full: expect unloads and cold starts.",
            evaluation_periods=3,
        ),
        AlarmCondition(
            "DiskHighAlarm",
            endpoint.instances("DiskUtilization", "Average", "DiskUtilization", five),
            alarms.disk_utilization_max_percent,
            "Instance disk is nearly full: models cached on disk will be evicted and re-downloaded.",
            evaluation_periods=3,
        ),
        health["LatencyP99HighAlarm"],
    )


def training_alarm_conditions(training: TrainingMetrics) -> tuple[AlarmCondition, ...]:
    """A training run that failed or timed out; a promotion that failed."""
    return (
        AlarmCondition(
            "TrainingRunFailedAlarm",
            cloudwatch.MathExpression(
                expression="failed + timed_out",
                using_metrics={"failed": training.runs_failed(), "timed_out": training.runs_timed_out()},
                label="training runs failed or timed out",
                period=FIVE_MINUTES,
            ),
            1,
            "A training run failed or timed out; see the execution and its summary.",
        ),
        AlarmCondition(
            "PromotionErrorsAlarm",
            training.promotion_errors(),
            1,
            "The promotion Lambda failed: a trained model was not published.",
        ),
    )


class AlarmTopic(sns.Topic):
    """The KMS-encrypted, TLS-only topic the monitoring stack's alarms notify, with its subscriptions."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, email_subscriptions: Sequence[str]
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            display_name="SageMaker multi-model endpoint alarms",
            master_key=key,
            enforce_ssl=True,
        )
        for address in email_subscriptions:
            self.add_subscription(subscriptions.EmailSubscription(address))

    def allow_alarms_to_publish(self, alarms: Iterable[cloudwatch.IAlarm]) -> None:
        """Let exactly these alarms (this deployment's) publish to the topic.

        A topic policy replaces SNS's default policy, and ``enforce_ssl`` writes one whose only
        statement is the TLS deny: without this statement no alarm notification would ever arrive.
        The CloudWatch service principal may publish for alarms of this account (``aws:SourceAccount``)
        and only for the alarms given here (``aws:SourceArn``), as the Amazon SNS developer guide
        recommends against the confused deputy ("Amazon SNS access control case examples", and
        "Encryption at rest": AWS services publishing to encrypted topics; the key-policy half is the
        storage stack's ``AllowCloudWatchAlarmsToPublishToEncryptedTopics``).
        https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
        """
        self.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisDeploymentsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in alarms]},
                },
            )
        )


class EndpointObservability(Construct):
    """Dashboard + alarms for the endpoint, the training state machine and the promotion Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: EndpointMetrics,
        state_machine: sfn.IStateMachine,
        promotion_function: lambda_.IFunction,
        key: kms.IKey,
        alarms: AlarmsConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        training = TrainingMetrics(state_machine, promotion_function)
        self.dashboard = OperatorDashboard(self, "Dashboard", endpoint=endpoint, training=training)
        self.topic = AlarmTopic(self, "AlarmTopic", key=key, email_subscriptions=alarms.email_subscriptions)
        action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for condition in (*endpoint_alarm_conditions(endpoint, alarms), *training_alarm_conditions(training)):
            self.alarms[condition.construct_id] = self._notifying_alarm(condition, action)
        self.topic.allow_alarms_to_publish(self.alarms.values())

    def _notifying_alarm(
        self, condition: AlarmCondition, action: cloudwatch.IAlarmAction
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            condition.construct_id,
            metric=condition.metric,
            threshold=condition.threshold,
            comparison_operator=condition.comparison,
            evaluation_periods=condition.evaluation_periods,
            # No data means no traffic or no run: nothing is wrong.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=condition.description,
        )
        alarm.add_alarm_action(action)
        return alarm
