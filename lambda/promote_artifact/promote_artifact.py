"""Promote a finished training job's artifact to where the endpoint serves it from.

Two kinds of promotion, chosen by the event:

- ``{"training_job_name": ..., "location": ..., "generation": ... (optional)}``: a location's
  linear-learner model is copied to a NEW versioned key
  ``models/<generation>/<location>/<location>-<job name>.tar.gz`` (the training job name is the
  model version: unique, at most 63 characters, valid for the key layout). The generation is the
  preprocessor the job's data went through: the state machine tags every per-location job with it
  (``mme:preprocessor-generation``), this function reads it from the tag, and an event that names a
  generation must name the same one. A served key is never overwritten, because a multi-model
  endpoint may keep serving a cached copy of the old bytes under the same name. Only after the copy
  is verified does the location's pointer in that generation,
  ``model-pointers/<generation>/<location>.json`` (format: :mod:`mme_shared.model_pointer`), name
  the new version.
- ``{"training_job_name": "pp-<run id>", "artifact": "preprocessor"}``: a fitted preprocessor
  becomes the generation named after its job: it is copied to the immutable key
  ``preprocessor/<job name>/model.tar.gz``. Nothing is served from it until a run completes the
  generation and the endpoint is deployed with it (see :mod:`mme_shared.generation`).

Checks before anything is written (each failure raises one of the exception classes below, whose
names a Step Functions ``Catch`` can match, and leaves the bucket untouched): the event's fields;
the job exists and is ``Completed``; the job's ``mme:location`` tag equals the requested location
(the state machine tags every per-location job; a preprocessor job must carry no such tag, so a
location model can never be promoted as everyone's preprocessor); a model's generation tag names a
generation whose preprocessor artifact exists; the artifact is in this bucket under
``training-output/`` and exists; and an existing destination is either this very artifact (a
retry) or a conflict: nothing promoted is ever overwritten.

The copy is server-side only: boto3's managed ``copy`` issues CopyObject up to the multipart
threshold (5 GiB, the CopyObject limit) and CreateMultipartUpload + UploadPartCopy +
CompleteMultipartUpload above it, so no artifact byte passes through the Lambda. The destination is
written with SSE-KMS under the project key.

How a copy is verified (and why not by ETag): ETags cannot be compared across a copy here, because
an SSE-KMS object's ETag is not an MD5 of its bytes and a multipart copy's ETag (``...-N``) is
computed differently from a single-part one. S3's *full-object* checksums, in contrast, depend only
on the bytes. So the source is read with ``ChecksumMode=ENABLED``; the copy asks S3 to compute a
checksum of the copied bytes in the source's own algorithm when the copy is a single CopyObject, or
in CRC64NVME (the one algorithm that is full-object whatever the part layout) when it is multipart.
The destination then counts as the source's bytes when

1. its ContentLength equals the source's, and
2. a full-object checksum in an algorithm both objects carry is equal, or, when they share none
   (an old object without a checksum, a composite multipart checksum, or a multipart copy of a
   non-CRC64NVME source), its ``mme-source-etag`` metadata names the source's ETag. That metadata is
   written by the copy itself, and the copy is conditional on that ETag (``CopySourceIfMatch``,
   which s3transfer also sends with every UploadPartCopy), so S3 refuses to copy any other version
   of the source than the one that was inspected.

The same comparison decides whether an existing destination is a retry (skip the copy: idempotent)
or something else (fail with ArtifactConflict). If the copy cannot be verified, the pointer is
not touched and ArtifactVerificationFailed names the unverified key; it is not deleted, because this
function is deliberately not allowed to delete anything under the served prefix.

On a retry whose pointer already names this version, the pointer is left as it is, so the result
(including ``promoted_at``) is the same as the first call's.

Permissions it needs (nothing else): ``sagemaker:DescribeTrainingJob`` and ``sagemaker:ListTags`` on
training jobs; ``s3:GetObject`` on ``training-output/*``; ``s3:GetObject``, ``s3:PutObject`` and
``s3:AbortMultipartUpload`` on ``models/*`` and ``preprocessor/*/model.tar.gz``;
``s3:GetObject`` and ``s3:PutObject`` on ``model-pointers/*``; ``s3:ListBucket`` on the bucket (so
a missing object is a 404, not a 403); ``kms:Decrypt`` and ``kms:GenerateDataKey`` on the project
key (reading SSE-KMS sources and checksums, writing SSE-KMS copies). No delete permission at all.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from s3transfer.exceptions import S3CopyFailedError  # type: ignore[import-untyped]

from mme_shared import s3_layout
from mme_shared.handler_input import (
    environment_bucket,
    environment_kms_key_arn,
    event_object,
    log_rejected,
    rejected_as,
)
from mme_shared.model_pointer import (
    CHECKSUM_ALGORITHMS,
    TRAINING_JOB_METADATA,
    ModelPointer,
    ModelPointerError,
    full_object_checksums,
    preferred_checksum,
    validation_metrics,
)
from mme_shared.naming import generation_problem
from mme_shared.pointer_store import UNCONDITIONAL, write_pointer

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""
SageMakerClient: TypeAlias = Any
"""A boto3 SageMaker client."""

LOCATION_TAG_KEY: Final = "mme:location"
"""The tag the state machine puts on every per-location training job; its value is the location."""
GENERATION_TAG_KEY: Final = "mme:preprocessor-generation"
"""The tag naming the preprocessor generation whose output a per-location job trained on."""
PREPROCESSOR_ARTIFACT: Final = "preprocessor"

MULTIPART_THRESHOLD_BYTES: Final = 5 * 1024**3
"""CopyObject copies at most 5 GiB in one request; larger artifacts need a multipart copy."""
MULTIPART_CHUNKSIZE_BYTES: Final = 256 * 1024**2
"""Part size of a multipart copy: large parts mean few requests (UploadPartCopy allows up to 5 GiB)."""
COPY_CONCURRENCY: Final = 10

SOURCE_ETAG_METADATA: Final = "mme-source-etag"
SOURCE_KEY_METADATA: Final = "mme-source-key"
MULTIPART_CHECKSUM_ALGORITHM: Final = "CRC64NVME"
DEFAULT_CHECKSUM_ALGORITHM: Final = "CRC64NVME"

TRAINING_JOB_NAME_RE: Final = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
TRAINING_JOB_NAME_RULE: Final = (
    "1 to 63 characters from A-Z, a-z, 0-9 and '-', starting and ending with a letter or digit"
)
_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_PRECONDITION_CODES: Final = frozenset({"412", "PreconditionFailed"})
_EVENT_FIELDS: Final = ("training_job_name", "location", "artifact", "generation")
_EXPECTED_EVENT: Final = (
    'expected {"training_job_name": str, "location": str, "generation": str (optional)} or '
    '{"training_job_name": "pp-<run id>", "artifact": "preprocessor"}'
)


# The class names are the contract with the state machine: Lambda reports an uncaught exception's
# class name as the error name a Catch matches, so they say what went wrong without an "Error"
# suffix (hence the N818 exemptions).


class PromotionError(Exception):
    """Base class; Step Functions matches the concrete class names below."""


class InvalidEnvironment(PromotionError):  # noqa: N818
    """BUCKET_NAME or KMS_KEY_ARN is missing or malformed (a deployment error)."""


class InvalidPromotionRequest(PromotionError):  # noqa: N818
    """The event is not ``{training_job_name, location}`` or ``{training_job_name, artifact}``."""


class TrainingJobNotFound(PromotionError):  # noqa: N818
    """No training job of that name exists in this account and region."""


class TrainingJobNotReady(PromotionError):  # noqa: N818
    """The training job is not ``Completed`` (in progress, failed or stopped)."""


class LocationMismatch(PromotionError):  # noqa: N818
    """The job's ``mme:location`` tag does not match what the event asks to promote."""


