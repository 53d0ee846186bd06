"""Plan a training run: validate its request, choose its preprocessor generation, write its plan.

The first step of the training state machine. The execution's name is the run id; its input names
the locations either inline or as a JSON array uploaded under ``location-manifests/`` (for lists
too long for the 256 KB execution input), and whether to refit the preprocessor. This function
checks the request once, up front, and writes the run's plan to ``s3_layout.run_plan_key(run_id)``:
a JSON array with one item per location, in order, holding every job name and S3 URI that
location's steps need. Both Distributed Maps of the state machine read that array with an S3
ItemReader, so the locations never pass through the state machine's payload and the template is
the same for 4 or 10,000 of them.

Event (the state machine passes the execution input unchanged as ``request``)::

    {"run_id": str, "request": {"locations": [str, ...], "refit": bool (optional)}}
    {"run_id": str, "request": {"locations_manifest_key": "location-manifests/<name>.json", "refit": ...}}

Which preprocessor generation the run trains into (see :mod:`mme_shared.generation`):

- **reuse** (``refit`` absent or false): the generation the endpoint serves
  (``preprocessor/serving.json``), or, while nothing is served yet, the newest complete one
  (``preprocessor/newest.json``). The run transforms with that generation's immutable artifact and
  never fits a preprocessor, so the models of every other location stay right.
- **refit** (``refit: true``), and the first run ever (no generation exists, so there is nothing to
  reuse): a new generation ``pp-<run id>`` is fitted. It retrains the request's locations *and* every
  location that has a pointer in the generation it would replace, so that the new generation can
  serve everything the old one does; an empty ``locations`` list then means "exactly those".
- **algorithm changed**: the generation it would reuse was trained with another algorithm than the
  deployment's (its ``complete.json``'s ``algorithm`` against ``ALGORITHM``). Its models cannot be
  served by this deployment's container, nor may new ones be mixed into it, so the run is a refit.

Result (small and of fixed size, whatever the number of locations)::

    {"run_id", "location_count", "plan_key", "results_prefix", "generation_results_prefix",
     "generation", "refit", "refit_reason", "replaces_generation", "added_locations",
     "preprocessor_job_name", "preprocessor_model_name", "preprocessor_artifact_uri",
     "raw_train_prefix_uri", "raw_validation_prefix_uri", "preprocessed_train_prefix_uri",
     "preprocessed_validation_prefix_uri", "transform_train_job_name",
     "transform_validation_job_name", "training_output_uri"}

``refit_reason`` is ``requested``, ``first generation``, ``algorithm changed`` or null;
``replaces_generation`` the generation a refit would replace (null otherwise); ``added_locations``
how many locations a refit added from it.

Idempotent: the plan's bytes depend only on the bucket, the run id, the location list and the
generation. It is written with ``If-None-Match: *``, so an existing plan is never overwritten: a
retry that finds the same bytes succeeds without writing, and a different plan under the same run
id (an execution name reused for other locations) is refused with RunAlreadyPlanned. Every check
runs before the write, so a rejected request writes nothing. Objects are encrypted by the bucket's
default (SSE-KMS with the project key); no key is passed.

Permissions it needs: ``s3:GetObject`` on ``location-manifests/*``, ``pipeline-runs/*/plan.json``
(comparing an existing plan on retry), ``preprocessor/newest.json``, ``preprocessor/serving.json``
and ``preprocessor/*/complete.json``; ``s3:PutObject`` on ``pipeline-runs/*/plan.json``;
``s3:ListBucket`` on the bucket (a refit lists ``model-pointers/<generation>/``, and without it S3
answers a missing ``newest.json`` with 403 instead of 404, so the first run could not tell "no
generation yet" from "forbidden"); ``kms:Decrypt`` and ``kms:GenerateDataKey`` on the project key.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_shared import generation, naming, s3_layout
from mme_shared.handler_input import (
    environment_algorithm,
    environment_bucket,
    environment_integer,
    environment_training_step,
    event_object,
    json_type,
    log_rejected,
    rejected_as,
)

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

LOGGER = logging.getLogger(__name__)
"""Each decision is one record; with Lambda's JSON log format its ``extra`` keys are top-level fields."""

