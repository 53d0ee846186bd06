"""``mme status`` and ``mme models list | promote | rollback | delete | prune``.

Models live under the multi-model prefix as immutable versions
(``models/<location>/<location>-<version>.tar.gz``); which version clients invoke is said by the
location's pointer document (``model-pointers/<location>.json``, :mod:`mme_shared.model_pointer`).
Promoting adds a version and moves the pointer (done by the promotion Lambda, so the CLI needs no
more rights than the pipeline has); rolling back only moves the pointer, written by the same code
as the Lambda's (:mod:`mme_shared.pointer_store`). Neither touches the endpoint: it loads whatever
TargetModel a client names. Deleting and pruning remove version keys (and, for a whole location,
its pointer) explicitly: the bucket is versioned and its lifecycle rule only expires noncurrent
object versions, so a key nobody deletes stays forever.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from rich.filesize import decimal
from rich.table import Table

from mme_cli.context import CliContext
from mme_cli.deployment import CliError
from mme_shared import s3_layout
from mme_shared.model_pointer import CHECKSUM_ALGORITHMS, ArtifactChecksum, ModelPointer, ModelPointerError
from mme_shared.naming import validate_location_name
from mme_shared.pointer_store import PointerChanged, delete_pointer, write_pointer

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TARBALL_SUFFIX = ".tar.gz"
_PAGE_SIZE = 1000
"""Keys per ListObjectsV2 page (S3's maximum)."""
_NAMES_SHOWN = 10
"""How many existing names an error message lists before saying "and N more"."""


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
    """One object under ``models/<location>/`` named by the key layout."""

    location: str
    version: str
    key: str
    size: int
    last_modified: datetime


@dataclass
class LocationModels:
    """Every version of one location, oldest first, and the location's pointer if it has one."""

    location: str
    versions: list[ModelVersion] = field(default_factory=list)
    pointer: ModelPointer | None = None
    pointer_problem: str | None = None
    """Why the pointer document could not be read (None when it is fine or absent)."""

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


def _parse_version(key: str) -> tuple[str, str] | None:
    """``(location, version)`` of a key the layout would produce for a model version, else None."""
    relative = key[len(s3_layout.MULTI_MODEL_PREFIX) :]
    location, _, filename = relative.partition("/")
    stem = f"{location}-"
    if not (filename.startswith(stem) and filename.endswith(_TARBALL_SUFFIX)):
        return None
    version = filename[len(stem) : -len(_TARBALL_SUFFIX)]
    try:
        if s3_layout.model_version_key(location, version) != key:
            return None
    except ValueError:
        return None
    return location, version


def _sort_key(version: ModelVersion) -> tuple[datetime, str]:
    """Promotion order: when the version was written, then its name (job names end in the run id)."""
    return version.last_modified, version.version


def _scan_models(
    s3: Any, bucket: str, prefix: str = s3_layout.MULTI_MODEL_PREFIX
) -> dict[str, LocationModels]:
    """Every model version under ``prefix``, grouped by location, each location's versions oldest first."""
    found: dict[str, LocationModels] = {}
    for item in _list_objects(s3, bucket, prefix):
        parsed = _parse_version(item["Key"])
        if parsed is None:
            continue  # not a model version (e.g. a stray file); `mme status` still counts it
        location, version = parsed
        found.setdefault(location, LocationModels(location)).versions.append(
            ModelVersion(location, version, item["Key"], int(item["Size"]), item["LastModified"])
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


def _read_pointer(s3: Any, bucket: str, location: str) -> PointerRead:
    key = s3_layout.current_pointer_key(location)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _error_code(error) in _NOT_FOUND_CODES:
            return PointerRead()
        raise
    etag = str(response["ETag"])
    try:
        return PointerRead(pointer=ModelPointer.from_json(response["Body"].read()), etag=etag)
    except ModelPointerError as error:
        return PointerRead(problem=f"s3://{bucket}/{key} is not a valid pointer: {error}", etag=etag)


def _pointer_locations(s3: Any, bucket: str) -> set[str]:
    locations = set()
    for item in _list_objects(s3, bucket, s3_layout.MODEL_POINTERS_PREFIX):
        name = item["Key"][len(s3_layout.MODEL_POINTERS_PREFIX) :]
        if name.endswith(".json") and "/" not in name:
            locations.add(name[: -len(".json")])
    return locations


def _attach_pointers(s3: Any, bucket: str, models: dict[str, LocationModels], locations: set[str]) -> None:
    for location in sorted(locations):
        try:
            validate_location_name(location)
        except ValueError:
            continue
        entry = models.setdefault(location, LocationModels(location))
        read = _read_pointer(s3, bucket, location)
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


# --------------------------------------------------------------------------------------------------
# mme status


def status(ctx: typer.Context) -> None:
    """Show the deployment: stack outputs, endpoint status, models under the prefix, last training run."""
    cli = _context(ctx)
    deployment = cli.deployment
    bucket = deployment.bucket  # no Storage stack: nothing else is worth showing
    s3 = cli.client("s3")

    table = Table(title=f"Deployment {deployment.prefix} in {deployment.region}", show_header=False)
    table.add_column("Item", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_row("Artifact bucket", bucket)
    table.add_row("Model prefix", deployment.model_prefix_uri)

    objects, locations = 0, set()
    for item in _list_objects(s3, bucket, s3_layout.MULTI_MODEL_PREFIX):
        objects += 1
        relative = item["Key"][len(s3_layout.MULTI_MODEL_PREFIX) :]
        if "/" in relative:
            locations.add(relative.split("/", 1)[0])
    table.add_row("Models", f"{objects} object(s) in {len(locations)} location(s)")

    for label, value in _endpoint_rows(cli):
        table.add_row(label, value)
    for label, value in _training_rows(cli):
        table.add_row(label, value)
    cli.console.print(table)


def _endpoint_rows(cli: CliContext) -> list[tuple[str, str]]:
    try:
        endpoint_name = cli.deployment.endpoint_name
    except CliError:
        return [("Endpoint", "not deployed (no Endpoint stack)")]
    try:
        endpoint = cli.client("sagemaker").describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if _error_code(error) == "ValidationException" and "Could not find" in str(error):
            return [("Endpoint", f"{endpoint_name}: not deployed (SageMaker has no such endpoint)")]
        raise
    variants = endpoint.get("ProductionVariants", [])
    instances = sum(int(variant.get("CurrentInstanceCount", 0)) for variant in variants)
    endpoint_status = str(endpoint["EndpointStatus"])
    if endpoint.get("FailureReason"):
        endpoint_status += f" ({endpoint['FailureReason']})"
    return [
        ("Endpoint", endpoint_name),
        ("Endpoint status", endpoint_status),
        ("Instances", f"{instances} across {len(variants)} variant(s)"),
    ]


def _training_rows(cli: CliContext) -> list[tuple[str, str]]:
    try:
        state_machine_arn = cli.deployment.state_machine_arn
    except CliError:
        return [("State machine", "not deployed (no Training stack)")]
    rows = [("State machine", state_machine_arn)]
    try:
        executions = cli.client("stepfunctions").list_executions(
            stateMachineArn=state_machine_arn, maxResults=1
        )["executions"]
    except ClientError as error:
        if _error_code(error) == "StateMachineDoesNotExist":
            return [*rows, ("Last training", "state machine not found")]
        raise
    if not executions:
        return [*rows, ("Last training", "none yet: run `mme train`")]
    last = executions[0]
    return [
        *rows,
        ("Last training", f"{last['name']}: {last['status']}, started {_when(last.get('startDate'))}"),
    ]


# --------------------------------------------------------------------------------------------------
# mme models list


def list_models(
    ctx: typer.Context,
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Show every version of this location instead")
    ] = None,
) -> None:
    """List each location's current and newest model version, or every version of one location."""
    cli = _context(ctx)
    bucket = cli.deployment.bucket
    s3 = cli.client("s3")
    if location is not None:
        _list_location(cli, s3, bucket, _checked_location(location))
        return

    models = _scan_models(s3, bucket)
    _attach_pointers(s3, bucket, models, _pointer_locations(s3, bucket))
    if not models:
        cli.console.print(f"No models under {cli.deployment.model_prefix_uri}: run `mme train` first.")
        return
    table = Table(title=f"Models under {cli.deployment.model_prefix_uri}")
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
    problems = [entry.pointer_problem for entry in models.values() if entry.pointer_problem]
    for problem in problems:
        cli.errors.print(f"Warning: {problem}", markup=False, highlight=False)


def _current_label(entry: LocationModels) -> str:
    if entry.pointer_problem is not None:
        return "invalid pointer"
    if entry.pointer is None:
        return "none (no pointer)"
    if entry.find(entry.pointer.version) is None:
        return f"{entry.pointer.version} (object missing!)"
    return entry.pointer.version


def _list_location(cli: CliContext, s3: Any, bucket: str, location: str) -> None:
    entry = _scan_models(s3, bucket, s3_layout.location_models_prefix(location)).get(
        location, LocationModels(location)
    )
    read = _read_pointer(s3, bucket, location)
    entry.pointer, entry.pointer_problem = read.pointer, read.problem
    if not entry.versions and entry.pointer is None and entry.pointer_problem is None:
        raise CliError(_unknown_location(s3, bucket, location))
    table = Table(title=f"Versions of {location} (oldest first)")
    table.add_column("Version", overflow="fold")
    table.add_column("Key", overflow="fold")
    table.add_column("Size", justify="right")
    table.add_column("Last modified")
    table.add_column("Current", justify="center")
    pointer = entry.pointer
    current = None if pointer is None else pointer.version
    for version in entry.versions:
        table.add_row(
            version.version,
            version.key,
            decimal(version.size),
            _when(version.last_modified),
            "*" if version.version == current else "",
        )
    cli.console.print(table)
    if entry.pointer_problem is not None:
        cli.errors.print(f"Warning: {entry.pointer_problem}", markup=False, highlight=False)
    elif pointer is None:
        cli.console.print(f"{location} has no current version yet (no pointer): promote one.")
    elif entry.find(pointer.version) is None:
        cli.errors.print(
            f"Warning: the pointer names {pointer.version}, but s3://{bucket}/{pointer.key} does not exist.",
            markup=False,
            highlight=False,
        )


def _unknown_location(s3: Any, bucket: str, location: str) -> str:
    known = sorted(set(_scan_models(s3, bucket)) | _pointer_locations(s3, bucket))
    return (
        f"Location {location!r} has no model versions under s3://{bucket}/{s3_layout.MULTI_MODEL_PREFIX}; "
        f"locations with models: {_names(known)}."
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

    Runs the pipeline's promotion Lambda: it copies the artifact to a new versioned key, verifies
    the copy, and only then points the location at it. Promoting the same job again is a no-op.
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
    function_name = cli.deployment.output("Training", "PromoteFunctionName")
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
) -> None:
    """Point a location back to an earlier model version; the versions themselves stay as they are."""
    cli = _context(ctx)
    location = _checked_location(location)
    bucket = cli.deployment.bucket
    key_arn = cli.deployment.key_arn  # before anything is read: a missing output fails up front
    s3 = cli.client("s3")
    entry = _scan_models(s3, bucket, s3_layout.location_models_prefix(location)).get(location)
    read = _read_pointer(s3, bucket, location)
    current = read.pointer
    if entry is None:
        raise CliError(_unknown_location(s3, bucket, location))
    available = _names([version.version for version in entry.versions])

    if to is None:
        if current is None:
            raise CliError(
                f"{location} has no usable current version to roll back from "
                f"({read.problem or 'no pointer'}); pass --to VERSION, one of: {available}."
            )
        target = _previous_version(entry, current, available)
    else:
        named = entry.find(to)
        if named is None:
            raise CliError(f"{location} has no version {to!r}; its versions are: {available}.")
        target = named
        if current is not None and current.version == to:
            raise CliError(f"{to} is already the current version of {location}.")

    head = _head(s3, bucket, target.key)
    if head is None:
        raise CliError(f"s3://{bucket}/{target.key} no longer exists; versions of {location}: {available}.")
    pointer = ModelPointer(
        location=location,
        version=target.version,
        size=int(head["ContentLength"]),
        training_job_name=target.version,  # the promotion Lambda names every version after its job
        promoted_at=datetime.now(UTC),
        checksum=_full_object_checksum(head),
        validation_metrics=_validation_metrics(cli, target.version),
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
    cli.console.print(f"{location}: {old} -> {pointer.version}", markup=False, highlight=False)
    cli.console.print(f"Clients now invoke TargetModel {pointer.target_model}", markup=False, highlight=False)


def _previous_version(entry: LocationModels, current: ModelPointer, available: str) -> ModelVersion:
    position = entry.position(current.version)
    if position is None:
        raise CliError(
            f"The current version {current.version} of {entry.location} is missing from "
            f"{s3_layout.location_models_prefix(entry.location)}; pass --to VERSION, one of: {available}."
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


def _full_object_checksum(head: Mapping[str, Any]) -> ArtifactChecksum | None:
    """The preferred full-object checksum S3 holds for the object (composite ones cannot be compared)."""
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    for algorithm in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if isinstance(value, str) and value and "-" not in value:
            return ArtifactChecksum(algorithm=algorithm, value=value)
    return None


def _validation_metrics(cli: CliContext, training_job_name: str) -> dict[str, float]:
    """The job's final validation metrics, as the promotion recorded them; empty when unknown."""
    try:
        job = cli.client("sagemaker").describe_training_job(TrainingJobName=training_job_name)
    except ClientError:
        return {}  # the job may have been deleted or be unreadable: the pointer stays valid without
    metrics: dict[str, float] = {}
    for metric in job.get("FinalMetricDataList") or []:
        name, value = metric.get("MetricName"), metric.get("Value")
        if (
            isinstance(name, str)
            and name.startswith("validation:")
            and isinstance(value, int | float)
            and math.isfinite(value)
        ):
            metrics[name] = float(value)
    return metrics


# --------------------------------------------------------------------------------------------------
# mme models delete


def delete(
    ctx: typer.Context,
    location: Annotated[str, typer.Argument(metavar="LOCATION", help="The location to delete from")],
    version: Annotated[
        str | None,
        typer.Option("--version", help="Delete only this version (never the current one)"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a location from serving (its pointer, then every version), or one version with --version.

    Without --version the pointer goes first, and only if it is still the one just read (a promotion
    that lands meanwhile is not lost); then every version key under models/<location>/. The bucket
    is versioned: the deleted keys' bytes remain as noncurrent versions until the lifecycle rule
    expires them.
    """
    cli = _context(ctx)
    location = _checked_location(location)
    bucket = cli.deployment.bucket
    s3 = cli.client("s3")
    # The pointer before the versions: a version promoted after this read either changes the
    # pointer (then the conditional delete refuses) or is not in the list below (then it stays).
    read = _read_pointer(s3, bucket, location)
    entry = _scan_models(s3, bucket, s3_layout.location_models_prefix(location)).get(
        location, LocationModels(location)
    )
    if not entry.versions and read.etag is None:
        raise CliError(_unknown_location(s3, bucket, location))
    if version is not None:
        _delete_version(cli, s3, bucket, entry, read, version, yes=yes)
        return

    pointer_key = s3_layout.current_pointer_key(location)
    what = (
        f"{len(entry.versions)} version(s) under s3://{bucket}/{s3_layout.location_models_prefix(location)}"
    )
    if read.etag is not None:
        what = f"the pointer s3://{bucket}/{pointer_key} and {what}"
    _confirm(f"Delete {location} from serving: {what}?", yes=yes)
    if read.etag is not None:
        try:
            delete_pointer(s3, bucket, location, expected_etag=read.etag)
        except PointerChanged:
            raise CliError(
                f"s3://{bucket}/{pointer_key} changed since it was read (a promotion?); nothing was "
                "deleted: check `mme models list` and run the delete again."
            ) from None
        cli.console.print(f"Deleted s3://{bucket}/{pointer_key}", markup=False, highlight=False)
    for model in entry.versions:
        s3.delete_object(Bucket=bucket, Key=model.key)
    cli.console.print(
        f"{location}: deleted {len(entry.versions)} version(s); clients can no longer invoke it.",
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted and delete nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete old model versions: keep the newest N, and always the current and the previous version.

    Newest means promotion order, as `mme models list` shows it; the previous version is the one a
    plain `mme models rollback` would go back to. The old keys are deleted explicitly (DeleteObject):
    the bucket is versioned and its lifecycle rule only expires noncurrent object versions, never a
    current key, so without pruning every promoted version stays forever.
    """
    cli = _context(ctx)
    bucket = cli.deployment.bucket
    s3 = cli.client("s3")
    if locations:
        names = sorted({_checked_location(name) for name in locations})
        scanned = {
            name: _scan_models(s3, bucket, s3_layout.location_models_prefix(name)).get(name) for name in names
        }
        missing = [name for name, entry in scanned.items() if entry is None]
        if missing:
            raise CliError(_unknown_location(s3, bucket, missing[0]))
        entries = [entry for entry in scanned.values() if entry is not None]
    else:
        entries = [entry for _, entry in sorted(_scan_models(s3, bucket).items())]
        if not entries:
            raise CliError(f"No models under {cli.deployment.model_prefix_uri}: nothing to prune.")
    plans = [_prune_plan(s3, bucket, entry, keep) for entry in entries]

    doomed = sum(len(plan.delete) for plan in plans)
    table = Table(
        title=f"{'Would prune' if dry_run else 'Pruning'} to the newest {keep} version(s) per location"
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
    _confirm(f"Delete {doomed} version(s) from s3://{bucket}/{s3_layout.MULTI_MODEL_PREFIX}?", yes=yes)
    deleted = 0
    for plan in plans:
        if not plan.delete:
            continue
        # A rollback since the plan may have made a doomed version current: check just before.
        if _read_pointer(s3, bucket, plan.entry.location).etag != plan.pointer_etag:
            pointer_key = s3_layout.current_pointer_key(plan.entry.location)
            raise CliError(
                f"s3://{bucket}/{pointer_key} changed while pruning (a promotion or rollback?), so none "
                f"of {plan.entry.location}'s versions were deleted ({deleted} of other locations were): "
                "run the prune again."
            )
        for model in plan.delete:
            s3.delete_object(Bucket=bucket, Key=model.key)
            deleted += 1
    cli.console.print(f"Deleted {deleted} version(s) in {sum(1 for p in plans if p.delete)} location(s).")


def _prune_plan(s3: Any, bucket: str, entry: LocationModels, keep: int) -> PrunePlan:
    read = _read_pointer(s3, bucket, entry.location)
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
