"""What the read commands print: consoles that suit where their output goes, ``--output``, and the
JSON documents ``--output json`` prints, each schema defined once here.

Tables are for people. On a terminal rich fits them to its width; when stdout (or stderr) is not a
terminal (a pipe, a file, a CI log) nothing reads the width, so the console is given a very large
one and no table cell is wrapped or folded: an ARN or an S3 key stays whole on one line, which is
what ``grep``, ``cut`` and ``awk`` need. ``COLUMNS`` is ignored then, on purpose.

``--output json`` prints exactly one JSON document on stdout (indented, keys sorted, like
``mme plan --output json``); progress and warnings go to stderr. Each document says what it is in
its ``"schema"`` field, ``mme.<command>/<version>``. The version changes only when a field is
removed, renamed or changes type or meaning; new fields may be added within a version. The
TypedDicts below are those schemas: every key is always present (``null`` when unknown), and the
tests validate each command's output against them strictly (no missing key, no extra key, no
wrong type).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, TextIO, overload

import typer
from pydantic import ConfigDict, with_config
from rich.console import Console
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

NOT_A_TERMINAL_WIDTH: Final = 1_000_000
"""The console width when the stream is not a terminal: wider than any line a command prints."""


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): rich's own on a terminal, never wrapping when not one."""
    stream = sys.stderr if stderr else sys.stdout
    if _is_terminal(stream):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=NOT_A_TERMINAL_WIDTH)


def stdout_console() -> Console:
    return console(stderr=False)


def stderr_console() -> Console:
    return console(stderr=True)


OutputFormat = Literal["table", "json"]
OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        help='Tables for people, or JSON: one document on stdout, its schema named in its "schema" field.',
    ),
]


def emit(document: Mapping[str, object]) -> None:
    """Print ``document`` as the only thing on stdout, as ``mme plan --output json`` does."""
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


@overload
def timestamp(moment: datetime) -> str: ...
@overload
def timestamp(moment: datetime | None) -> str | None: ...
def timestamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC to the second (``2025-05-01T12:00:00Z``), the documents' one time format."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


_STRICT = ConfigDict(extra="forbid", strict=True)
"""How the tests validate a document: every key present, none added, each of its declared type."""

# --------------------------------------------------------------------------------------------------
# mme status

STATUS: Final = "mme.status/1"

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


@with_config(_STRICT)
class ServingGeneration(TypedDict):
    """``preprocessor/serving.json``."""

    generation: str
    endpoint_name: str | None
    updated_at: str
    next_generation: str | None
    """Only while an endpoint update switches to it."""


@with_config(_STRICT)
class NewestGeneration(TypedDict):
    """``preprocessor/newest.json`` and the generation's ``complete.json``."""

    generation: str
    updated_at: str
    complete_record: bool
    """Whether ``preprocessor/<generation>/complete.json`` exists (it should)."""
    location_count: int | None
    completed_at: str | None
    algorithm: str | None


@with_config(_STRICT)
class ServedModel(TypedDict):
    """One SageMaker Model behind the endpoint, as its containers say."""

    model_name: str
    generation: str | None
    preprocessor_url: str | None
    models_url: str | None


@with_config(_STRICT)
class EndpointState(TypedDict):
    name: str | None
    """None: no Endpoint stack."""
    found: bool
    """Whether SageMaker has the endpoint."""
    status: str | None
    """``InService``, ``Updating``...; SageMaker's failure reason follows in parentheses."""
    instances: int | None
    variants: int | None
    models: list[ServedModel]


@with_config(_STRICT)
class GenerationModels(TypedDict):
    generation: str
    served: bool
    objects: int
    locations: int


@with_config(_STRICT)
class ModelsState(TypedDict):
    served_prefix_uri: str | None
    served_pointers: int | None
    """Locations with a pointer in the served generation."""
    generations: list[GenerationModels]
    """The served generation first (even without objects), then the others by name."""


@with_config(_STRICT)
class LastRun(TypedDict):
    name: str
    status: str
    started_at: str | None


@with_config(_STRICT)
class TrainingState(TypedDict):
    state_machine_arn: str | None
    """None: no Training stack."""
    found: bool
    last_run: LastRun | None


@with_config(_STRICT)
class MonitoringState(TypedDict):
    deployed: bool
    """Whether the Monitoring stack exists."""
    dashboard_name: str | None
    dashboard_url: str | None
    alarm_topic_arn: str | None


@with_config(_STRICT)
class Alarm(TypedDict):
    name: str
    stack: str
    """The stack that owns it: the Monitoring stack's notify, the Endpoint stack's roll back updates."""
    state: AlarmState
    reason: str
    updated_at: str | None


@with_config(_STRICT)
class StatusDocument(TypedDict):
    schema: Literal["mme.status/1"]
    prefix: str
    region: str
    bucket: str
    serving: ServingGeneration | None
    newest: NewestGeneration | None
    endpoint: EndpointState
    models: ModelsState
    training: TrainingState
    monitoring: MonitoringState
    alarms: list[Alarm] | None
    """ALARM first, then INSUFFICIENT_DATA, then OK, each by name; None when they could not be read."""
    warnings: list[str]


