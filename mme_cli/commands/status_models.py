"""``mme status`` and ``mme models list | promote | rollback | delete | prune``.

Models live per preprocessor generation (:mod:`mme_cli.generations`) as immutable versions
(``models/<generation>/<location>/<location>-<version>.tar.gz``); which version clients invoke is
said by the location's pointer in that generation (``model-pointers/<generation>/<location>.json``,
:mod:`mme_shared.model_pointer`). Every models command acts on one generation: the served one, or
the one named with ``--generation``. Promoting adds a version and moves the pointer (done by the
promotion Lambda, so the CLI needs no more rights than the pipeline has); rolling back only moves
the pointer, written by the same code as the Lambda's (:mod:`mme_shared.pointer_store`). Neither
touches the endpoint: it loads whatever TargetModel a client names, relative to the served
generation's prefix. Deleting and pruning remove version keys (and, for a whole location, its
pointer) explicitly: the bucket is versioned and its lifecycle rule only expires noncurrent object
versions, so a key nobody deletes stays forever.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import quote

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from mme_cli import generations, output
from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_cli.generations import Chosen
from mme_shared import s3_layout
from mme_shared.generation import GenerationRef
from mme_shared.model_pointer import (
    TRAINING_JOB_METADATA,
    ModelPointer,
    ModelPointerError,
    full_object_checksums,
    preferred_checksum,
    validation_metrics,
)
from mme_shared.naming import validate_location_name
from mme_shared.pointer_store import PointerChanged, delete_pointer, write_pointer
from mme_shared.stack_names import (
    ALARM_TOPIC_ARN,
    DASHBOARD_NAME,
    PROMOTE_FUNCTION_NAME,
    ROLLBACK_ALARM_INFIX,
    StackRole,
    stack_name,
)

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_PAGE_SIZE = 1000
"""Keys per ListObjectsV2 page (S3's maximum)."""
_NAMES_SHOWN = 10
"""How many existing names an error message lists before saying "and N more"."""
_POINTER_READERS: Final = 16
"""Pointers read at once by `mme status` and `mme models list` (one GetObject each)."""
"""Object metadata the promotion Lambda puts on every version it copies: the job that trained it."""
ADDED_BY_METADATA: Final = "mme-added-from"
"""Object metadata `mme models add` puts on a version it uploads: where the artifact came from."""

GenerationOption = Annotated[
    str | None,
    typer.Option("--generation", "-g", metavar="GEN", help=generations.GENERATION_OPTION_HELP),
]


def register(
    app: typer.Typer, *, models_app: typer.Typer, experiment_app: typer.Typer, access_app: typer.Typer
) -> None:
    """Add ``status`` to the top level and ``list``, ``promote``, ``rollback``, ``delete``, ``prune``."""
    del experiment_app, access_app  # registered by other modules
    app.command("status")(status)
    models_app.command("list")(list_models)
    models_app.command("promote")(promote)
    models_app.command("rollback")(rollback)
    models_app.command("delete")(delete)
    models_app.command("prune")(prune)


# --------------------------------------------------------------------------------------------------
# What is in the bucket


@dataclass(frozen=True)
class ModelVersion:
    """One object under ``models/<generation>/<location>/`` named by the key layout."""

    location: str
    version: str
    key: str
    size: int
    last_modified: datetime


@dataclass
class LocationModels:
    """Every version of one location in one generation, oldest first, and its pointer if any."""

    location: str
    versions: list[ModelVersion] = field(default_factory=list)
    pointer: ModelPointer | None = None
    pointer_problem: str | None = None
    """Why the pointer document could not be used (None when it is fine or absent)."""

    @property
    def newest(self) -> ModelVersion | None:
        return self.versions[-1] if self.versions else None

    @property
    def total_size(self) -> int:
        return sum(version.size for version in self.versions)

    def find(self, version: str) -> ModelVersion | None:
        position = self.position(version)
        return None if position is None else self.versions[position]

    def position(self, version: str) -> int | None:
        """Where ``version`` stands in promotion order (oldest first), or None if it is not here."""
        return next(
            (index for index, candidate in enumerate(self.versions) if candidate.version == version), None
        )


def _context(ctx: typer.Context) -> CliContext:
    cli = ctx.find_object(CliContext)
    if cli is None:  # only when a command is invoked without the app's callback
        raise CliError("Internal error: the command ran without its context; run it through `mme`.")
    return cli


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[Mapping[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": _PAGE_SIZE}
    ):
        yield from page.get("Contents", [])


def _sort_key(version: ModelVersion) -> tuple[datetime, str]:
    """Promotion order: when the version was written, then its name (job names end in the run id)."""
    return version.last_modified, version.version


def _scan_models(
    s3: Any, bucket: str, generation: str, location: str | None = None
) -> dict[str, LocationModels]:
    """Every model version of a generation (or of one location in it), grouped by location, oldest first."""
    prefix = (
        s3_layout.generation_models_prefix(generation)
        if location is None
        else s3_layout.location_models_prefix(generation, location)
    )
    found: dict[str, LocationModels] = {}
    for item in _list_objects(s3, bucket, prefix):
        parsed = s3_layout.parse_model_version_key(generation, str(item["Key"]))
        if parsed is None:
            continue  # not a model version (an experiment copy, a stray file); `mme status` counts it
        name, version = parsed
        found.setdefault(name, LocationModels(name)).versions.append(
            ModelVersion(name, version, item["Key"], int(item["Size"]), item["LastModified"])
        )
    for models in found.values():
        models.versions.sort(key=_sort_key)
    return found


@dataclass(frozen=True)
class PointerRead:
    """A location's pointer as read: the document, why it is unusable, and the object's ETag."""

    pointer: ModelPointer | None = None
    problem: str | None = None
    """Why the document could not be used (None when it is fine or does not exist)."""
    etag: str | None = None
    """None when no pointer object exists."""


def _read_pointer(s3: Any, bucket: str, generation: str, location: str) -> PointerRead:
    """The pointer in ``generation``'s folder; one naming another generation or location is unusable."""
    key = s3_layout.current_pointer_key(generation, location)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _error_code(error) in _NOT_FOUND_CODES:
            return PointerRead()
        raise
    etag = str(response["ETag"])
    uri = f"s3://{bucket}/{key}"
    try:
        pointer = ModelPointer.from_json(response["Body"].read())
    except ModelPointerError as error:
        return PointerRead(problem=f"{uri} is not a valid pointer: {error}", etag=etag)
    if pointer.preprocessor_generation != generation:
        return PointerRead(
            problem=(
                f"{uri} is not a valid pointer: it names preprocessor generation "
                f"{pointer.preprocessor_generation}, not its folder's {generation}"
            ),
            etag=etag,
        )
    if pointer.location != location:
        return PointerRead(
            problem=f"{uri} is not a valid pointer: it names location {pointer.location}, not {location}",
            etag=etag,
        )
    return PointerRead(pointer=pointer, etag=etag)


def _pointer_locations(s3: Any, bucket: str, generation: str) -> set[str]:
    prefix = s3_layout.generation_pointers_prefix(generation)
    locations = set()
    for item in _list_objects(s3, bucket, prefix):
        name = item["Key"][len(prefix) :]
        if name.endswith(".json") and "/" not in name:
            locations.add(name[: -len(".json")])
    return locations


def _read_pointers(s3: Any, bucket: str, generation: str, locations: set[str]) -> dict[str, PointerRead]:
    """Each valid location name's pointer, a few GetObjects at a time (boto3 clients are thread-safe)."""
    names = []
    for location in sorted(locations):
        try:
            names.append(validate_location_name(location))
        except ValueError:
            continue
    with ThreadPoolExecutor(max_workers=_POINTER_READERS) as pool:
        reads = pool.map(lambda name: _read_pointer(s3, bucket, generation, name), names)
        return dict(zip(names, reads, strict=True))


def _attach_pointers(
    s3: Any, bucket: str, generation: str, models: dict[str, LocationModels], locations: set[str]
) -> None:
    for location, read in _read_pointers(s3, bucket, generation, locations).items():
        entry = models.setdefault(location, LocationModels(location))
        entry.pointer, entry.pointer_problem = read.pointer, read.problem


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown if len(names) <= _NAMES_SHOWN else f"{shown} and {len(names) - _NAMES_SHOWN} more"


def _checked_location(location: str) -> str:
    try:
        return validate_location_name(location)
    except ValueError as error:
        raise CliError(f"Invalid --location: {error}.") from None


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _choose(cli: CliContext, s3: Any, option: str | None) -> Chosen:
    """The generation to act on; ``--generation`` is validated before the bucket is even looked up."""
    if option is not None:
        generations.validate_option(option)
    return generations.choose(s3, cli.deployment.bucket, option)


def _prefix_uri(bucket: str, chosen: Chosen) -> str:
    return s3_layout.s3_uri(bucket, chosen.models_prefix)


def _generations_holding(
    s3: Any, bucket: str, location: str, *, besides: str, version: str | None = None
) -> list[str]:
    """Other generations with models of ``location`` (or exactly ``version`` of it), by name."""
    found = []
    for generation in generations.known_generations(s3, bucket):
        if generation == besides:
            continue
        if version is None:
            prefix = s3_layout.location_models_prefix(generation, location)
            page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            if page.get("KeyCount", 0):
                found.append(generation)
        elif _head(s3, bucket, s3_layout.model_version_key(generation, location, version)) is not None:
            found.append(generation)
    return found


def _unknown_location(s3: Any, bucket: str, chosen: Chosen, location: str) -> str:
    generation = chosen.generation
    known = sorted(set(_scan_models(s3, bucket, generation)) | _pointer_locations(s3, bucket, generation))
    elsewhere = _generations_holding(s3, bucket, location, besides=generation)
    return (
        f"Location {location!r} has no model versions in {chosen.describe()} under "
        f"{_prefix_uri(bucket, chosen)}; locations with models there: {_names(known)}"
        + (
            f"; {location} has models in generation(s) {', '.join(elsewhere)} (pass --generation)"
            if elsewhere
            else ""
        )
        + "."
    )


# --------------------------------------------------------------------------------------------------
# mme status


def status(ctx: typer.Context, output_format: output.OutputOption = "table") -> None:
    """Show the deployment: stack outputs, endpoint status, the served and newest preprocessor
    generations, what the endpoint's model actually reads, models per generation, the last training run,
    the dashboard's console URL and every alarm's state.

    Prints a warning for every disagreement: preprocessor/serving.json versus the endpoint's model,
    a newer complete generation that is not served yet, and pointers of the served generation that
    name another generation.
    """
    cli = _context(ctx)
    document = collect_status(cli)
    if output_format == "json":
        output.emit(document)
    else:
        _print_status(cli, document)
    for warning in document["warnings"]:
        cli.errors.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def collect_status(cli: CliContext) -> output.StatusDocument:
    """Everything `mme status` shows, as the ``mme.status/1`` document (warnings included)."""
    deployment = cli.deployment
    bucket = deployment.bucket  # no Storage stack: nothing else is worth showing
    s3 = cli.client("s3")
    warnings: list[str] = []

    serving = generations.read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY)
    newest = generations.read_ref(s3, bucket, s3_layout.NEWEST_GENERATION_KEY)
    newest_entry: output.NewestGeneration | None = None
    if newest is not None:
        record = generations.read_complete(s3, bucket, newest.generation)
        newest_entry = output.NewestGeneration(
            generation=newest.generation,
            updated_at=output.timestamp(newest.updated_at),
            complete_record=record is not None,
            location_count=None if record is None else record.location_count,
            completed_at=None if record is None else output.timestamp(record.completed_at),
            algorithm=None if record is None else record.algorithm,
        )
        if record is None:
            warnings.append(
                f"preprocessor/newest.json names {newest.generation}, but "
                f"{s3_layout.generation_record_key(newest.generation)} does not exist."
            )
        if serving is not None and newest.generation != serving.generation:
            warnings.append(
                f"Generation {newest.generation} is complete but not served (the endpoint serves "
                f"{serving.generation}): run `make deploy` to switch every location to it."
            )
        elif serving is None:
            warnings.append(
                f"Generation {newest.generation} is complete but nothing is served yet: run `make deploy`."
            )

    endpoint, endpoint_warnings = _endpoint_state(cli, bucket, serving)
    models, model_warnings = _models_state(s3, bucket, serving.generation if serving else None)
    alarms, alarm_warnings = _alarms(cli)
    return output.StatusDocument(
        schema=output.STATUS,
        prefix=deployment.prefix,
        region=deployment.region,
        bucket=bucket,
        serving=None
        if serving is None
        else output.ServingGeneration(
            generation=serving.generation,
            endpoint_name=serving.endpoint_name,
            updated_at=output.timestamp(serving.updated_at),
            next_generation=serving.next_generation,
        ),
        newest=newest_entry,
        endpoint=endpoint,
        models=models,
        training=_training_state(cli),
        monitoring=_monitoring_state(cli),
        alarms=alarms,
        warnings=[*warnings, *endpoint_warnings, *model_warnings, *alarm_warnings],
    )


def _shown(moment: str | None) -> str:
    """A document's timestamp as the tables show times: ``2025-05-01 12:00:00 UTC``."""
    return "-" if moment is None else _when(datetime.fromisoformat(moment))


def _print_status(cli: CliContext, document: output.StatusDocument) -> None:
    table = Table(title=f"Deployment {document['prefix']} in {document['region']}", show_header=False)
    table.add_column("Item", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_row("Artifact bucket", document["bucket"])
    serving, newest = document["serving"], document["newest"]
    if serving is None:
        table.add_row("Serving generation", "none yet (no preprocessor/serving.json): run `make deploy`")
    else:
        endpoint = serving["endpoint_name"]
        endpoint_text = f"endpoint {endpoint}" if endpoint else "no endpoint named"
        table.add_row(
            "Serving generation",
            f"{serving['generation']} ({endpoint_text}, since {_shown(serving['updated_at'])})",
        )
    if newest is None:
        table.add_row("Newest complete generation", "none yet: run `mme train --wait`")
    else:
        detail = (
            f"{newest['location_count']} location(s), completed {_shown(newest['completed_at'])}"
            if newest["complete_record"]
            else "its complete.json is missing!"
        )
        table.add_row("Newest complete generation", f"{newest['generation']} ({detail})")
    for rows in (
        _endpoint_rows(document["endpoint"]),
        _model_rows(document["models"]),
        _training_rows(document["training"]),
        _monitoring_rows(document["monitoring"], document["alarms"]),
    ):
        for label, value in rows:
            table.add_row(label, value)
    cli.console.print(table)
    if document["alarms"]:
        cli.console.print(_alarm_table(document["alarms"]))


def _endpoint_state(
    cli: CliContext, bucket: str, serving: GenerationRef | None
) -> tuple[output.EndpointState, list[str]]:
    absent = output.EndpointState(
        name=None, found=False, status=None, instances=None, variants=None, models=[]
    )
    try:
        endpoint_name = cli.deployment.endpoint_name
    except CliError:
        return absent, []
    view = generations.describe_endpoint(cli.client("sagemaker"), endpoint_name)
    if view is None:
        return {**absent, "name": endpoint_name}, []
    warnings: list[str] = []
    for model in view.models:
        warnings.extend(f"{problem}." for problem in model.problems(bucket))
    served = view.generations
    if len(served) > 1:
        warnings.append(f"The endpoint's variants serve different generations: {', '.join(served)}.")
    if serving is not None:
        if serving.endpoint_name is not None and serving.endpoint_name != endpoint_name:
            warnings.append(
                f"preprocessor/serving.json was written for endpoint {serving.endpoint_name}, but this "
                f"deployment's endpoint is {endpoint_name}: run `make deploy`."
            )
        for model in view.models:
            if model.generation is not None and model.generation != serving.generation:
                warnings.append(
                    f"preprocessor/serving.json says generation {serving.generation} is served, but the "
                    f"endpoint's model {model.model_name} is configured for {model.generation} (an endpoint "
                    "update still running or one that failed?): run `make deploy` so the two agree."
                )
    elif served:
        warnings.append(
            f"The endpoint's model serves {', '.join(served)}, but preprocessor/serving.json does not "
            "exist: run `make deploy` to record it."
        )
    state = output.EndpointState(
        name=endpoint_name,
        found=True,
        status=view.status,
        instances=view.instances,
        variants=view.variants,
        models=[
            output.ServedModel(
                model_name=model.model_name,
                generation=model.generation,
                preprocessor_url=model.preprocessor_url,
                models_url=model.models_url,
            )
            for model in view.models
        ],
    )
    return state, warnings


def _endpoint_rows(endpoint: output.EndpointState) -> list[tuple[str, str]]:
    if endpoint["name"] is None:
        return [("Endpoint", "not deployed (no Endpoint stack)")]
    if not endpoint["found"]:
        return [("Endpoint", f"{endpoint['name']}: not deployed (SageMaker has no such endpoint)")]
    rows = [
        ("Endpoint", endpoint["name"]),
        ("Endpoint status", str(endpoint["status"])),
        ("Instances", f"{endpoint['instances']} across {endpoint['variants']} variant(s)"),
    ]
    for model in endpoint["models"]:
        rows.append(
            (
                "Endpoint serves",
                f"{model['generation'] or 'unknown generation'} (model {model['model_name']}: preprocessor "
                f"{model['preprocessor_url'] or '-'}, models {model['models_url'] or '-'})",
            )
        )
    return rows


def _models_state(s3: Any, bucket: str, served: str | None) -> tuple[output.ModelsState, list[str]]:
    """Objects and locations per generation (served first), and the served generation's bad pointers."""
    counts: dict[str, tuple[int, set[str]]] = {}
    for item in _list_objects(s3, bucket, s3_layout.MULTI_MODEL_PREFIX):
        parsed = s3_layout.parse_multi_model_key(str(item["Key"]))
        if parsed is None:
            continue
        generation, location = parsed
        objects, locations = counts.get(generation, (0, set()))
        if location is not None:
            locations.add(location)
        counts[generation] = (objects + 1, locations)

    def entry(generation: str) -> output.GenerationModels:
        objects, locations = counts.get(generation, (0, set()))
        return output.GenerationModels(
            generation=generation, served=generation == served, objects=objects, locations=len(locations)
        )

    warnings: list[str] = []
    state = output.ModelsState(served_prefix_uri=None, served_pointers=None, generations=[])
    if served is not None:
        state["served_prefix_uri"] = s3_layout.s3_uri(bucket, s3_layout.generation_models_prefix(served))
        reads = _read_pointers(s3, bucket, served, _pointer_locations(s3, bucket, served))
        state["served_pointers"] = len(reads)
        state["generations"].append(entry(served))
        warnings.extend(f"{read.problem}." for read in reads.values() if read.problem is not None)
    state["generations"].extend(entry(name) for name in sorted(counts) if name != served)
    return state, warnings


def _model_rows(models: output.ModelsState) -> list[tuple[str, str]]:
    def described(entry: output.GenerationModels) -> str:
        return f"{entry['objects']} object(s) in {entry['locations']} location(s)"

    rows: list[tuple[str, str]] = []
    prefix = models["served_prefix_uri"]
    if prefix is not None:
        served = models["generations"][0]
        rows.append(("Model prefix (served)", prefix))
        rows.append(("Models (served generation)", f"{described(served)} under {prefix}"))
        rows.append(("Pointers (served generation)", f"{models['served_pointers']} location(s)"))
    others = [entry for entry in models["generations"] if not entry["served"]]
    if others:
        rows.append(
            (
                "Models (other generations)",
                "; ".join(f"{entry['generation']}: {described(entry)}" for entry in others),
            )
        )
    elif prefix is None:
        rows.append(("Models", "none yet"))
    return rows


def _training_state(cli: CliContext) -> output.TrainingState:
    try:
        state_machine_arn = cli.deployment.state_machine_arn
    except CliError:
        return output.TrainingState(state_machine_arn=None, found=False, last_run=None)
    try:
        executions = cli.client("stepfunctions").list_executions(
            stateMachineArn=state_machine_arn, maxResults=1
        )["executions"]
    except ClientError as error:
        if _error_code(error) == "StateMachineDoesNotExist":
            return output.TrainingState(state_machine_arn=state_machine_arn, found=False, last_run=None)
        raise
    last = executions[0] if executions else None
    return output.TrainingState(
        state_machine_arn=state_machine_arn,
        found=True,
        last_run=None
        if last is None
        else output.LastRun(
            name=str(last["name"]),
            status=str(last["status"]),
            started_at=output.timestamp(last.get("startDate")),
        ),
    )


def _training_rows(training: output.TrainingState) -> list[tuple[str, str]]:
    arn = training["state_machine_arn"]
    if arn is None:
        return [("State machine", "not deployed (no Training stack)")]
    rows = [("State machine", arn)]
    last = training["last_run"]
    if not training["found"]:
        return [*rows, ("Last training", "state machine not found")]
    if last is None:
        return [*rows, ("Last training", "none yet: run `mme train`")]
    return [
        *rows,
        ("Last training", f"{last['name']}: {last['status']}, started {_shown(last['started_at'])}"),
    ]


# --- the monitoring stack: dashboard and alarms ----------------------------------------------------

_ALARM_STATE_ORDER: Final[Mapping[str, int]] = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}


def console_domain(region: str) -> str:
    """The AWS console's domain for a region's partition (China and GovCloud have their own)."""
    if region.startswith("cn-"):
        return "console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return "console.amazonaws-us-gov.com"
    return "console.aws.amazon.com"


def dashboard_url(region: str, dashboard_name: str) -> str:
    """The CloudWatch console page of a dashboard.

    The commercial partition's console has a host per region; the China and GovCloud consoles are
    opened on their one host, the region chosen by the ``region`` parameter.
    """
    domain = console_domain(region)
    host = domain if domain != "console.aws.amazon.com" else f"{region}.{domain}"
    fragment = f"dashboards/dashboard/{quote(dashboard_name, safe='')}"
    return f"https://{host}/cloudwatch/home?region={region}#{fragment}"


def alarm_name_prefixes(prefix: str) -> dict[str, str]:
    """Stack name -> what the names of its alarms start with.

    The monitoring stack's alarms have names CloudFormation generates, ``<stack>-<logical id>-<random>``;
    the endpoint stack names its rollback alarms ``<stack>-Rollback-<condition>``
    (:func:`mme_shared.stack_names.rollback_alarm_name`). Stack names are unique per account and
    region, and end before the ``-``, so no other deployment's alarm matches.
    """
    monitoring, endpoint = stack_name(prefix, StackRole.MONITORING), stack_name(prefix, StackRole.ENDPOINT)
    return {monitoring: f"{monitoring}-", endpoint: f"{endpoint}{ROLLBACK_ALARM_INFIX}"}


def _monitoring_state(cli: CliContext) -> output.MonitoringState:
    deployment = cli.deployment
    outputs = deployment.outputs_of(StackRole.MONITORING)
    if outputs is None:
        return output.MonitoringState(
            deployed=False, dashboard_name=None, dashboard_url=None, alarm_topic_arn=None
        )
    name = outputs.get(DASHBOARD_NAME.key)
    return output.MonitoringState(
        deployed=True,
        dashboard_name=name,
        dashboard_url=None if name is None else dashboard_url(deployment.region, name),
        alarm_topic_arn=outputs.get(ALARM_TOPIC_ARN.key),
    )


def _alarms(cli: CliContext) -> tuple[list[output.Alarm] | None, list[str]]:
    """The alarms of the deployed monitoring and endpoint stacks, ALARM first; None if unreadable."""
    deployment = cli.deployment
    prefixes = {
        stack: name_prefix
        for stack, name_prefix in alarm_name_prefixes(deployment.prefix).items()
        if stack in deployment.outputs
    }
    if not prefixes:
        return [], []
    paginator = cli.client("cloudwatch").get_paginator("describe_alarms")
    found: list[output.Alarm] = []
    try:
        for stack, name_prefix in prefixes.items():
            for page in paginator.paginate(AlarmNamePrefix=name_prefix, AlarmTypes=["MetricAlarm"]):
                found.extend(
                    output.Alarm(
                        name=str(alarm["AlarmName"]),
                        stack=stack,
                        state=alarm["StateValue"],
                        reason=str(alarm.get("StateReason", "")),
                        updated_at=output.timestamp(alarm.get("StateUpdatedTimestamp")),
                    )
                    for alarm in page.get("MetricAlarms", [])
                )
    except ClientError as error:
        details = error.response.get("Error", {})
        return None, [
            f"The alarms could not be read ({details.get('Code', 'Error')}: {details.get('Message', '')}): "
            "`mme status` needs cloudwatch:DescribeAlarms."
        ]
    found.sort(
        key=lambda alarm: (_ALARM_STATE_ORDER.get(alarm["state"], len(_ALARM_STATE_ORDER)), alarm["name"])
    )
    return found, []


def _monitoring_rows(
    monitoring: output.MonitoringState, alarms: list[output.Alarm] | None
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if not monitoring["deployed"]:
        rows.append(("Monitoring", "not deployed (no Monitoring stack)"))
    else:
        rows.append(
            (
                "Dashboard",
                monitoring["dashboard_url"]
                or f"unknown (the Monitoring stack has no {DASHBOARD_NAME.key} output)",
            )
        )
        if monitoring["alarm_topic_arn"] is not None:
            rows.append(("Alarm topic", monitoring["alarm_topic_arn"]))
    if alarms is None:
        rows.append(("Alarms", "could not be read (see the warning)"))
    elif not alarms:
        rows.append(("Alarms", "none found"))
    else:
        states = [alarm["state"] for alarm in alarms]
        counted = ", ".join(
            f"{states.count(state)} {state}" for state in _ALARM_STATE_ORDER if state in states
        )
        rows.append(("Alarms", f"{len(alarms)} alarm(s): {counted}"))
    return rows


def _alarm_table(alarms: list[output.Alarm]) -> Table:
    table = Table(title="Alarms")
    table.add_column("Alarm", overflow="fold")
    table.add_column("State")
    table.add_column("Since")
    table.add_column("Reason", overflow="fold")
    for alarm in alarms:
        table.add_row(
            escape(alarm["name"]),
            alarm["state"],
            _shown(alarm["updated_at"]),
            escape(alarm["reason"]),
            style="bold red" if alarm["state"] == "ALARM" else None,
        )
    return table


# --------------------------------------------------------------------------------------------------
# mme models list


def list_models(
    ctx: typer.Context,
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Show every version of this location instead")
    ] = None,
    generation: GenerationOption = None,
    output_format: output.OutputOption = "table",
) -> None:
    """List each location's current and newest model version in the served generation (or --generation),
    or every version of one location."""
    cli = _context(ctx)
    s3 = cli.client("s3")
    if location is not None:
        location = _checked_location(location)
    chosen = _choose(cli, s3, generation)
    bucket = cli.deployment.bucket
    if location is not None:
        entry = _location_models(s3, bucket, chosen, location)
        if output_format == "json":
            output.emit(_models_document(bucket, chosen, {location: entry}))
        else:
            _print_location(cli, chosen, entry)
        _warn_about_pointer(cli, bucket, entry)
        return

    models = _scan_models(s3, bucket, chosen.generation)
    _attach_pointers(s3, bucket, chosen.generation, models, _pointer_locations(s3, bucket, chosen.generation))
    if output_format == "json":
        output.emit(_models_document(bucket, chosen, models))
    elif not models:
        cli.console.print(
            f"No models under {_prefix_uri(bucket, chosen)} ({chosen.describe()}): run `mme train` first.",
            soft_wrap=True,
        )
    else:
        _print_locations(cli, bucket, chosen, models)
    for name in sorted(models):
        problem = models[name].pointer_problem
        if problem:
            cli.errors.print(f"Warning: {problem}", markup=False, highlight=False, soft_wrap=True)


def _print_locations(
    cli: CliContext, bucket: str, chosen: Chosen, models: Mapping[str, LocationModels]
) -> None:
    table = Table(title=f"Models of {chosen.describe()} under {_prefix_uri(bucket, chosen)}")
    table.add_column("Location", style="bold")
    table.add_column("Current version", overflow="fold")
    table.add_column("Versions", justify="right")
    table.add_column("Newest version", overflow="fold")
    table.add_column("Size (all versions)", justify="right")
    for name in sorted(models):
        entry = models[name]
        newest = entry.newest
        table.add_row(
            name,
            _current_label(entry),
            str(len(entry.versions)),
            "-" if newest is None else newest.version,
            decimal(entry.total_size),
        )
    cli.console.print(table)


def _current_label(entry: LocationModels) -> str:
    if entry.pointer_problem is not None:
        return "invalid pointer"
    if entry.pointer is None:
        return "none (no pointer)"
    if entry.find(entry.pointer.version) is None:
        return f"{entry.pointer.version} (object missing!)"
    return entry.pointer.version


def _models_document(
    bucket: str, chosen: Chosen, models: Mapping[str, LocationModels]
) -> output.ModelsListDocument:
    return output.ModelsListDocument(
        schema=output.MODELS_LIST,
        bucket=bucket,
        generation=chosen.generation,
        chosen_by=chosen.source,
        served=chosen.is_served,
        serving_generation=None if chosen.serving is None else chosen.serving.generation,
        models_prefix_uri=_prefix_uri(bucket, chosen),
        locations=[_location_entry(models[name]) for name in sorted(models)],
    )


def _location_entry(entry: LocationModels) -> output.LocationEntry:
    current = None if entry.pointer is None else entry.pointer.version
    newest = entry.newest
    return output.LocationEntry(
        location=entry.location,
        current_version=current,
        pointer_problem=entry.pointer_problem,
        current_object_missing=current is not None and entry.find(current) is None,
        newest_version=None if newest is None else newest.version,
        version_count=len(entry.versions),
        total_size_bytes=entry.total_size,
        versions=[
            output.ModelVersionEntry(
                version=version.version,
                key=version.key,
                size_bytes=version.size,
                last_modified=output.timestamp(version.last_modified),
                current=version.version == current,
            )
            for version in entry.versions
        ],
    )


def _location_models(s3: Any, bucket: str, chosen: Chosen, location: str) -> LocationModels:
    """Every version of one location and its pointer; CliError naming the others when it has neither."""
    entry = _scan_models(s3, bucket, chosen.generation, location).get(location, LocationModels(location))
    read = _read_pointer(s3, bucket, chosen.generation, location)
    entry.pointer, entry.pointer_problem = read.pointer, read.problem
    if not entry.versions and read.etag is None:
        raise CliError(_unknown_location(s3, bucket, chosen, location))
    return entry


def _print_location(cli: CliContext, chosen: Chosen, entry: LocationModels) -> None:
    table = Table(title=f"Versions of {entry.location} in {chosen.describe()} (oldest first)")
    table.add_column("Version", overflow="fold")
    table.add_column("Key", overflow="fold")
    table.add_column("Size", justify="right")
    table.add_column("Last modified")
    table.add_column("Current", justify="center")
    current = None if entry.pointer is None else entry.pointer.version
    for version in entry.versions:
        table.add_row(
            version.version,
            version.key,
            decimal(version.size),
            _when(version.last_modified),
            "*" if version.version == current else "",
        )
    cli.console.print(table)
    if entry.pointer_problem is None and entry.pointer is None:
        cli.console.print(f"{entry.location} has no current version yet (no pointer): promote one.")


def _warn_about_pointer(cli: CliContext, bucket: str, entry: LocationModels) -> None:
    pointer = entry.pointer
    if entry.pointer_problem is not None:
        cli.errors.print(f"Warning: {entry.pointer_problem}", markup=False, highlight=False, soft_wrap=True)
    elif pointer is not None and entry.find(pointer.version) is None:
        cli.errors.print(
            f"Warning: the pointer names {pointer.version}, but s3://{bucket}/{pointer.key} does not exist.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


# --------------------------------------------------------------------------------------------------
# mme models promote


def promote(
    ctx: typer.Context,
    training_job: Annotated[
        str, typer.Argument(metavar="TRAINING_JOB", help="Name of a Completed training job of the pipeline")
    ],
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="The location whose model the job trained")
    ] = None,
    preprocessor: Annotated[
        bool, typer.Option("--preprocessor", help="Promote the job as the shared preprocessor instead")
    ] = False,
) -> None:
    """Promote a training job's artifact as a new model version, without touching the endpoint.

    Runs the pipeline's promotion Lambda: it copies the artifact to a new versioned key in the
    generation the job was trained for (its mme:preprocessor-generation tag), verifies the copy, and
    only then points the location at it. With --preprocessor it places a fitting job's artifact as
    preprocessor/<job>/model.tar.gz. Promoting the same job again is a no-op.
    """
    if preprocessor == (location is not None):
        raise typer.BadParameter(
            "pass exactly one of --location L and --preprocessor", param_hint="--location"
        )
    event: dict[str, str] = {"training_job_name": training_job}
    if location is not None:
        event["location"] = _checked_location(location)
    else:
        event["artifact"] = "preprocessor"
    cli = _context(ctx)
    function_name = cli.deployment.output(PROMOTE_FUNCTION_NAME)
    with cli.errors.status(f"Promoting {training_job} with {function_name}..."):
        response = cli.client("lambda").invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode("utf-8"),
        )
    payload = _decode_payload(response["Payload"].read())
    if response.get("FunctionError"):
        error_type = (
            payload.get("errorType", response["FunctionError"]) if isinstance(payload, dict) else None
        )
        message = payload.get("errorMessage", payload) if isinstance(payload, dict) else payload
        raise CliError(f"Promotion of {training_job} failed: {error_type or 'Error'}: {message}")
    if not isinstance(payload, dict):
        raise CliError(f"The promotion Lambda {function_name} returned {payload!r}, not a promotion result.")

    what = "preprocessor" if payload.get("artifact") == "preprocessor" else f"{payload.get('location')} model"
    action = "copied and verified" if payload.get("copied") else "already promoted (nothing copied)"
    table = Table(title=f"Promoted {training_job} as the {what}", show_header=False)
    table.add_column("Item", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_row("Result", action)
    table.add_row("Version", str(payload.get("version", "-")))
    generation = payload.get("generation")
    if generation:
        table.add_row("Generation", str(generation))
    if payload.get("target_model"):
        table.add_row("Target model", str(payload["target_model"]))
    table.add_row("Key", str(payload.get("key", "-")))
    table.add_row("Size", decimal(int(payload.get("size", 0))))
    table.add_row("Verified by", str(payload.get("verification", "-")))
    for name, value in sorted((payload.get("validation_metrics") or {}).items()):
        table.add_row(name, f"{value:g}")
    cli.console.print(table)


def _decode_payload(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------------
# mme models rollback


def rollback(
    ctx: typer.Context,
    location: Annotated[
        str, typer.Argument(metavar="LOCATION", help="The location whose current version to change")
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version to make current (default: the one promoted before the current)"),
    ] = None,
    generation: GenerationOption = None,
) -> None:
    """Point a location back to an earlier model version of the same preprocessor generation.

    The versions themselves stay as they are. A version of another generation is refused: it was
    trained on another preprocessor's output, so it can only be served together with that preprocessor
    (switch the generation with `make deploy GENERATION=...`, or retrain the location).
    """
    cli = _context(ctx)
    location = _checked_location(location)
    s3 = cli.client("s3")
    chosen = _choose(cli, s3, generation)
    bucket = cli.deployment.bucket
    key_arn = cli.deployment.key_arn  # before anything is read: a missing output fails up front
    entry = _scan_models(s3, bucket, chosen.generation, location).get(location)
    read = _read_pointer(s3, bucket, chosen.generation, location)
    current = read.pointer
    if to is not None and (entry is None or entry.find(to) is None):
        _refuse_other_generation(s3, bucket, chosen, location, to)
    if entry is None:
        raise CliError(_unknown_location(s3, bucket, chosen, location))
    available = _names([version.version for version in entry.versions])

    if to is None:
        if current is None:
            raise CliError(
                f"{location} has no usable current version to roll back from "
                f"({read.problem or 'no pointer'}); pass --to VERSION, one of: {available}."
            )
        target = _previous_version(entry, current, available, chosen.generation)
    else:
        named = entry.find(to)
        if named is None:
            raise CliError(
                f"{location} has no version {to!r} in {chosen.describe()}; its versions are: {available}."
            )
        target = named
        if current is not None and current.version == to:
            raise CliError(f"{to} is already the current version of {location}.")

    head = _head(s3, bucket, target.key)
    if head is None:
        raise CliError(f"s3://{bucket}/{target.key} no longer exists; versions of {location}: {available}.")
    training_job = _training_job_of(head)
    pointer = ModelPointer(
        preprocessor_generation=chosen.generation,
        location=location,
        version=target.version,
        size=int(head["ContentLength"]),
        training_job_name=training_job,
        promoted_at=datetime.now(UTC),
        checksum=preferred_checksum(full_object_checksums(head)),
        validation_metrics={} if training_job is None else _validation_metrics(cli, training_job),
    )
    # The promotion Lambda's writer (SSE-KMS under the project key), conditional on the pointer read
    # above, so a promotion that lands meanwhile is not undone.
    try:
        write_pointer(s3, bucket, pointer, kms_key_arn=key_arn, expected_etag=read.etag)
    except PointerChanged:
        raise CliError(
            f"s3://{bucket}/{pointer.pointer_key} changed while rolling back (a promotion?); "
            "nothing was written: check `mme models list` and run the rollback again."
        ) from None
    old = "none" if current is None else current.version
    cli.console.print(
        f"{location}: {old} -> {pointer.version} ({chosen.describe()})", markup=False, highlight=False
    )
    cli.console.print(f"Clients now invoke TargetModel {pointer.target_model}", markup=False, highlight=False)


def _refuse_other_generation(s3: Any, bucket: str, chosen: Chosen, location: str, version: str) -> None:
    """If ``version`` exists only in other generations, say why it cannot be rolled back to here."""
    try:
        s3_layout.target_model_name(location, version)
    except ValueError as error:
        raise CliError(f"Invalid --to: {error}.") from None
    holders = _generations_holding(s3, bucket, location, besides=chosen.generation, version=version)
    if not holders:
        return
    other = holders[0]
    if chosen.serving is not None and chosen.serving.generation in holders:
        raise CliError(
            f"Version {version} of {location} belongs to the served generation "
            f"{chosen.serving.generation}, not to {chosen.generation} (chosen with --generation): run the "
            "rollback without --generation."
        )
    acting_on = (
        f"the endpoint serves {chosen.generation}"
        if chosen.is_served
        else f"this command acts on {chosen.describe()}"
    )
    raise CliError(
        f"Version {version} of {location} was trained with preprocessor generation {other}, while "
        f"{acting_on}, and a model only works behind the preprocessor it was trained on: serve {other} "
        f"with `make deploy GENERATION={other}` (which also switches every other location to {other}'s "
        f"models), or retrain {location} on {chosen.generation} with `mme train --location {location}`."
    )


def _training_job_of(head: Mapping[str, Any]) -> str | None:
    """The training job the promotion Lambda recorded on the version; None for an added artifact."""
    metadata = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    job = metadata.get(TRAINING_JOB_METADATA)
    return job if job and ADDED_BY_METADATA not in metadata else None


def _previous_version(
    entry: LocationModels, current: ModelPointer, available: str, generation: str
) -> ModelVersion:
    position = entry.position(current.version)
    if position is None:
        raise CliError(
            f"The current version {current.version} of {entry.location} is missing from "
            f"{s3_layout.location_models_prefix(generation, entry.location)}; pass --to VERSION, one of: "
            f"{available}."
        )
    if position == 0:
        raise CliError(
            f"{entry.location} has no version older than the current {current.version}; "
            f"its versions are: {available}."
        )
    return entry.versions[position - 1]


def _head(s3: Any, bucket: str, key: str) -> Mapping[str, Any] | None:
    try:
        response: Mapping[str, Any] = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        if _error_code(error) in _NOT_FOUND_CODES:
            return None
        raise
    return response


def _validation_metrics(cli: CliContext, training_job_name: str) -> dict[str, float]:
    """The job's final validation metrics, as the promotion recorded them; empty when unknown."""
    try:
        job = cli.client("sagemaker").describe_training_job(TrainingJobName=training_job_name)
    except ClientError:
        return {}  # the job may have been deleted or be unreadable: the pointer stays valid without
    return validation_metrics(job.get("FinalMetricDataList"))


# --------------------------------------------------------------------------------------------------
# mme models delete


def delete(
    ctx: typer.Context,
    location: Annotated[str, typer.Argument(metavar="LOCATION", help="The location to delete from")],
    version: Annotated[
        str | None,
        typer.Option("--version", help="Delete only this version (never the current one)"),
    ] = None,
    generation: GenerationOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a location from serving (its pointer, then every version), or one version with --version,
    in the served generation (or --generation).

    Without --version the pointer goes first, and only if it is still the one just read (a promotion
    that lands meanwhile is not lost); then every version key under models/<generation>/<location>/.
    The bucket is versioned: the deleted keys' bytes remain as noncurrent versions until the
    lifecycle rule expires them.
    """
    cli = _context(ctx)
    location = _checked_location(location)
    s3 = cli.client("s3")
    chosen = _choose(cli, s3, generation)
    bucket = cli.deployment.bucket
    # The pointer before the versions: a version promoted after this read either changes the
    # pointer (then the conditional delete refuses) or is not in the list below (then it stays).
    read = _read_pointer(s3, bucket, chosen.generation, location)
    entry = _scan_models(s3, bucket, chosen.generation, location).get(location, LocationModels(location))
    if not entry.versions and read.etag is None:
        raise CliError(_unknown_location(s3, bucket, chosen, location))
    if version is not None:
        _delete_version(cli, s3, bucket, entry, read, version, yes=yes)
        return

    pointer_key = s3_layout.current_pointer_key(chosen.generation, location)
    what = (
        f"{len(entry.versions)} version(s) under "
        f"s3://{bucket}/{s3_layout.location_models_prefix(chosen.generation, location)}"
    )
    if read.etag is not None:
        what = f"the pointer s3://{bucket}/{pointer_key} and {what}"
    _confirm(f"Delete {location} from {chosen.describe()}: {what}?", yes=yes)
    if read.etag is not None:
        try:
            delete_pointer(s3, bucket, chosen.generation, location, expected_etag=read.etag)
        except PointerChanged:
            raise CliError(
                f"s3://{bucket}/{pointer_key} changed since it was read (a promotion?); nothing was "
                "deleted: check `mme models list` and run the delete again."
            ) from None
        cli.console.print(f"Deleted s3://{bucket}/{pointer_key}", markup=False, highlight=False)
    for model in entry.versions:
        s3.delete_object(Bucket=bucket, Key=model.key)
    consequence = (
        "clients can no longer invoke it"
        if chosen.is_served
        else f"it will have no model when {chosen.generation} is served"
    )
    cli.console.print(
        f"{location}: deleted {len(entry.versions)} version(s) of {chosen.generation}; {consequence}.",
        markup=False,
        highlight=False,
    )


def _delete_version(
    cli: CliContext,
    s3: Any,
    bucket: str,
    entry: LocationModels,
    read: PointerRead,
    version: str,
    *,
    yes: bool,
) -> None:
    location = entry.location
    named = entry.find(version)
    if named is None:
        raise CliError(
            f"{location} has no version {version!r}; its versions are: "
            f"{_names([model.version for model in entry.versions])}."
        )
    if read.problem is not None:
        raise CliError(
            f"Cannot tell whether {version} is current, because {read.problem}; nothing was deleted."
        )
    if read.pointer is not None and read.pointer.version == version:
        raise CliError(
            f"{version} is the current version of {location}: roll back first (`mme models rollback "
            f"{location}`) or delete the whole location (`mme models delete {location}`)."
        )
    _confirm(f"Delete version {version} of {location} (s3://{bucket}/{named.key})?", yes=yes)
    s3.delete_object(Bucket=bucket, Key=named.key)
    cli.console.print(f"Deleted s3://{bucket}/{named.key}", markup=False, highlight=False)


def _confirm(question: str, *, yes: bool) -> None:
    if not yes and not typer.confirm(question, default=False):
        raise CliError("Nothing was deleted: the deletion was not confirmed.")


# --------------------------------------------------------------------------------------------------
# mme models prune


@dataclass(frozen=True)
class PrunePlan:
    """What pruning one location keeps and deletes, and the pointer ETag the plan was made with."""

    entry: LocationModels
    current: str | None
    keep: list[ModelVersion]
    delete: list[ModelVersion]
    pointer_etag: str | None


def prune(
    ctx: typer.Context,
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="How many of the newest versions to keep per location")
    ],
    locations: Annotated[
        list[str] | None,
        typer.Option("--location", "-l", help="Prune this location (repeatable; default: every location)"),
    ] = None,
    generation: GenerationOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted and delete nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete old model versions of the served generation (or --generation): keep the newest N, and
    always the current and the previous version.

    Newest means promotion order, as `mme models list` shows it; the previous version is the one a
    plain `mme models rollback` would go back to. The old keys are deleted explicitly (DeleteObject):
    the bucket is versioned and its lifecycle rule only expires noncurrent object versions, never a
    current key, so without pruning every promoted version stays forever.
    """
    cli = _context(ctx)
    names = sorted({_checked_location(name) for name in locations}) if locations else []
    s3 = cli.client("s3")
    chosen = _choose(cli, s3, generation)
    bucket = cli.deployment.bucket
    gen = chosen.generation
    if names:
        scanned = {name: _scan_models(s3, bucket, gen, name).get(name) for name in names}
        missing = [name for name, entry in scanned.items() if entry is None]
        if missing:
            raise CliError(_unknown_location(s3, bucket, chosen, missing[0]))
        entries = [entry for entry in scanned.values() if entry is not None]
    else:
        entries = [entry for _, entry in sorted(_scan_models(s3, bucket, gen).items())]
        if not entries:
            raise CliError(
                f"No models under {_prefix_uri(bucket, chosen)} ({chosen.describe()}): nothing to prune."
            )
    plans = [_prune_plan(s3, bucket, gen, entry, keep) for entry in entries]

    doomed = sum(len(plan.delete) for plan in plans)
    table = Table(
        title=f"{'Would prune' if dry_run else 'Pruning'} {chosen.describe()} to the newest {keep} "
        "version(s) per location"
    )
    table.add_column("Location", style="bold")
    table.add_column("Current", overflow="fold")
    table.add_column("Kept", justify="right")
    table.add_column("Would delete" if dry_run else "Deleted", justify="right")
    table.add_column("Versions deleted" if not dry_run else "Versions to delete", overflow="fold")
    for plan in plans:
        table.add_row(
            plan.entry.location,
            plan.current or "none",
            str(len(plan.keep)),
            str(len(plan.delete)),
            ", ".join(model.version for model in plan.delete) or "-",
        )
    cli.console.print(table)
    if dry_run:
        for plan in plans:
            for model in plan.delete:
                cli.console.print(f"Would delete s3://{bucket}/{model.key}", markup=False, highlight=False)
        cli.console.print(f"Dry run: {doomed} version(s) would be deleted; nothing was deleted.")
        return
    if doomed == 0:
        cli.console.print("Nothing to prune.")
        return
    _confirm(f"Delete {doomed} version(s) from {_prefix_uri(bucket, chosen)}?", yes=yes)
    deleted = 0
    for plan in plans:
        if not plan.delete:
            continue
        # A rollback since the plan may have made a doomed version current: check just before.
        if _read_pointer(s3, bucket, gen, plan.entry.location).etag != plan.pointer_etag:
            pointer_key = s3_layout.current_pointer_key(gen, plan.entry.location)
            raise CliError(
                f"s3://{bucket}/{pointer_key} changed while pruning (a promotion or rollback?), so none "
                f"of {plan.entry.location}'s versions were deleted ({deleted} of other locations were): "
                "run the prune again."
            )
        for model in plan.delete:
            s3.delete_object(Bucket=bucket, Key=model.key)
            deleted += 1
    cli.console.print(f"Deleted {deleted} version(s) in {sum(1 for p in plans if p.delete)} location(s).")


def _prune_plan(s3: Any, bucket: str, generation: str, entry: LocationModels, keep: int) -> PrunePlan:
    read = _read_pointer(s3, bucket, generation, entry.location)
    if read.problem is not None:
        raise CliError(
            f"Cannot prune {entry.location}, because {read.problem}; nothing was deleted: point it at a "
            f"version with `mme models rollback {entry.location} --to VERSION` first."
        )
    kept = set(model.version for model in entry.versions[-keep:])
    current = None if read.pointer is None else read.pointer.version
    if current is not None:
        kept.add(current)
        position = entry.position(current)
        if position is not None and position > 0:
            kept.add(entry.versions[position - 1].version)
    return PrunePlan(
        entry=entry,
        current=current,
        keep=[model for model in entry.versions if model.version in kept],
        delete=[model for model in entry.versions if model.version not in kept],
        pointer_etag=read.etag,
    )
