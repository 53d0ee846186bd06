"""The deployment's CloudWatch dashboard, row by row.

It answers three questions at a glance: is the endpoint healthy, is its model cache thrashing, does
training work. The model-loading and latency times SageMaker publishes in microseconds are drawn in
milliseconds (:func:`mme_constructs.metrics.in_milliseconds`).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from mme_constructs.metrics import EndpointMetrics, TrainingMetrics, in_milliseconds

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


class OperatorDashboard(cloudwatch.Dashboard):
    """Cache, traffic and latency, instance health, then training runs and promotion."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: EndpointMetrics,
        training: TrainingMetrics,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        self.add_widgets(cloudwatch.TextWidget(markdown=READING_GUIDE, width=24, height=6))
        self.add_widgets(*cache_row(endpoint))
        self.add_widgets(*traffic_row(endpoint))
        self.add_widgets(instance_row(endpoint))
        self.add_widgets(cloudwatch.TextWidget(markdown=TRAINING_GUIDE, width=24, height=3))
        self.add_widgets(*training_row(training))


def _memory(endpoint: EndpointMetrics) -> cloudwatch.Metric:
    return endpoint.instances("MemoryUtilization", "Average", "MemoryUtilization (%)")


def cache_row(endpoint: EndpointMetrics) -> tuple[cloudwatch.GraphWidget, cloudwatch.GraphWidget]:
    """What the model cache holds and how often it hits; what loading and unloading a model costs."""
    return (
        cloudwatch.GraphWidget(
            title="Cache: loaded models and memory (left), cache-hit ratio (right)",
            left=[
                endpoint.instances("LoadedModelCount", "Average", "LoadedModelCount (per instance)"),
                _memory(endpoint),
            ],
            right=[endpoint.sagemaker("ModelCacheHit", "Average", "ModelCacheHit (ratio)")],
            right_y_axis=cloudwatch.YAxisProps(min=0, max=1, label="hit ratio", show_units=False),
            left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
            width=12,
        ),
        cloudwatch.GraphWidget(
            title="Model loading (ms, converted from microseconds) and unloads",
            left=[
                in_milliseconds(
                    endpoint.sagemaker("ModelLoadingWaitTime", "Average", "wait"), "wait for load (ms)"
                ),
                in_milliseconds(
                    endpoint.sagemaker("ModelDownloadingTime", "Average", "download"),
                    "download from S3 (ms)",
                ),
                in_milliseconds(
                    endpoint.sagemaker("ModelLoadingTime", "Average", "load"), "load into container (ms)"
                ),
                in_milliseconds(
                    endpoint.sagemaker("ModelUnloadingTime", "Average", "unload time"), "unload (ms)"
                ),
            ],
            right=[endpoint.sagemaker("ModelUnloadingTime", "SampleCount", "unloads (count)")],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="ms", show_units=False),
            right_y_axis=cloudwatch.YAxisProps(min=0, label="unloads", show_units=False),
            width=12,
        ),
    )


def traffic_row(endpoint: EndpointMetrics) -> tuple[cloudwatch.GraphWidget, cloudwatch.GraphWidget]:
    """Invocations and errors; model and overhead latency."""
    return (
        cloudwatch.GraphWidget(
            title="Traffic and errors",
            left=[
                endpoint.sagemaker("Invocations", "Sum", "Invocations"),
                endpoint.sagemaker("InvocationsPerInstance", "Sum", "InvocationsPerInstance"),
            ],
            right=[
                endpoint.sagemaker("Invocation4XXErrors", "Sum", "4XX errors"),
                endpoint.sagemaker("Invocation5XXErrors", "Sum", "5XX errors"),
            ],
            width=12,
        ),
        cloudwatch.GraphWidget(
            title="Latency (ms, converted from microseconds)",
            left=[
                in_milliseconds(
                    endpoint.sagemaker("ModelLatency", "p50", "ModelLatency p50"), "ModelLatency p50 (ms)"
                ),
                in_milliseconds(
                    endpoint.sagemaker("ModelLatency", "p99", "ModelLatency p99"), "ModelLatency p99 (ms)"
                ),
                in_milliseconds(
                    endpoint.sagemaker("OverheadLatency", "Average", "OverheadLatency"),
                    "OverheadLatency (ms)",
                ),
            ],
            left_y_axis=cloudwatch.YAxisProps(min=0, label="ms", show_units=False),
            width=12,
        ),
    )


def instance_row(endpoint: EndpointMetrics) -> cloudwatch.GraphWidget:
    """CPU, memory and disk per instance; the number of instances in service."""
    return cloudwatch.GraphWidget(
        title="Instance health (%) and fleet size",
        left=[
            endpoint.instances("CPUUtilization", "Average", "CPUUtilization (%, all cores)"),
            _memory(endpoint),
            endpoint.instances("DiskUtilization", "Average", "DiskUtilization (%)"),
        ],
        right=[
            # Each instance reports CPUUtilization once a minute, so the per-minute sample count is
            # the number of instances in service.
            endpoint.instances("CPUUtilization", "SampleCount", "instances in service")
        ],
        left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
        right_y_axis=cloudwatch.YAxisProps(min=0, label="instances", show_units=False),
        width=24,
    )


def training_row(training: TrainingMetrics) -> tuple[cloudwatch.GraphWidget, cloudwatch.GraphWidget]:
    """How training runs end and how long they take; the promotion Lambda's errors and duration."""
    return (
        cloudwatch.GraphWidget(
            title="Training runs",
            left=[
                training.runs_started(),
                training.runs_succeeded(),
                training.runs_failed(),
                training.runs_timed_out(),
            ],
            right=[training.run_time()],
            width=12,
        ),
        cloudwatch.GraphWidget(
            title="Promotion Lambda",
            left=[training.promotion_errors(), training.promotion_throttles()],
            right=[
                training.promotion_duration("Average", "duration avg (ms)"),
                training.promotion_duration("p99", "duration p99 (ms)"),
            ],
            width=12,
        ),
    )
