"""Summarise a training run: which locations succeeded (with their metric) and which failed, and why.

The last step of the training state machine. The per-location Distributed Map exports its child
executions' results with a ResultWriter under ``s3_layout.run_results_prefix(run_id)``; the Map's
output, passed here as ``map_result``, points at the export's ``manifest.json``::

    {"MapRunArn": "arn:aws:states:...:mapRun:<state machine>/<map label>:<id>",
     "ResultWriterDetails": {"Bucket": "<bucket>", "Key": "<prefix><id>/manifest.json"}}

The manifest lists the result files by the child executions' final status::

    {"DestinationBucket": "<bucket>", "MapRunArn": "<the same ARN>",
     "ResultFiles": {"SUCCEEDED": [{"Key": "<prefix><id>/SUCCEEDED_0.json", "Size": 1234}, ...],
                     "FAILED": [...], "PENDING": [...]}}

and each result file is a JSON array (JSON Lines with WriterConfig ``OutputType: JSONL``) of child
execution records: ``ExecutionArn``, ``Name``, ``Status``, ``Input`` and ``Output`` (JSON *strings*),
``InputDetails``/``OutputDetails``, ``StartDate``, ``StopDate``, redrive fields, and ``Error`` and
``Cause`` for a failed child. This is the format AWS documents for ResultWriter with the default
``Transformation: NONE``; moto's ResultWriter writes the same manifest (with no result files).

How a record becomes a location's outcome:

- SUCCEEDED record: its ``Output`` is the per-location iterator's result, either
  ``{"location", "status": "SUCCEEDED", "training_job_name", "target_model", "model_version",
  "validation_metrics": {"validation:<name>" or "test:<name>": number, ...}}`` (the held-out
  metrics the promotion Lambda read from the training job, ``test:*`` for k-NN; may be empty) or,
  for a failure the iterator caught,
  ``{"location", "status": "FAILED", "failed_step", "error", "cause"}``. An output that does not
  have that shape still counts, as a failure with error ``MalformedLocationResult`` saying what is
  wrong with it, so one odd record cannot hide the other locations' outcomes.
- FAILED record (the child execution itself failed, timed out or was aborted): a failure with the
  record's ``Error`` and ``Cause`` (or its Status when it has none); ``failed_step`` is null
  because the step is not known.
- PENDING record (the Map Run ended before the child finished): a failure with error
  ``NotCompleted``.

The location always comes from the record's ``Input`` (the training Map's ItemSelector output,
``{"item": <plan item>, "preprocessor_model_name": ...}``), never only from an output.
Records that cannot be attributed to a location, a location with two outcomes, a manifest of another
Map Run and unreadable files raise MapResultsUnreadable: a summary that silently lost locations
would be worse than none.

Only the artifact bucket (BUCKET_NAME) under the run's results prefix is read; a manifest or a
result file anywhere else is refused with ResultsOutsideRun before anything is read. The complete
summary is written to ``s3_layout.run_summary_key(run_id)`` (SSE-KMS by the bucket's default)::

    {"run_id", "generation", "refit", "succeeded": [...by location], "failed": [...by location],
     "succeeded_count", "failed_count", "nothing_promoted", "generation_complete"}

``nothing_promoted`` is true when no location succeeded: the state machine then fails the run
(``NothingPromoted``); nothing that is served changed. ``generation_complete`` is true for a refit
(the run fitted ``generation``) in which every one of its ``location_count`` locations was
promoted: only then does this function also record the generation as complete
(``preprocessor/<generation>/complete.json``, then ``preprocessor/newest.json``, SSE-KMS under
KMS_KEY_ARN; see :mod:`mme_shared.generation`), so the endpoint can be switched to it. A refit with
any failed location leaves the generation incomplete and the state machine fails the run
(``IncompleteGeneration``); the generation that is served stays served, with its pointers.

The event (what the state machine passes from the run's plan and the training Map)::

    {"run_id", "map_result", "generation": "pp-...", "refit": bool, "location_count": int}

Succeeded entries are ``{"location", "training_job_name", "target_model", "model_version",
"validation_metrics"}`` and failed entries ``{"location", "failed_step", "error", "cause",
"execution_arn"}``. The function returns the counts and at most the first 50 entries of each list,
with long texts cut to a fixed number of JSON bytes (cause 1,000), so its result stays far below
Step Functions' 256 KB state limit for any number of locations; ``truncated`` says whether anything
was left out or cut (then read ``summary_key``). Writing the same results again writes the same
bytes, so a retry is harmless.

Permissions it needs: ``s3:GetObject`` on ``pipeline-runs/*/results/*`` and on
``preprocessor/*/complete.json`` (a retry keeps the first record), ``s3:PutObject`` on
``pipeline-runs/*/summary.json``, ``preprocessor/*/complete.json`` and ``preprocessor/newest.json``,
``s3:ListBucket`` on the bucket (so a missing complete.json is a 404, not a 403), ``kms:Decrypt``
and ``kms:GenerateDataKey`` on the project key.
Memory: records are parsed whole; 10,000 locations are about 25 MB of result files, which 512 MB
handles.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_shared import generation, naming, s3_layout
from mme_shared.handler_input import (
    environment_algorithm,
    environment_bucket,
    environment_kms_key_arn,
    event_object,
    json_type,
    log_rejected,
    rejected_as,
)

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

LOGGER = logging.getLogger(__name__)
"""Each decision is one record; with Lambda's JSON log format its ``extra`` keys are top-level fields."""