MANIFEST_MAX_BYTES: Final = 16 * 1024 * 1024
"""Far more than any list of valid names needs; stops a wrong file from exhausting memory."""
S3_KEY_MAX_BYTES: Final = 1024

_EVENT_FIELDS: Final = ("run_id", "request")
_REQUEST_FIELDS: Final = ("locations", "locations_manifest_key", "refit")
_EXPECTED_REQUEST: Final = (
    'expected {"locations": [str, ...]} or {"locations_manifest_key": "location-manifests/<name>.json"}, '
    'optionally with "refit": true'
)
_EXPECTED_EVENT: Final = (
    f'expected {{"run_id": str, "request": <execution input>}}; the execution input {_EXPECTED_REQUEST}'
)
REFIT_REQUESTED: Final = "requested"
REFIT_FIRST_GENERATION: Final = "first generation"
REFIT_ALGORITHM_CHANGED: Final = "algorithm changed"
_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES: Final = frozenset({"403", "AccessDenied"})
_PRECONDITION_CODES: Final = frozenset({"412", "PreconditionFailed"})


# The class names are the contract with the state machine: Lambda reports an uncaught exception's
# class name as the error name a Catch matches (hence the N818 exemptions).


class PlanRunError(Exception):
    """Base class; Step Functions matches the concrete class names below."""


class InvalidRunRequest(PlanRunError):  # noqa: N818
    """The event, its run id or its inline location list breaks the rules."""


class LocationManifestError(PlanRunError):
    """The location manifest is missing, unreadable, not a JSON array of names, or its list is invalid."""


class RunAlreadyPlanned(PlanRunError):  # noqa: N818
    """The run id already has a plan for different locations; run ids must not be reused."""


class GenerationUnreadable(PlanRunError):  # noqa: N818
    """``preprocessor/newest.json`` or ``serving.json`` exists but is not a generation reference."""


class InvalidEnvironment(PlanRunError):  # noqa: N818
    """BUCKET_NAME, MAX_LOCATIONS, TRAINING_JOB_STEP or ALGORITHM is missing or malformed (a
    deployment error)."""


@dataclass(frozen=True)
class RunRequest:
    """A validated event: the run id and exactly one source of location names."""

    run_id: str
    locations: tuple[object, ...] | None
    """Inline names, not yet checked individually (that happens with the manifest's, in one place)."""
    manifest_key: str | None
    refit: bool = False


@dataclass(frozen=True)
class PlanSettings:
    """The function's environment."""

    bucket: str
    max_locations: int
    training_step: str
    """The deployment's algorithm's training-job step (``ll``: ``ll-<location>-<run>``)."""
    algorithm: str
    """The deployment's ``training.algorithm``: a generation of another one is refitted, not reused."""


# --------------------------------------------------------------------------------------------------
# Event and environment


def parse_run_event(event: object) -> RunRequest:
    """Validate the event's shape, run id and request; raise InvalidRunRequest naming what is wrong."""
    with rejected_as(InvalidRunRequest):
        fields = event_object(event, allowed=_EVENT_FIELDS, required=("run_id",), expected=_EXPECTED_EVENT)
        run_id = fields.run_id(
            hint="the run id is the Step Functions execution name, so start the execution with a name that "
            "follows this rule"
        )
        request = event_object(
            fields.values.get("request"),
            allowed=_REQUEST_FIELDS,
            expected=_EXPECTED_REQUEST,
            what="The execution input",
        )
        refit = request.boolean("refit", default=False)
        if request.one_of("locations", "locations_manifest_key") == "locations":
            locations = request.array("locations", items="location names")
            return RunRequest(run_id=run_id, locations=tuple(locations), manifest_key=None, refit=refit)
        manifest_key = request.string(
            "locations_manifest_key", rule=f"an S3 key under {s3_layout.LOCATION_MANIFESTS_PREFIX}"
        )
        return RunRequest(
            run_id=run_id, locations=None, manifest_key=_manifest_key(manifest_key), refit=refit
        )


