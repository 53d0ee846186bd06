"""The cache experiment's pure logic: invocation plan, latency statistics, metric queries, report, chart.

The walkthrough's experiment (step 8): copy one model to N names, invoke the first half, the first
half again, then all N, and watch how the multi-model endpoint loads and evicts models. Nothing here
talks to AWS; the command in ``mme_cli.commands.experiment_access`` feeds it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mme_cli.output import EXPERIMENT_CACHE, CacheExperimentDocument, LatencyStats
from mme_shared import s3_layout

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn: it costs ~0.5 s at CLI start-up
    from matplotlib.figure import Figure

MIN_COPIES: Final = 2
MAX_COPIES: Final = 1000
METRIC_PERIOD_SECONDS: Final = 60
FEATURE_ROW: Final = "1993,2728,6,3.0,0.7,1,y,y"
"""One fixed raw 8-field CSV row (the walkthrough's example), sent with every call."""

EXPERIMENT_FOLDER_PREFIX: Final = "_experiment-"
_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")
"""Not naming.RUN_ID_RE on purpose: an experiment's run id (``make_run_id``) only names S3 keys under
the multi-model prefix and TargetModels, which take any printable characters; it never becomes part
of a SageMaker resource name, so a trailing '-' does no harm here."""

ENDPOINTS_NAMESPACE: Final = "/aws/sagemaker/Endpoints"
SAGEMAKER_NAMESPACE: Final = "AWS/SageMaker"


@dataclass(frozen=True)
class MetricSpec:
    query_id: str
    namespace: str
    metric: str
    stat: str
    label: str


METRICS: Final = (
    MetricSpec("loaded_avg", ENDPOINTS_NAMESPACE, "LoadedModelCount", "Average", "LoadedModelCount"),
    MetricSpec("loaded_max", ENDPOINTS_NAMESPACE, "LoadedModelCount", "Maximum", "LoadedModelCount (max)"),
    MetricSpec("memory", ENDPOINTS_NAMESPACE, "MemoryUtilization", "Average", "MemoryUtilization (%)"),
    MetricSpec("cache_hit", SAGEMAKER_NAMESPACE, "ModelCacheHit", "Average", "ModelCacheHit"),
)


# --- names --------------------------------------------------------------------------------------


def experiment_folder(run_id: str) -> str:
    """TargetModel folder of one run (relative to the generation's prefix): never a location name."""
    if _RUN_ID_RE.fullmatch(run_id) is None:
        raise ValueError(f"run id {run_id!r} must be 1 to 63 characters from A-Z, a-z, 0-9 and '-'")
    return f"{EXPERIMENT_FOLDER_PREFIX}{run_id}/"


def copy_target_model(run_id: str, index: int) -> str:
    """TargetModel of copy ``index``: ``_experiment-<run>/copy-<i>.tar.gz``."""
    return f"{experiment_folder(run_id)}copy-{index}.tar.gz"


def copy_key(generation: str, run_id: str, index: int) -> str:
    """Full S3 key of copy ``index``: ``models/<generation>/_experiment-<run>/copy-<i>.tar.gz``.

    The copies go under the served generation's prefix, the endpoint's ModelDataUrl, so that their
    TargetModel (relative to it) loads them, and behind the preprocessor their source was trained on.
    """
    return s3_layout.generation_models_prefix(generation) + copy_target_model(run_id, index)


def make_run_id(now: datetime, suffix: str) -> str:
    """``20250501T120000-<suffix>``: sortable, and unique with a random suffix."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}-{suffix}"


# --- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCall:
    sequence: int
    """Position in the whole run, from 0."""
    phase: int
    """1: first half, 2: first half again, 3: all copies."""
    copy: int
    first_call: bool
    """The first call of this copy in the run (a cold load unless something else loaded it)."""


def invocation_plan(copies: int) -> list[PlannedCall]:
    """Copies 0..N/2-1, again 0..N/2-1, then 0..N-1; each call flagged if it is its copy's first."""
    if not MIN_COPIES <= copies <= MAX_COPIES:
        raise ValueError(f"copies must be between {MIN_COPIES} and {MAX_COPIES}, got {copies}")
    half = copies // 2
    order = [(1, i) for i in range(half)] + [(2, i) for i in range(half)] + [(3, i) for i in range(copies)]
    seen: set[int] = set()
    plan = []
    for sequence, (phase, copy) in enumerate(order):
        plan.append(PlannedCall(sequence=sequence, phase=phase, copy=copy, first_call=copy not in seen))
        seen.add(copy)
    return plan


@dataclass(frozen=True)
class CallResult:
    call: PlannedCall
    latency_ms: float
    started_at: datetime


# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default); ``q`` in 0..100; values non-empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_stats(values: Sequence[float]) -> LatencyStats:
    """Count, min, mean, p50, p90, p99 and max in milliseconds (None when there are no values)."""
    if not values:
        return LatencyStats(count=0, min=None, mean=None, p50=None, p90=None, p99=None, max=None)
    return LatencyStats(
        count=len(values),
        min=round(min(values), 3),
        mean=round(sum(values) / len(values), 3),
        p50=round(percentile(values, 50), 3),
        p90=round(percentile(values, 90), 3),
        p99=round(percentile(values, 99), 3),
        max=round(max(values), 3),
    )


# --- metrics ------------------------------------------------------------------------------------


def metric_window(started: datetime, finished: datetime) -> tuple[datetime, datetime]:
    """The run's window widened to whole periods, one period either side."""
    period = timedelta(seconds=METRIC_PERIOD_SECONDS)
    start = started.astimezone(UTC).replace(second=0, microsecond=0) - period
    end = finished.astimezone(UTC).replace(second=0, microsecond=0) + 2 * period
    return start, end


def metric_queries(endpoint_name: str, variant_name: str) -> list[dict[str, Any]]:
    """GetMetricData queries for every series of :data:`METRICS`."""
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint_name},
        {"Name": "VariantName", "Value": variant_name},
    ]
    return [
        {
            "Id": spec.query_id,
            "Label": spec.label,
            "MetricStat": {
                "Metric": {"Namespace": spec.namespace, "MetricName": spec.metric, "Dimensions": dimensions},
                "Period": METRIC_PERIOD_SECONDS,
                "Stat": spec.stat,
            },
            "ReturnData": True,
        }
        for spec in METRICS
    ]