RETURNED_ENTRIES: Final = 50
"""Entries of each list returned to the state machine; the summary object has them all."""
CAUSE_LIMIT_BYTES: Final = 1000
ERROR_LIMIT_BYTES: Final = 256
FAILED_STEP_LIMIT_BYTES: Final = 128
EXECUTION_ARN_LIMIT_BYTES: Final = 512
TRUNCATION_MARKER: Final = " [truncated]"

RESULT_STATUSES: Final = ("SUCCEEDED", "FAILED", "PENDING")
MALFORMED_RESULT_ERROR: Final = "MalformedLocationResult"
NOT_COMPLETED_ERROR: Final = "NotCompleted"

# Bounds on a succeeded output's fields (SageMaker's and S3's own limits, with this project's layout
# well inside them); they also bound the size of the returned entries.
_JOB_NAME_MAX: Final = naming.SAGEMAKER_NAME_MAX_LENGTH
_TARGET_MODEL_MAX: Final = 256
_METRIC_NAME_MAX: Final = 255
_METRICS_MAX: Final = 20

_EVENT_FIELDS: Final = ("run_id", "map_result", "generation", "refit", "location_count")
_EXPECTED_EVENT: Final = (
    'expected {"run_id": str, "map_result": {"MapRunArn": str, '
    '"ResultWriterDetails": {"Bucket": str, "Key": str}}, "generation": "pp-<run id>", "refit": bool, '
    '"location_count": int}'
)
_EXPECTED_MAP_RESULT: Final = (
    'expected the training Map\'s output with a ResultWriter, {"MapRunArn": str, '
    '"ResultWriterDetails": {"Bucket": str, "Key": str}}'
)
_NOT_EMPTY: Final = re.compile(r".+", re.DOTALL)
_MANIFEST_KEY_RE: Final = re.compile(r".*/manifest\.json", re.DOTALL)
_MANIFEST_KEY_RULE: Final = "the key of a ResultWriter manifest, <prefix><map run id>/manifest.json"
_MISSING_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound", "403", "AccessDenied"})


# The class names are the contract with the state machine: Lambda reports an uncaught exception's
# class name as the error name a Catch matches (hence the N818 exemptions).


class SummaryError(Exception):
    """Base class; Step Functions matches the concrete class names below."""


class InvalidSummaryRequest(SummaryError):  # noqa: N818
    """The event is not ``{"run_id": str, "map_result": <ResultWriter output>}``."""