def _manifest_key(key: str) -> str:
    prefix = s3_layout.LOCATION_MANIFESTS_PREFIX
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise InvalidRunRequest(
            f"locations_manifest_key {key!r} is not allowed: upload the manifest under {prefix} in the "
            f"artifact bucket and pass its key, e.g. {prefix}all-locations.json."
        )
    if len(key.encode("utf-8")) > S3_KEY_MAX_BYTES:
        raise InvalidRunRequest(
            f"locations_manifest_key is {len(key.encode('utf-8'))} bytes long; S3 keys have at most "
            f"{S3_KEY_MAX_BYTES}."
        )
    return key


def load_plan_settings(environ: Mapping[str, str]) -> PlanSettings:
    """Read BUCKET_NAME, MAX_LOCATIONS, TRAINING_JOB_STEP and ALGORITHM; raise InvalidEnvironment
    naming the variable if wrong."""
    with rejected_as(InvalidEnvironment):
        return PlanSettings(
            bucket=environment_bucket(environ),
            max_locations=environment_integer(environ, "MAX_LOCATIONS", minimum=1),
            training_step=environment_training_step(environ),
            algorithm=environment_algorithm(environ),
        )


def location_list_problem(
    names: Sequence[object], *, source: str, max_locations: int, allow_empty: bool = False
) -> str | None:
    """Why ``names`` cannot be a run's location list (one sentence), or None when it can be.

    ``source`` says where the list came from: ``locations`` (entries are then called
    ``locations[i]``) or ``the location manifest s3://...`` (entries: ``entry [i] of ...``).
    """

    def entry(index: int) -> str:
        return f"{source}[{index}]" if source == "locations" else f"entry [{index}] of {source}"

    if not names and not allow_empty:
        return f"{source[0].upper()}{source[1:]} has no location names; a run needs at least one."
    if len(names) > max_locations:
        return (
            f"{source[0].upper()}{source[1:]} has {len(names)} location names, more than "
            f"MAX_LOCATIONS={max_locations}; split the locations into several runs."
        )
    first_index: dict[str, int] = {}
    for index, name in enumerate(names):
        problem = naming.location_name_problem(name)
        if problem is not None:
            return f"{entry(index)}: location name {problem}."
        assert isinstance(name, str)  # location_name_problem accepts only strings
        collision = naming.location_collision_key(name)
        if collision in first_index:
            earlier = first_index[collision]
            return (
                f"{entry(index)} {name!r} collides with {entry(earlier)} {names[earlier]!r}: SageMaker "
                "job names ignore case and turn '_' into '-', so every location needs a name that differs "
                "from the others in more than that."
            )
        first_index[collision] = index
    return None


# --------------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class GenerationChoice:
    """Which generation a run trains into, and why."""

    generation: str
    refit: bool
    refit_reason: str | None
    replaces: str | None
    """The generation whose locations a refit must also cover (the served or newest one)."""


def choose_generation(s3: S3Client, bucket: str, request: RunRequest, algorithm: str) -> GenerationChoice:
    """Reuse the served (else the newest complete) generation, or fit ``pp-<run id>`` (see module doc)."""
    current = _read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY) or _read_ref(
        s3, bucket, s3_layout.NEWEST_GENERATION_KEY
    )
    replaces = None if current is None else current.generation
    reason = REFIT_REQUESTED if request.refit else REFIT_FIRST_GENERATION if current is None else None
    if reason is None and current is not None and _algorithm_of(s3, bucket, current.generation) != algorithm:
        reason = REFIT_ALGORITHM_CHANGED
    if reason is not None:
        return GenerationChoice(
            generation=naming.preprocessor_job_name(request.run_id),
            refit=True,
            refit_reason=reason,
            replaces=replaces,
        )
    assert current is not None
    return GenerationChoice(generation=current.generation, refit=False, refit_reason=None, replaces=None)


def _algorithm_of(s3: S3Client, bucket: str, generation_id: str) -> str:
    """The algorithm a complete generation's models were trained with (its complete.json)."""
    try:
        record = generation.read_complete(s3, bucket, generation_id)
    except generation.GenerationRecordError as error:
        raise GenerationUnreadable(
            f"{s3_layout.s3_uri(bucket, s3_layout.generation_record_key(generation_id))} is unreadable "
            f"({error}); restore it from its previous version."
        ) from None
    if record is None:
        raise GenerationUnreadable(
            f"Generation {generation_id} is named served or newest but has no "
            f"{s3_layout.s3_uri(bucket, s3_layout.generation_record_key(generation_id))}; restore it "
            'from its previous version or start the run with "refit": true.'
        )
    return record.algorithm


