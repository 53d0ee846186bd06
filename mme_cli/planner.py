"""What a training run of N locations costs in jobs, API calls, wall time and instance-hours, and how
many endpoint instances keep N models loaded: pure arithmetic, no AWS call (``mme plan``).

The run it models (README, "The training pipeline"): PlanRun (Lambda) -> GenerateData (one Lambda per
location, ``GENERATION_CONCURRENCY`` at a time) -> with refit, one preprocessor training job, the
StorePreprocessor Lambda -> one CreateModel (every run: the generation's preprocessor model) -> two
batch transforms (train and validation, each over all of the run's locations, in parallel) ->
TrainLocations (per location: the CheckTransform Lambda, one training job of the configured
algorithm, the PromoteModel Lambda; ``training.parallel_training_jobs`` locations at a time) ->
Summarize (Lambda).

**Calibrated on linear learner.** The default job time (:func:`default_train_seconds`), the model
size (:data:`DEFAULT_MODEL_MB`) and the memory of a loaded model (the walkthrough's cache
experiment) are linear-learner figures. For another ``training.algorithm`` the plan names that
algorithm and says where a number is linear learner's; override them (``--train-seconds``,
``--model-mb``, ``--endpoint-baseline-mib``) with measurements of the algorithm, e.g. from
``mme experiment cache``.

**The training Map.** Its N jobs run on ``slots = min(parallel, N)`` slots in
``waves = ceil(N / parallel)`` waves. A slot's first job starts cold. With a managed warm pool
(``ResourceConfig.KeepAlivePeriodInSeconds`` = ``training.warm_pool_keep_alive_seconds`` > 0) the
instance of a finished job is kept; the slot's next job is a warm-pool hit when the keep-alive
covers the gap between the two jobs (PromoteModel, then the next CheckTransform), and then starts in
``warm_start_seconds`` instead of ``training_cold_start_seconds``. The Map's wall time is the
longest slot's: ``cold + T + 2L + (waves - 1) * (start + T + 2L)`` (T: one job's training time, L:
one Lambda step, start: warm or cold).

**Billing.** SageMaker bills a training job "for the time interval between [TrainingStartTime] and
the value of TrainingEndTime"; TrainingStartTime comes after the instances are provisioned, and the
time after it includes downloading the data and the container (DescribeTrainingJob, API reference).
So a cold job is billed ``billed_start_seconds`` of its start-up plus its run; transform jobs are
modelled the same way. A warm pool is billed while it is kept ("SageMaker managed warm pools are a
billable resource"; WarmPoolStatus.ResourceRetainedBillableTimeInSeconds is "the billable time in
seconds used by the warm pool", https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_WarmPoolStatus.html):
with hits, each slot is billed from its first job's billed start to its last job's end, plus one
keep-alive period after its last job (the pool idles until it expires); without hits, every job
leaves a pool that idles for a whole keep-alive period.

**Models per endpoint instance.** A loaded model costs far more memory than its artifact: the
walkthrough's multi-model endpoint levelled off at ``CALIBRATION_MODELS`` (121) loaded models with
memory near 79% on one ml.m4.xlarge (16 GiB). That gives the memory of one loaded model (container
overhead per model, calibrated at the default artifact size, plus the artifact), assuming the cache
stops growing at the same utilisation on every type and (by default) attributing all of it to the
models. ``models_per_instance = floor((0.79 * memory - baseline) / per_model)``; the instances that
keep all N models loaded (so the cache never evicts) are ``ceil(N / models_per_instance)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from mme_cli import instance_memory
from mme_constructs.algorithms import ALGORITHMS
from mme_shared.housing_data import split_sizes
from project_config import ProjectConfig, instance_types
from project_config.model import MULTI_MODEL_CPU_FAMILIES

GENERATION_CONCURRENCY: Final = 40
"""MaxConcurrency of the GenerateData Map (``mme_constructs.training_definition``; a test keeps them equal,
without the CLI importing aws_cdk)."""
MAX_KEEP_ALIVE_SECONDS: Final = 3600
"""The longest KeepAlivePeriodInSeconds SageMaker allows ("3600 seconds (60 minutes)", train-warm-pools)."""

CALIBRATION_ALGORITHM: Final = "linear-learner"
"""The algorithm of every default time and size below, and of the walkthrough's models."""
CALIBRATION_INSTANCE_TYPE: Final = "ml.m4.xlarge"
CALIBRATION_MODELS: Final = 121
CALIBRATION_MEMORY_UTILIZATION: Final = 0.79
"""The walkthrough's cache experiment: 121 models loaded at about 79% memory on one ml.m4.xlarge."""
MIB_PER_GIB: Final = 1024
BYTES_PER_MB: Final = 1_000_000
BYTES_PER_MIB: Final = 1024 * 1024
DEFAULT_MODEL_MB: Final = 0.01
"""A linear-learner model.tar.gz of this project (10 features): a symbol graph and 11 weights, a few kB
compressed (an estimate, rounded up); the walkthrough's models are assumed to be this size too. Not
an estimate for the other algorithms (an XGBoost model holds its trees, k-NN its sample)."""
_EPSILON: Final = 1e-9
"""Absorbs floating-point error before a floor (121.0 must not become 120)."""