@dataclass(frozen=True)
class MetricSeries:
    label: str
    points: tuple[tuple[datetime, float], ...]
    """Sorted by time."""

    @property
    def peak(self) -> float | None:
        return max((value for _, value in self.points), default=None)


def collect_series(results: Iterable[Mapping[str, Any]]) -> dict[str, MetricSeries]:
    """Merge GetMetricData ``MetricDataResults`` (possibly from several pages) by query id."""
    merged: dict[str, dict[datetime, float]] = {spec.query_id: {} for spec in METRICS}
    for result in results:
        points = merged.setdefault(str(result["Id"]), {})
        for timestamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
            points[timestamp.astimezone(UTC)] = float(value)
    labels = {spec.query_id: spec.label for spec in METRICS}
    return {
        query_id: MetricSeries(label=labels.get(query_id, query_id), points=tuple(sorted(points.items())))
        for query_id, points in merged.items()
    }


# --- report -------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    *,
    run_id: str,
    endpoint_name: str,
    variant_name: str,
    source_location: str,
    source_key: str,
    copies: int,
    planned_calls: int,
    results: Sequence[CallResult],
    series: Mapping[str, MetricSeries],
    started_at: datetime,
    finished_at: datetime,
    timings: Mapping[str, float],
    stopped_early: str | None,
    kept_copies: bool,
    generation: str,
    algorithm: str,
) -> CacheExperimentDocument:
    """The JSON report (``mme.experiment.cache/1``): latency percentiles (cold = first call of a
    copy), peaks, cache hit over time."""
    cold = [r.latency_ms for r in results if r.call.first_call]
    warm = [r.latency_ms for r in results if not r.call.first_call]
    by_phase = {
        str(phase): latency_stats([r.latency_ms for r in results if r.call.phase == phase])
        for phase in (1, 2, 3)
    }
    loaded_max = series.get("loaded_max")
    loaded_avg = series.get("loaded_avg")
    memory = series.get("memory")
    cache_hit = series.get("cache_hit")
    peak_loaded = loaded_max.peak if loaded_max is not None and loaded_max.points else None
    if peak_loaded is None and loaded_avg is not None:
        peak_loaded = loaded_avg.peak
    return {
        "schema": EXPERIMENT_CACHE,
        "run_id": run_id,
        "endpoint_name": endpoint_name,
        "variant_name": variant_name,
        "source_location": source_location,
        "source_key": source_key,
        "generation": generation,
        "algorithm": algorithm,
        "copies": copies,
        "feature_row": FEATURE_ROW,
        "counts": {
            "planned_calls": planned_calls,
            "calls": len(results),
            "cold_calls": len(cold),
            "warm_calls": len(warm),
            "distinct_models_invoked": len({r.call.copy for r in results}),
        },
        "stopped_early": stopped_early,
        "copies_kept": kept_copies,
        "latency_ms": {"cold": latency_stats(cold), "warm": latency_stats(warm), "by_phase": by_phase},
        "peak_models_loaded": peak_loaded,
        "peak_memory_utilization_percent": memory.peak if memory is not None else None,
        "cache_hit_over_time": [
            {"timestamp": _iso(moment), "value": value}
            for moment, value in (cache_hit.points if cache_hit is not None else ())
        ],
        "metrics": {
            query_id: {"label": s.label, "points": [{"timestamp": _iso(t), "value": v} for t, v in s.points]}
            for query_id, s in sorted(series.items())
        },
        "window": {"started_at": _iso(started_at), "finished_at": _iso(finished_at)},
        "timings_seconds": {name: round(value, 3) for name, value in timings.items()},
        "calls": [
            {
                "sequence": r.call.sequence,
                "phase": r.call.phase,
                "copy": r.call.copy,
                "first_call": r.call.first_call,
                "latency_ms": round(r.latency_ms, 3),
                "started_at": r.started_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            }
            for r in results
        ],
    }


