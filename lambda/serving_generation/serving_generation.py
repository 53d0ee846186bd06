"""The endpoint stack's two custom resources (on_event handler): which preprocessor generation it serves.

The endpoint serves exactly one preprocessor generation (``mme_shared.s3_layout``): its first
container reads ``preprocessor/<generation>/model.tar.gz`` and its MultiModel container the prefix
``models/<generation>/``. This one function backs two resources of the endpoint stack, told apart by
their ``Action`` property:

``resolve`` (the SageMaker Model reads its ``Generation`` attribute) turns the requested generation,
a pinned id or ``newest`` (the generation ``preprocessor/newest.json`` names), into the id the Model
is built from, after checking that the endpoint could really serve it. It fails, with one sentence
saying what to run, when no complete generation exists yet, when the generation has no
``complete.json``, when its models were trained with another algorithm than the endpoint's
MultiModel container (``complete.json``'s ``algorithm`` against the function's ``ALGORITHM``), when
its artifact is missing, or when the endpoint serves another generation S
(``preprocessor/serving.json``) and some location with a pointer under ``model-pointers/<S>/`` has
none under ``model-pointers/<generation>/``: switching would silently stop serving it. Failing here
takes seconds; without it a premature deploy would spend about 20 minutes failing to start the
endpoint, or switch generations and lose locations. Only when every check passed, and the resolved
generation G differs from the one serving.json names (S), does it rewrite serving.json as
``{generation: S, next_generation: G}`` (the endpoint still serves S): it runs before the Model is
created, so the announcement is in place before the endpoint update starts. A resolve that stays on
S removes a ``next_generation`` left behind. A failed resolve writes nothing (the write is its last
step).

The switch window and the client rule. SageMaker moves the endpoint's traffic to the new fleet all
at once, then bakes (the old fleet stays up while the rollback alarms are watched), and only after
CloudFormation is done does ``record-serving`` write ``{generation: G}``. In between, a request may
reach either fleet, and each fleet only finds TargetModels of its own generation; a TargetModel
the reached fleet does not have is answered with SageMaker Runtime's ``ValidationError`` (HTTP 400;
botocore's model of InvokeEndpoint), never with a prediction from the wrong preprocessor. A
cooperating client therefore invokes with ``generation``'s pointer, and on "model not found" retries
with ``next_generation``'s pointer when one is set; if both are not found it re-reads serving.json.
That also covers an automatic rollback during the baking period (traffic returns to S while
``next_generation`` is still set).

``record-serving`` depends on the Endpoint, so CloudFormation creates or updates it only after the
endpoint serves the resolved generation; it then writes ``preprocessor/serving.json`` naming that
generation and the endpoint (SSE-KMS under the project key). Clients read it to find the pointers
of what is served, so it must never name a generation before the endpoint serves it. Delete
removes it only while it still names this resource's endpoint, so a destroyed stack leaves nothing
claiming to be served (and never removes another endpoint's record).

Rollbacks: a failed stack update makes CloudFormation send each updated resource an Update with
its *old* properties. ``record-serving`` then rewrites the old generation, which the rolled-back
endpoint serves again (without ``next_generation``); ``resolve`` re-resolves the old generation (a
pinned id resolves to itself, which is why ``make deploy`` always pins one; ``newest`` may name a
newer generation by then) and, serving.json still naming it, removes the ``next_generation`` it
announced. (If the update failed after the endpoint already served G but before ``record-serving``,
the endpoint serves G until CloudFormation has rolled it back, while serving.json names only S: for
those minutes a cooperating client gets "model not found", never a wrong prediction. CloudFormation
does not tell a resource that a request is a rollback, nor the order of the endpoint's own rollback,
so the resolver cannot keep the announcement exactly as long as it is needed.) The
switch check also runs on a rollback, and CloudFormation's request does not say that it is one: if
``serving.json`` was already rewritten to a generation with more locations (only possible when a
resource updated after ``record-serving`` fails, and the stack makes it depend on every resource
that could), the rollback fails here; ``aws cloudformation continue-update-rollback
--resources-to-skip <resolve resource>`` finishes it.

CDK's custom resource Provider framework (``aws_cdk.custom_resources.Provider``, built in
``mme_constructs/serving_generation.py``) is both resources' ``ServiceToken``: its Node.js function
receives CloudFormation's request, invokes this function synchronously with it, and answers the
request's pre-signed ``ResponseURL`` itself. This function is a plain on_event handler: it returns
``{"PhysicalResourceId", "Data"}`` (the framework answers SUCCESS) or raises an exception whose
message is one sentence (the framework answers FAILED, its Reason ``Error: <that sentence>``
followed by its own pointer to the logs and its stack trace). The framework also covers the rest of
the protocol: a FAILED Create gets a marker id, and the Delete CloudFormation then sends for it is
answered without calling this function; a FAILED Update keeps the resource's id. This function never
uses or logs the ``ResponseURL`` the framework passes along.

Request (CloudFormation's request, as the framework passes it)::

    RequestType: Create | Update | Delete, ServiceToken (the framework's function), StackId,
    RequestId, LogicalResourceId, ResourceType, ResponseURL (unused), PhysicalResourceId (Update,
    Delete), OldResourceProperties (Update),
    ResourceProperties: {ServiceToken, Action: "resolve", Generation: "newest" | "pp-<run id>"}
                     or {ServiceToken, Action: "record-serving", Generation: "pp-<run id>",
                         EndpointName: str}

Any other property is refused, so a misspelt property cannot silently change what is checked.
CloudFormation sends an Update only when a property changes: ``newest`` is resolved when the
resource is created and again only when its properties change, so a plain ``cdk deploy`` of other
changes never switches the endpoint to another generation by surprise.

Returns::

    resolve Create/Update, servable: {"PhysicalResourceId":
        "<bucket>/preprocessor/<generation>/model.tar.gz" (a new generation is a new id, so
        CloudFormation later sends a Delete for the old one: harmless, resolve deletes nothing),
        "Data": {"Generation": <id>, "ArtifactVersionId": <S3 version id, "null" if unversioned>}}
    record-serving Create/Update: {"PhysicalResourceId": "<bucket>/preprocessor/serving.json" (the
        same for every update: a changed id would make CloudFormation delete the "old" record right
        after writing the new one), "Data": {"Generation": <id>}}
    Delete: {"PhysicalResourceId": <the request's, which the framework requires>, "Data": {}}, and
        never raises (nothing may block a stack deletion or rollback); record-serving removes
        serving.json as described above, resolve touches nothing

Raises (Create/Update only): :class:`Unservable` (resolve: the generation cannot be served, saying
what to run), :class:`InvalidRequest` (a property or the environment is wrong, naming it), and
:class:`RequestFailed` for anything unexpected (an S3 error, an unreadable record): "The
serving-generation request failed: <type>: <message> (log group <group>, stream <stream>)", the
message cut to 1,000 characters (CloudFormation refuses an answer over 4 KB, and the framework adds
its own lines; its log pointer names ``/aws/lambda/<function>``, not this function's log group).

Environment: ``BUCKET_NAME`` (the artifact bucket), ``KMS_KEY_ARN`` (the project key, used to
encrypt ``serving.json``), ``ALGORITHM`` (the endpoint's MultiModel algorithm).

Permissions: ``s3:GetObject`` on ``preprocessor/newest.json``, ``preprocessor/serving.json``,
``preprocessor/*/complete.json`` and ``preprocessor/*/model.tar.gz`` (HeadObject is authorised as
GetObject; it reads metadata only); ``s3:ListBucket`` on the bucket only for ``s3:prefix`` under
``preprocessor/`` and ``model-pointers/``; ``s3:PutObject`` and ``s3:DeleteObject`` on
``preprocessor/serving.json`` only (``record-serving`` writes and deletes it; ``resolve`` rewrites
it to announce or withdraw ``next_generation``); ``kms:Decrypt`` (reading the SSE-KMS documents) and
``kms:GenerateDataKey`` (writing serving.json) on the project key. S3 answers a GetObject of a
missing key with 404 only to a caller that may list the whole bucket, and with 403 otherwise; rather
than grant an unconditional ListBucket, this function asks whether a key exists with a ListObjectsV2
whose prefix is that key (:func:`object_exists`) and reads only keys that exist. The framework's
role is the stack's only role that may invoke this function; the answer to CloudFormation is the
framework's (a PUT to a pre-signed URL, which needs no permission).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from mme_shared import generation, s3_layout
from mme_shared.handler_input import (
    environment_algorithm,
    environment_bucket,
    environment_kms_key_arn,
    rejected_as,
    shorten,
)
from mme_shared.naming import generation_problem

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

RESOLVE: Final = "resolve"
RECORD_SERVING: Final = "record-serving"
ACTIONS: Final = (RESOLVE, RECORD_SERVING)
NEWEST: Final = "newest"
"""The ``Generation`` that means "whatever preprocessor/newest.json names"."""
ALLOWED_PROPERTIES: Final = {
    RESOLVE: ("ServiceToken", "Action", "Generation"),
    RECORD_SERVING: ("ServiceToken", "Action", "Generation", "EndpointName"),
}
REQUEST_TYPES: Final = ("Create", "Update", "Delete")
SHOWN_MISSING_LOCATIONS: Final = 10
MAX_DETAIL_CHARS: Final = 1000
"""How much of an unexpected error's message a FAILED reason carries (CloudFormation: 4 KB in all)."""