class ResultsOutsideRun(SummaryError):  # noqa: N818
    """The manifest or a result file is not in the artifact bucket under the run's results prefix."""


class MapResultsUnreadable(SummaryError):  # noqa: N818
    """The manifest or a result file is missing, malformed or belongs to another Map Run or run."""


class InvalidEnvironment(SummaryError):  # noqa: N818
    """BUCKET_NAME or KMS_KEY_ARN is missing or malformed (a deployment error)."""


@dataclass(frozen=True)
class SummaryRequest:
    """A validated event."""

    run_id: str
    map_run_arn: str
    manifest_bucket: str
    manifest_key: str
    generation: str
    refit: bool
    location_count: int


@dataclass(frozen=True)
class SummarySettings:
    """The function's environment."""

    bucket: str
    kms_key_arn: str
    algorithm: str
    """The deployment's ``training.algorithm``, recorded in a completed generation's complete.json."""


@dataclass(frozen=True)
class Succeeded:
    """A location whose model was trained and promoted."""

    location: str
    training_job_name: str
    target_model: str
    model_version: str
    validation_metrics: dict[str, float]
    """The job's final held-out (``validation:*``, k-NN's ``test:*``) metrics by name; empty when it
    reported none."""


@dataclass(frozen=True)
class Failed:
    """A location that has no new model, and why."""

    location: str
    failed_step: str | None
    """The iterator's step that failed; None when the child execution itself failed or never ended."""
    error: str
    cause: str
    execution_arn: str | None


Outcome: TypeAlias = Succeeded | Failed


class _MalformedOutput(Exception):  # noqa: N818
    """Internal: why a succeeded child's Output is not an iterator result (completes a sentence)."""


# --------------------------------------------------------------------------------------------------
# Event and environment


def parse_summary_event(event: object) -> SummaryRequest:
    """Validate the event; raise InvalidSummaryRequest naming the field and what is expected."""
    with rejected_as(InvalidSummaryRequest):
        fields = event_object(event, allowed=_EVENT_FIELDS, required=_EVENT_FIELDS, expected=_EXPECTED_EVENT)
        run_id = fields.run_id(hint="pass the execution name as run_id")
        map_result = fields.nested(
            "map_result", required=("MapRunArn", "ResultWriterDetails"), expected=_EXPECTED_MAP_RESULT
        )
        map_run_arn = map_result.string("MapRunArn", rule="the Map Run's ARN", pattern=_NOT_EMPTY)
        details = map_result.nested(
            "ResultWriterDetails", required=("Bucket", "Key"), expected=_EXPECTED_MAP_RESULT
        )
        bucket = details.string("Bucket", rule="the bucket the ResultWriter wrote to")
        key = details.string("Key", rule=_MANIFEST_KEY_RULE, pattern=_MANIFEST_KEY_RE)
        return SummaryRequest(
            run_id=run_id,
            map_run_arn=map_run_arn,
            manifest_bucket=bucket,
            manifest_key=key,
            generation=fields.generation(hint="pass the run plan's generation"),
            refit=fields.boolean("refit"),
            location_count=fields.integer(
                "location_count", minimum=1, hint="pass the run plan's location_count"
            ),
        )


def load_summary_settings(environ: Mapping[str, str]) -> SummarySettings:
    """Read BUCKET_NAME, KMS_KEY_ARN and ALGORITHM; raise InvalidEnvironment naming a missing or
    malformed one."""
    with rejected_as(InvalidEnvironment):
        return SummarySettings(
            bucket=environment_bucket(environ),
            kms_key_arn=environment_kms_key_arn(environ),
            algorithm=environment_algorithm(environ),
        )


# --------------------------------------------------------------------------------------------------
# The summary