WARM_POOLS_GUIDE: Final = "https://docs.aws.amazon.com/sagemaker/latest/dg/train-warm-pools.html"
WARM_POOLS_BLOG: Final = "https://aws.amazon.com/blogs/machine-learning/best-practices-for-amazon-sagemaker-training-managed-warm-pools/"
DESCRIBE_TRAINING_JOB: Final = (
    "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html"
)
BENCHMARK_ROWS_PER_SECOND: Final = 170_000
"""README "Serving speed": the preprocessor's serving path on a 10,000-row request (``make benchmark``)."""
TRANSFORM_DERATING: Final = 0.25
"""The share of the in-process benchmark a batch transform is assumed to reach: the benchmark has no
HTTP, no S3 reads and writes and no record splitting (an estimate)."""


class PlanError(ValueError):
    """An input the planner cannot model; the message is one sentence naming the input."""


@dataclass(frozen=True)
class Assumptions:
    """Every modelled time and size; the command exposes each as an option. ``None``: derived."""

    training_cold_start_seconds: float = 240.0
    transform_cold_start_seconds: float = 300.0
    warm_start_seconds: float = 30.0
    billed_start_seconds: float = 60.0
    train_seconds: float | None = None
    preprocessor_fit_seconds: float | None = None
    transform_rows_per_second: float = BENCHMARK_ROWS_PER_SECOND * TRANSFORM_DERATING
    transform_object_seconds: float = 0.1
    generation_seconds: float = 2.0
    lambda_step_seconds: float = 1.0
    model_mb: float = DEFAULT_MODEL_MB
    endpoint_baseline_mib: float = 0.0

    def problem(self) -> str | None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and (not math.isfinite(value) or value < 0):
                return f"{_option(item.name)} must be a number of at least 0, got {value:g}"
        if self.transform_rows_per_second <= 0:
            return f"--transform-rows-per-second must be above 0, got {self.transform_rows_per_second:g}"
        return None


TRAIN_FIXED_SECONDS: Final = 60.0
TRAIN_SECONDS_PER_1000_ROWS: Final = 30.0
"""Default linear-learner job time (estimate): about a minute of algorithm start-up in the container
(data download, MXNet, 32 models in parallel, model selection) plus 30 s per 1,000 train+validation rows
for 10 epochs on one CPU instance: 87 s for the default 700 + 200 rows."""
FIT_FIXED_SECONDS: Final = 30.0
FIT_ROWS_PER_SECOND: Final = 50_000.0
"""Default preprocessor fit (estimate): 30 s of script start-up and S3 download plus reading the CSV of
every location and fitting StandardScaler/OneHotEncoder at 50,000 rows/s."""