_DEPLOY_FIRST: Final = (
    "run `make deploy` (it deploys storage and training, trains, then deploys the endpoint), or start "
    "the training state machine and wait for it to succeed before deploying the endpoint stack"
)


class Refused(Exception):  # noqa: N818  (reads as what happened, like the other handlers)
    """A Create or Update this function refuses; its message is the one sentence of the FAILED reason."""


class InvalidRequest(Refused):
    """The event or the environment is not what this function expects."""


class Unservable(Refused):
    """resolve: the requested generation cannot be served by this endpoint."""


class RequestFailed(Exception):  # noqa: N818
    """Something unexpected (an S3 error, an unreadable record) stopped a Create or Update."""


@dataclass(frozen=True)
class Outcome:
    """A successful answer: the resource's id, its attributes, and a sentence for the decision log."""

    physical_resource_id: str
    summary: str
    data: dict[str, str] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        """What the on_event handler returns to the Provider framework (no id: the request's)."""
        answer: dict[str, Any] = {"Data": dict(self.data)}
        if self.physical_resource_id:
            answer["PhysicalResourceId"] = self.physical_resource_id
        return answer


@dataclass(frozen=True)
class Request:
    """A validated Create or Update: the action and its properties."""

    action: str
    generation: str
    endpoint_name: str | None = None