def summarize_run(request: SummaryRequest, *, s3: S3Client, settings: SummarySettings) -> dict[str, Any]:
    """Read the Map's manifest and result files, write the run's summary, return a bounded copy."""
    run_id = request.run_id
    results_prefix = s3_layout.run_results_prefix(run_id)

    def check_in_run(what: str, bucket: str, key: str) -> None:
        if bucket != settings.bucket or not key.startswith(results_prefix):
            raise ResultsOutsideRun(
                f"{what} s3://{bucket}/{key} is outside this run's results; run {run_id!r} only reads "
                f"s3://{settings.bucket}/{results_prefix}, where its training Map writes them."
            )

    check_in_run("The Map's manifest", request.manifest_bucket, request.manifest_key)
    manifest_uri = s3_layout.s3_uri(settings.bucket, request.manifest_key)
    try:
        manifest = _load_json(
            _read_text(s3, settings.bucket, request.manifest_key, what="The Map's manifest")
        )
    except ValueError as error:
        raise MapResultsUnreadable(f"The Map's manifest {manifest_uri} is not JSON ({error}).") from None
    if not isinstance(manifest, Mapping):
        raise MapResultsUnreadable(f"The Map's manifest {manifest_uri} is not a JSON object.")
    if manifest.get("MapRunArn") != request.map_run_arn:
        raise MapResultsUnreadable(
            f"The Map's manifest {manifest_uri} belongs to Map Run {manifest.get('MapRunArn')!r}, not to "
            f"{request.map_run_arn!r} that map_result names; pass the Map's own output as map_result."
        )
    destination = manifest.get("DestinationBucket", settings.bucket)
    check_in_run("The manifest's DestinationBucket", str(destination), request.manifest_key)
    files = _result_files(manifest.get("ResultFiles"), manifest_uri)
    for status, keys in files.items():
        for key in keys:
            check_in_run(f"The {status} result file", settings.bucket, key)

    outcomes: dict[str, tuple[Outcome, str]] = {}
    for status, keys in files.items():
        for key in keys:
            uri = s3_layout.s3_uri(settings.bucket, key)
            records = _parse_records(
                _read_text(s3, settings.bucket, key, what=f"The {status} result file"), uri
            )
            for index, record in enumerate(records):
                where = f"Record [{index}] of {uri}"
                outcome = _record_outcome(
                    status, record, where=where, run_id=run_id, generation=request.generation
                )
                if outcome.location in outcomes:
                    raise MapResultsUnreadable(
                        f"Location {outcome.location!r} has two results ({outcomes[outcome.location][1]} and "
                        f"{where.lower()}); each location must appear once in the Map's results."
                    )
                outcomes[outcome.location] = (outcome, where.lower())

    succeeded = sorted((o for o, _ in outcomes.values() if isinstance(o, Succeeded)), key=_by_location)
    failed = sorted((o for o, _ in outcomes.values() if isinstance(o, Failed)), key=_by_location)
    complete = request.refit and not failed and len(succeeded) == request.location_count
    summary = {
        "run_id": run_id,
        "generation": request.generation,
        "refit": request.refit,
        "succeeded": [_as_dict(entry) for entry in succeeded],
        "failed": [_as_dict(entry) for entry in failed],
        "succeeded_count": len(succeeded),
        "failed_count": len(failed),
        "nothing_promoted": not succeeded,
        "generation_complete": complete,
    }
    summary_key = s3_layout.run_summary_key(run_id)
    s3.put_object(
        Bucket=settings.bucket,
        Key=summary_key,
        Body=json.dumps(summary, separators=(",", ":")).encode("utf-8"),
        ContentType="application/json",
    )
    if complete:
        _record_complete_generation(s3, settings, request)

    returned_failed = [_shortened(entry) for entry in failed[:RETURNED_ENTRIES]]
    truncated = (
        len(succeeded) > RETURNED_ENTRIES
        or len(failed) > RETURNED_ENTRIES
        or any(cut for _, cut in returned_failed)
    )
    return {
        "run_id": run_id,
        "generation": request.generation,
        "refit": request.refit,
        "generation_complete": complete,
        "summary_key": summary_key,
        "succeeded_count": len(succeeded),
        "failed_count": len(failed),
        "succeeded": [_as_dict(entry) for entry in succeeded[:RETURNED_ENTRIES]],
        "failed": [_as_dict(entry) for entry, _ in returned_failed],
        "truncated": truncated,
        "nothing_promoted": not succeeded,
    }