@dataclass(frozen=True)
class Workload:
    """What the config and the command line say about the run and the endpoint."""

    locations: int
    refit: bool
    parallel_training_jobs: int
    warm_pool_keep_alive_seconds: int
    houses_per_location: int
    validation_fraction: float
    test_fraction: float
    training_instance_type: str
    preprocessor_instance_type: str
    transform_instance_type: str
    endpoint_instance_type: str
    autoscaling_max_capacity: int | None
    execution_timeout_minutes: int
    algorithm: str = "linear-learner"
    """``training.algorithm``: what the training jobs run (the numbers are calibrated on linear learner)."""

    @property
    def algorithm_title(self) -> str:
        return ALGORITHMS[self.algorithm].title

    @property
    def calibrated(self) -> bool:
        """The default numbers are this algorithm's own (linear learner) rather than borrowed."""
        return self.algorithm == CALIBRATION_ALGORITHM

    @classmethod
    def from_config(
        cls,
        config: ProjectConfig,
        *,
        locations: int,
        refit: bool,
        parallel_training_jobs: int | None = None,
        warm_pool_keep_alive_seconds: int | None = None,
    ) -> Workload:
        training = config.training
        keep_alive = (
            warm_pool_keep_alive_seconds
            if warm_pool_keep_alive_seconds is not None
            else int(getattr(training, "warm_pool_keep_alive_seconds", 0))
        )
        scaling = config.endpoint.autoscaling
        return cls(
            locations=locations,
            refit=refit,
            parallel_training_jobs=parallel_training_jobs or training.parallel_training_jobs,
            warm_pool_keep_alive_seconds=keep_alive,
            houses_per_location=config.data.houses_per_location,
            validation_fraction=config.data.validation_fraction,
            test_fraction=config.data.test_fraction,
            training_instance_type=training.training_instance_type,
            preprocessor_instance_type=training.preprocessor_instance_type,
            transform_instance_type=training.transform_instance_type,
            endpoint_instance_type=config.endpoint.instance_type,
            autoscaling_max_capacity=scaling.max_capacity if scaling.enabled else None,
            execution_timeout_minutes=training.execution_timeout_minutes,
            algorithm=training.algorithm,
        )

    def problem(self) -> str | None:
        if self.algorithm not in ALGORITHMS:
            return f"the algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        if self.locations < 1:
            return f"--locations must be at least 1, got {self.locations}"
        if self.parallel_training_jobs < 1:
            return f"--parallel must be at least 1, got {self.parallel_training_jobs}"
        if not 0 <= self.warm_pool_keep_alive_seconds <= MAX_KEEP_ALIVE_SECONDS:
            return (
                f"--keep-alive-seconds must be from 0 to {MAX_KEEP_ALIVE_SECONDS} (SageMaker's longest "
                f"KeepAlivePeriodInSeconds), got {self.warm_pool_keep_alive_seconds}"
            )
        return None


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class TrainingMap:
    """The per-location training jobs under the Map's concurrency."""

    slots: int
    waves: int
    warm_pool_hits: bool
    cold_jobs: int
    warm_jobs: int
    gap_seconds: float
    wall_seconds: float
    billed_seconds: float
    warm_pool_idle_seconds: float
    """Billed seconds a kept instance waits without a job (gaps between jobs and expiring pools)."""


@dataclass(frozen=True)
class EndpointFit:
    instance_type: str
    memory_gib: float
    models_per_instance: int
    instances_needed: int | None
    """None: not even one model fits."""


@dataclass(frozen=True)
class Plan:
    workload: Workload
    assumptions: Assumptions
    """With the derived values filled in."""
    rows_per_location: tuple[int, int, int]
    jobs: dict[str, int]
    api_calls: dict[str, int]
    phases: list[Phase]
    training_map: TrainingMap
    wall_seconds: float
    instance_hours_by_kind: dict[str, float]
    instance_hours_by_type: dict[str, float]
    peak_training_instances: int
    peak_warm_pool_instances: int
    exceeds_execution_timeout: bool
    """The modelled wall time is longer than training.execution_timeout_minutes: the run would time out."""
    loaded_model_mib: float
    endpoint: EndpointFit
    alternatives: list[EndpointFit] = field(default_factory=list)