@dataclass(frozen=True)
class Settings:
    """The function's environment, validated."""

    bucket: str
    kms_key_arn: str
    algorithm: str
    """The endpoint's MultiModel algorithm: a generation of another one cannot be served."""


# --------------------------------------------------------------------------------------------------
# Reading the bucket


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, asked with ListObjectsV2 (prefix = the key) instead of a 404.

    The key itself sorts first among the keys it is a prefix of, so one result is enough. This needs
    ``s3:ListBucket`` only for that prefix, where a GetObject would need an unconditional
    ListBucket to tell a missing key (404) from a forbidden one (403).
    """
    response = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(item.get("Key") == key for item in response.get("Contents", []))


def pointer_locations(s3: S3Client, bucket: str, generation_id: str) -> set[str]:
    """The locations with a pointer in one generation (``model-pointers/<generation>/<location>.json``)."""
    prefix = s3_layout.generation_pointers_prefix(generation_id)
    locations: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            location = s3_layout.parse_pointer_key(generation_id, str(item["Key"]))
            if location is not None:
                locations.add(location)
    return locations


def _uri(bucket: str, key: str) -> str:
    return s3_layout.s3_uri(bucket, key)


# --------------------------------------------------------------------------------------------------
# resolve


def no_generation_reason(bucket: str) -> str:
    return (
        "No complete preprocessor generation exists yet "
        f"({_uri(bucket, s3_layout.NEWEST_GENERATION_KEY)} does not exist): {_DEPLOY_FIRST}."
    )


def incomplete_reason(bucket: str, generation_id: str) -> str:
    return (
        f"Preprocessor generation {generation_id} is not complete "
        f"({_uri(bucket, s3_layout.generation_record_key(generation_id))} does not exist: its training "
        "run has not finished, or some of its locations failed): wait for the run to succeed, or deploy "
        "a complete generation (`make deploy` picks the newest, `make deploy GENERATION=<generation>` "
        "pins one)."
    )


def missing_artifact_reason(bucket: str, generation_id: str) -> str:
    return (
        f"The preprocessor artifact of generation {generation_id}, "
        f"{_uri(bucket, s3_layout.preprocessor_artifact_key(generation_id))}, does not exist although "
        "the generation is complete (it was deleted): deploy another complete generation with "
        "`make deploy GENERATION=<generation>`, or refit a new one with a training run."
    )


def algorithm_reason(generation_id: str, trained_with: str, served_by: str) -> str:
    return (
        f"Preprocessor generation {generation_id} holds {trained_with} models, but the endpoint's "
        f"MultiModel container is {served_by} (training.algorithm), which cannot load them: train a "
        f"{served_by} generation first (`mme deploy` does, or a training run: a run after the algorithm "
        "changed fits a new generation for every location), or set training.algorithm back to "
        f"{trained_with}."
    )


def switch_reason(serving: str, target: str, missing: list[str]) -> str:
    shown = ", ".join(missing[:SHOWN_MISSING_LOCATIONS])
    more = len(missing) - SHOWN_MISSING_LOCATIONS
    return (
        f"Switching the endpoint from generation {serving} to {target} would stop serving "
        f"{len(missing)} location(s) that have a model in {serving} but none in {target}: {shown}"
        + (f" and {more} more" if more > 0 else "")
        + f'; train them into {target} first (a training run with "refit": true retrains every location '
        f"of the served generation), or keep serving {serving} with `make deploy GENERATION={serving}`."
    )


def resolve(s3: S3Client, settings: Settings, requested: str, now: datetime) -> Outcome:
    """The generation the endpoint may serve for ``requested`` (``newest`` or an id); Unservable saying
    why it cannot.

    On success it also announces a switch in serving.json (:func:`announce_next_generation`).
    """
    bucket = settings.bucket
    generation_id = requested
    if requested == NEWEST:
        newest = (
            generation.read_ref(s3, bucket, s3_layout.NEWEST_GENERATION_KEY)
            if object_exists(s3, bucket, s3_layout.NEWEST_GENERATION_KEY)
            else None
        )
        if newest is None:
            raise Unservable(no_generation_reason(bucket))
        generation_id = newest.generation
    record_key = s3_layout.generation_record_key(generation_id)
    complete = object_exists(s3, bucket, record_key) and generation.read_complete(s3, bucket, generation_id)
    if not complete:
        raise Unservable(incomplete_reason(bucket, generation_id))
    if complete.algorithm != settings.algorithm:
        raise Unservable(algorithm_reason(generation_id, complete.algorithm, settings.algorithm))
    artifact_key = s3_layout.preprocessor_artifact_key(generation_id)
    if not object_exists(s3, bucket, artifact_key):
        raise Unservable(missing_artifact_reason(bucket, generation_id))
    version_id = str(s3.head_object(Bucket=bucket, Key=artifact_key).get("VersionId") or "null")
    serving = (
        generation.read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY)
        if object_exists(s3, bucket, s3_layout.SERVING_GENERATION_KEY)
        else None
    )
    if serving is not None and serving.generation != generation_id:
        missing = sorted(
            pointer_locations(s3, bucket, serving.generation) - pointer_locations(s3, bucket, generation_id)
        )
        if missing:
            raise Unservable(switch_reason(serving.generation, generation_id, missing))
    how = f"{NEWEST} is " if requested == NEWEST else ""
    announced = announce_next_generation(s3, settings, serving, generation_id, now)
    return Outcome(
        f"{bucket}/{artifact_key}",
        f"{how}{generation_id}: complete, artifact {_uri(bucket, artifact_key)} version {version_id}."
        + announced,
        {"Generation": generation_id, "ArtifactVersionId": version_id},
    )


def announce_next_generation(
    s3: S3Client,
    settings: Settings,
    serving: generation.GenerationRef | None,
    generation_id: str,
    now: datetime,
) -> str:
    """Say in serving.json which generation the endpoint update is about to switch to (or no longer).

    Runs last in a successful resolve, so a failed resolve writes nothing. Switching (``serving``
    names another generation): ``generation`` stays the served one, ``next_generation`` becomes
    ``generation_id``. Staying (``serving`` names ``generation_id``: a plain deploy, or a rollback's
    Update with the old properties) with a ``next_generation`` left from a switch that did not
    complete: it is removed. Otherwise serving.json is not touched (no serving.json: nothing is
    served yet, so there is nothing to announce). Returns a sentence for the decision log.
    """
    if serving is None:
        return ""
    if serving.generation == generation_id:
        if serving.next_generation is None:
            return ""
        following = None
    elif serving.next_generation == generation_id:
        return ""
    else:
        following = generation_id
    ref = generation.GenerationRef(
        generation=serving.generation,
        updated_at=now,
        endpoint_name=serving.endpoint_name,
        next_generation=following,
    )
    generation.write_ref(
        s3, settings.bucket, s3_layout.SERVING_GENERATION_KEY, ref, kms_key_arn=settings.kms_key_arn
    )
    uri = _uri(settings.bucket, s3_layout.SERVING_GENERATION_KEY)
    if following is None:
        return f" Removed next_generation {serving.next_generation} from {uri}: {generation_id} stays served."
    return (
        f" Announced next_generation {following} in {uri} (generation {serving.generation} is still served)."
    )


# --------------------------------------------------------------------------------------------------
# record-serving


def serving_physical_id(bucket: str) -> str:
    """The record's id: one per bucket, unchanged by updates."""
    return f"{bucket}/{s3_layout.SERVING_GENERATION_KEY}"


