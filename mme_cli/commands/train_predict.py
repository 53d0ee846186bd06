"""``mme train`` (start, follow, summarise a training run) and ``mme predict`` (invoke a location's model).

Both read every name from the deployment's stack outputs. ``train`` uses :mod:`mme_cli.runs`
(shared with ``mme deploy``) for the execution input (inline locations, or a manifest under
``location-manifests/`` when too large, plus ``"refit": true`` with ``--refit``), the wait and the
report; ``predict`` resolves the served preprocessor generation
(``preprocessor/serving.json``) and the location's current model from that generation's pointer, so it
always invokes the version that was promoted last behind the preprocessor it was trained on, and
reads the answer in the format of the algorithm the endpoint serves (:mod:`mme_cli.answers`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from rich.markup import escape
from rich.table import Table

from mme_cli import answers, generations, output, runs
from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_cli.runs import Clock
from mme_constructs.algorithms import Algorithm
from mme_shared import naming, s3_layout
from mme_shared.housing_data import CATEGORICAL_FEATURE_COLUMNS, FEATURE_COLUMNS
from mme_shared.model_pointer import ModelPointer, ModelPointerError

CLOCK: Clock = Clock()
"""Time for the wait loop and the latency measurements; the tests replace it with a fake."""

RUN_ID_PREFIX: Final = "run-"
DEFAULT_POLL_SECONDS: Final = 10
MAX_REPEAT: Final = 10_000
MAX_CSV_ROWS: Final = 5_000
"""Rows sent in one request; well under the endpoint's 6 MB payload limit for 8 short fields."""
CATEGORY_VALUES: Final = ("y", "n")
FIELDS_HELP: Final = " ".join(FEATURE_COLUMNS)


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``train`` and ``predict`` to the top-level app (the groups are not used here)."""
    app.command("train")(train)
    app.command("predict")(predict)


# --------------------------------------------------------------------------------------------------
# mme train


def train(
    ctx: typer.Context,
    locations: Annotated[
        list[str] | None,
        typer.Option(
            "--locations",
            "--location",
            "-l",
            help="Locations to train, comma-separated or repeated (default: data.locations of the config).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the run until it ends, then print its summary.")
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help=f"Execution name, part of every job name ({naming.RUN_ID_RULE}). "
            "Default: run-<UTC yyyymmdd-HHMMSS>.",
            show_default=False,
        ),
    ] = None,
    poll_seconds: Annotated[
        int, typer.Option("--poll-seconds", min=1, max=600, help="Seconds between status checks with --wait.")
    ] = DEFAULT_POLL_SECONDS,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Fit a new preprocessor generation (pp-<run id>) and train these locations plus every "
            "location of the served generation on it; it becomes servable (`make deploy`) only if every "
            "location succeeds.",
        ),
    ] = False,
) -> None:
    """Start a training run for some or all locations; --wait follows it and prints the summary.

    Without --refit the locations are trained into the served preprocessor generation, reusing its
    preprocessor (the first run ever always fits one). --refit fits a new generation; the endpoint
    keeps serving the old one until `make deploy` switches every location at once. Exits 1 if the
    run, or any location in it, failed.
    """
    cli: CliContext = ctx.obj
    chosen = _locations(locations, cli.config.data.locations)
    name = _run_id(run_id)
    state_machine_arn = cli.deployment.state_machine_arn
    bucket = cli.deployment.bucket
    payload = runs.execution_input(cli.client("s3"), bucket, name, chosen, cli.console.print, refit=refit)
    stepfunctions = cli.client("stepfunctions")
    execution_arn = runs.start_run(
        stepfunctions, state_machine_arn, name, payload, if_taken="pass another --run-id"
    )
    cli.console.print(
        f"Started {'refit ' if refit else ''}training run {name} for {len(chosen)} location(s): "
        f"{execution_arn}",
        soft_wrap=True,
    )
    if not wait:
        cli.console.print(
            f"Follow it with `aws stepfunctions describe-execution --execution-arn {execution_arn}`, "
            "or start it with --wait.",
            soft_wrap=True,
        )
        return
    timeout_seconds = cli.config.training.execution_timeout_minutes * 60
    description = runs.wait_for_run(
        cli, stepfunctions, execution_arn, timeout_seconds=timeout_seconds, poll=poll_seconds, clock=CLOCK
    )
    runs.report_run(
        cli,
        description,
        bucket,
        generations.read_ref(cli.client("s3"), bucket, s3_layout.SERVING_GENERATION_KEY),
    )


def _locations(options: Sequence[str] | None, configured: Sequence[str]) -> list[str]:
    if not options:
        return list(configured)
    chosen: list[str] = []
    for option in options:
        for name in (part.strip() for part in option.split(",")):
            problem = naming.location_name_problem(name)
            if problem is not None:
                raise CliError(f"--locations: location name {problem}.")
            if name not in chosen:
                chosen.append(name)
    return chosen


def _run_id(option: str | None) -> str:
    text = (
        option
        if option is not None
        else RUN_ID_PREFIX + CLOCK.utcnow().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    )
    try:
        return naming.validate_run_id(text)
    except ValueError as error:
        raise CliError(f"--run-id: {error}.") from None


def predict(
    ctx: typer.Context,
    location: Annotated[
        str,
        typer.Argument(
            metavar="LOCATION", help="The location whose current model answers.", show_default=False
        ),
    ],
    fields: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FIELDS...",
            help=f"The 8 raw features in order ({FIELDS_HELP}), separated by spaces or commas, "
            "e.g. 1993 2728 6 3.0 0.7 1 y y.",
            show_default=False,
        ),
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            exists=True,
            dir_okay=False,
            readable=True,
            help=f"A CSV file of rows of the 8 features (an optional header row is skipped; at most "
            f"{MAX_CSV_ROWS} rows), sent in one request.",
            show_default=False,
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            "-n",
            min=1,
            max=MAX_REPEAT,
            help="Invoke this many times and print first-call (cold) vs later-call (warm) latency.",
        ),
    ] = 1,
    output_format: output.OutputOption = "table",
) -> None:
    """Ask LOCATION's current model about houses; prints each answer and the client-side latency.

    The answer is a price, or an anomaly score when the endpoint serves Random Cut Forest. --repeat N
    compares the first (cold) call with the later (warm) ones.
    """
    cli: CliContext = ctx.obj
    problem = naming.location_name_problem(location)
    if problem is not None:
        raise CliError(f"LOCATION: location name {problem}.")
    rows = _rows(fields, csv_file)
    body = "\n".join(",".join(row) for row in rows) + "\n"

    chosen = generations.served_generation(cli.client("s3"), cli.deployment.bucket)
    pointer = _current_model(cli, location, chosen.generation, chosen.describe())
    endpoint = cli.deployment.endpoint_name
    algorithm = cli.deployment.algorithm
    _require_in_service(cli.client("sagemaker"), endpoint)
    runtime = cli.client("sagemaker-runtime")
    latencies: list[float] = []
    predictions: list[float] = []
    for _ in range(repeat):
        started = CLOCK.monotonic()
        try:
            response = _invoke(runtime, endpoint, pointer.target_model, body, algorithm)
        except RequestRejected:
            # During a generation switch serving.json announces the next generation: its fleet may
            # already take the traffic and know only that generation's TargetModels (the client rule
            # of mme_shared/generation.py). Any other rejection is reported as it is.
            following = None if chosen.serving is None else chosen.serving.next_generation
            if following is None or pointer.preprocessor_generation == following:
                raise
            cli.errors.print(
                f"{pointer.target_model} was rejected while the endpoint switches to generation "
                f"{following}; retrying with that generation's model of {location}.",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
            pointer = _current_model(
                cli, location, following, f"{following} (the generation the endpoint is switching to)"
            )
            started = CLOCK.monotonic()
            response = _invoke(runtime, endpoint, pointer.target_model, body, algorithm)
        latencies.append(CLOCK.monotonic() - started)
        predictions = answers.values(
            algorithm, response["Body"].read(), target_model=pointer.target_model, rows=len(rows)
        )

    if output_format == "json":
        output.emit(
            output.PredictDocument(
                schema=output.PREDICT,
                endpoint_name=endpoint,
                algorithm=algorithm.name,
                predicts=algorithm.prediction,
                location=location,
                generation=pointer.preprocessor_generation,
                model_version=pointer.version,
                target_model=pointer.target_model,
                predictions=[
                    output.Prediction(features=dict(zip(FEATURE_COLUMNS, row, strict=True)), value=value)
                    for row, value in zip(rows, predictions, strict=True)
                ],
                latency_ms=output.PredictLatency(
                    calls=len(latencies),
                    first=_ms(latencies[0]),
                    cold=_latency_summary(latencies[:1]),
                    warm=_latency_summary(latencies[1:]) if len(latencies) > 1 else None,
                ),
            )
        )
        return
    _print_predictions(cli, algorithm, rows, predictions, pointer, latencies[0])
    if repeat > 1:
        _print_latency_table(cli, latencies)


def _rows(fields: Sequence[str] | None, csv_file: Path | None) -> list[list[str]]:
    """The rows to send, validated and normalised; CliError naming the first bad field."""
    if fields and csv_file is not None:
        raise CliError("Give either FIELDS or --csv FILE, not both.")
    if csv_file is not None:
        try:
            with csv_file.open(newline="", encoding="utf-8") as handle:
                raw_rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise CliError(f"Cannot read {csv_file}: {error}.") from None
        if raw_rows and [cell.strip().upper() for cell in raw_rows[0]] == list(FEATURE_COLUMNS):
            raw_rows = raw_rows[1:]
        if not raw_rows:
            raise CliError(f"{csv_file} has no data rows; each row holds the 8 features {FIELDS_HELP}.")
        if len(raw_rows) > MAX_CSV_ROWS:
            raise CliError(
                f"{csv_file} has {len(raw_rows)} rows; send at most {MAX_CSV_ROWS} per call (split it)."
            )
        return [
            _validated_row(row, f"Row {number} of {csv_file}: ") for number, row in enumerate(raw_rows, 1)
        ]
    if not fields:
        raise CliError(f"Give the 8 features ({FIELDS_HELP}) as arguments, or --csv FILE.")
    return [_validated_row(",".join(fields).split(","), "")]


def _validated_row(cells: Sequence[str], where: str) -> list[str]:
    values = [cell.strip() for cell in cells]
    if len(values) != len(FEATURE_COLUMNS):
        raise CliError(
            f"{where}expected {len(FEATURE_COLUMNS)} fields ({FIELDS_HELP}), got {len(values)}: "
            f"{' '.join(values) or '(none)'}."
        )
    row: list[str] = []
    for position, (column, value) in enumerate(zip(FEATURE_COLUMNS, values, strict=True), 1):
        if column in CATEGORICAL_FEATURE_COLUMNS:
            if value.lower() not in CATEGORY_VALUES:
                raise CliError(f"{where}field {position} ({column}) must be y or n, got {value!r}.")
            row.append(value.lower())
            continue
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise CliError(f"{where}field {position} ({column}) must be a number, got {value!r}.")
        row.append(value)
    return row


def _current_model(cli: CliContext, location: str, generation_id: str, described: str) -> ModelPointer:
    """The location's pointer in ``generation_id`` (the served one, else the newest complete one, or
    the one the endpoint is switching to)."""
    bucket = cli.deployment.bucket
    key = s3_layout.current_pointer_key(generation_id, location)
    uri = s3_layout.s3_uri(bucket, key)
    try:
        document = cli.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            raise CliError(
                f"Location {location} has no current model in {described} ({uri} does not "
                f"exist): train it with `mme train --location {location} --wait`, or add one with "
                f"`mme models add {location} ARTIFACT --generation {generation_id}`."
            ) from None
        raise
    try:
        pointer = ModelPointer.from_json(document)
    except ModelPointerError as error:
        raise CliError(
            f"The model pointer {uri} is not valid ({error}); promote the location again."
        ) from None
    if pointer.location != location:
        raise CliError(
            f"The model pointer {uri} names location {pointer.location}; promote {location} again."
        )
    if pointer.preprocessor_generation != generation_id:
        raise CliError(
            f"The model pointer {uri} names preprocessor generation {pointer.preprocessor_generation}, "
            f"not its folder's {generation_id}, so its model would get the wrong preprocessing: "
            f"retrain {location} with `mme train --location {location} --wait`."
        )
    return pointer


def _require_in_service(sagemaker: Any, endpoint: str) -> None:
    try:
        description = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if "Could not find endpoint" in str(error.response.get("Error", {}).get("Message", "")):
            raise CliError(
                f"Endpoint {endpoint} does not exist: redeploy the endpoint stack (`make deploy`)."
            ) from None
        raise
    status = str(description.get("EndpointStatus", "unknown"))
    if status != "InService":
        reason = description.get("FailureReason")
        raise CliError(
            f"Endpoint {endpoint} is {status}, not InService{f' ({reason})' if reason else ''}: "
            "wait until it is InService (see `mme status`) and try again."
        )


class RequestRejected(CliError):  # noqa: N818 (says what happened)
    """InvokeEndpoint answered ValidationError (HTTP 400), which is also what a TargetModel the
    serving fleet does not have gets."""


def _invoke(
    runtime: Any, endpoint: str, target_model: str, body: str, algorithm: Algorithm
) -> dict[str, Any]:
    try:
        response: dict[str, Any] = runtime.invoke_endpoint(
            EndpointName=endpoint,
            TargetModel=target_model,
            ContentType="text/csv",
            Accept=algorithm.response.accept,
            Body=body.encode("utf-8"),
        )
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = str(error.response.get("OriginalMessage") or details.get("Message", ""))
        if code == "ModelError":
            status = error.response.get("OriginalStatusCode")
            logs = error.response.get("LogStreamArn")
            raise CliError(
                f"Model {target_model} failed to predict{f' (HTTP {status})' if status else ''}: "
                f"{runs.short(message)}"
                f"{f'; its log stream is {logs}' if logs else ''}."
            ) from None
        if code in {"ValidationError", "ValidationException"}:
            raise RequestRejected(
                f"Endpoint {endpoint} rejected the request for {target_model}: {runs.short(message)}."
            ) from None
        raise
    return response


def _print_predictions(
    cli: CliContext,
    algorithm: Algorithm,
    rows: Sequence[Sequence[str]],
    predictions: Sequence[float],
    pointer: ModelPointer,
    first: float,
) -> None:
    source = f"{pointer.location} model {pointer.version} of {pointer.preprocessor_generation}"
    heading = answers.heading(algorithm)
    if len(rows) == 1:
        cli.console.print(
            f"{heading}: {escape(answers.shown(algorithm, predictions[0]))}  ({escape(source)}, "
            f"{first * 1000:.1f} ms)",
            soft_wrap=True,
        )
        return
    table = Table(title=f"{len(rows)} predictions by {escape(source)} in {first * 1000:.1f} ms")
    table.add_column("Row", justify="right")
    for column in FEATURE_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column(heading, justify="right")
    for number, (row, value) in enumerate(zip(rows, predictions, strict=True), 1):
        table.add_row(str(number), *row, escape(answers.shown(algorithm, value)))
    cli.console.print(table)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _latency_summary(sample: Sequence[float]) -> output.LatencySummary:
    """The sample's count and nearest-rank percentiles in milliseconds, as the latency table shows."""
    p50, p90, p99 = (percentile(sample, fraction) for fraction in (0.5, 0.9, 0.99))
    return output.LatencySummary(
        count=len(sample), p50=_ms(p50), p90=_ms(p90), p99=_ms(p99), max=_ms(max(sample))
    )


def _print_latency_table(cli: CliContext, latencies: Sequence[float]) -> None:
    table = Table(title=f"Client-side latency over {len(latencies)} calls (ms)")
    for column in ("Calls", "Count", "p50", "p90", "p99", "Max"):
        table.add_column(column, justify="right" if column != "Calls" else "left")
    for label, sample in (("cold (first call)", latencies[:1]), ("warm (later calls)", latencies[1:])):
        stats = [percentile(sample, f) for f in (0.5, 0.9, 0.99)] + [max(sample)]
        table.add_row(label, str(len(sample)), *(f"{s * 1000:.1f}" for s in stats))
    cli.console.print(table)