class GenerationMismatch(PromotionError):  # noqa: N818
    """The job's generation tag is missing, names no existing generation, or not the requested one."""


class ArtifactOutsideTrainingOutput(PromotionError):  # noqa: N818
    """The job's artifact is not in the artifact bucket under ``training-output/``."""


class ArtifactMissing(PromotionError):  # noqa: N818
    """The job reports no artifact, or the artifact object does not exist."""


class ArtifactConflict(PromotionError):  # noqa: N818
    """The versioned destination key already holds different bytes; nothing is overwritten."""


class ArtifactVerificationFailed(PromotionError):  # noqa: N818
    """The copy does not match the source (or the source changed while being copied)."""


@dataclass(frozen=True)
class Settings:
    """The function's environment: where artifacts live and which key encrypts what it writes."""

    bucket: str
    kms_key_arn: str


@dataclass(frozen=True)
class PromotionRequest:
    """A validated event: a training job and either a location or the preprocessor (location None)."""

    training_job_name: str
    location: str | None
    generation: str | None = None
    """The generation the event expects a location's model to belong to (None: the job's tag says)."""

    @property
    def is_preprocessor(self) -> bool:
        return self.location is None


@dataclass(frozen=True)
class ObjectFacts:
    """What HeadObject says about one object, reduced to what the comparison needs."""

    key: str
    size: int
    etag: str
    checksums: dict[str, str]
    """Full-object checksums only (composite multipart checksums cannot be compared across copies)."""
    metadata: dict[str, str]
    content_type: str | None