def record_serving(
    s3: S3Client, settings: Settings, generation_id: str, endpoint_name: str, now: datetime
) -> Outcome:
    """Write serving.json: ``endpoint_name`` now serves ``generation_id``."""
    ref = generation.GenerationRef(generation=generation_id, updated_at=now, endpoint_name=endpoint_name)
    generation.write_ref(
        s3, settings.bucket, s3_layout.SERVING_GENERATION_KEY, ref, kms_key_arn=settings.kms_key_arn
    )
    return Outcome(
        serving_physical_id(settings.bucket),
        f"Recorded in {_uri(settings.bucket, s3_layout.SERVING_GENERATION_KEY)} that endpoint "
        f"{endpoint_name} serves generation {generation_id}.",
        {"Generation": generation_id},
    )


def remove_serving(s3: S3Client, bucket: str, endpoint_name: str, physical_id: str) -> Outcome:
    """Delete serving.json if it still names ``endpoint_name``; otherwise leave it alone.

    Only endpoint stacks write the record, so the read-then-delete leaves no practical race. The
    delete adds a delete marker: the bucket's versioning keeps the record's history.
    """
    uri = _uri(bucket, s3_layout.SERVING_GENERATION_KEY)
    if not object_exists(s3, bucket, s3_layout.SERVING_GENERATION_KEY):
        return Outcome(physical_id, f"Nothing to remove: {uri} does not exist.")
    try:
        ref = generation.read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY)
    except generation.GenerationRecordError as error:
        return Outcome(physical_id, f"Left {uri} in place: it is not readable ({error}).")
    if ref is None:
        return Outcome(physical_id, f"Nothing to remove: {uri} does not exist.")
    if ref.endpoint_name != endpoint_name:
        return Outcome(
            physical_id,
            f"Left {uri} in place: it names endpoint {ref.endpoint_name}, not {endpoint_name}.",
        )
    s3.delete_object(Bucket=bucket, Key=s3_layout.SERVING_GENERATION_KEY)
    return Outcome(physical_id, f"Removed {uri}: endpoint {endpoint_name} no longer serves a generation.")