def default_train_seconds(train_rows: int, validation_rows: int) -> float:
    return TRAIN_FIXED_SECONDS + TRAIN_SECONDS_PER_1000_ROWS * (train_rows + validation_rows) / 1000


def default_fit_seconds(total_train_rows: int) -> float:
    return FIT_FIXED_SECONDS + total_train_rows / FIT_ROWS_PER_SECOND


def training_map(
    locations: int,
    parallel: int,
    keep_alive_seconds: int,
    *,
    train_seconds: float,
    gap_seconds: float,
    cold_start_seconds: float,
    warm_start_seconds: float,
    billed_start_seconds: float,
) -> TrainingMap:
    """The Map's waves, warm-pool hits, wall time and billed instance-seconds (see the module doc)."""
    slots = min(parallel, locations)
    waves = math.ceil(locations / parallel)
    hits = keep_alive_seconds > 0 and gap_seconds <= keep_alive_seconds
    next_start = warm_start_seconds if hits else cold_start_seconds
    wall = cold_start_seconds + train_seconds + gap_seconds
    wall += (waves - 1) * (next_start + train_seconds + gap_seconds)
    first_jobs, later_jobs = slots, locations - slots
    if hits:
        idle = slots * keep_alive_seconds + later_jobs * gap_seconds
        billed = first_jobs * (billed_start_seconds + train_seconds)
        billed += later_jobs * (warm_start_seconds + train_seconds) + idle
        cold, warm = first_jobs, later_jobs
    else:
        idle = float(locations * keep_alive_seconds)
        billed = locations * (billed_start_seconds + train_seconds) + idle
        cold, warm = locations, 0
    return TrainingMap(
        slots=slots,
        waves=waves,
        warm_pool_hits=hits,
        cold_jobs=cold,
        warm_jobs=warm,
        gap_seconds=gap_seconds,
        wall_seconds=wall,
        billed_seconds=billed,
        warm_pool_idle_seconds=idle,
    )


def loaded_model_mib(assumptions: Assumptions) -> float:
    """Memory of one loaded model: the calibration's per-model share, its artifact swapped for ours."""
    calibration_gib = instance_memory.memory_gib(CALIBRATION_INSTANCE_TYPE)
    assert calibration_gib is not None  # the table holds every allowed type (a test checks)
    usable = (
        CALIBRATION_MEMORY_UTILIZATION * calibration_gib * MIB_PER_GIB - assumptions.endpoint_baseline_mib
    )
    if usable <= 0:
        raise PlanError(
            f"--endpoint-baseline-mib ({assumptions.endpoint_baseline_mib:g}) leaves no memory for the "
            f"calibration's {CALIBRATION_MODELS} models on a {CALIBRATION_INSTANCE_TYPE}"
        )
    calibration_share = usable / CALIBRATION_MODELS
    artifact_mib = DEFAULT_MODEL_MB * BYTES_PER_MB / BYTES_PER_MIB
    return calibration_share - artifact_mib + assumptions.model_mb * BYTES_PER_MB / BYTES_PER_MIB


def endpoint_fit(
    instance_type: str, locations: int, per_model_mib: float, baseline_mib: float
) -> EndpointFit:
    memory = instance_memory.memory_gib(instance_type)
    if memory is None:
        raise PlanError(f"{instance_type!r} is not in the endpoint memory table (mme_cli/instance_memory.py)")
    usable = CALIBRATION_MEMORY_UTILIZATION * memory * MIB_PER_GIB - baseline_mib
    models = max(0, math.floor(usable / per_model_mib + _EPSILON))
    return EndpointFit(
        instance_type=instance_type,
        memory_gib=memory,
        models_per_instance=models,
        instances_needed=math.ceil(locations / models) if models else None,
    )