# --- chart --------------------------------------------------------------------------------------

CHART_SERIES: Final = ("loaded_avg", "memory", "cache_hit")
"""The three charted series: two on the left axis, the cache-hit ratio on the right (0-1)."""


def build_chart(series: Mapping[str, MetricSeries], *, title: str) -> Figure:
    """LoadedModelCount and MemoryUtilization (left axis), ModelCacheHit (right axis, 0-1).

    A bare ``Figure`` (no pyplot): nothing is ever shown, and the Agg canvas renders the PNG.
    """
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 5.5), layout="constrained")
    left = figure.add_subplot()
    right = left.twinx()
    colours = {"loaded_avg": "tab:blue", "memory": "tab:orange", "cache_hit": "tab:green"}
    for query_id in CHART_SERIES:
        found = series.get(query_id)
        if found is None:
            continue
        axis = right if query_id == "cache_hit" else left
        times = [t for t, _ in found.points]
        values = [v for _, v in found.points]
        axis.plot(times, values, marker="o", markersize=3, color=colours[query_id], label=found.label)  # type: ignore[arg-type]
    left.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    left.set_xlabel("Time (UTC)")
    left.set_ylabel("Models loaded / memory used (%)")
    left.set_ylim(bottom=0)
    right.set_ylabel("Cache-hit ratio")
    right.set_ylim(0, 1.05)
    handles = left.get_lines() + right.get_lines()
    if handles:
        left.legend(handles, [str(h.get_label()) for h in handles], loc="upper left")
    left.set_title(title)
    left.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    return figure


def save_chart(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