# --------------------------------------------------------------------------------------------------
# The request


def load_settings(environ: Mapping[str, str], *, need_key: bool) -> Settings:
    """BUCKET_NAME, ALGORITHM (and, to write, KMS_KEY_ARN), validated; InvalidRequest naming the
    variable otherwise."""
    with rejected_as(InvalidRequest):
        bucket = environment_bucket(environ)
        kms_key_arn = environment_kms_key_arn(environ) if need_key else environ.get("KMS_KEY_ARN", "")
        algorithm = environment_algorithm(environ)
    return Settings(bucket=bucket, kms_key_arn=kms_key_arn, algorithm=algorithm)


def parse_properties(properties: object) -> Request:
    """The resource's properties, validated; InvalidRequest with one sentence otherwise."""
    if not isinstance(properties, Mapping):
        raise InvalidRequest("ResourceProperties must be an object.")
    action = properties.get("Action")
    if action not in ACTIONS:
        raise InvalidRequest(f"The Action property must be one of {', '.join(ACTIONS)}, got {action!r}.")
    allowed = ALLOWED_PROPERTIES[action]
    unknown = sorted(str(name) for name in properties if name not in allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown resource propert{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} for "
            f"Action {action}; allowed: {', '.join(allowed)}."
        )
    requested = properties.get("Generation")
    if not (action == RESOLVE and requested == NEWEST):
        problem = generation_problem(requested)
        if problem is not None:
            also = f" or {NEWEST!r}" if action == RESOLVE else ""
            raise InvalidRequest(f"The Generation property: {problem}{also}.")
    if action == RESOLVE:
        return Request(action=action, generation=str(requested))
    endpoint_name = properties.get("EndpointName")
    if not isinstance(endpoint_name, str) or not endpoint_name:
        raise InvalidRequest(
            "The EndpointName property must be the endpoint's name (a non-empty string), got "
            f"{endpoint_name!r}."
        )
    return Request(action=action, generation=str(requested), endpoint_name=endpoint_name)