def alternative_types(configured: str) -> list[str]:
    """One type per allowed endpoint family (its xlarge, else its smallest), the configured one excepted."""
    allowed = instance_types.allowed_types(instance_types.ENDPOINT, MULTI_MODEL_CPU_FAMILIES)
    chosen = []
    for family in sorted({instance_types.instance_family(t) for t in allowed}):
        sizes = sorted(
            (t for t in allowed if instance_types.instance_family(t) == family),
            key=lambda t: instance_memory.memory_gib(t) or 0.0,
        )
        xlarge = f"ml.{family}.xlarge"
        pick = xlarge if xlarge in sizes else sizes[0]
        if pick != configured:
            chosen.append(pick)
    return chosen


def plan(workload: Workload, assumptions: Assumptions = Assumptions()) -> Plan:
    """The whole model for one run; raises PlanError (one sentence) for an input it cannot model."""
    problem = workload.problem() or assumptions.problem()
    if problem is not None:
        raise PlanError(problem)
    n = workload.locations
    try:
        train_rows, validation_rows, test_rows = split_sizes(
            workload.houses_per_location, workload.validation_fraction, workload.test_fraction
        )
    except ValueError as error:
        raise PlanError(str(error)) from None
    train_s = (
        assumptions.train_seconds
        if assumptions.train_seconds is not None
        else default_train_seconds(train_rows, validation_rows)
    )
    fit_s = (
        assumptions.preprocessor_fit_seconds
        if assumptions.preprocessor_fit_seconds is not None
        else default_fit_seconds(n * train_rows)
    )
    resolved = replace(assumptions, train_seconds=train_s, preprocessor_fit_seconds=fit_s)
    lam = assumptions.lambda_step_seconds
    billed_start = assumptions.billed_start_seconds

    phases = [Phase("Plan the run", lam, "PlanRun Lambda")]
    generation_waves = math.ceil(n / GENERATION_CONCURRENCY)
    phases.append(
        Phase(
            "Generate data",
            generation_waves * assumptions.generation_seconds,
            f"{n:,} Lambdas, {GENERATION_CONCURRENCY} at a time: {generation_waves:,} wave(s)",
        )
    )
    hours_by_kind: dict[str, float] = {}
    hours_by_type: dict[str, float] = {}

    def bill(kind: str, instance_type: str, seconds: float) -> None:
        hours_by_kind[kind] = hours_by_kind.get(kind, 0.0) + seconds / 3600
        hours_by_type[instance_type] = hours_by_type.get(instance_type, 0.0) + seconds / 3600

    if workload.refit:
        phases.append(
            Phase(
                "Fit the preprocessor",
                assumptions.training_cold_start_seconds + fit_s,
                f"1 training job over {n * train_rows:,} rows (cold start)",
            )
        )
        phases.append(Phase("Store the preprocessor", lam, "StorePreprocessor Lambda"))
        bill("preprocessor training job", workload.preprocessor_instance_type, billed_start + fit_s)

    phases.append(Phase("Create the preprocessor model", lam, "CreateModel (every run)"))
    transform_work = {
        split: n * assumptions.transform_object_seconds + n * rows / assumptions.transform_rows_per_second
        for split, rows in (("train", train_rows), ("validation", validation_rows))
    }
    phases.append(
        Phase(
            "Transform train and validation",
            assumptions.transform_cold_start_seconds + max(transform_work.values()),
            f"2 batch transform jobs in parallel over {n * (train_rows + validation_rows):,} rows "
            f"in {2 * n:,} objects",
        )
    )
    for work in transform_work.values():
        bill("batch transform jobs", workload.transform_instance_type, billed_start + work)

    mapped = training_map(
        n,
        workload.parallel_training_jobs,
        workload.warm_pool_keep_alive_seconds,
        train_seconds=train_s,
        gap_seconds=2 * lam,
        cold_start_seconds=assumptions.training_cold_start_seconds,
        warm_start_seconds=assumptions.warm_start_seconds,
        billed_start_seconds=billed_start,
    )
    warm_note = (
        f"{mapped.cold_jobs:,} cold, {mapped.warm_jobs:,} warm-pool hits"
        if mapped.warm_pool_hits
        else f"all {mapped.cold_jobs:,} cold"
        + ("" if workload.warm_pool_keep_alive_seconds == 0 else " (keep-alive shorter than the gap)")
    )
    phases.append(
        Phase(
            "Train the locations",
            mapped.wall_seconds,
            f"{n:,} training jobs, {workload.parallel_training_jobs} at a time: {mapped.waves:,} wave(s), "
            f"{warm_note}; each between CheckTransform and PromoteModel",
        )
    )
    training_jobs = f"{workload.algorithm_title} training jobs"
    bill(training_jobs, workload.training_instance_type, mapped.billed_seconds)
    phases.append(Phase("Summarize", lam, "Summarize Lambda"))

    jobs = {
        "preprocessor training job": int(workload.refit),
        "batch transform jobs": 2,
        training_jobs: n,
    }
    api_calls = {
        "states:StartExecution": 1,
        "lambda:Invoke": 1 + n + int(workload.refit) + 2 * n + 1,
        "sagemaker:CreateTrainingJob": n + int(workload.refit),
        "sagemaker:CreateTransformJob": 2,
        "sagemaker:CreateModel": 1,
        "sagemaker:DescribeTrainingJob (promotion)": n + int(workload.refit),
    }
    per_model = loaded_model_mib(assumptions)
    baseline = assumptions.endpoint_baseline_mib
    wall = sum(p.seconds for p in phases)
    return Plan(
        workload=workload,
        assumptions=resolved,
        rows_per_location=(train_rows, validation_rows, test_rows),
        jobs=jobs,
        api_calls=api_calls,
        phases=phases,
        training_map=mapped,
        wall_seconds=wall,
        instance_hours_by_kind=hours_by_kind,
        instance_hours_by_type=hours_by_type,
        peak_training_instances=mapped.slots,
        peak_warm_pool_instances=mapped.slots if workload.warm_pool_keep_alive_seconds > 0 else 0,
        exceeds_execution_timeout=wall > workload.execution_timeout_minutes * 60,
        loaded_model_mib=per_model,
        endpoint=endpoint_fit(workload.endpoint_instance_type, n, per_model, baseline),
        alternatives=[
            endpoint_fit(t, n, per_model, baseline)
            for t in alternative_types(workload.endpoint_instance_type)
        ],
    )