def _record_complete_generation(s3: S3Client, settings: SummarySettings, request: SummaryRequest) -> None:
    """complete.json (kept as first written, so a retry changes nothing), then newest.json."""
    existing = generation.read_complete(s3, settings.bucket, request.generation)
    if existing is not None and existing.run_id != request.run_id:
        raise MapResultsUnreadable(
            f"Generation {request.generation!r} was already completed by run {existing.run_id!r}; run "
            f"{request.run_id!r} cannot complete it again."
        )
    record = existing or generation.CompleteGeneration(
        generation=request.generation,
        run_id=request.run_id,
        location_count=request.location_count,
        completed_at=datetime.now(UTC),
        algorithm=settings.algorithm,
    )
    if existing is None:
        generation.write_complete(s3, settings.bucket, record, kms_key_arn=settings.kms_key_arn)
    generation.write_ref(
        s3,
        settings.bucket,
        s3_layout.NEWEST_GENERATION_KEY,
        generation.GenerationRef(generation=request.generation, updated_at=record.completed_at),
        kms_key_arn=settings.kms_key_arn,
    )


def _by_location(outcome: Outcome) -> str:
    return outcome.location


def _as_dict(outcome: Outcome) -> dict[str, Any]:
    """The entry's fields in declaration order (shallow: ``dataclasses.asdict`` deep-copies, slowly)."""
    return {field.name: getattr(outcome, field.name) for field in fields(outcome)}


def _result_files(result_files: object, manifest_uri: str) -> dict[str, list[str]]:
    """The manifest's ResultFiles as status -> keys, in the manifest's order."""
    if not isinstance(result_files, Mapping):
        raise MapResultsUnreadable(f"The Map's manifest {manifest_uri} has no ResultFiles object.")
    unknown = sorted(str(status) for status in result_files if status not in RESULT_STATUSES)
    if unknown:
        raise MapResultsUnreadable(
            f"The Map's manifest {manifest_uri} lists result files of unknown status(es) "
            f"{', '.join(unknown)}; only {', '.join(RESULT_STATUSES)} are understood, and no location may "
            "be left out."
        )
    files: dict[str, list[str]] = {}
    for status in RESULT_STATUSES:
        entries = result_files.get(status, [])
        if not isinstance(entries, list) or not all(
            isinstance(entry, Mapping) and isinstance(entry.get("Key"), str) for entry in entries
        ):
            raise MapResultsUnreadable(
                f"The Map's manifest {manifest_uri} has ResultFiles.{status} that is not a list of "
                '{"Key": str, "Size": int} objects.'
            )
        files[status] = [entry["Key"] for entry in entries]
    return files


def _read_text(s3: S3Client, bucket: str, key: str, *, what: str) -> str:
    uri = s3_layout.s3_uri(bucket, key)
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            raise MapResultsUnreadable(f"{what} {uri} does not exist or cannot be read ({code}).") from None
        raise
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MapResultsUnreadable(f"{what} {uri} is not UTF-8 text ({error}).") from None


def _load_json(text: str) -> object:
    """JSON without NaN/Infinity (not JSON, and Step Functions would reject them downstream)."""
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _parse_records(text: str, uri: str) -> list[Mapping[str, Any]]:
    """A result file's records: a JSON array, or JSON Lines (WriterConfig OutputType JSONL)."""
    stripped = text.strip()
    try:
        if not stripped:
            records: object = []
        elif stripped.startswith("["):
            records = _load_json(stripped)
        else:
            records = [_load_json(line) for line in stripped.splitlines() if line.strip()]
    except ValueError as error:
        raise MapResultsUnreadable(
            f"The result file {uri} is neither a JSON array nor JSON Lines ({error})."
        ) from None
    if not isinstance(records, list) or not all(isinstance(record, Mapping) for record in records):
        raise MapResultsUnreadable(
            f"The result file {uri} is not a list of child execution records (JSON objects)."
        )
    return records