def _read_ref(s3: S3Client, bucket: str, key: str) -> generation.GenerationRef | None:
    try:
        return generation.read_ref(s3, bucket, key)
    except generation.GenerationRecordError as error:
        raise GenerationUnreadable(
            f"{s3_layout.s3_uri(bucket, key)} is not a generation reference ({error}); it is written by "
            "the pipeline and the endpoint stack only, so restore its previous object version."
        ) from None


def generation_locations(s3: S3Client, bucket: str, generation_id: str) -> list[str]:
    """Every location with a pointer in ``generation_id``, sorted."""
    prefix = s3_layout.generation_pointers_prefix(generation_id)
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            location = s3_layout.parse_pointer_key(generation_id, str(item["Key"]))
            if location is not None:
                names.append(location)
    return sorted(names)


def plan_items(
    bucket: str, run_id: str, generation_id: str, locations: Sequence[str], *, training_step: str
) -> list[dict[str, str]]:
    """One work item per location, in the given order (the names must be valid already)."""

    def uri(key: str) -> str:
        return s3_layout.s3_uri(bucket, key)

    training_output_uri = uri(s3_layout.training_output_prefix(run_id))
    return [
        {
            "run_id": run_id,
            "location": location,
            "generation": generation_id,
            "training_job_name": naming.training_job_name(location, run_id, training_step),
            # The run's one batch transform per split writes <location>.csv.out for <location>.csv;
            # the training channel is exactly that object (an S3Prefix no other location's key has).
            "preprocessed_train_uri": uri(s3_layout.preprocessed_output_key(run_id, location, "train")),
            "preprocessed_validation_uri": uri(
                s3_layout.preprocessed_output_key(run_id, location, "validation")
            ),
            "training_output_uri": training_output_uri,
        }
        for location in locations
    ]


