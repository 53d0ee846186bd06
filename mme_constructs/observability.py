"""One CloudWatch dashboard and one alarm topic per deployment.

The dashboard answers three questions at a glance: is the endpoint healthy, is its model cache
thrashing, does training work. Metric facts (namespaces, dimensions, statistics, units) follow
shared/REFERENCE.md: the MME cache and latency metrics are in ``AWS/SageMaker`` and the instance
metrics (including LoadedModelCount) in ``/aws/sagemaker/Endpoints``, both keyed by EndpointName and
VariantName; the model-loading and latency times are in **microseconds** and are converted to
milliseconds here with metric math.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from mme_constructs.access import acknowledge
from project_config.model import ROLLBACK_ALARM_WINDOW_SECONDS, AlarmsConfig

SAGEMAKER: Final = "AWS/SageMaker"
ENDPOINT_INSTANCES: Final = "/aws/sagemaker/Endpoints"
STATES: Final = "AWS/States"
LAMBDA: Final = "AWS/Lambda"
FIVE_MINUTES: Final = Duration.minutes(5)
ONE_MINUTE: Final = Duration.minutes(1)
MICROSECONDS_TO_MS: Final = 1000
AT_LEAST: Final = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD

READING_GUIDE: Final = """### How to read the cache charts
* **ModelCacheHit** (right axis, 0-1) is the share of requests whose model was already loaded. It
  should sit near 1 once traffic is steady; it dips whenever new or long-unused models are called.
* **LoadedModelCount** levels off when memory is full: from then on every new model evicts one.
* **Unloads** (model loading chart) together with a **falling cache-hit** ratio mean the fleet is
  too small for the working set: add instances, use a larger instance type, or reduce model size.