def _record_outcome(
    status: str, record: Mapping[str, Any], *, where: str, run_id: str, generation: str
) -> Outcome:
    """One child execution record -> the outcome of the location in its Input."""
    location = _planned_location(record, where=where, run_id=run_id, generation=generation)
    arn = record.get("ExecutionArn")
    execution_arn = arn if isinstance(arn, str) else None
    if status == "SUCCEEDED":
        if record.get("Status") != "SUCCEEDED":
            raise MapResultsUnreadable(
                f"{where} is listed as SUCCEEDED but its Status is {record.get('Status')!r}."
            )
        try:
            return _iterator_result(record.get("Output"), location=location, execution_arn=execution_arn)
        except _MalformedOutput as problem:
            return Failed(
                location=location,
                failed_step=None,
                error=MALFORMED_RESULT_ERROR,
                cause=f"The location's child execution succeeded, but its output {problem}.",
                execution_arn=execution_arn,
            )
    if status == "FAILED":
        child_status = _text_or(record.get("Status"), "FAILED")
        return Failed(
            location=location,
            failed_step=None,
            error=_text_or(record.get("Error"), child_status),
            cause=_text_or(
                record.get("Cause"), f"The location's child execution ended {child_status} and gave no cause."
            ),
            execution_arn=execution_arn,
        )
    return Failed(
        location=location,
        failed_step=None,
        error=NOT_COMPLETED_ERROR,
        cause="The Map Run ended before this location's child execution completed.",
        execution_arn=execution_arn,
    )