@dataclass(frozen=True)
class PromotionResult:
    """What the state machine gets back (JSON-able through :meth:`to_dict`)."""

    artifact: str
    """``model`` or ``preprocessor``."""
    generation: str
    """The model's preprocessor generation, or the generation a preprocessor artifact starts."""
    location: str | None
    version: str
    training_job_name: str
    target_model: str | None
    key: str
    pointer_key: str | None
    size: int
    copied: bool
    """False when the destination already held this artifact (a retry)."""
    verification: str
    """How the copy was shown to equal the source, e.g. ``size+CRC32`` or ``size+source-etag``."""
    validation_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Event and environment


def parse_promotion_event(event: object) -> PromotionRequest:
    """Validate the event; raise InvalidPromotionRequest naming the field and what is expected."""
    with rejected_as(InvalidPromotionRequest):
        fields = event_object(
            event, allowed=_EVENT_FIELDS, required=("training_job_name",), expected=_EXPECTED_EVENT
        )
        job_name = fields.string(
            "training_job_name", rule=TRAINING_JOB_NAME_RULE, pattern=TRAINING_JOB_NAME_RE
        )
        if fields.one_of("location", "artifact") == "location":
            return PromotionRequest(
                training_job_name=job_name,
                location=fields.location(),
                generation=fields.generation() if fields.has("generation") else None,
            )
        artifact = fields.values["artifact"]
        if artifact != PREPROCESSOR_ARTIFACT:
            raise InvalidPromotionRequest(
                f"artifact {artifact!r} is not supported; the only shared artifact is "
                f"{PREPROCESSOR_ARTIFACT!r} (pass location to promote a location's model)."
            )
        if fields.has("generation"):
            raise InvalidPromotionRequest(
                "A preprocessor promotion takes no generation: it starts the generation named after its "
                f"training job; {_EXPECTED_EVENT}."
            )
        problem = generation_problem(job_name)
        if problem is not None:
            raise InvalidPromotionRequest(
                f"training_job_name {job_name!r} cannot start a generation: {problem}; a preprocessor is "
                "fitted by the job pp-<run id>."
            )
        return PromotionRequest(training_job_name=job_name, location=None)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read BUCKET_NAME and KMS_KEY_ARN; raise InvalidEnvironment naming the variable if wrong."""
    with rejected_as(InvalidEnvironment):
        return Settings(bucket=environment_bucket(environ), kms_key_arn=environment_kms_key_arn(environ))


# --------------------------------------------------------------------------------------------------
# The promotion


def _utc_now() -> datetime:
    return datetime.now(UTC)


def promote_artifact(
    request: PromotionRequest,
    *,
    sagemaker: SageMakerClient,
    s3: S3Client,
    settings: Settings,
    now: Callable[[], datetime] = _utc_now,
    multipart_threshold: int = MULTIPART_THRESHOLD_BYTES,
    multipart_chunksize: int = MULTIPART_CHUNKSIZE_BYTES,
) -> PromotionResult:
    """Check the job and its artifact, copy it server-side, verify, then move the pointer.

    Every check that can fail runs before the first write, so a rejected request writes nothing.
    ``multipart_threshold``/``multipart_chunksize`` exist so tests can reach the multipart path
    with small objects; production uses the defaults.
    """
    job_name = request.training_job_name
    job = _describe_training_job(sagemaker, job_name)
    status = job.get("TrainingJobStatus")
    if status != "Completed":
        reason = job.get("FailureReason")
        raise TrainingJobNotReady(
            f"Training job {job_name!r} is {status}"
            + (f" (FailureReason: {reason})" if reason else "")
            + "; only a Completed job's artifact can be promoted."
        )
    tags = _training_job_tags(sagemaker, job["TrainingJobArn"])
    _check_location_tag(tags, request)
    generation = job_name if request.location is None else _model_generation(s3, settings, tags, request)
    source_key = _artifact_key(job, settings.bucket)
    source = _head(s3, settings.bucket, source_key)
    if source is None:
        raise ArtifactMissing(
            f"Training job {job_name!r} reports its artifact at s3://{settings.bucket}/{source_key}, "
            "but no object exists there; the job's output must still be in the bucket to be promoted."
        )

    if request.location is None:
        destination_key = s3_layout.preprocessor_artifact_key(generation)
    else:
        destination_key = s3_layout.model_version_key(generation, request.location, job_name)

    placed, verification, copied = _place_artifact(
        s3,
        settings,
        source,
        destination_key,
        job_name,
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
    )

    metrics = validation_metrics(job.get("FinalMetricDataList"))
    if request.location is None:
        return PromotionResult(
            artifact=PREPROCESSOR_ARTIFACT,
            generation=generation,
            location=None,
            version=job_name,
            training_job_name=job_name,
            target_model=None,
            key=destination_key,
            pointer_key=None,
            size=placed.size,
            copied=copied,
            verification=verification,
            validation_metrics=metrics,
        )

    pointer = _update_pointer(
        s3,
        settings,
        ModelPointer(
            preprocessor_generation=generation,
            location=request.location,
            version=job_name,
            size=placed.size,
            training_job_name=job_name,
            promoted_at=now(),
            checksum=preferred_checksum(placed.checksums),
            validation_metrics=metrics,
        ),
    )
    return PromotionResult(
        artifact="model",
        generation=pointer.preprocessor_generation,
        location=pointer.location,
        version=pointer.version,
        training_job_name=job_name,
        target_model=pointer.target_model,
        key=pointer.key,
        pointer_key=pointer.pointer_key,
        size=pointer.size,
        copied=copied,
        verification=verification,
        validation_metrics=dict(pointer.validation_metrics),
    )


def _place_artifact(
    s3: S3Client,
    settings: Settings,
    source: ObjectFacts,
    destination_key: str,
    job_name: str,
    *,
    multipart_threshold: int,
    multipart_chunksize: int,
) -> tuple[ObjectFacts, str, bool]:
    """Make the destination hold the source's bytes: (its facts, how verified, whether copied).

    A destination that already holds them is a retry and is left alone. One that holds something
    else is a conflict: promoted keys (model versions and generations' preprocessors) are immutable.
    """
    existing = _head(s3, settings.bucket, destination_key)
    if existing is not None:
        verification = compare_artifacts(source, existing)
        if verification is not None:
            LOGGER.info(
                "s3://%s/%s already holds this artifact: not copied again", settings.bucket, destination_key
            )
            return existing, verification, False
        raise ArtifactConflict(
            f"s3://{settings.bucket}/{destination_key} already exists with different content "
            f"({existing.size} bytes, ETag {existing.etag}) than training job {job_name!r}'s artifact "
            f"({source.size} bytes, ETag {source.etag}); a promoted artifact is never overwritten, "
            "so check who wrote that key."
        )
    _server_side_copy(
        s3,
        settings,
        source,
        destination_key,
        job_name,
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
    )
    written = _head(s3, settings.bucket, destination_key)
    verification = None if written is None else compare_artifacts(source, written)
    if written is None or verification is None:
        raise ArtifactVerificationFailed(
            f"The copy at s3://{settings.bucket}/{destination_key} does not match "
            f"s3://{settings.bucket}/{source.key} ({_mismatch(source, written)}); the pointer was "
            "not changed and the unverified copy was left for inspection."
        )
    return written, verification, True


def _error_code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe_training_job(sagemaker: SageMakerClient, job_name: str) -> dict[str, Any]:
    try:
        job: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=job_name)
    except ClientError as error:
        # SageMaker reports an unknown job as ValidationException; the name itself was validated.
        if _error_code(error) == "ValidationException":
            raise TrainingJobNotFound(
                f"Training job {job_name!r} does not exist in this account and region "
                f"({error.response['Error'].get('Message', 'no message')}); pass a job the pipeline created."
            ) from None
        raise
    return job


def _training_job_tags(sagemaker: SageMakerClient, job_arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=job_arn):
        for tag in page.get("Tags", []):
            tags[tag["Key"]] = tag.get("Value", "")
    return tags


def _check_location_tag(tags: Mapping[str, str], request: PromotionRequest) -> None:
    job_name = request.training_job_name
    tagged = tags.get(LOCATION_TAG_KEY)
    if request.location is None:
        if tagged is not None:
            raise LocationMismatch(
                f"Training job {job_name!r} is tagged {LOCATION_TAG_KEY}={tagged!r}, so it trained a "
                "location's model; promote the preprocessor from the preprocessor's training job."
            )
        return
    if tagged is None:
        raise LocationMismatch(
            f"Training job {job_name!r} has no {LOCATION_TAG_KEY} tag, so it cannot be shown to have "
            f"trained {request.location!r}; expected the tag {LOCATION_TAG_KEY}={request.location}."
        )
    if tagged != request.location:
        raise LocationMismatch(
            f"Training job {job_name!r} trained location {tagged!r} ({LOCATION_TAG_KEY} tag), "
            f"not {request.location!r}; its model cannot be promoted as {request.location!r}'s."
        )


def _model_generation(
    s3: S3Client, settings: Settings, tags: Mapping[str, str], request: PromotionRequest
) -> str:
    """The generation a location's model belongs to: its job's tag, checked against the event and S3."""
    job_name = request.training_job_name
    tagged = tags.get(GENERATION_TAG_KEY)
    if tagged is None or generation_problem(tagged) is not None:
        raise GenerationMismatch(
            f"Training job {job_name!r} has no valid {GENERATION_TAG_KEY} tag (got {tagged!r}), so the "
            "preprocessor its data went through is unknown and its model could be served behind the "
            "wrong one; only the pipeline's per-location jobs can be promoted."
        )
    if request.generation is not None and tagged != request.generation:
        raise GenerationMismatch(
            f"Training job {job_name!r} trained on preprocessor generation {tagged!r} "
            f"({GENERATION_TAG_KEY} tag), not {request.generation!r}; its model belongs to {tagged!r}."
        )
    artifact_key = s3_layout.preprocessor_artifact_key(tagged)
    if _head(s3, settings.bucket, artifact_key) is None:
        raise GenerationMismatch(
            f"Training job {job_name!r} names preprocessor generation {tagged!r}, but "
            f"s3://{settings.bucket}/{artifact_key} does not exist; a model can only join a generation "
            "whose preprocessor was promoted."
        )
    return tagged


def _artifact_key(job: Mapping[str, Any], bucket: str) -> str:
    job_name = job.get("TrainingJobName", "?")
    uri = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not isinstance(uri, str) or not uri:
        raise ArtifactMissing(
            f"Training job {job_name!r} reports no model artifact (ModelArtifacts.S3ModelArtifacts is "
            "empty); a Completed job must have written model.tar.gz to be promoted."
        )
    key = s3_layout.key_in_bucket(uri, bucket, s3_layout.TRAINING_OUTPUT_PREFIX)
    if key is None:
        expected = s3_layout.s3_uri(bucket, s3_layout.TRAINING_OUTPUT_PREFIX)
        raise ArtifactOutsideTrainingOutput(
            f"Training job {job_name!r} wrote its artifact to {uri}, outside {expected}; only artifacts "
            "written by the pipeline's own training jobs under that prefix can be promoted."
        )
    return key


def _head(s3: S3Client, bucket: str, key: str) -> ObjectFacts | None:
    """HeadObject with checksums, or None when the object does not exist."""
    try:
        response = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        if _error_code(error) in _NOT_FOUND_CODES:
            return None
        raise
    return ObjectFacts(
        key=key,
        size=int(response["ContentLength"]),
        etag=str(response["ETag"]),
        checksums=full_object_checksums(response),
        metadata={str(k).lower(): str(v) for k, v in response.get("Metadata", {}).items()},
        content_type=response.get("ContentType"),
    )


def compare_artifacts(source: ObjectFacts, copy: ObjectFacts) -> str | None:
    """How ``copy`` is shown to hold ``source``'s bytes (see the module docstring), or None if not."""
    if copy.size != source.size:
        return None
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in source.checksums and algorithm in copy.checksums:
            return f"size+{algorithm}" if source.checksums[algorithm] == copy.checksums[algorithm] else None
    if copy.metadata.get(SOURCE_ETAG_METADATA) == _bare_etag(source.etag):
        return "size+source-etag"
    return None


def _mismatch(source: ObjectFacts, copy: ObjectFacts | None) -> str:
    """One phrase saying why :func:`compare_artifacts` rejected ``copy``, for the error message."""
    if copy is None:
        return "no object exists at the destination after the copy"
    if copy.size != source.size:
        return f"{copy.size} bytes instead of {source.size}"
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in source.checksums and algorithm in copy.checksums:
            return (
                f"{algorithm} checksum {copy.checksums[algorithm]} instead of {source.checksums[algorithm]}"
            )
    return (
        f"no checksum in a common algorithm and {SOURCE_ETAG_METADATA} "
        f"{copy.metadata.get(SOURCE_ETAG_METADATA)!r} instead of {_bare_etag(source.etag)!r}"
    )


def _bare_etag(etag: str) -> str:
    return etag.strip('"')


def _server_side_copy(
    s3: S3Client,
    settings: Settings,
    source: ObjectFacts,
    destination_key: str,
    job_name: str,
    *,
    multipart_threshold: int,
    multipart_chunksize: int,
) -> None:
    """CopyObject below the threshold, multipart UploadPartCopy above it: never GetObject/PutObject."""
    single_part = source.size < multipart_threshold
    if single_part and source.checksums:
        # CopyObject recomputes the checksum over the copied bytes in the source's algorithm.
        algorithm = next(iter(source.checksums))
    elif single_part:
        algorithm = DEFAULT_CHECKSUM_ALGORITHM
    else:
        algorithm = MULTIPART_CHECKSUM_ALGORITHM
    extra_args = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": settings.kms_key_arn,
        "ChecksumAlgorithm": algorithm,
        "CopySourceIfMatch": source.etag,
        "MetadataDirective": "REPLACE",
        # No tags are copied, so the function needs no tagging permissions on either side.
        "TaggingDirective": "REPLACE",
        "Metadata": {
            SOURCE_ETAG_METADATA: _bare_etag(source.etag),
            SOURCE_KEY_METADATA: source.key,
            TRAINING_JOB_METADATA: job_name,
        },
        "ContentType": source.content_type or "application/octet-stream",
    }
    config = TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        max_concurrency=COPY_CONCURRENCY,
        preferred_transfer_client="classic",  # s3transfer's CopyObject/UploadPartCopy, never the CRT client
    )
    LOGGER.info(
        "Copying s3://%s/%s (%d bytes) to %s (%s, checksum %s)",
        settings.bucket,
        source.key,
        source.size,
        destination_key,
        "CopyObject" if single_part else "multipart UploadPartCopy",
        algorithm,
    )
    changed = ArtifactVerificationFailed(
        f"s3://{settings.bucket}/{source.key} changed while being promoted (its ETag is no longer "
        f"{source.etag}); promote again from the job's current artifact."
    )
    try:
        s3.copy(
            CopySource={"Bucket": settings.bucket, "Key": source.key},
            Bucket=settings.bucket,
            Key=destination_key,
            ExtraArgs=extra_args,
            Config=config,
        )
    except ClientError as error:
        if _error_code(error) in _PRECONDITION_CODES:
            raise changed from None
        raise
    except S3CopyFailedError as error:
        if "did not match expected ETag" in str(error):
            raise changed from None
        raise


