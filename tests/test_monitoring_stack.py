"""The dashboard and alarms: every metric is one the services really publish, with the right keys."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match

from mme_constructs.metrics import EndpointMetrics
from project_config import load_default_config
from project_config.loader import deep_merge, default_context
from project_config.model import ProjectConfig
from stacks.monitoring_stack import MonitoringStack
from stacks.storage_stack import StorageExports
from stacks.training_stack import TrainingStack
from tests.cfn_render import TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp, one_statement, resources_of_type

ENDPOINT_DIMENSIONS = frozenset({"EndpointName", "VariantName"})
AVERAGE_ONLY = frozenset({"Average", "Minimum", "Maximum", "SampleCount"})
COUNTS = frozenset({"Sum", "SampleCount"})
TIMES = frozenset({"Average", "Minimum", "Maximum", "SampleCount", "p50", "p90", "p99"})

# What the services publish (AWS documentation: "Monitor Amazon SageMaker AI with Amazon CloudWatch",
# "Metrics for multi-model endpoint deployments", Step Functions and Lambda metric references), as
# (namespace, metric name) -> (dimension names, statistics that make sense for it). Written out by
# hand on purpose: it is the reference the code under test is checked against, not derived from it.
PUBLISHED_METRICS: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {
    # Invocation metrics, namespace AWS/SageMaker, per endpoint and variant.
    ("AWS/SageMaker", "Invocations"): (ENDPOINT_DIMENSIONS, COUNTS),
    ("AWS/SageMaker", "InvocationsPerInstance"): (ENDPOINT_DIMENSIONS, COUNTS),
    ("AWS/SageMaker", "Invocation4XXErrors"): (ENDPOINT_DIMENSIONS, COUNTS | {"Average"}),
    ("AWS/SageMaker", "Invocation5XXErrors"): (ENDPOINT_DIMENSIONS, COUNTS | {"Average"}),
    ("AWS/SageMaker", "ModelLatency"): (ENDPOINT_DIMENSIONS, TIMES),  # microseconds
    ("AWS/SageMaker", "OverheadLatency"): (ENDPOINT_DIMENSIONS, TIMES),  # microseconds
    # Multi-model endpoint metrics, namespace AWS/SageMaker.
    ("AWS/SageMaker", "ModelCacheHit"): (ENDPOINT_DIMENSIONS, AVERAGE_ONLY | {"Sum"}),  # Average = ratio
    ("AWS/SageMaker", "ModelLoadingWaitTime"): (ENDPOINT_DIMENSIONS, TIMES),  # microseconds
    ("AWS/SageMaker", "ModelDownloadingTime"): (ENDPOINT_DIMENSIONS, TIMES),  # microseconds
    ("AWS/SageMaker", "ModelLoadingTime"): (ENDPOINT_DIMENSIONS, TIMES),  # microseconds
    ("AWS/SageMaker", "ModelUnloadingTime"): (ENDPOINT_DIMENSIONS, TIMES),  # SampleCount = unloads
    # Instance metrics, namespace /aws/sagemaker/Endpoints.
    ("/aws/sagemaker/Endpoints", "LoadedModelCount"): (ENDPOINT_DIMENSIONS, AVERAGE_ONLY | {"Sum"}),
    ("/aws/sagemaker/Endpoints", "CPUUtilization"): (ENDPOINT_DIMENSIONS, AVERAGE_ONLY),
    ("/aws/sagemaker/Endpoints", "MemoryUtilization"): (ENDPOINT_DIMENSIONS, AVERAGE_ONLY),
    ("/aws/sagemaker/Endpoints", "DiskUtilization"): (ENDPOINT_DIMENSIONS, AVERAGE_ONLY),
    # Step Functions execution metrics, per state machine.
    ("AWS/States", "ExecutionsStarted"): (frozenset({"StateMachineArn"}), COUNTS),
    ("AWS/States", "ExecutionsSucceeded"): (frozenset({"StateMachineArn"}), COUNTS),
    ("AWS/States", "ExecutionsFailed"): (frozenset({"StateMachineArn"}), COUNTS),
    ("AWS/States", "ExecutionsTimedOut"): (frozenset({"StateMachineArn"}), COUNTS),
    ("AWS/States", "ExecutionsAborted"): (frozenset({"StateMachineArn"}), COUNTS),
    ("AWS/States", "ExecutionTime"): (frozenset({"StateMachineArn"}), TIMES),  # milliseconds
    # Lambda function metrics, per function.
    ("AWS/Lambda", "Errors"): (frozenset({"FunctionName"}), COUNTS),
    ("AWS/Lambda", "Throttles"): (frozenset({"FunctionName"}), COUNTS),
    ("AWS/Lambda", "Invocations"): (frozenset({"FunctionName"}), COUNTS),
    ("AWS/Lambda", "Duration"): (frozenset({"FunctionName"}), TIMES),  # milliseconds
}


def _rendered(template: dict[str, Any]) -> TemplateRenderer:
    return TemplateRenderer(template, STORAGE_EXPORTS)


def _dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body: dict[str, Any] = json.loads(_rendered(template).render(dashboard["Properties"]["DashboardBody"]))
    return body


def _widget_metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, name, dimensions, statistic) of every metric line; expressions are skipped."""
    found = []
    for entry in widget["properties"].get("metrics", []):
        if isinstance(entry[0], dict):  # a math expression line
            continue
        options = entry[-1] if isinstance(entry[-1], dict) else {}
        namespace, name, *rest = [part for part in entry if not isinstance(part, dict)]
        dimensions = dict(zip(rest[0::2], rest[1::2], strict=True))
        found.append((namespace, name, dimensions, options.get("stat", "Average")))
    return found


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: _rendered(template).render(resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    def dims(dimensions: list[dict[str, str]]) -> dict[str, str]:
        return {d["Name"]: d["Value"] for d in dimensions}

    if "MetricName" in alarm:
        statistic = alarm.get("Statistic") or alarm["ExtendedStatistic"]
        return [(alarm["Namespace"], alarm["MetricName"], dims(alarm["Dimensions"]), statistic)]
    return [
        (
            query["MetricStat"]["Metric"]["Namespace"],
            query["MetricStat"]["Metric"]["MetricName"],
            dims(query["MetricStat"]["Metric"]["Dimensions"]),
            query["MetricStat"]["Stat"],
        )
        for query in alarm["Metrics"]
        if "MetricStat" in query
    ]


def _check_published(metrics: list[tuple[str, str, dict[str, str], str]]) -> None:
    for namespace, name, dimensions, statistic in metrics:
        assert (namespace, name) in PUBLISHED_METRICS, f"{namespace} {name} is not a published metric"
        dimension_names, statistics = PUBLISHED_METRICS[(namespace, name)]
        assert set(dimensions) == dimension_names, (namespace, name, dimensions)
        assert statistic in statistics, (namespace, name, statistic)
        if dimension_names == ENDPOINT_DIMENSIONS:
            assert dimensions["VariantName"] == "AllTraffic"
            assert dimensions["EndpointName"].startswith("MmeEndpoint.")  # the endpoint stack's output


def test_every_dashboard_metric_is_published_with_its_dimensions(synthesized: SynthesizedApp) -> None:
    body = _dashboard_body(synthesized.template("monitoring"))
    metrics = [m for widget in body["widgets"] for m in _widget_metrics(widget)]
    _check_published(metrics)
    used = {(namespace, name) for namespace, name, _, _ in metrics}
    must_show = {
        ("/aws/sagemaker/Endpoints", "LoadedModelCount"), ("/aws/sagemaker/Endpoints", "MemoryUtilization"),
        ("AWS/SageMaker", "ModelCacheHit"), ("AWS/SageMaker", "ModelLoadingWaitTime"),
        ("AWS/SageMaker", "ModelDownloadingTime"), ("AWS/SageMaker", "ModelLoadingTime"),
        ("AWS/SageMaker", "ModelUnloadingTime"), ("AWS/SageMaker", "Invocations"),
        ("AWS/SageMaker", "Invocation4XXErrors"), ("AWS/SageMaker", "Invocation5XXErrors"),
        ("AWS/SageMaker", "ModelLatency"), ("AWS/SageMaker", "OverheadLatency"),
        ("AWS/SageMaker", "InvocationsPerInstance"), ("/aws/sagemaker/Endpoints", "CPUUtilization"),
        ("/aws/sagemaker/Endpoints", "DiskUtilization"), ("AWS/States", "ExecutionsStarted"),
        ("AWS/States", "ExecutionsSucceeded"), ("AWS/States", "ExecutionsFailed"),
        ("AWS/States", "ExecutionsTimedOut"), ("AWS/States", "ExecutionTime"), ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"), ("AWS/Lambda", "Duration"),
    }  # fmt: skip
    assert must_show <= used, must_show - used


def test_dashboard_has_the_expected_widgets(synthesized: SynthesizedApp) -> None:
    widgets = _dashboard_body(synthesized.template("monitoring"))["widgets"]
    titles = [w["properties"].get("title") for w in widgets if w["type"] == "metric"]
    assert titles == [
        "Cache: loaded models and memory (left), cache-hit ratio (right)",
        "Model loading (ms, converted from microseconds) and unloads",
        "Traffic and errors",
        "Latency (ms, converted from microseconds)",
        "Instance health (%) and fleet size",
        "Training runs",
        "Promotion Lambda",
    ]
    texts = [w["properties"]["markdown"] for w in widgets if w["type"] == "text"]
    assert len(texts) == 2
    assert "How to read the cache charts" in texts[0]
    assert "ModelCacheHit" in texts[0]

    cache = widgets[1]["properties"]
    assert (cache["yAxis"]["right"]["min"], cache["yAxis"]["right"]["max"]) == (0, 1)
    right_axis = [m for m in cache["metrics"] if isinstance(m[-1], dict) and m[-1].get("yAxis") == "right"]
    assert [m[1] for m in right_axis] == ["ModelCacheHit"]


def test_microsecond_metrics_are_converted_to_milliseconds(synthesized: SynthesizedApp) -> None:
    widgets = _dashboard_body(synthesized.template("monitoring"))["widgets"]
    by_title = {w["properties"].get("title"): w for w in widgets}
    for title in (
        "Model loading (ms, converted from microseconds) and unloads",
        "Latency (ms, converted from microseconds)",
    ):
        expressions = [e[0] for e in by_title[title]["properties"]["metrics"] if isinstance(e[0], dict)]
        assert expressions, title
        for expression in expressions:
            assert expression["expression"].endswith(" / 1000")
            assert "(ms)" in expression["label"]
        hidden = [e for e in by_title[title]["properties"]["metrics"] if not isinstance(e[0], dict)
                  and e[-1].get("visible") is False]  # fmt: skip
        assert len(hidden) == len(expressions)  # the raw microsecond series are not drawn


EXPECTED_ALARMS = {
    "Errors5xxAlarm": ("GreaterThanOrEqualToThreshold", "invocation_5xx_errors_per_5_minutes", 1),
    "Errors4xxSpikeAlarm": ("GreaterThanOrEqualToThreshold", "invocation_4xx_errors_per_5_minutes", 1),
    "CacheHitLowAlarm": ("LessThanThreshold", "model_cache_hit_ratio_min", 1),
    "UnloadThrashingAlarm": ("GreaterThanOrEqualToThreshold", "model_unloads_per_5_minutes", 1),
    "MemoryHighAlarm": ("GreaterThanOrEqualToThreshold", "memory_utilization_max_percent", 1),
    "DiskHighAlarm": ("GreaterThanOrEqualToThreshold", "disk_utilization_max_percent", 1),
    "LatencyP99HighAlarm": ("GreaterThanOrEqualToThreshold", "model_latency_p99_max_ms", 1000),
    "TrainingRunFailedAlarm": ("GreaterThanOrEqualToThreshold", None, 1),
    "PromotionErrorsAlarm": ("GreaterThanOrEqualToThreshold", None, 1),
}


def test_alarms_use_published_metrics_thresholds_from_config_and_the_topic(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.template("monitoring")
    alarms = _alarms(template)
    config = load_default_config().alarms
    (topic_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    found = {}
    for logical_id, alarm in alarms.items():
        (name,) = [n for n in EXPECTED_ALARMS if logical_id.startswith(f"Observability{n}")]
        found[name] = alarm
        comparison, setting, scale = EXPECTED_ALARMS[name]
        assert alarm["ComparisonOperator"] == comparison
        expected = 1 if setting is None else getattr(config, setting) * scale
        assert alarm["Threshold"] == expected, name
        assert alarm["TreatMissingData"] == "notBreaching", name  # an idle endpoint raises no alarm
        assert template["Resources"][logical_id]["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        _check_published(_alarm_metrics(alarm))
    assert set(found) == set(EXPECTED_ALARMS)
    cache = found["CacheHitLowAlarm"]["Metrics"]
    (expression,) = [q for q in cache if "Expression" in q]
    assert (
        expression["Expression"]
        == f"IF(invocations >= {config.cache_alarm_min_invocations_per_5_minutes}, hit, 1)"
    )
    latency = _alarm_metrics(found["LatencyP99HighAlarm"])
    assert latency[0][1:] == ("ModelLatency", latency[0][2], "p99")


def test_alarm_topic_is_encrypted_and_tls_only(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("monitoring")
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::ImportValue": "MmeStorage-KeyArn"}}
    )
    template.resource_count_is("AWS::SNS::TopicPolicy", 1)
    tls_deny = Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": Match.array_with([tls_deny])}}
    )
    template.resource_count_is("AWS::SNS::Subscription", 0)


def test_key_lets_cloudwatch_publish_to_the_encrypted_topic(synthesized: SynthesizedApp) -> None:
    sid = "AllowCloudWatchAlarmsToPublishToEncryptedTopics"
    statement = {
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    }
    key = synthesized.assertions("storage")
    key.resource_count_is("AWS::KMS::Key", 1)
    for statements in one_statement({"Sid": sid}, statement):  # exactly one statement of that Sid, like this
        key.has_resource_properties("AWS::KMS::Key", {"KeyPolicy": {"Statement": statements}})


@pytest.mark.parametrize("emails", [["ops@example.com", "oncall@example.com"]])
def test_email_subscriptions_from_config(cdk_context: dict[str, Any], emails: list[str]) -> None:
    config = ProjectConfig.model_validate(
        deep_merge(default_context(), {"alarms": {"email_subscriptions": emails}})
    )
    # The training stack's state machine and function, imported into a stack of another app that is
    # never synthesized (it holds no resources).
    training = cdk.Stack(cdk.App(), "MmeTraining")
    stack = MonitoringStack(
        cdk.App(context=cdk_context),
        "MmeMonitoring",
        storage=StorageExports(stack_name="MmeStorage"),
        endpoint=EndpointMetrics("mme-endpoint", "AllTraffic"),
        state_machine=sfn.StateMachine.from_state_machine_arn(
            training, "StateMachine", "arn:aws:states:us-east-1:111122223333:stateMachine:training"
        ),
        promotion_function=lambda_.Function.from_function_name(training, "Promote", "promote"),
        alarms=config.alarms,
    )
    template = cdk.assertions.Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Subscription", len(emails))
    for email in emails:
        template.has_resource_properties("AWS::SNS::Subscription", {"Endpoint": email, "Protocol": "email"})


def test_the_notifying_health_alarms_watch_what_the_rollback_alarms_watch(
    synthesized: SynthesizedApp,
) -> None:
    """The endpoint stack rolls back on 5XX errors and p99 latency; this stack notifies on the same."""

    def watched(template: dict[str, Any]) -> list[tuple[Any, ...]]:
        found = []
        for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
            props = alarm["Properties"]
            queries = props.get("Metrics", [])
            if len(queries) != 1 or "MetricStat" not in queries[0]:
                continue
            stat = queries[0]["MetricStat"]
            metric = stat["Metric"]
            if metric["MetricName"] in ("Invocation5XXErrors", "ModelLatency"):
                found.append(
                    (metric["Namespace"], metric["MetricName"], stat["Stat"], stat["Period"],
                     props["EvaluationPeriods"], props["Threshold"], props["ComparisonOperator"])
                )  # fmt: skip
        return sorted(found)

    rollback = watched(synthesized.template("endpoint"))
    assert len(rollback) == 2
    assert watched(synthesized.template("monitoring")) == rollback


def _dimension_values(value: Any) -> Iterator[tuple[str, Any]]:
    """(dimension name, value) of every metric dimension in a template fragment: an alarm's
    ``{"Name": ..., "Value": ...}``, or a dashboard body's ``..."StateMachineArn","`` followed by the
    value in its ``Fn::Join``."""
    if isinstance(value, dict):
        if set(value) == {"Name", "Value"}:
            yield value["Name"], value["Value"]
        for item in value.values():
            yield from _dimension_values(item)
    elif isinstance(value, list):
        for before, item in itertools.pairwise(value):
            named = re.search(r'"(\w+)","$', before) if isinstance(before, str) else None
            if named is not None and isinstance(item, dict):
                yield named.group(1), item
        for item in value:
            yield from _dimension_values(item)


def test_training_metrics_are_those_of_the_training_stacks_state_machine_and_function(
    synthesized: SynthesizedApp,
) -> None:
    """Every Step Functions and Lambda metric (dashboard and alarms) is keyed by the training stack's
    state machine and promotion function, read from that stack's outputs."""
    stack = synthesized.stacks["training"]
    assert isinstance(stack, TrainingStack)
    function = stack.pipeline.promote_artifact.function.node.default_child
    assert isinstance(function, cdk.CfnElement)
    training = synthesized.template("training")
    (state_machine,) = resources_of_type(training, "AWS::StepFunctions::StateMachine")
    expected = {
        "StateMachineArn": {"Ref": state_machine},
        "FunctionName": {"Ref": stack.get_logical_id(function)},
    }
    found = [
        (name, value)
        for name, value in _dimension_values(synthesized.template("monitoring")["Resources"])
        if name in expected
    ]
    # 5 dashboard lines and 2 alarm queries per state machine; 4 lines and 1 alarm per function.
    assert sorted(Counter(name for name, _ in found).items()) == [("FunctionName", 5), ("StateMachineArn", 7)]
    for name, value in found:
        output = value["Fn::GetStackOutput"]
        assert output["StackName"] == stack.stack_name
        assert training["Outputs"][output["OutputName"]]["Value"] == expected[name]