* **Model wait/download/load times** are what a cold call pays (the walkthrough saw about 1-1.5 s);
  warm calls only pay ModelLatency."""

TRAINING_GUIDE: Final = """### Training and promotion
A run is one execution of the training state machine; a location that fails does not fail the
run, so also read the run's summary (`pipeline-runs/<run>/summary.json`). Promotion errors mean a
trained model was not published; its location keeps serving its previous version."""


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

    def metric(self, endpoint_name: str, variant_name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=SAGEMAKER,
            metric_name=self.metric_name,
            dimensions_map={"EndpointName": endpoint_name, "VariantName": variant_name},
            statistic=self.statistic,
            label=self.label,
            period=FIVE_MINUTES,
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
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.alarm_names: list[str] = []
        self.alarm_arns: list[str] = []
        for spec in endpoint_health_alarms(alarms):
            name = f"{stack.stack_name}-Rollback-{spec.name_suffix}"
            self.alarms[spec.construct_id] = cloudwatch.Alarm(
                self,
                spec.construct_id,
                alarm_name=name,
                metric=spec.metric(endpoint_name, variant_name),
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


class EndpointObservability(Construct):
    """Dashboard + alarms for the endpoint, the training state machine and the promotion Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str,
        state_machine_arn: str,
        promotion_function_name: str,
        key: kms.IKey,
        alarms: AlarmsConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint = {"EndpointName": endpoint_name, "VariantName": variant_name}

        def sagemaker(
            name: str, statistic: str, label: str, period: Duration = ONE_MINUTE
        ) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=SAGEMAKER,
                metric_name=name,
                dimensions_map=endpoint,
                statistic=statistic,
                label=label,
                period=period,
            )

        def instances(
            name: str, statistic: str, label: str, period: Duration = ONE_MINUTE
        ) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=ENDPOINT_INSTANCES,
                metric_name=name,
                dimensions_map=endpoint,
                statistic=statistic,
                label=label,
                period=period,
            )

        def in_ms(metric: cloudwatch.Metric, label: str) -> cloudwatch.MathExpression:
            # Metric-math ids must be unique within a widget; derive one from metric and statistic.
            metric_id = re.sub(r"[^a-z0-9]", "_", f"{metric.metric_name}_{metric.statistic}".lower())
            return cloudwatch.MathExpression(
                expression=f"{metric_id} / {MICROSECONDS_TO_MS}",
                using_metrics={metric_id: metric},
                label=label,
                period=metric.period,
            )

        executions = {"StateMachineArn": state_machine_arn}

        def states(name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=STATES,
                metric_name=name,
                dimensions_map=executions,
                statistic=statistic,
                label=label,
                period=FIVE_MINUTES,
            )

        promotion = {"FunctionName": promotion_function_name}

        def lambda_metric(name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=LAMBDA,
                metric_name=name,
                dimensions_map=promotion,
                statistic=statistic,
                label=label,
                period=FIVE_MINUTES,
            )

        # -- metrics ---------------------------------------------------------------------------
        invocations = sagemaker("Invocations", "Sum", "Invocations")
        errors_4xx = sagemaker("Invocation4XXErrors", "Sum", "4XX errors")
        errors_5xx = sagemaker("Invocation5XXErrors", "Sum", "5XX errors")
        cache_hit = sagemaker("ModelCacheHit", "Average", "ModelCacheHit (ratio)")
        unloading_time = sagemaker("ModelUnloadingTime", "Average", "unload time")
        unload_count = sagemaker("ModelUnloadingTime", "SampleCount", "unloads (count)")
        loaded_models = instances("LoadedModelCount", "Average", "LoadedModelCount (per instance)")
        memory = instances("MemoryUtilization", "Average", "MemoryUtilization (%)")
        disk = instances("DiskUtilization", "Average", "DiskUtilization (%)")
        cpu = instances("CPUUtilization", "Average", "CPUUtilization (%, all cores)")
        model_latency_p99 = sagemaker("ModelLatency", "p99", "ModelLatency p99")

        # -- dashboard -------------------------------------------------------------------------
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=READING_GUIDE, width=24, height=6))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Cache: loaded models and memory (left), cache-hit ratio (right)",
                left=[loaded_models, memory],
                right=[cache_hit],
                right_y_axis=cloudwatch.YAxisProps(min=0, max=1, label="hit ratio", show_units=False),
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Model loading (ms, converted from microseconds) and unloads",
                left=[
                    in_ms(sagemaker("ModelLoadingWaitTime", "Average", "wait"), "wait for load (ms)"),
                    in_ms(sagemaker("ModelDownloadingTime", "Average", "download"), "download from S3 (ms)"),
                    in_ms(sagemaker("ModelLoadingTime", "Average", "load"), "load into container (ms)"),
                    in_ms(unloading_time, "unload (ms)"),
                ],
                right=[unload_count],
                left_y_axis=cloudwatch.YAxisProps(min=0, label="ms", show_units=False),
                right_y_axis=cloudwatch.YAxisProps(min=0, label="unloads", show_units=False),
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Traffic and errors",
                left=[invocations, sagemaker("InvocationsPerInstance", "Sum", "InvocationsPerInstance")],
                right=[errors_4xx, errors_5xx],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms, converted from microseconds)",
                left=[
                    in_ms(sagemaker("ModelLatency", "p50", "ModelLatency p50"), "ModelLatency p50 (ms)"),
                    in_ms(model_latency_p99, "ModelLatency p99 (ms)"),
                    in_ms(sagemaker("OverheadLatency", "Average", "OverheadLatency"), "OverheadLatency (ms)"),
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, label="ms", show_units=False),
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Instance health (%) and fleet size",
                left=[cpu, memory, disk],
                right=[
                    # Each instance reports CPUUtilization once a minute, so the per-minute sample
                    # count is the number of instances in service.
                    instances("CPUUtilization", "SampleCount", "instances in service")
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                right_y_axis=cloudwatch.YAxisProps(min=0, label="instances", show_units=False),
                width=24,
            )
        )
        executions_failed = states("ExecutionsFailed", "Sum", "failed")
        executions_timed_out = states("ExecutionsTimedOut", "Sum", "timed out")
        promotion_errors = lambda_metric("Errors", "Sum", "errors")
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(markdown=TRAINING_GUIDE, width=24, height=3),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Training runs",
                left=[
                    states("ExecutionsStarted", "Sum", "started"),
                    states("ExecutionsSucceeded", "Sum", "succeeded"),
                    executions_failed,
                    executions_timed_out,
                ],
                right=[states("ExecutionTime", "Average", "execution time (ms)")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Promotion Lambda",
                left=[promotion_errors, lambda_metric("Throttles", "Sum", "throttles")],
                right=[
                    lambda_metric("Duration", "Average", "duration avg (ms)"),
                    lambda_metric("Duration", "p99", "duration p99 (ms)"),
                ],
                width=12,
            ),
        )

        # -- alarms ----------------------------------------------------------------------------
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="SageMaker multi-model endpoint alarms",
            master_key=key,
            enforce_ssl=True,
        )
        for address in alarms.email_subscriptions:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
        action = cloudwatch_actions.SnsAction(self.topic)
        not_breaching = cloudwatch.TreatMissingData.NOT_BREACHING
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            construct_id: str,
            metric: cloudwatch.IMetric,
            threshold: float,
            description: str,
            *,
            comparison: cloudwatch.ComparisonOperator = AT_LEAST,
            evaluation_periods: int = 1,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=evaluation_periods,
                treat_missing_data=not_breaching,  # no data = no traffic/run: nothing is wrong
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms[construct_id] = created

        five = FIVE_MINUTES
        health = {spec.construct_id: spec for spec in endpoint_health_alarms(alarms)}

        def health_alarm(construct_id: str) -> None:
            spec = health[construct_id]
            alarm(
                construct_id,
                spec.metric(endpoint_name, variant_name),
                spec.threshold,
                spec.description,
                evaluation_periods=spec.evaluation_periods,
            )

        health_alarm("Errors5xxAlarm")
        alarm(
            "Errors4xxSpikeAlarm",
            sagemaker("Invocation4XXErrors", "Sum", "4XX errors", five),
            alarms.invocation_4xx_errors_per_5_minutes,
            "Many client errors (4XX): unknown TargetModel names, malformed rows or denied callers.",
        )
        alarm(
            "CacheHitLowAlarm",
            cloudwatch.MathExpression(
                # Only judged while there is real traffic: an idle or barely used endpoint is fine.
                expression=f"IF(invocations >= {alarms.cache_alarm_min_invocations_per_5_minutes}, hit, 1)",
                using_metrics={
                    "invocations": sagemaker("Invocations", "Sum", "Invocations", five),
                    "hit": sagemaker("ModelCacheHit", "Average", "ModelCacheHit", five),
                },
                label="ModelCacheHit while busy",
                period=five,
            ),
            alarms.model_cache_hit_ratio_min,
            "Under real traffic, too few requests find their model loaded: the cache is thrashing.",
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
        )
        alarm(
            "UnloadThrashingAlarm",
            sagemaker("ModelUnloadingTime", "SampleCount", "unloads", five),
            alarms.model_unloads_per_5_minutes,
            "Models are unloaded faster than expected: memory is too small for the working set.",
            evaluation_periods=2,
        )
        alarm(
            "MemoryHighAlarm",
            instances("MemoryUtilization", "Average", "MemoryUtilization", five),
            alarms.memory_utilization_max_percent,
            "Instance memory is nearly full: expect unloads and cold starts.",
            evaluation_periods=3,
        )
        alarm(
            "DiskHighAlarm",
            instances("DiskUtilization", "Average", "DiskUtilization", five),
            alarms.disk_utilization_max_percent,
            "Instance disk is nearly full: models cached on disk will be evicted and re-downloaded.",
            evaluation_periods=3,
        )
        health_alarm("LatencyP99HighAlarm")
        alarm(
            "TrainingRunFailedAlarm",
            cloudwatch.MathExpression(
                expression="failed + timed_out",
                using_metrics={"failed": executions_failed, "timed_out": executions_timed_out},
                label="training runs failed or timed out",
                period=five,
            ),
            1,
            "A training run failed or timed out; see the execution and its summary.",
        )
        alarm(
            "PromotionErrorsAlarm",
            promotion_errors,
            1,
            "The promotion Lambda failed: a trained model was not published.",
        )
        self._allow_alarms_to_publish()

    def _allow_alarms_to_publish(self) -> None:
        """Let exactly this deployment's alarms publish to the topic.

        A topic policy replaces SNS's default policy, and ``enforce_ssl`` writes one whose only
        statement is the TLS deny: without this statement no alarm notification would ever arrive.
        The CloudWatch service principal may publish for alarms of this account (``aws:SourceAccount``)
        and only for the alarms declared here (``aws:SourceArn``), as the Amazon SNS developer guide
        recommends against the confused deputy ("Amazon SNS access control case examples", and
        "Encryption at rest": AWS services publishing to encrypted topics; the key-policy half is the
        storage stack's ``AllowCloudWatchAlarmsToPublishToEncryptedTopics``).
        https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
        """
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisDeploymentsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in self.alarms.values()]},
                },
            )
        )