def _read_pointer(s3: S3Client, bucket: str, key: str) -> ModelPointer | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if _error_code(error) in _NOT_FOUND_CODES:
            return None
        raise
    try:
        return ModelPointer.from_json(body)
    except ModelPointerError as error:
        LOGGER.warning("Replacing the unreadable pointer s3://%s/%s: %s", bucket, key, error)
        return None


def _update_pointer(s3: S3Client, settings: Settings, pointer: ModelPointer) -> ModelPointer:
    """Write the pointer unless it already names exactly this version (a retry): then keep it."""
    current = _read_pointer(s3, settings.bucket, pointer.pointer_key)
    if current is not None and replace(current, promoted_at=pointer.promoted_at) == pointer:
        LOGGER.info("s3://%s/%s already names %s", settings.bucket, pointer.pointer_key, pointer.version)
        return current
    # Unconditional: the copy it names has just been verified, and the newest promotion wins.
    write_pointer(s3, settings.bucket, pointer, kms_key_arn=settings.kms_key_arn, expected_etag=UNCONDITIONAL)
    LOGGER.info("s3://%s/%s now names %s", settings.bucket, pointer.pointer_key, pointer.version)
    return pointer


# --------------------------------------------------------------------------------------------------
# Lambda entry point


@functools.cache
def _clients() -> tuple[SageMakerClient, S3Client]:
    """Created once per execution environment; standard retries absorb throttling."""
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return boto3.client("sagemaker", config=config), boto3.client("s3", config=config)


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point: validate the event and environment, promote, return the result."""
    request: PromotionRequest | None = None
    try:
        request = parse_promotion_event(event)
        settings = load_settings(os.environ)
        sagemaker, s3 = _clients()
        result = promote_artifact(request, sagemaker=sagemaker, s3=s3, settings=settings)
    except PromotionError as error:
        asked = (
            {
                "location": request.location,
                "generation": request.generation,
                "training_job_name": request.training_job_name,
            }
            if request
            else {}
        )
        log_rejected(LOGGER, error, **asked)
        raise
    LOGGER.info(
        "promoted",
        extra={
            "artifact": result.artifact,
            "location": result.location,
            "generation": result.generation,
            "version": result.version,
            "target_model": result.target_model,
            "copied": result.copied,
        },
    )
    return result.to_dict()