def _text_or(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _planned_location(record: Mapping[str, Any], *, where: str, run_id: str, generation: str) -> str:
    """The location of the plan item the child execution was started with."""
    text = record.get("Input")
    if not isinstance(text, str):
        raise MapResultsUnreadable(
            f"{where} has no Input string; the training Map's ResultWriter must keep the child "
            "executions' metadata (WriterConfig Transformation NONE, the default)."
        )
    try:
        child_input = _load_json(text)
    except ValueError:
        raise MapResultsUnreadable(f"{where} has an Input that is not JSON.") from None
    item = child_input.get("item") if isinstance(child_input, Mapping) else None
    if not isinstance(item, Mapping):
        raise MapResultsUnreadable(
            f"{where} has an Input without the plan item: expected a JSON object with an 'item' object "
            "(the training Map's ItemSelector)."
        )
    problem = naming.location_name_problem(item.get("location"))
    if problem is not None:
        raise MapResultsUnreadable(f"{where} has an Input whose location {problem}.")
    if "run_id" in item and item["run_id"] != run_id:
        raise MapResultsUnreadable(
            f"{where} is a plan item of run {item['run_id']!r}, not of run {run_id!r}."
        )
    if "generation" in item and item["generation"] != generation:
        raise MapResultsUnreadable(
            f"{where} is a plan item of generation {item['generation']!r}, not of {generation!r}."
        )
    location: str = item["location"]
    return location


def _iterator_result(text: object, *, location: str, execution_arn: str | None) -> Outcome:
    """A succeeded child's Output; raise _MalformedOutput when it is not an iterator result."""
    if not isinstance(text, str):
        raise _MalformedOutput("is not in the results (no Output string)")
    try:
        output = _load_json(text)
    except ValueError:
        raise _MalformedOutput("is not JSON") from None
    if not isinstance(output, Mapping):
        raise _MalformedOutput(f"is a JSON {json_type(output)}, not an object")
    if output.get("location") != location:
        raise _MalformedOutput(f"names location {output.get('location')!r} instead of {location!r}")
    status = output.get("status")
    if status == "SUCCEEDED":
        return Succeeded(
            location=location,
            training_job_name=_field(output, "training_job_name", _JOB_NAME_MAX),
            target_model=_field(output, "target_model", _TARGET_MODEL_MAX),
            model_version=_field(output, "model_version", _JOB_NAME_MAX),
            validation_metrics=_metrics(output.get("validation_metrics")),
        )
    if status == "FAILED":
        cause = output.get("cause")
        if cause is not None and not isinstance(cause, str):
            raise _MalformedOutput("has a cause that is neither a string nor null")
        return Failed(
            location=location,
            failed_step=_field(output, "failed_step", None),
            error=_field(output, "error", None),
            cause=cause or "",
            execution_arn=execution_arn,
        )
    raise _MalformedOutput(f"has status {status!r} instead of 'SUCCEEDED' or 'FAILED'")


def _field(output: Mapping[str, Any], name: str, max_length: int | None) -> str:
    value = output.get(name)
    if not isinstance(value, str) or not value:
        raise _MalformedOutput(f"has no {name} string")
    if max_length is not None and len(value) > max_length:
        raise _MalformedOutput(f"has a {name} longer than {max_length} characters")
    return value


def _metrics(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _MalformedOutput("has validation_metrics that are not an object of metric name to number")
    if len(value) > _METRICS_MAX:
        raise _MalformedOutput(f"has more than {_METRICS_MAX} validation_metrics")
    metrics: dict[str, float] = {}
    for name, number in value.items():
        if not isinstance(name, str) or not name or len(name) > _METRIC_NAME_MAX:
            raise _MalformedOutput(
                f"has a validation metric without a name of 1 to {_METRIC_NAME_MAX} characters"
            )
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _MalformedOutput(f"has a validation metric {name!r} whose value is not a number")
        metrics[name] = number
    return metrics


# --------------------------------------------------------------------------------------------------
# The bounded copy returned to the state machine


def shorten(text: str, limit_bytes: int) -> tuple[str, bool]:
    """``text`` cut so that it takes at most ``limit_bytes`` bytes as JSON (plus the marker).

    Measured on the JSON encoding with ASCII escapes, the largest form any JSON serializer on the
    way (Lambda, Step Functions) can give it, so the bound holds for any characters.
    """
    if len(json.dumps(text)) - 2 <= limit_bytes:
        return text, False
    sizes = itertools.accumulate(len(json.dumps(char)) - 2 for char in text)
    end = next(index for index, size in enumerate(sizes) if size > limit_bytes)
    return text[:end] + TRUNCATION_MARKER, True


def _shorten_optional(text: str | None, limit_bytes: int) -> tuple[str | None, bool]:
    return (None, False) if text is None else shorten(text, limit_bytes)


def _shortened(entry: Failed) -> tuple[Failed, bool]:
    """The entry with its free texts cut to their limits, and whether anything was cut."""
    failed_step, step_cut = _shorten_optional(entry.failed_step, FAILED_STEP_LIMIT_BYTES)
    error, error_cut = shorten(entry.error, ERROR_LIMIT_BYTES)
    cause, cause_cut = shorten(entry.cause, CAUSE_LIMIT_BYTES)
    execution_arn, arn_cut = _shorten_optional(entry.execution_arn, EXECUTION_ARN_LIMIT_BYTES)
    shortened = replace(entry, failed_step=failed_step, error=error, cause=cause, execution_arn=execution_arn)
    return shortened, step_cut or error_cut or cause_cut or arn_cut


# --------------------------------------------------------------------------------------------------
# Lambda entry point


@functools.cache
def _s3_client() -> S3Client:
    """Created once per execution environment; standard retries absorb throttling."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point: validate the event and environment, summarise, return the bounded copy."""
    try:
        request = parse_summary_event(event)
        settings = load_summary_settings(os.environ)
        result = summarize_run(request, s3=_s3_client(), settings=settings)
    except SummaryError as error:
        log_rejected(LOGGER, error)
        raise
    LOGGER.info(
        "summarized",
        extra={
            key: result[key]
            for key in (
                "run_id",
                "generation",
                "refit",
                "succeeded_count",
                "failed_count",
                "generation_complete",
            )
        },
    )
    return result