def assumption_rows(result: Plan) -> list[tuple[str, str, str, str]]:
    """(option, value, what it is, source) for every assumption the plan used."""
    a, w = result.assumptions, result.workload
    train_rows, validation_rows, _ = result.rows_per_location
    # Where a default is a linear-learner figure and the configured algorithm is another, say so.
    borrowed = "" if w.calibrated else f"; a linear-learner figure, not measured for {w.algorithm_title}"
    rows: list[tuple[str, str, str, str]] = [
        ("--keep-alive-seconds", f"{w.warm_pool_keep_alive_seconds:d} s",
         "warm pool keep-alive of the per-location training jobs (0 = no warm pool)",
         "config training.warm_pool_keep_alive_seconds; at most 3600 s: " + WARM_POOLS_GUIDE),
        ("--parallel", f"{w.parallel_training_jobs:d}", "training jobs at a time (the Map's MaxConcurrency)",
         "config training.parallel_training_jobs"),
        ("--training-start-seconds", _seconds(a.training_cold_start_seconds),
         "start-up of a training job without a warm pool (provisioning, image, data)",
         "estimate: AWS publishes no figure; the warm-pools guide calls it \"typical startup times\""),
        ("--transform-start-seconds", _seconds(a.transform_cold_start_seconds),
         "start-up of a batch transform job (provisioning, image, model, health check)", "estimate"),
        ("--warm-start-seconds", _seconds(a.warm_start_seconds),
         "start-up of a training job that reuses a warm pool",
         "estimate; AWS: warm pools serve jobs that need start-up \"under 20 seconds\": " + WARM_POOLS_BLOG),
        ("--billed-start-seconds", _seconds(a.billed_start_seconds),
         "billed part of a cold start-up (data and image download after TrainingStartTime)",
         "estimate; billing from TrainingStartTime: " + DESCRIBE_TRAINING_JOB),
        ("--train-seconds", _seconds(a.train_seconds or 0.0),
         f"one {w.algorithm_title} job's training ({train_rows:,} train + {validation_rows:,} "
         "validation rows)",
         f"estimate for linear learner: {TRAIN_FIXED_SECONDS:g} s + {TRAIN_SECONDS_PER_1000_ROWS:g} s per "
         f"1,000 rows (data.houses_per_location {w.houses_per_location:,})"
         + ("" if w.calibrated else f", not measured for {w.algorithm_title}")),
        ("--preprocessor-fit-seconds", _seconds(a.preprocessor_fit_seconds or 0.0),
         "the preprocessor job's run after start-up (refit only)",
         f"estimate: {FIT_FIXED_SECONDS:g} s + train rows at {FIT_ROWS_PER_SECOND:,.0f} rows/s"),
        ("--transform-rows-per-second", f"{a.transform_rows_per_second:,.0f} rows/s",
         "batch transform throughput of one instance",
         f"README \"Serving speed\" benchmark {BENCHMARK_ROWS_PER_SECOND:,} rows/s x {TRANSFORM_DERATING:g} "
         "for HTTP, S3 and record splitting (estimate)"),
        ("--transform-object-seconds", _seconds(a.transform_object_seconds),
         "batch transform overhead per S3 object (one per location and split)", "estimate"),
        ("--generation-seconds", _seconds(a.generation_seconds),
         "one data-generation Lambda (one location's three CSV files)", "estimate"),
        ("--lambda-seconds", _seconds(a.lambda_step_seconds),
         "one Lambda step (PlanRun, StorePreprocessor, CheckTransform, PromoteModel, Summarize), CreateModel",
         "estimate; two of them (PromoteModel, CheckTransform) are the gap a warm pool bridges"),
        ("--model-mb", f"{a.model_mb:g} MB", f"one model.tar.gz ({w.algorithm_title}, 10 features)",
         "estimate for linear learner: a symbol graph and 11 weights, a few kB compressed" + borrowed),
        ("--endpoint-baseline-mib", f"{a.endpoint_baseline_mib:g} MiB",
         "endpoint memory used with no model loaded (OS, containers)",
         "0 attributes all of the calibration's 79% to the models"),
        ("(calibration)", f"{CALIBRATION_MODELS} models at {CALIBRATION_MEMORY_UTILIZATION:.0%}",
         f"of a {CALIBRATION_INSTANCE_TYPE} (16 GiB): {result.loaded_model_mib:,.1f} MiB per loaded model",
         "the walkthrough's cache experiment with linear-learner models (shared/WALKTHROUGH.md, step 8)"
         + borrowed),
    ]  # fmt: skip
    return rows


def to_json(result: Plan) -> dict[str, Any]:
    """A JSON-able view (every number rounded to a stable precision)."""
    from dataclasses import asdict

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [rounded(v) for v in value]
        return value

    document = rounded(asdict(result))
    document["assumption_sources"] = [
        {"option": o, "value": v, "meaning": m, "source": s} for o, v, m, s in assumption_rows(result)
    ]
    return dict(document)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _option(name: str) -> str:
    return {
        "training_cold_start_seconds": "--training-start-seconds",
        "transform_cold_start_seconds": "--transform-start-seconds",
        "lambda_step_seconds": "--lambda-seconds",
    }.get(name, "--" + name.replace("_", "-"))