def delete(
    event: Mapping[str, Any], *, get_s3: Callable[[], S3Client], environ: Mapping[str, str]
) -> Outcome:
    """Never raises: a resolve or a malformed request is simply let go, keeping the request's id."""
    existing = str(event.get("PhysicalResourceId") or "")
    properties = event.get("ResourceProperties")
    nothing = Outcome(existing, "Nothing to delete: this resource wrote nothing.")
    if not isinstance(properties, Mapping) or properties.get("Action") != RECORD_SERVING:
        return nothing
    try:
        request = parse_properties(properties)
        assert request.endpoint_name is not None  # parse_properties guarantees it for record-serving
        settings = load_settings(environ, need_key=False)
        return remove_serving(get_s3(), settings.bucket, request.endpoint_name, existing)
    except Exception as error:
        LOGGER.exception("Could not remove the serving record")
        return Outcome(
            existing,
            f"Did not remove {s3_layout.SERVING_GENERATION_KEY} ({type(error).__name__}: {error}); the "
            "deletion goes on: remove that object by hand if it still names this endpoint.",
        )


def evaluate(
    event: Mapping[str, Any],
    *,
    get_s3: Callable[[], S3Client],
    environ: Mapping[str, str],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Decide the answer to one request; a Create or Update may raise (Refused, or anything else)."""
    request_type = event.get("RequestType")
    if request_type == "Delete":
        return delete(event, get_s3=get_s3, environ=environ)
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"RequestType {request_type!r} is not one of {', '.join(REQUEST_TYPES)}.")
    request = parse_properties(event.get("ResourceProperties"))
    settings = load_settings(environ, need_key=True)
    if request.action == RESOLVE:
        return resolve(get_s3(), settings, request.generation, now())
    assert request.endpoint_name is not None  # parse_properties guarantees it for record-serving
    return record_serving(get_s3(), settings, request.generation, request.endpoint_name, now())


# --------------------------------------------------------------------------------------------------
# Entry point


def _decision(
    event: Mapping[str, Any], status: str, reason: str, generation_id: str | None
) -> dict[str, Any]:
    """The fields of the one decision record each request logs (never the ResponseURL)."""
    properties = event.get("ResourceProperties")
    return {
        "request_type": event.get("RequestType"),
        "action": properties.get("Action") if isinstance(properties, Mapping) else None,
        "generation": generation_id,
        "status": status,
        "reason": reason,
    }


def process_request(
    event: object,
    *,
    get_s3: Callable[[], S3Client],
    environ: Mapping[str, str],
    log_location: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Answer one request from the Provider framework: the on_event result, or an exception.

    ``log_location`` goes into an unexpected failure's sentence, so that the FAILED reason says where
    the traceback is.
    """
    if not isinstance(event, Mapping):
        raise InvalidRequest(
            "The event is not a custom resource request (an object with RequestType and "
            "ResourceProperties); this function answers the endpoint stack's custom resources."
        )
    try:
        outcome = evaluate(event, get_s3=get_s3, environ=environ, now=now)
    except Refused as refusal:
        LOGGER.warning("refused", extra=_decision(event, "FAILED", str(refusal), None))
        raise
    except Exception as error:
        LOGGER.exception("The serving-generation request failed unexpectedly")
        where = f" ({log_location})" if log_location else ""
        detail = shorten(str(error), MAX_DETAIL_CHARS)
        failure = RequestFailed(
            f"The serving-generation request failed: {type(error).__name__}: {detail}{where}"
        )
        LOGGER.warning("refused", extra=_decision(event, "FAILED", str(failure), None))
        raise failure from error
    decision = _decision(event, "SUCCESS", outcome.summary, outcome.data.get("Generation"))
    resolved = decision["action"] == RESOLVE and event.get("RequestType") != "Delete"
    LOGGER.info("resolved" if resolved else "answered", extra=decision)
    return outcome.response()


@functools.cache
def _s3_client() -> S3Client:
    """Short timeouts and few retries: the whole answer must fit well inside the function's timeout."""
    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("s3", config=config)


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point, invoked by the Provider framework's function."""
    group, stream = getattr(context, "log_group_name", None), getattr(context, "log_stream_name", None)
    return process_request(
        event,
        get_s3=_s3_client,
        environ=os.environ,
        log_location=f"log group {group}, stream {stream}" if group and stream else None,
    )