# --------------------------------------------------------------------------------------------------
# mme models list

MODELS_LIST: Final = "mme.models.list/1"


@with_config(_STRICT)
class ModelVersionEntry(TypedDict):
    version: str
    key: str
    size_bytes: int
    last_modified: str
    current: bool


@with_config(_STRICT)
class LocationEntry(TypedDict):
    location: str
    current_version: str | None
    """What the pointer names; None without a (usable) pointer."""
    pointer_problem: str | None
    current_object_missing: bool
    newest_version: str | None
    version_count: int
    total_size_bytes: int
    versions: list[ModelVersionEntry]
    """Oldest first (promotion order)."""


@with_config(_STRICT)
class ModelsListDocument(TypedDict):
    schema: Literal["mme.models.list/1"]
    bucket: str
    generation: str
    chosen_by: Literal["option", "serving", "newest"]
    served: bool
    serving_generation: str | None
    models_prefix_uri: str
    locations: list[LocationEntry]
    """By name; with --location only that one."""


# --------------------------------------------------------------------------------------------------
# mme predict

PREDICT: Final = "mme.predict/1"


@with_config(_STRICT)
class LatencySummary(TypedDict):
    count: int
    p50: float
    p90: float
    p99: float
    max: float


@with_config(_STRICT)
class PredictLatency(TypedDict):
    calls: int
    first: float
    cold: LatencySummary
    """The first call."""
    warm: LatencySummary | None
    """The later calls (--repeat above 1), else None."""


@with_config(_STRICT)
class Prediction(TypedDict):
    features: dict[str, str]
    """The row as sent, by column name."""
    value: float


@with_config(_STRICT)
class PredictDocument(TypedDict):
    schema: Literal["mme.predict/1"]
    endpoint_name: str
    algorithm: str
    predicts: Literal["price", "anomaly score"]
    location: str
    generation: str
    model_version: str
    target_model: str
    predictions: list[Prediction]
    latency_ms: PredictLatency


# --------------------------------------------------------------------------------------------------
# mme access check

ACCESS_CHECK: Final = "mme.access.check/1"

Decision = Literal["allow", "deny"]
Observed = Literal["allowed", "denied", "error"]


@with_config(_STRICT)
class AccessProbe(TypedDict):
    target_model: str
    source: str
    expected: Decision
    observed: Observed
    detail: str | None
    """The error code (and message) behind ``denied`` or ``error``."""
    matches: bool


@with_config(_STRICT)
class AccessCheckDocument(TypedDict):
    schema: Literal["mme.access.check/1"]
    tenant: str
    mode: Literal["roles", "abac"]
    role_arn: str
    endpoint_name: str
    patterns: list[str]
    probes: list[AccessProbe]
    mismatches: int
    all_match: bool


# --------------------------------------------------------------------------------------------------
# mme experiment cache (also the cache-experiment.json report)

EXPERIMENT_CACHE: Final = "mme.experiment.cache/1"


@with_config(_STRICT)
class LatencyStats(TypedDict):
    count: int
    min: float | None
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


@with_config(_STRICT)
class ExperimentCounts(TypedDict):
    planned_calls: int
    calls: int
    cold_calls: int
    warm_calls: int
    distinct_models_invoked: int


@with_config(_STRICT)
class ExperimentLatency(TypedDict):
    cold: LatencyStats
    warm: LatencyStats
    by_phase: dict[str, LatencyStats]
    """Keys ``1``, ``2`` and ``3``."""


@with_config(_STRICT)
class MetricPoint(TypedDict):
    timestamp: str
    value: float


@with_config(_STRICT)
class MetricSeriesEntry(TypedDict):
    label: str
    points: list[MetricPoint]


@with_config(_STRICT)
class ExperimentWindow(TypedDict):
    started_at: str
    finished_at: str


@with_config(_STRICT)
class ExperimentCall(TypedDict):
    sequence: int
    phase: int
    copy: int
    first_call: bool
    latency_ms: float
    started_at: str


@with_config(_STRICT)
class CacheExperimentDocument(TypedDict):
    schema: Literal["mme.experiment.cache/1"]
    run_id: str
    endpoint_name: str
    variant_name: str
    source_location: str
    source_key: str
    generation: str
    algorithm: str
    copies: int
    feature_row: str
    counts: ExperimentCounts
    stopped_early: str | None
    copies_kept: bool
    latency_ms: ExperimentLatency
    peak_models_loaded: float | None
    peak_memory_utilization_percent: float | None
    cache_hit_over_time: list[MetricPoint]
    metrics: dict[str, MetricSeriesEntry]
    window: ExperimentWindow
    timings_seconds: dict[str, float]
    calls: list[ExperimentCall]


SCHEMAS: Final[Mapping[str, type]] = {
    STATUS: StatusDocument,
    MODELS_LIST: ModelsListDocument,
    PREDICT: PredictDocument,
    ACCESS_CHECK: AccessCheckDocument,
    EXPERIMENT_CACHE: CacheExperimentDocument,
}
"""Every document ``--output json`` prints, by its ``schema`` value."""