def encode_plan(items: list[dict[str, str]]) -> bytes:
    """The plan's bytes: compact JSON with a fixed key order, so the same plan is the same bytes."""
    return json.dumps(items, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def plan_run(request: RunRequest, *, s3: S3Client, settings: PlanSettings) -> dict[str, Any]:
    """Check the request, choose the generation, write the plan unless it exists, return the summary."""
    if request.manifest_key is not None:
        source = f"the location manifest {s3_layout.s3_uri(settings.bucket, request.manifest_key)}"
        names: Sequence[object] = read_location_manifest(s3, settings.bucket, request.manifest_key)
        error_class: type[PlanRunError] = LocationManifestError
    else:
        assert request.locations is not None  # parse_run_event guarantees exactly one source
        source, names, error_class = "locations", request.locations, InvalidRunRequest
    # A refit may name no location: it then retrains exactly the locations it takes over.
    problem = location_list_problem(
        names, source=source, max_locations=settings.max_locations, allow_empty=request.refit
    )
    if problem is not None:
        raise error_class(problem)
    locations = [str(name) for name in names]

    choice = choose_generation(s3, settings.bucket, request, settings.algorithm)
    added: list[str] = []
    if choice.refit and choice.replaces is not None:
        requested = {naming.location_collision_key(name) for name in locations}
        added = [
            name
            for name in generation_locations(s3, settings.bucket, choice.replaces)
            if naming.location_collision_key(name) not in requested
        ]
        locations += added
        what = f"locations plus the {len(added)} of generation {choice.replaces} a refit must retrain"
        problem = location_list_problem(
            locations, source=f"The request's {what}", max_locations=settings.max_locations
        )
        if problem is not None:
            raise error_class(problem)
    if not locations:
        raise error_class(
            f"{source[0].upper()}{source[1:]} has no location names and there is no served generation whose "
            "locations a refit would retrain; name at least one location."
        )

    run_id = request.run_id
    plan_key = s3_layout.run_plan_key(run_id)
    body = encode_plan(
        plan_items(
            settings.bucket, run_id, choice.generation, locations, training_step=settings.training_step
        )
    )
    _write_plan_once(s3, settings.bucket, plan_key, body, run_id=run_id)
    preprocessor = naming.preprocessor_job_name(run_id)
    return {
        "run_id": run_id,
        "location_count": len(locations),
        "plan_key": plan_key,
        "results_prefix": s3_layout.run_results_prefix(run_id),
        "generation_results_prefix": s3_layout.run_generation_results_prefix(run_id),
        "generation": choice.generation,
        "refit": choice.refit,
        "refit_reason": choice.refit_reason,
        "replaces_generation": choice.replaces,
        "added_locations": len(added),
        "preprocessor_job_name": preprocessor,
        "preprocessor_model_name": preprocessor,
        "preprocessor_artifact_uri": s3_layout.s3_uri(
            settings.bucket, s3_layout.preprocessor_artifact_key(choice.generation)
        ),
        **{
            f"{kind}_{split}_prefix_uri": s3_layout.s3_uri(settings.bucket, prefix(run_id, split))
            for kind, prefix in (
                ("raw", s3_layout.raw_data_split_prefix),
                ("preprocessed", s3_layout.preprocessed_split_prefix),
            )
            for split in ("train", "validation")
        },
        **{
            f"transform_{split}_job_name": naming.transform_job_name(split, run_id)
            for split in ("train", "validation")
        },
        "training_output_uri": s3_layout.s3_uri(settings.bucket, s3_layout.training_output_prefix(run_id)),
    }


def read_location_manifest(s3: S3Client, bucket: str, key: str) -> list[object]:
    """The manifest's JSON array of strings; raise LocationManifestError saying what is wrong."""
    uri = s3_layout.s3_uri(bucket, key)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            raise LocationManifestError(
                f"The location manifest {uri} does not exist; upload the JSON array of location names first."
            ) from None
        if code in _FORBIDDEN_CODES:
            raise LocationManifestError(
                f"The location manifest {uri} cannot be read (AccessDenied): it does not exist, or it is "
                "encrypted with a key other than the project key."
            ) from None
        raise
    size = int(response.get("ContentLength", 0))
    if size > MANIFEST_MAX_BYTES:
        response["Body"].close()
        raise LocationManifestError(
            f"The location manifest {uri} is {size} bytes, more than the {MANIFEST_MAX_BYTES} a list of "
            "location names can need; check that the key names the right file."
        )
    body: bytes = response["Body"].read()
    try:
        names = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LocationManifestError(
            f"The location manifest {uri} is not UTF-8 JSON ({error}); it must be a JSON array of "
            'location names, e.g. ["NewYork_NY", "Chicago_IL"].'
        ) from None
    if not isinstance(names, list):
        raise LocationManifestError(
            f"The location manifest {uri} holds a JSON {json_type(names)}, not an array; it must be a "
            'JSON array of location names, e.g. ["NewYork_NY", "Chicago_IL"].'
        )
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise LocationManifestError(
                f"Entry [{index}] of the location manifest {uri} is a JSON {json_type(name)}, not a "
                "location name string."
            )
    return names


def _write_plan_once(s3: S3Client, bucket: str, key: str, body: bytes, *, run_id: str) -> None:
    """Create the plan; if one exists already it must hold exactly these bytes (a retry)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        return
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code not in _PRECONDITION_CODES:
            raise
    existing: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if existing != body:
        raise RunAlreadyPlanned(
            f"Run {run_id!r} already has a different plan at {s3_layout.s3_uri(bucket, key)}; "
            "the run id is the execution name, so start the new run under a name not used before."
        )


# --------------------------------------------------------------------------------------------------
# Lambda entry point


@functools.cache
def _s3_client() -> S3Client:
    """Created once per execution environment; standard retries absorb throttling."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point: validate the event and environment, write the plan, return its summary."""
    try:
        request = parse_run_event(event)
        settings = load_plan_settings(os.environ)
        summary = plan_run(request, s3=_s3_client(), settings=settings)
    except PlanRunError as error:
        log_rejected(LOGGER, error)
        raise
    LOGGER.info(
        "planned",
        extra={
            key: summary[key]
            for key in (
                "run_id",
                "generation",
                "refit",
                "refit_reason",
                "replaces_generation",
                "location_count",
                "added_locations",
            )
        },
    )
    return summary
